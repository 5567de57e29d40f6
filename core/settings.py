"""Every setting in one table: name, default, help. Read from the environment, then `.streamlit/secrets.toml`."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def kind(self) -> type:
        return type(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting("QDRANT_URL", "", "URL of a Qdrant server or cluster, e.g. http://localhost:6333. "
            "Empty: use the embedded engine in ATLAS_STORE_PATH."),
    Setting("QDRANT_API_KEY", "", "API key for the Qdrant server (Qdrant Cloud or a server started with one)."),
    Setting("ATLAS_STORE_PATH", "./data/qdrant", "Folder of the embedded Qdrant engine (one subfolder per collection)."),
    Setting("ATLAS_MODEL", "auto", "Embedding model: auto, clip-vit-b-32, effnet-lite0, or open_clip:<architecture> "
            "with ATLAS_CLIP_WEIGHTS. auto picks clip-vit-b-32 when its weights are available, else effnet-lite0."),
    Setting("ATLAS_CLIP_WEIGHTS", "", "Local OpenCLIP weights file (.pt/.bin/.safetensors) for clip-vit-b-32 or "
            "open_clip:<architecture>; use it on machines without internet."),
    Setting("ATLAS_BATCH_SIZE", 32, "Images per model forward pass during ingest."),
    Setting("ATLAS_DEVICE", "auto", "Torch device for the model: auto (CUDA when available, fp16 there), cpu, cuda."),
    Setting("ATLAS_CPU_BF16", "auto", "bfloat16 on the CPU: auto (where the CPU supports it and the model keeps "
            "cosine >= 0.999 to float32 there: OpenCLIP models on OpenVINO), on (every model; EfficientNet-Lite0 "
            "drops to cosine 0.993), off."),
    Setting("ATLAS_RUNTIME", "auto", "What runs the image model on a CPU: auto (OpenVINO, else ONNX Runtime, else "
            "torch), torch, onnx, openvino. The model is exported to ONNX once and cached in ATLAS_CACHE_DIR/models. "
            "A GPU always runs torch."),
    Setting("ATLAS_WORKERS", 2, "Threads that read, decode and preprocess images while the model runs."),
    Setting("ATLAS_MAX_IMAGE_PIXELS", 50_000_000, "Images with more pixels are skipped as possible decompression bombs."),
    Setting("ATLAS_IMAGE_BASE_URL", "", "Base URL where the image folder is served over HTTP; stored as image_url "
            "in each point's payload (base URL + relative path)."),
    Setting("ATLAS_REPORT_DIR", "./data/reports", "Folder for ingest reports (CSV of skipped files)."),
    Setting("ATLAS_IMAGE_ROOT", "", "Folder that a point's relative `path` is resolved against to show images. "
            "Used for collections whose ingest folder this tool does not remember (ingested elsewhere)."),
    Setting("ATLAS_MAP_MAX_POINTS", 1_000_000, "Most points drawn on the Explore map; larger collections (or "
            "filters) are sampled, and the page says 'showing N of M'. Maps of more than 150,000 points are laid "
            "out from a 50,000-point UMAP with the rest placed among their neighbours."),
    Setting("ATLAS_UNKNOWN_LABELS", "unknown,unlabeled,unlabelled,none,?", "Label values that mean 'no label': "
            "such points are not scored by the audit but get a suggested label (comma-separated)."),
    Setting("ATLAS_USER", "", "Name recorded in label_history for relabels (empty: the login name)."),
    Setting("ATLAS_MAX_UPLOAD_MB", 20, "Largest image accepted as a search query upload, in MB."),
    Setting("ATLAS_CACHE_DIR", "./data/cache", "Folder for thumbnails, computed maps and kNN graphs, exported models, numba's compiled code, and remembered image folders."),
    Setting("ATLAS_LOCK_CONNECTION", "auto", "Lock the sidebar's Qdrant connection (shown as text, no fields, ?qdrant= "
            "links ignored): auto (locked when QDRANT_URL is set in the environment or secrets.toml), on, off."),
    Setting("ATLAS_ALLOWED_HOSTS", "", "Hosts (host or host:port, comma-separated) the server may fetch images "
            "from (payload image_url) and that the sidebar's Server URL may name. Empty: none, except the base "
            "URL a collection was ingested with and QDRANT_URL."),
    Setting("ATLAS_ALLOW_PRIVATE_HOSTS", "off", "on: allow fetching from loopback, private and link-local "
            "addresses (a single-user local run); off: only hosts listed in ATLAS_ALLOWED_HOSTS may be private."),
    Setting("ATLAS_ALLOWED_ROOTS", "", "Server folders (comma-separated) the app may read (ingest, image folder) "
            "and write (embedded store); resolved before the check. Empty: no restriction (a local run)."),
    Setting("ATLAS_READ_ONLY", "off", "on: nobody can change anything (public demos): every page is read-only."),
    Setting("ATLAS_AUTH", "auto", "auto: log-in required when users or an OIDC provider are configured in "
            ".streamlit/secrets.toml; off: no log-in."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _secrets(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _coerce(setting: Setting, raw: Any) -> Any:
    if setting.kind is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"Setting {setting.name} must be a whole number, got {raw!r}.") from None
    return str(raw)


def get(name: str, secrets_path: Path | str = ".streamlit/secrets.toml") -> Any:
    """The value of one setting: environment first, then secrets.toml, then the default."""
    setting = _BY_NAME[name]
    if name in os.environ and os.environ[name] != "":
        return _coerce(setting, os.environ[name])
    secrets = _secrets(Path(secrets_path))
    if name in secrets:
        return _coerce(setting, secrets[name])
    return setting.default


def is_on(name: str, secrets_path: Path | str = ".streamlit/secrets.toml") -> bool:
    """An on/off setting as a bool: on, true, yes, 1 mean on (any case); anything else is off."""
    return str(get(name, secrets_path)).strip().lower() in ("on", "true", "yes", "1")


def source(name: str, secrets_path: Path | str = ".streamlit/secrets.toml") -> str:
    """Where a setting's value comes from: 'environment', 'secrets' or 'default'."""
    if os.environ.get(name, "") != "":
        return "environment"
    return "secrets" if name in _secrets(Path(secrets_path)) else "default"


def all_values(secrets_path: Path | str = ".streamlit/secrets.toml") -> dict[str, Any]:
    return {s.name: get(s.name, secrets_path) for s in SETTINGS}
