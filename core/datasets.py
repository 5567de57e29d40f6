"""Small real labeled image sets that exist offline: Fashion-MNIST from Debian, scikit-learn's digits."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle_boot")


def _idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def fashion_mnist_available(root: Path = FASHION_DIR) -> bool:
    return (root / "t10k-images-idx3-ubyte.gz").is_file()


def load_fashion_mnist(split: str = "t10k", root: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N) from Debian's dataset-fashion-mnist; split is "t10k" or "train"."""
    images = _idx(root / f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(root / f"{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return images, labels


def load_digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """scikit-learn's 1,797 8x8 digits scaled to 0..255."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return (d.images * (255.0 / 16.0)).astype(np.uint8), d.target.astype(np.int64), tuple(str(i) for i in range(10))


def stratified_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def write_image_folder(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], out_dir: Path,
                       indices: np.ndarray | None = None, prefix: str = "") -> list[Path]:
    """Write images as PNG files in one subfolder per class name; returns the paths in the order written."""
    out_dir = Path(out_dir)
    idx = np.arange(len(images)) if indices is None else indices
    paths = []
    for i in idx:
        folder = out_dir / class_names[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}{int(i):05d}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths
