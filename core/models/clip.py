"""OpenCLIP models: ViT-B-32 with OpenAI weights by default, or any architecture with a local weights file."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..images import limit_aspect
from .base import Embedder, ModelError, l2_normalize

DEFAULT_ARCH = "ViT-B-32"
HF_REPO = "timm/vit_base_patch32_clip_224.openai"
HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def cached_openai_weights() -> str | None:
    """The ViT-B-32 OpenAI weights file if an earlier download left it in the Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in HF_FILES:
        found = try_to_load_from_cache(HF_REPO, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(weights_file: str = "") -> tuple[str, str]:
    """Where clip-vit-b-32's weights will come from: (pretrained argument for open_clip, explanation).

    Raises ModelError within seconds when there is no way to get them."""
    if weights_file:
        if not Path(weights_file).is_file():
            raise ModelError(f"ATLAS_CLIP_WEIGHTS points at {weights_file}, which is not a file. Set it to a "
                             "downloaded OpenCLIP weights file, or use ATLAS_MODEL=effnet-lite0 (works offline).")
        return weights_file, f"weights file from ATLAS_CLIP_WEIGHTS ({weights_file})"
    cached = cached_openai_weights()
    if cached:
        return cached, f"OpenAI weights from the local cache ({cached})"
    if hub_reachable():
        return "openai", "OpenAI weights downloaded from the Hugging Face hub (first use only, ~600 MB)"
    raise ModelError("The OpenCLIP ViT-B-32 OpenAI weights are not on this machine and huggingface.co cannot be "
                     "reached. Download them elsewhere and set ATLAS_CLIP_WEIGHTS to the file, or use "
                     "ATLAS_MODEL=effnet-lite0, which works offline (image search only).")


class OpenClipEmbedder(Embedder):
    supports_text = True

    cpu_micro_batch = 16
    runtime_micro_batch = {"onnx": 16, "openvino": 32}  # --tune: OpenVINO bf16 79.5 img/s at 32 vs 74.7 at 16

    def __init__(self, arch: str = DEFAULT_ARCH, pretrained: str | None = "openai", device: str = "cpu",
                 name: str | None = None, cpu_bf16: bool = False):
        """`pretrained`: "openai", a weights file, or None for random weights (plumbing tests only)."""
        import open_clip

        self.device = device
        self.cpu_bf16 = cpu_bf16
        self.name = name or model_name_for_arch(arch)
        openai_weights = arch == DEFAULT_ARCH and pretrained is not None
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained, device=device,
                # OpenAI's ViT-B-32 was trained with QuickGELU; a weights file does not say so itself.
                force_quick_gelu=openai_weights and pretrained != "openai",
                precision="fp16" if device.startswith("cuda") else "fp32")
        except RuntimeError as exc:
            raise ModelError(f"Cannot load OpenCLIP {arch} weights from {pretrained}: {exc}") from None
        self.model = model.eval()
        self._preprocess = preprocess
        self._image_steps, self._mean, self._std = split_normalize(preprocess)
        self._tokenizer = open_clip.get_tokenizer(arch)
        self.dim = int(self.model.visual.output_dim)
        size = getattr(self.model.visual, "image_size", 224)
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        image = limit_aspect(image)  # open_clip scales the short side with no cap on the long
        if self._mean is None:
            return self._preprocess(image)
        # Resize and crop here, uint8 out; scaling and normalising happen in the batch (_forward), which keeps torch
        # ops out of the decode threads (their thread pools fought the model for 2 cores) and batches 4x smaller.
        for step in self._image_steps:
            image = step(image)
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mean is not None:
            x = (x.float() / 255.0 - self._mean) / self._std
        return self.model.encode_image(x.to(self.float_dtype))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t.strip() for t in texts]
        if not texts or not all(texts):
            raise ModelError("Text query is empty: type a few words describing the images you want.")
        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.device)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.device == "cpu" and self.cpu_bf16):
                return l2_normalize(self.model.encode_text(tokens))


def split_normalize(preprocess) -> tuple[list, torch.Tensor | None, torch.Tensor | None]:
    """open_clip's transform as (PIL steps before ToTensor, mean, std) when it is the usual resize, crop, to-tensor,
    normalize; otherwise ([], None, None) and preprocess keeps the whole transform."""
    steps = list(getattr(preprocess, "transforms", []))
    names = [type(t).__name__ for t in steps]
    if len(steps) < 2 or names[-1] != "Normalize" or names[-2] not in ("ToTensor", "MaybeToTensor"):
        return [], None, None
    normalize = steps[-1]
    mean = torch.tensor(normalize.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(normalize.std, dtype=torch.float32).view(1, -1, 1, 1)
    return steps[:-2], mean, std


def model_name_for_arch(arch: str) -> str:
    return "clip-vit-b-32" if arch == DEFAULT_ARCH else f"open_clip:{arch}"
