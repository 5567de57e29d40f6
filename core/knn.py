"""The k-nearest-neighbour graph of a set of unit vectors (cosine), computed once and shared by the map (UMAP),
the label audit and the graph view."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from .store import Filter, PointId, Store

# Exact search is cheap up to here on 2 cores (faiss flat: ~2 s at 20k x 512, 24 s at 70k); above, NN-descent.
EXACT_MAX_POINTS = 20_000


@dataclass
class KnnGraph:
    indices: np.ndarray  # (n, k) int64 row numbers of the neighbours, nearest first, self excluded
    similarities: np.ndarray  # (n, k) float32 cosine similarity
    method: str
    seconds: float

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def umap_input(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, cosine distances) with each point as its own first neighbour, as umap-learn expects."""
        n = len(self.indices)
        idx = np.concatenate([np.arange(n)[:, None], self.indices], axis=1)
        dist = np.concatenate([np.zeros((n, 1), np.float32), 1.0 - self.similarities], axis=1)
        return idx, np.maximum(dist, 0.0).astype(np.float32)


def _threads() -> int:
    return max(1, os.cpu_count() or 1)


def _exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    faiss.omp_set_num_threads(_threads())
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k + 1)
    return idx, sims


def _nndescent(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import pynndescent

    # umap-learn's own NN-descent settings, with the euclidean metric on the unit rows (the same neighbours as
    # cosine; pynndescent's cosine path, angular trees, costs more). Measured on held-out data (synthetic seed 7,
    # 70k x 512, bench/explore.py reports seed 0): recall@15 0.905 in 8.3 CPU s against 0.922 in 14.8 CPU s for
    # our former cosine / 32 trees / 16 iterations, and the UMAP layout on the better graph was not more
    # trustworthy (0.9572 vs 0.9574, mean of three 3k samples): the layout does not need the extra recall.
    n = len(x)
    index = pynndescent.NNDescent(x, n_neighbors=k + 1, metric="euclidean", random_state=seed,
                                  n_trees=min(64, 5 + int(round(n ** 0.5 / 20.0))),
                                  n_iters=max(5, int(round(np.log2(n)))), max_candidates=60, low_memory=True,
                                  compressed=False, n_jobs=-1)
    idx, dist = index.neighbor_graph
    return idx, 1.0 - dist.astype(np.float32) ** 2 / 2  # |a - b|^2 = 2 - 2 cos on unit vectors


def drop_self(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (wherever the search put it, e.g. behind an exact duplicate) and keep k."""
    n = len(idx)
    own = idx == np.arange(n)[:, None]
    # rows where self was not returned lose their last (farthest) neighbour instead
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    keep = ~own
    out_idx = idx[keep].reshape(n, -1)[:, :k]
    out_sims = sims[keep].reshape(n, -1)[:, :k]
    return out_idx.astype(np.int64), out_sims.astype(np.float32)


def knn_graph(vectors: np.ndarray, k: int = 15, method: str = "auto") -> KnnGraph:
    """k nearest neighbours of every row by cosine similarity. method: auto (exact up to EXACT_MAX_POINTS),
    exact (faiss flat) or nndescent (approximate)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 2:
        return KnnGraph(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), "exact", 0.0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    k = min(k, n - 1)
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_POINTS else "nndescent"
    started = time.perf_counter()
    if method == "exact":
        idx, sims = _exact(x, k)
    elif method == "nndescent":
        idx, sims = _nndescent(x, k)
    else:
        raise ValueError(f"Unknown kNN method {method!r}: use auto, exact or nndescent.")
    idx, sims = drop_self(idx, sims, k)
    return KnnGraph(idx, sims, method, time.perf_counter() - started)


def recall(approx: KnnGraph, exact: KnnGraph, rows: np.ndarray | None = None) -> float:
    """Share of the exact k neighbours that the approximate graph found (on `rows`, default all)."""
    rows = np.arange(len(exact.indices)) if rows is None else rows
    hits = sum(len(np.intersect1d(approx.indices[r], exact.indices[r])) for r in rows)
    return hits / (len(rows) * exact.k)


SERVER_PAGE = 256  # points per batched request: one round trip per page, small enough to show progress often


def knn_from_store(store: "Store", collection: str, ids: Sequence["PointId"], vector: str | None = None,
                   k: int = 15, filter: "Filter | None" = None, progress: Callable[[str, float], None] | None = None,
                   page_size: int = SERVER_PAGE, exact: bool = False) -> KnnGraph:
    """The kNN graph of `ids` computed where the vectors live: the store searches each point's neighbours with
    its own stored vectors and index (a Qdrant server: batched queries by point id on its HNSW), page by page,
    so this process holds the graph (n x k) and never the vector matrix.

    `ids` must be every point matching `filter` (the set a map or an audit works on): the server answers among
    those points, and a neighbour outside `ids` (a point added meanwhile) or a short row raises LookupError."""
    say = progress or (lambda _what, _fraction: None)
    ids = list(ids)
    n = len(ids)
    k = min(k, max(n - 1, 0))
    row_of = {pid: i for i, pid in enumerate(ids)}
    indices = np.empty((n, k), np.int64)
    sims = np.empty((n, k), np.float32)
    started = time.perf_counter()
    for start in range(0, n if k else 0, page_size):
        say("kNN graph (server)", start / n)
        page = ids[start:start + page_size]
        for i, hits in enumerate(store.neighbours(collection, page, k, vector=vector, filter=filter, exact=exact)):
            rows = [(row_of[h.id], h.score) for h in hits if h.id in row_of]
            if len(rows) < k:
                raise LookupError(f"The store returned {len(rows)} of {k} neighbours inside the point set for "
                                  f"point {page[i]!r}: the points changed while reading (reload), or the ids are "
                                  "not all the points matching the filter.")
            indices[start + i] = [r for r, _ in rows]
            sims[start + i] = [s for _, s in rows]
    return KnnGraph(indices, sims, "server-exact" if exact else "server", time.perf_counter() - started)
