"""Compile the map code ahead of a user's first map.

UMAP and NN-descent are numba code that compiles on first use (a minute on 2 cores: a new user's first UMAP took
64 s against 3 s warm). Running each code path once on a small random set fills numba's on-disk cache
(NUMBA_CACHE_DIR, set in core/__init__.py; umap-learn's own kernels are made cacheable by
projection.import_umap), so later processes load the compiled kernels instead.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .knn import knn_graph
from .projection import PARALLEL_ABOVE, TsneParams, UmapParams, import_umap, project

STAMP = ".atlas-warm"


def cache_dir() -> Path:
    return Path(os.environ["NUMBA_CACHE_DIR"])


def _stamp_text() -> str:
    # the compiled code is only valid for these library versions (numba also checks source files itself)
    from importlib import metadata

    return " ".join(f"{p}={metadata.version(p)}" for p in ("numba", "umap-learn", "pynndescent", "openTSNE"))


def is_warm() -> bool:
    stamp = cache_dir() / STAMP
    return stamp.is_file() and stamp.read_text() == _stamp_text()


def warm_up(progress: Callable[[str], None] | None = None, force: bool = False) -> float:
    """Run every numba code path a map uses once; returns the seconds it took (0 when already warm)."""
    if is_warm() and not force:
        return 0.0
    say = progress or (lambda _what: None)
    started = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(600, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    say("NN-descent (the kNN graph of collections over 20,000 points)")
    knn_graph(x, 15, method="nndescent")
    say("UMAP, single-threaded (maps up to 20,000 points)")
    project(x, UmapParams(), knn_graph(x, 15))
    say(f"UMAP, parallel (maps over {PARALLEL_ABOVE:,} points)")
    _umap_parallel(x)
    say("t-SNE")
    project(x, TsneParams(perplexity=10))
    cache_dir().mkdir(parents=True, exist_ok=True)
    (cache_dir() / STAMP).write_text(_stamp_text())
    return time.perf_counter() - started


def _umap_parallel(x: np.ndarray) -> None:
    """The layout code umap-learn runs without a random_state (our large maps) compiles separately."""
    import warnings

    umap = import_umap()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, dist = knn_graph(x, 15).umap_input()
        umap.UMAP(n_neighbors=15, metric="cosine", n_jobs=-1, n_epochs=20,
                  precomputed_knn=(idx, dist)).fit_transform(x)
