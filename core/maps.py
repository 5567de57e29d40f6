"""The collection as a 2D map: points -> shared kNN graph -> projection, each step cached on disk."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .cache import ArrayCache, key_of
from .knn import KnnGraph, knn_graph
from .points import PointSet, load_points, load_vectors
from .projection import Projection, ProjectionParams, UmapParams, project
from .store import Filter, Store

# Every check and every map shares one graph per point set; built with at least this many neighbours so that
# the usual requests (UMAP's 15, the audit's 10) all hit the same cached graph.
SHARED_K = 15

Progress = Callable[[str, float], None]


@dataclass
class MapResult:
    points: PointSet
    coords: np.ndarray  # (n, 2), rows in the order of points.ids
    method: str
    params: dict
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0


def shared_knn(points: PointSet, vectors: np.ndarray, k: int, cache: ArrayCache | None) -> KnnGraph:
    """The kNN graph of a point set, computed once per fingerprint and reused by UMAP, the audit and the graph."""
    k_graph = max(k, SHARED_K)
    key = key_of("knn", points.fingerprint, k_graph)
    hit = cache.get("knn", key) if cache else None
    if hit is not None:
        return KnnGraph(hit["indices"], hit["similarities"], str(hit["method"]), 0.0)
    graph = knn_graph(vectors, k_graph)
    if cache:
        cache.put("knn", key, {"indices": graph.indices, "similarities": graph.similarities,
                               "method": np.array(graph.method)})
    return graph


def compute_map(store: Store, collection: str, params: ProjectionParams = UmapParams(), vector: str | None = None,
                filter: Filter | None = None, max_points: int | None = None, cache: ArrayCache | None = None,
                progress: Progress | None = None, points: PointSet | None = None,
                cached_only: bool = False) -> MapResult | None:
    """Coordinates for the collection's points (matching `filter`, sampled to `max_points`). With cached_only,
    None unless the map is already cached."""
    started = time.perf_counter()
    say = progress or (lambda _w, _f: None)
    say("reading points", 0.0)
    pts = points or load_points(store, collection, vector, filter, max_points)
    key = key_of("map", pts.fingerprint, asdict(params))
    hit = cache.get("map", key) if cache else None
    if hit is not None:
        return MapResult(pts, hit["coords"], str(hit["method"]), asdict(params),
                         [str(n) for n in hit["notes"]], True, time.perf_counter() - started)
    if cached_only:
        return None
    say("reading vectors", 0.02)
    vectors = load_vectors(store, pts, filter)
    knn = None
    if isinstance(params, UmapParams) and len(pts) >= 8:
        say("kNN graph", 0.05)
        knn = shared_knn(pts, vectors, params.n_neighbors, cache)
    proj: Projection = project(vectors, params, knn=knn, progress=progress)
    if cache:
        cache.put("map", key, {"coords": proj.coords, "method": np.array(proj.method),
                               "notes": np.array(proj.notes, dtype=str)})
    return MapResult(pts, proj.coords, proj.method, proj.params, proj.notes, False, time.perf_counter() - started)
