"""Faster CPU inference for the image towers: the torch model exported once to ONNX, run by OpenVINO or ONNX Runtime.

PyTorch stays the reference (and the GPU path). On a CPU, `wrap` exports the model's image forward to an ONNX file
cached per model weights and input size, and returns an Embedder that runs it; preprocessing and the text tower stay
on the torch model (texts are one short query at a time, not a throughput path).
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from PIL import Image

from .base import Embedder, ModelError, SettingError

if TYPE_CHECKING:
    import torch

RUNTIMES = ("auto", "torch", "onnx", "openvino")
OPSET = 18
EXPORT_VERSION = 2  # bump when the exported graph changes, so old cache files are not reused


def available(runtime: str) -> bool:
    import importlib.util

    module = {"onnx": "onnxruntime", "openvino": "openvino"}.get(runtime)
    return module is None or importlib.util.find_spec(module) is not None


def pick_runtime(setting: str, device: str) -> str:
    """The runtime a setting means on a device. auto: OpenVINO on a CPU (measured fastest, bench/ingest.py), then
    ONNX Runtime, then torch; always torch on a GPU."""
    setting = (setting or "auto").strip().lower()
    if setting not in RUNTIMES:
        raise SettingError(f"ATLAS_RUNTIME={setting!r} is not a runtime: use one of {', '.join(RUNTIMES)}.")
    if device != "cpu":
        if setting in ("onnx", "openvino"):
            raise SettingError(f"ATLAS_RUNTIME={setting} runs on the CPU only, but ATLAS_DEVICE chose {device}. "
                             "Use ATLAS_RUNTIME=auto or torch on a GPU, or ATLAS_DEVICE=cpu.")
        return "torch"
    if setting == "auto":
        return next((r for r in ("openvino", "onnx") if available(r)), "torch")
    if not available(setting):
        package = {"onnx": "onnxruntime", "openvino": "openvino"}[setting]
        raise ModelError(f"ATLAS_RUNTIME={setting} needs the package {package}: pip install -r requirements.txt, "
                         "or use ATLAS_RUNTIME=torch.")
    return setting


# --- export ------------------------------------------------------------------------------------------------------------
def weights_digest(model: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer: the cache key that cannot go stale when the weights change."""
    digest = hashlib.blake2b(digest_size=8)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _image_forward(embedder: Embedder) -> torch.nn.Module:
    """The torch module ONNX export traces: preprocessed pixels in, unnormalised features out."""
    import torch

    class ImageForward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = embedder.model  # registered, so its weights are exported as initialisers

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return embedder._forward(pixels)

    return ImageForward().eval()


def export_path(embedder: Embedder, cache_dir: str | Path) -> Path:
    import torch

    size = embedder.input_size
    key = f"{weights_digest(embedder.model)}-t{torch.__version__.split('+')[0]}-o{OPSET}-v{EXPORT_VERSION}"
    safe_name = embedder.name.replace(":", "_").replace("/", "_")
    return Path(cache_dir) / "models" / f"{safe_name}-{size}px-{key}.onnx"


_export_lock = threading.Lock()


def export_onnx(embedder: Embedder, cache_dir: str | Path) -> Path:
    """The ONNX file of the embedder's image forward, exported on first use and reused after (per weights, size)."""
    import torch

    path = export_path(embedder, cache_dir)
    with _export_lock:
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        module = _image_forward(embedder)
        for p in module.parameters():
            p.requires_grad_(False)
        example = embedder.example_batch(2)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX export
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
                torch.onnx.export(module, (example,), str(tmp), input_names=["pixels"], output_names=["features"],
                                  dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                                  opset_version=OPSET, dynamo=False)
            os.replace(tmp, path)  # whole file or none: a crash mid-export never leaves a broken cache entry
        except BaseException as exc:
            tmp.unlink(missing_ok=True)  # an interrupted export too: a ViT-B-32 leftover is 350 MB
            if not isinstance(exc, Exception):
                raise
            raise ModelError(f"Could not export {embedder.name} to ONNX ({type(exc).__name__}: {exc}).") from None
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        return path


# --- runners -----------------------------------------------------------------------------------------------------------
def _threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def onnx_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (lambda x: session.run(None, {"pixels": x})[0]), f"ONNX Runtime {ort.__version__} fp32"


def openvino_runner(path: Path, bf16: bool) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import openvino as ov

    core = ov.Core()
    core.set_property({"CACHE_DIR": str(path.parent / "openvino")})  # compiled kernels: later loads take ~1 s
    precision = "bf16" if bf16 else "f32"
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                     "PERFORMANCE_HINT": "LATENCY",
                                                     "INFERENCE_NUM_THREADS": _threads()})
    request = compiled.create_infer_request()
    lock = threading.Lock()  # one infer request: calls from several threads take turns

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            # share_inputs: no copy of the batch in; the output buffer is reused by the next call, so copy it out
            return request.infer({0: x}, share_inputs=True)[0].copy()

    return run, f"OpenVINO {ov.get_version().split('-')[0]} {precision}"


class CompiledEmbedder(Embedder):
    """A torch Embedder's image forward run by another runtime; everything else is the torch model's."""

    def __init__(self, base: Embedder, run: Callable[[np.ndarray], np.ndarray], runtime: str, description: str,
                 micro_batch: int) -> None:
        self.base = base
        self.name, self.dim, self.supports_text = base.name, base.dim, base.supports_text
        self.input_size = base.input_size
        self.device = "cpu"
        self.runtime = runtime
        self.description = description
        self.cpu_micro_batch = micro_batch
        self._run = run

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.base.preprocess(image)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # Embedder.embed_batch slices the batch by cpu_micro_batch and normalises, as for the torch models
        import torch

        return torch.from_numpy(self._run(np.ascontiguousarray(x.numpy(), dtype=np.float32)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.embed_texts(texts)


def wrap(base: Embedder, runtime: str, cache_dir: str | Path, bf16: bool) -> Embedder:
    """`base` with its image forward on `runtime` (onnx or openvino); raises ModelError when that cannot work."""
    path = export_onnx(base, cache_dir)
    try:
        if runtime == "openvino":
            run, description = openvino_runner(path, bf16)
        elif runtime == "onnx":
            run, description = onnx_runner(path)
        else:
            raise ModelError(f"Unknown runtime {runtime!r}.")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot load the graph: the caller falls back or says so
        raise ModelError(f"{runtime} could not load {path.name} ({type(exc).__name__}: {exc}).") from None
    micro_batch = base.runtime_micro_batch.get(runtime, base.cpu_micro_batch)
    return CompiledEmbedder(base, run, runtime, description, micro_batch)


def describe(embedder: Embedder) -> str:
    """One line for logs and pages: which runtime runs the model."""
    if isinstance(embedder, CompiledEmbedder):
        return embedder.description
    import torch

    version = torch.__version__.split('+')[0]
    if embedder.device.startswith("cuda"):
        return f"PyTorch {version} fp16 on {embedder.device}"
    line = f"PyTorch {version} {'bf16 autocast' if embedder.cpu_bf16 else 'fp32'}"
    return f"{line} ({embedder.runtime_note})" if embedder.runtime_note else line


__all__ = ["RUNTIMES", "CompiledEmbedder", "available", "describe", "export_onnx", "pick_runtime", "wrap"]
