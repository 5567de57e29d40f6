"""The demo dataset: real labeled images with a few planted mislabels, recorded in a ground-truth file."""
from __future__ import annotations

import csv
import gzip
import io
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import datasets

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass
class DemoData:
    folder: Path  # one subfolder per label
    source: str
    images: int
    planted: int
    ground_truth: Path


def _download_fashion(timeout: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    def get(name: str, header: int) -> np.ndarray:
        with urllib.request.urlopen(FASHION_URL + name, timeout=timeout) as resp:  # noqa: S310 - fixed URL
            return np.frombuffer(gzip.GzipFile(fileobj=io.BytesIO(resp.read())).read(), np.uint8, offset=header)
    return get("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), get("t10k-labels-idx1-ubyte.gz", 8).astype(int)


def load_source() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Fashion-MNIST from Debian's package, else downloaded, else scikit-learn's digits; says which."""
    if datasets.fashion_mnist_available():
        images, labels = datasets.load_fashion_mnist("t10k")
        return images, labels, datasets.FASHION_CLASSES, f"Fashion-MNIST test split ({datasets.FASHION_DIR})"
    try:
        images, labels = _download_fashion()
        return images, labels, datasets.FASHION_CLASSES, f"Fashion-MNIST test split (downloaded from {FASHION_URL})"
    except OSError:
        images, labels, names = datasets.load_digits()
        return images, labels, names, "scikit-learn digits (Fashion-MNIST was neither installed nor downloadable)"


def build_demo(out_dir: Path | str, per_class: int = 200, mislabel_fraction: float = 0.02,
               seed: int = 0) -> DemoData:
    """Write per_class images of each class into out_dir/images/<label>/, moving a few into a wrong label's
    folder; out_dir/ground_truth.csv lists every image with its given and true label."""
    out = Path(out_dir)
    folder = out / "images"
    images, labels, names, source = load_source()
    idx = datasets.stratified_indices(labels, per_class, seed)
    rng = np.random.default_rng(seed)
    given = labels.copy()
    n_planted = int(round(len(idx) * mislabel_fraction))
    planted = rng.choice(idx, size=n_planted, replace=False)
    for i in planted:
        given[i] = rng.choice([c for c in range(len(names)) if c != labels[i]])
    paths = datasets.write_image_folder(images, given, names, folder, idx, prefix="img")
    truth = out / "ground_truth.csv"
    planted_set = set(int(i) for i in planted)
    with truth.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "given_label", "true_label", "planted_mislabel"])
        for i, p in zip(idx, paths):
            w.writerow([p.relative_to(folder).as_posix(), names[given[i]], names[labels[i]], int(i) in planted_set])
    return DemoData(folder, source, len(idx), n_planted, truth)
