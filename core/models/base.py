"""The one interface every embedding model offers."""
from __future__ import annotations

import ctypes
import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch
# torch is imported where it is used: pages import this module for model names and settings, and importing torch
# alone takes seconds on a small machine


class ModelError(Exception):
    """A model that cannot be loaded or used; the message names the setting or model that helps."""


class SettingError(ModelError):
    """A setting with a value that names no model, device or runtime: the fix is the setting, not the weights."""


class TextNotSupported(ModelError):
    pass


def pick_device(setting: str = "auto") -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"ATLAS_DEVICE={setting} but no CUDA GPU is visible to torch; use ATLAS_DEVICE=cpu.")
    return setting


def cpu_bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_allocator_tuned = False


def tune_cpu_allocator() -> None:
    """Keep freed activation memory in the process (glibc). A batch's activations are ~100 MB; by default glibc
    returns them to the OS after every forward and page-faults them back in, which made CPU forwards ~3x slower
    here (as much system time as compute)."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune
    _allocator_tuned = True


def l2_normalize(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x.cpu().numpy().astype(np.float32, copy=False)


class Embedder(ABC):
    """Images (and, where the model has one, texts) to L2-normalised float32 vectors of size `dim`.

    `preprocess` is CPU work that may run in worker threads; `embed_batch` runs the model."""

    name: str
    dim: int
    supports_text: bool = False
    device: str = "cpu"
    cpu_bf16: bool = False  # bfloat16 autocast on CPUs that support it (cosine to fp32 >= 0.999)
    cpu_micro_batch: int = 0  # CPU forwards in slices of this size (0: whole batch), the fastest size on CPU
    runtime_micro_batch: dict[str, int] = {}  # the fastest slice per CPU runtime (bench/ingest.py --tune)
    input_size: int = 224  # square side `preprocess` produces
    runtime: str = "torch"  # what runs the image forward: torch, onnx or openvino (models/runtime.py)
    runtime_note: str = ""  # why a faster runtime was not used, when auto fell back to torch

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image to a CHW tensor on the CPU."""

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model features of a batch already on the device (unnormalised)."""

    def example_batch(self, n: int) -> torch.Tensor:
        """n preprocessed grey images as float32: the example input for tracing the forward."""
        import torch

        grey = self.preprocess(Image.new("RGB", (self.input_size, self.input_size), (128, 128, 128)))
        return torch.stack([grey] * n).float()

    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """A stacked NCHW batch from `preprocess` to an (N, dim) float32 array of unit rows."""
        import torch

        on_cpu = self.device == "cpu"
        step = self.cpu_micro_batch if on_cpu and self.cpu_micro_batch else len(batch)
        outputs = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu and self.cpu_bf16):
            for start in range(0, len(batch), max(1, step)):
                x = batch[start:start + step].to(self.device, non_blocking=True)
                outputs.append(self._forward(x))
        return l2_normalize(torch.cat(outputs))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        return self.embed_batch(torch.stack([self.preprocess(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TextNotSupported(f"The model '{self.name}' has no text encoder, so it cannot search by text. "
                               "Ingest with clip-vit-b-32 (ATLAS_MODEL=clip-vit-b-32) for text search.")

    @property
    def float_dtype(self) -> torch.dtype:
        import torch

        return torch.float16 if self.device.startswith("cuda") else torch.float32
