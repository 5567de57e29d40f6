"""A second, model-free view of each image: its colours and layout as a tiny thumbnail vector.

Ingest stores it next to the model's vector (named vector "pixels"). The label audit adds it to the model's
embedding as more evidence per point: it sees what a semantic model abstracts away (shape outline, colour,
framing), and on Fashion-MNIST *train* images it raised the label check's average precision by 0.006-0.017
(bench/audit.py --tune). It is never offered for search or maps: it is not a model of what images mean.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

PIXELS = "pixels"  # the named vector
SIDE = 12  # 12 x 12 RGB: the 8-16 px range did alike on held-out images; 432 floats per point
DIM = SIDE * SIDE * 3


def pixel_vector(image: Image.Image) -> np.ndarray:
    """The image (RGB, any size) box-averaged to SIDE x SIDE, as DIM floats in [0, 1]."""
    small = image.convert("RGB").resize((SIDE, SIDE), Image.BOX)
    return np.asarray(small, np.float32).reshape(-1) / 255.0


def is_auxiliary(vector_name: str) -> bool:
    """Vectors that are evidence for the audit, not an embedding to search or map."""
    return vector_name == PIXELS
