"""2D maps of embeddings: UMAP (on the shared kNN graph), t-SNE (openTSNE, after PCA to 50-d) and PCA."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from .knn import KnnGraph, knn_graph

# t-SNE grows faster than linearly and has no landmark layout here: above this, the map asks for UMAP or a sample.
TSNE_MAX_POINTS = 200_000
PARALLEL_ABOVE = 20_000  # points; see _umap
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances", "umap.sparse")

Progress = Callable[[str, float], None]  # (what is happening, fraction done)


@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 42
    method: str = "umap"


@dataclass(frozen=True)
class TsneParams:
    perplexity: float = 30.0
    seed: int = 42
    method: str = "tsne"


@dataclass(frozen=True)
class PcaParams:
    seed: int = 42
    method: str = "pca"


ProjectionParams = UmapParams | TsneParams | PcaParams


def params_from(method: str, **kw: float) -> ProjectionParams:
    cls = {"umap": UmapParams, "tsne": TsneParams, "t-sne": TsneParams, "pca": PcaParams}.get(method.lower())
    if cls is None:
        raise ValueError(f"Unknown projection {method!r}: use umap, tsne or pca.")
    names = {f for f in cls.__dataclass_fields__ if f != "method"}
    return cls(**{k: v for k, v in kw.items() if k in names and v is not None})


@dataclass
class Projection:
    coords: np.ndarray  # (n, 2) float32
    method: str
    params: dict
    notes: list[str] = field(default_factory=list)  # adjustments the data forced, said to the user
    seconds: float = 0.0


def _pca(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[0], x.shape[1])
    return PCA(dims, random_state=seed, svd_solver="auto").fit_transform(x).astype(np.float32)


def _small(x: np.ndarray) -> np.ndarray:
    """Coordinates for 0-3 points, where no method has anything to learn."""
    n = len(x)
    if n <= 1:
        return np.zeros((n, 2), np.float32)
    out = np.zeros((n, 2), np.float32)
    out[:, :1] = _pca(x, 1, 0) if np.ptp(x, axis=0).max() > 0 else 0
    return out


def project(vectors: np.ndarray, params: ProjectionParams, knn: KnnGraph | None = None,
            progress: Progress | None = None) -> Projection:
    """2D coordinates for the rows of `vectors` (unit rows). UMAP uses `knn` when given (k >= n_neighbors)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    started = time.perf_counter()
    notes: list[str] = []
    say = progress or (lambda _what, _f: None)
    used = asdict(params)
    if n < 4 or (n < 8 and params.method != "pca"):
        notes.append(f"{n} point(s) are too few for {params.method.upper()}; placed along their main direction.")
        return Projection(_small(x), "pca", used, notes, time.perf_counter() - started)

    if isinstance(params, TsneParams) and n > TSNE_MAX_POINTS:
        raise ValueError(f"A t-SNE map of {n:,} points would take hours on a few cores (openTSNE: ~200 s at "
                         f"100,000). Use UMAP, which draws every point, or set the points to at most "
                         f"{TSNE_MAX_POINTS:,} (a seeded sample).")
    if isinstance(params, PcaParams):
        say("PCA", 0.5)
        coords = _pca(x, 2, params.seed)
    elif isinstance(params, TsneParams):
        coords, used = _tsne(x, params, notes, say)
    else:
        coords, used = _umap(x, params, knn, notes, say)
    if not np.isfinite(coords).all():
        notes.append(f"{params.method.upper()} produced invalid coordinates on this data; showing PCA instead.")
        coords, used = _pca(x, 2, params.seed), {**asdict(PcaParams(params.seed))}
    say("done", 1.0)
    return Projection(coords.astype(np.float32), used["method"], used, notes, time.perf_counter() - started)


def project_graph(knn: KnnGraph, params: UmapParams, progress: Progress | None = None) -> Projection:
    """UMAP coordinates from the kNN graph alone, for a graph taken from a Qdrant server (knn.knn_from_store):
    the vector matrix never enters this process. umap-learn wants an X even with a precomputed graph, but only
    for its shape here: it gets an n x 1 column of zeros, and spectral init on the graph instead of PCA init on X
    (held-out synthetic set, 5k: trustworthiness 0.9612 against 0.9613 with the real vectors)."""
    n = len(knn.indices)
    started = time.perf_counter()
    say = progress or (lambda _what, _f: None)
    if n < 8 or knn.k < 2:
        return Projection(np.zeros((n, 2), np.float32), "pca", asdict(params),
                          [f"{n} point(s) are too few for UMAP from a graph."], time.perf_counter() - started)
    notes: list[str] = []
    if params.n_neighbors > knn.k + 1:  # the graph has what it has: no vectors to search for more
        notes.append(f"n_neighbors {params.n_neighbors} is more than the graph's {knn.k} neighbours; used "
                     f"{knn.k + 1}.")
        params = replace(params, n_neighbors=knn.k + 1)
    coords, used = _umap(np.zeros((n, 1), np.float32), params, knn, notes, say, graph_only=True)
    say("done", 1.0)
    return Projection(coords.astype(np.float32), "umap", used, notes, time.perf_counter() - started)


def _tsne(x: np.ndarray, params: TsneParams, notes: list[str], say: Progress) -> tuple[np.ndarray, dict]:
    from openTSNE import TSNE

    n = len(x)
    perplexity = params.perplexity
    if perplexity >= (n - 1) / 3:
        perplexity = max(1.0, (n - 1) / 3 - 1)
        notes.append(f"Perplexity {params.perplexity:g} is too large for {n} points; used {perplexity:.0f}.")
    say("PCA to 50 dimensions", 0.05)
    reduced = _pca(x, 50, params.seed)  # t-SNE on 50 PCA dims: same neighbourhoods, far faster affinities
    say("t-SNE", 0.2)
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", random_state=params.seed,
                n_jobs=os.cpu_count() or 1, verbose=False)
    coords = np.asarray(tsne.fit(reduced))
    return coords, {**asdict(params), "perplexity": perplexity}


def import_umap():
    """umap-learn, with numba's on-disk cache switched on for its kernels.

    umap-learn compiles its kernels without `cache=True`, so every new process spent 5-20 s compiling them before
    its first map (a new user's first UMAP: 64 s against 3 s warm). With caching enabled on each of its numba
    dispatchers before their first call, a new process loads them from NUMBA_CACHE_DIR (core/__init__.py), which
    `python -m core warmup` fills during setup: the demo's first map in a new process took 1.9 s against 1.8 s warm.
    """
    global _umap_cache_on
    import importlib

    import umap
    if not _umap_cache_on:
        from numba.core.dispatcher import Dispatcher

        for name in UMAP_MODULES:
            for obj in vars(importlib.import_module(name)).values():
                if isinstance(obj, Dispatcher) and type(obj._cache).__name__ == "NullCache":
                    obj.enable_caching()
        _umap_cache_on = True
    return umap


_umap_cache_on = False


def _umap(x: np.ndarray, params: UmapParams, knn: KnnGraph | None, notes: list[str],
          say: Progress, graph_only: bool = False) -> tuple[np.ndarray, dict]:
    n = len(x)
    k = params.n_neighbors
    if k >= n:
        k = n - 1
        notes.append(f"n_neighbors {params.n_neighbors} is not below the number of points ({n}); used {k}.")
    k = max(2, k)
    if knn is None or knn.k < k - 1:
        say("kNN graph", 0.05)
        knn = knn_graph(x, k)
    say("UMAP layout", 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap warns that a precomputed kNN cannot transform new data: fine
        umap = import_umap()
        knn_idx, knn_dist = knn.umap_input()
        # Small maps: single-threaded and bit-for-bit reproducible from the seed. Large maps: the layout uses
        # every core (umap-learn can only do that without a random_state), seeded through numpy's global state;
        # they are cached, so a map reopens identical until its points change.
        exact_seed = n <= PARALLEL_ABOVE
        if exact_seed:
            reducer = umap.UMAP(n_neighbors=k, min_dist=params.min_dist, metric="cosine", random_state=params.seed,
                                n_jobs=1, precomputed_knn=(knn_idx[:, :k], knn_dist[:, :k]))
        else:
            np.random.seed(params.seed)
            # Large maps, chosen on held-out data (synthetic seed 7 at 70k; bench/explore.py reports seed 0): PCA
            # init instead of spectral saves CPU seconds at 70k at the same trustworthiness (0.9570-0.9574 over
            # runs, mean of 3-4 samples of 3k, against 0.9572 for umap.UMAP()); 150 epochs or negative_sample_rate 3
            # lost ~0.001, 240-260 epochs gained 0.0001-0.0006 for 20-30% more CPU: umap-learn's 200 stay.
            # Euclidean distances on the unit sphere (sqrt(2 - 2 cos)): umap-learn's default weighting, as the
            # anchor `umap.UMAP()` uses on these vectors.
            euclid = np.sqrt(np.maximum(2.0 * knn_dist[:, :k], 0.0)).astype(np.float32)
            reducer = umap.UMAP(n_neighbors=k, min_dist=params.min_dist, metric="euclidean",
                                init="spectral" if graph_only else "pca",
                                random_state=None, n_jobs=-1, precomputed_knn=(knn_idx[:, :k], euclid))
        coords = reducer.fit_transform(x)
    return coords, {**asdict(params), "n_neighbors": k}


