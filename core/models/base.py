"""The one interface every embedding model offers."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch
from PIL import Image


class ModelError(Exception):
    """A model that cannot be loaded or used; the message names the setting or model that helps."""


class TextNotSupported(ModelError):
    pass


def pick_device(setting: str = "auto") -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"ATLAS_DEVICE={setting} but no CUDA GPU is visible to torch; use ATLAS_DEVICE=cpu.")
    return setting


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

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image to a CHW float tensor on the CPU."""

    @abstractmethod
    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """A stacked NCHW batch from `preprocess` to an (N, dim) float32 array of unit rows."""

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_batch(torch.stack([self.preprocess(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TextNotSupported(f"The model '{self.name}' has no text encoder, so it cannot search by text. "
                               "Ingest with clip-vit-b-32 (ATLAS_MODEL=clip-vit-b-32) for text search.")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.float16 if self.device.startswith("cuda") else torch.float32
