"""Synthetic embeddings shaped like real ones: unit vectors in clusters whose spread lives in a low-dimensional
subspace (real image embeddings have an intrinsic dimension of a few dozen, not 512)."""
from __future__ import annotations

import numpy as np


def clustered_vectors(n: int, dim: int = 512, clusters: int = 10, intrinsic: int = 32, spread: float = 0.35,
                      noise: float = 0.02, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(unit float32 vectors n x dim, cluster label per row)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32)
    basis = np.linalg.qr(rng.normal(size=(dim, intrinsic)))[0].astype(np.float32).T  # (intrinsic, dim)
    labels = rng.integers(0, clusters, size=n)
    local = rng.normal(size=(n, intrinsic)).astype(np.float32) * spread * np.sqrt(dim / intrinsic)
    x = centers[labels] + local @ basis + rng.normal(size=(n, dim)).astype(np.float32) * noise * np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels
