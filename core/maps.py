"""The collection as a 2D map: points -> shared kNN graph -> projection, each step cached on disk.

Large maps (more than landmarks.LANDMARK_ABOVE points) use the landmark layout; a map of a point set that an
earlier cached map mostly covers (same collection, vector, filter, parameters) is updated incrementally: new points
are placed among their nearest existing ones and the shared kNN graph is patched, instead of recomputing it all.
Every step is reported through `progress` and can be stopped through `cancel` (MapCancelled)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .cache import ArrayCache, key_of
from .knn import KnnGraph, knn_from_store, knn_graph
from .landmarks import (LANDMARK_ABOVE, Cancel, MapCancelled, check, in_worker, insert_reverse, landmark_layout,
                        large_knn_graph, propagate, search_rows, unit_rows)
from .points import PointSet, load_points, load_vectors, point_keys
from .projection import Projection, ProjectionParams, UmapParams, project, project_graph
from .store import Filter, Store

# Every check and every map shares one graph per point set; built with at least this many neighbours so that
# the usual requests (UMAP's 15, the audit's 10) all hit the same cached graph.
SHARED_K = 15
# Incremental updates: only above this size (below, a full UMAP is quick and exactly reproducible), only while
# the points added or removed since the last full layout stay under this share of the map.
INCREMENTAL_ABOVE = 20_000
INCREMENTAL_MAX_SHARE = 0.10
INCREMENTAL_NOTE = "Placed "  # how the notes of an incremental update begin (replaced by the next one)

Progress = Callable[[str, float], None]

__all__ = ["MapCancelled", "MapResult", "SHARED_K", "compute_map", "shared_knn"]


@dataclass
class MapResult:
    points: PointSet
    coords: np.ndarray  # (n, 2), rows in the order of points.ids
    method: str
    params: dict
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0
    layout: str = ""  # "full" (one projection), "landmarks" or "incremental" (see the module docstring)
    added: int = 0  # incremental: points placed into the earlier map
    removed: int = 0  # incremental: points of the earlier map that are gone


def _expected_knn_s(n: int) -> float:
    """Rough NN-descent time on 2 cores (for the progress bar only): 70k ~4 s, 1M ~ a few minutes."""
    return max(1.0, n / 15_000) * (1.0 + n / 1_000_000)


def shared_knn(points: PointSet, vectors: np.ndarray, k: int, cache: ArrayCache | None,
               progress: Progress | None = None, cancel: Cancel = None) -> KnnGraph:
    """The kNN graph of a point set, computed once per fingerprint and reused by UMAP, the audit and the graph."""
    k_graph = max(k, SHARED_K)
    key = key_of("knn", points.fingerprint, k_graph)
    hit = cache.get("knn", key) if cache else None
    if hit is not None:
        return KnnGraph(hit["indices"], hit["similarities"], str(hit["method"]), 0.0)
    say = progress or (lambda _w, _f: None)
    # NN-descent has no hook: it runs in a worker while progress ticks and cancel is watched
    build = large_knn_graph if len(vectors) > LANDMARK_ABOVE else knn_graph  # bounded memory at 1M
    graph = in_worker(lambda _say: build(vectors, k_graph), "kNN graph", 0.1, 0.35,
                      _expected_knn_s(len(vectors)), say, cancel)
    _put_graph(cache, key, graph)
    return graph


def _put_graph(cache: ArrayCache | None, key: str, graph: KnnGraph) -> None:
    if cache:
        cache.put("knn", key, {"indices": graph.indices, "similarities": graph.similarities,
                               "method": np.array(graph.method)})


def _line_key(store: Store, pts: PointSet, filter: Filter | None, max_points: int | None,
              params: ProjectionParams) -> str:
    """What stays the same when points are added: the latest map of this line is the base of incremental updates."""
    return key_of("map-line", store.location, pts.collection, pts.vector, dict(filter or {}), max_points,
                  asdict(params))


def _put_map(cache: ArrayCache | None, store: Store, pts: PointSet, filter: Filter | None, max_points: int | None,
             params: ProjectionParams, coords: np.ndarray, method: str, notes: list[str], layout: str,
             drift: int) -> None:
    if not cache:
        return
    key = key_of("map", pts.fingerprint, asdict(params))
    keys = point_keys(pts) if len(pts) > INCREMENTAL_ABOVE else np.zeros(0, np.uint64)
    cache.put("map", key, {"coords": coords, "method": np.array(method), "notes": np.array(notes, dtype=str),
                           "layout": np.array(layout), "keys": keys, "drift": np.array(drift)})
    if len(keys):
        cache.put("map-line", _line_key(store, pts, filter, max_points, params),
                  {"fingerprint": np.array(pts.fingerprint)})


def compute_map(store: Store, collection: str, params: ProjectionParams = UmapParams(), vector: str | None = None,
                filter: Filter | None = None, max_points: int | None = None, cache: ArrayCache | None = None,
                progress: Progress | None = None, points: PointSet | None = None,
                cached_only: bool = False, cancel: Cancel = None, incremental: bool = True) -> MapResult | None:
    """Coordinates for the collection's points (matching `filter`, sampled to `max_points`). With cached_only,
    None unless the map is already cached. cancel: a threading.Event (or a callable returning True) that stops
    the computation with MapCancelled. incremental: allow updating an earlier cached map of the same points."""
    started = time.perf_counter()
    say = progress or (lambda _w, _f: None)
    say("reading points", 0.0)
    pts = points or in_worker(lambda _s: load_points(store, collection, vector, filter, max_points),
                              "reading points", 0.0, 0.02, 5.0, say, cancel)  # no count first: it opens the shard
    key = key_of("map", pts.fingerprint, asdict(params))
    hit = cache.get("map", key) if cache else None
    if hit is not None:
        return MapResult(pts, hit["coords"], str(hit["method"]), asdict(params), [str(n) for n in hit["notes"]],
                         True, time.perf_counter() - started, str(hit["layout"]) if "layout" in hit else "full")
    if cached_only:
        return None
    check(cancel)
    if incremental and cache and isinstance(params, UmapParams) and len(pts) > INCREMENTAL_ABOVE:
        updated = _incremental(store, pts, params, filter, max_points, cache, say, cancel)
        if updated is not None:
            updated.seconds = time.perf_counter() - started
            return updated
    if (store.engine == "server" and isinstance(params, UmapParams) and len(pts) == pts.total
            and 8 <= len(pts) <= LANDMARK_ABOVE):
        return _map_from_server_graph(store, pts, params, filter, max_points, cache, say, cancel, started)
    say("reading vectors", 0.02)
    vectors = in_worker(lambda _s: load_vectors(store, pts, filter), "reading vectors", 0.02, 0.1,
                        2.0 + 3e-5 * len(pts), say, cancel)
    check(cancel)
    knn = None
    if isinstance(params, UmapParams) and len(pts) >= 8:
        say("kNN graph", 0.1)
        knn = shared_knn(pts, vectors, params.n_neighbors, cache, say, cancel)
        check(cancel)
    if knn is not None and len(pts) > LANDMARK_ABOVE:
        lay = landmark_layout(vectors, knn, params.n_neighbors, params.min_dist, params.seed, say, cancel,
                              lo=0.35, hi=0.99)
        coords, method, used, notes, layout = lay.coords, "umap", asdict(params), lay.notes, "landmarks"
    else:
        proj: Projection = in_worker(lambda s: project(vectors, params, knn=knn, progress=s),
                                     f"{params.method.upper()} layout", 0.35, 0.99, 1.0 + len(pts) / 2000, say, cancel)
        coords, method, used, notes, layout = proj.coords, proj.method, proj.params, proj.notes, "full"
    check(cancel)
    say("saving", 0.99)
    in_worker(lambda _s: _put_map(cache, store, pts, filter, max_points, params, coords, method, notes, layout, 0),
              "saving", 0.99, 1.0, 1.0 + len(pts) / 300_000, say, cancel)
    say("done", 1.0)
    return MapResult(pts, coords, method, used, notes, False, time.perf_counter() - started, layout)


def _map_from_server_graph(store: Store, pts: PointSet, params: UmapParams, filter: Filter | None,
                           max_points: int | None, cache: ArrayCache | None, say: Progress, cancel: Cancel,
                           started: float) -> MapResult:
    """A UMAP map of every matching point of a Qdrant server collection: the server answers the kNN graph page by
    page (batched queries by point id on its own HNSW), and the layout runs on the graph alone, so the vectors
    never come into this process. Only every matching point (no sample): the server's neighbours are among them."""
    k_graph = max(params.n_neighbors, SHARED_K)
    key = key_of("knn", pts.fingerprint, k_graph)
    hit = cache.get("knn", key) if cache else None
    if hit is not None:
        knn = KnnGraph(hit["indices"], hit["similarities"], str(hit["method"]), 0.0)
    else:
        def build(report: Progress) -> KnnGraph:
            return knn_from_store(store, pts.collection, pts.ids, pts.vector, k_graph, filter=filter,
                                  progress=lambda w, f: report(w, 0.05 + 0.3 * f))
        knn = in_worker(build, "kNN graph (server)", 0.05, 0.35, _expected_knn_s(len(pts)), say, cancel)
        _put_graph(cache, key, knn)
    check(cancel)
    proj = in_worker(lambda s: project_graph(knn, params, progress=s), "UMAP layout", 0.35, 0.99,
                     1.0 + len(pts) / 2000, say, cancel)
    check(cancel)
    _put_map(cache, store, pts, filter, max_points, params, proj.coords, proj.method, proj.notes, "full", 0)
    say("done", 1.0)
    return MapResult(pts, proj.coords, proj.method, proj.params, proj.notes, False, time.perf_counter() - started,
                     "full")


# --- incremental -----------------------------------------------------------------------------------------------
def _incremental(store: Store, pts: PointSet, params: UmapParams, filter: Filter | None, max_points: int | None,
                 cache: ArrayCache, say: Progress, cancel: Cancel) -> MapResult | None:
    """The earlier map of this line updated for added and removed points, or None when there is no earlier map
    (or its graph), or too much changed since its last full layout."""
    line = cache.get("map-line", _line_key(store, pts, filter, max_points, params))
    if line is None:
        return None
    old_fp = str(line["fingerprint"])
    old = cache.get("map", key_of("map", old_fp, asdict(params)))
    k_graph = max(params.n_neighbors, SHARED_K)
    old_graph = cache.get("knn", key_of("knn", old_fp, k_graph))
    if old is None or old_graph is None or "keys" not in old or not len(old["keys"]):
        return None
    say("matching the earlier map", 0.02)
    keys = in_worker(lambda _s: point_keys(pts), "matching the earlier map", 0.02, 0.05, 1.0 + len(pts) / 300_000,
                     say, cancel)
    old_keys = old["keys"]
    order = np.argsort(old_keys)
    pos = np.searchsorted(old_keys[order], keys).clip(0, len(old_keys) - 1)
    old_row = np.where(old_keys[order][pos] == keys, order[pos], -1)  # per new row: its old row, or -1
    kept = old_row >= 0
    added, removed = int((~kept).sum()), int(len(old_keys) - kept.sum())
    drift = int(old["drift"]) + added + removed
    if drift > INCREMENTAL_MAX_SHARE * len(pts):
        return None  # the placements would pile up: lay the map out again
    check(cancel)
    say("reading vectors", 0.05)
    x = in_worker(lambda _s: load_vectors(store, pts, filter), "reading vectors", 0.05, 0.5,
                  2.0 + 3e-5 * len(pts), say, cancel)
    x = unit_rows(x)
    say(f"kNN of {added:,} new points", 0.5)
    graph = in_worker(lambda _s: _patched_graph(x, kept, old_row, old_graph, params.seed, cancel),
                      f"kNN of {added:,} new points", 0.5, 0.9, 2.0 + added / 2000, say, cancel)
    _put_graph(cache, key_of("knn", pts.fingerprint, k_graph), graph)
    say(f"placing {added:,} new points", 0.9)
    coords = np.zeros((len(pts), 2), np.float32)
    coords[kept] = old["coords"][old_row[kept]]
    coords, _ = propagate(coords, kept, graph.indices, graph.similarities, cancel)
    note = (f"{INCREMENTAL_NOTE}{added:,} new point(s) among their nearest neighbours on the earlier map"
            + (f" and removed {removed:,}" if removed else "") + "; the other points kept their places.")
    notes = [note] + [str(n) for n in old["notes"] if not str(n).startswith(INCREMENTAL_NOTE)]
    in_worker(lambda _s: _put_map(cache, store, pts, filter, max_points, params, coords, str(old["method"]), notes,
                                  "incremental", drift), "saving", 0.95, 1.0, 1.0 + len(pts) / 300_000, say, cancel)
    say("done", 1.0)
    return MapResult(pts, coords, str(old["method"]), asdict(params), notes, False, 0.0, "incremental", added, removed)


def _patched_graph(x: np.ndarray, kept: np.ndarray, old_row: np.ndarray, old: dict, seed: int,
                   cancel: Cancel) -> KnnGraph:
    """The earlier kNN graph carried over to the new rows; new rows, and kept rows that lost a neighbour, searched
    again (among the kept rows, and exactly among the new rows, so that a new cluster finds itself)."""
    import faiss

    n, k = len(x), old["indices"].shape[1]
    new_of_old = np.full(len(old["indices"]) + 1, -1, np.int64)  # last slot: -1 maps to -1
    new_of_old[old_row[kept]] = np.flatnonzero(kept)
    indices = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), -np.inf, np.float32)
    indices[kept] = new_of_old[old["indices"][old_row[kept]]]
    sims[kept] = old["similarities"][old_row[kept]]
    redo = np.flatnonzero(~kept | (indices < 0).any(axis=1))
    if len(redo):
        found_i, found_s = search_rows(x, redo, indices, kept, k, seed, cancel)
        new_rows = np.flatnonzero(~kept)
        if len(new_rows) > 1:
            check(cancel)
            index = faiss.IndexFlatIP(x.shape[1])
            index.add(np.ascontiguousarray(x[new_rows]))
            s_new, i_new = index.search(np.ascontiguousarray(x[redo]), min(k + 1, len(new_rows)))
            i_new = np.where(i_new >= 0, new_rows[np.maximum(i_new, 0)], -1)
            both_i = np.concatenate([found_i, i_new], axis=1)
            both_s = np.concatenate([found_s, s_new], axis=1)
            both_s[(both_i == redo[:, None]) | (both_i < 0)] = -np.inf
            top = np.argsort(-both_s, axis=1, kind="stable")[:, :k]
            found_i, found_s = np.take_along_axis(both_i, top, 1), np.take_along_axis(both_s, top, 1)
        indices[redo], sims[redo] = found_i, found_s
        new_rows = np.flatnonzero(~kept)
        # the new rows also enter the lists of the kept rows they are near
        is_new = np.isin(redo, new_rows)
        into_kept = np.where((found_i >= 0) & kept[np.maximum(found_i, 0)], found_i, -1)
        insert_reverse(indices, sims, redo[is_new], into_kept[is_new], found_s[is_new])
    sims = np.where(np.isfinite(sims), sims, -1.0).astype(np.float32)
    indices = np.where(indices >= 0, indices, np.arange(n)[:, None])  # too few neighbours: pad with itself
    return KnnGraph(indices, sims, str(old["method"]) + "+incremental", 0.0)
