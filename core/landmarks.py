"""Maps too large for one UMAP on a few cores, and maps that grow: a landmark layout (UMAP of a seeded sample, then
every other point placed at the weighted mean of its already placed neighbours in the shared kNN graph), and
incremental updates (new points placed from their nearest existing points, the kNN graph patched for them).

Also the cancel/progress plumbing of long map steps: a `cancel` (threading.Event or a callable returning True to
stop) is checked between steps and inside UMAP's epoch loop; steps that no library lets us look into (reading the
store, NN-descent) run in a worker thread while the caller keeps reporting progress and watching `cancel`."""
from __future__ import annotations

import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from .knn import KnnGraph, drop_self, knn_graph

# Points in the landmark UMAP. Tuned at 200k points of generator seed 1 (never the reported seed 0): trustworthiness
# 0.9553 / 0.9567 / 0.9568 with 25k / 50k / 100k landmarks against 0.9570 for a full UMAP of a 100k sample and
# 0.9569 for a full UMAP of all 200k (412 s); 50k took a quarter of 100k's time.
LANDMARKS = 50_000
LANDMARK_ABOVE = 150_000  # a map of more points than this uses the landmark layout
TICK_S = 1.0  # how often a long step reports progress and checks cancel
# Random-projection trees of NN-descent for graphs above LANDMARK_ABOVE. Each tree keeps a hyperplane (a full
# vector) per node: ~0.25 GB per tree at 1M x 512, so umap-learn's rule (55 trees at 1M, core.knn) would need
# ~14 GB; NN-descent's iterations make up for a weaker start, and the landmark layout only places points from it.
LARGE_KNN_TREES = 8

Progress = Callable[[str, float], None]
Cancel = threading.Event | Callable[[], bool] | None
T = TypeVar("T")


class MapCancelled(Exception):
    """The map computation was stopped through its `cancel`; nothing was cached for it."""


def is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def check(cancel: Cancel) -> None:
    if is_cancelled(cancel):
        raise MapCancelled("Map computation stopped; nothing was saved for it.")


def in_worker(fn: Callable[[Progress], T], what: str, lo: float, hi: float, expected_s: float, say: Progress,
              cancel: Cancel) -> T:
    """fn(progress) in a worker thread while this thread reports progress every TICK_S and raises MapCancelled as
    soon as cancel is set. Progress is always reported from this thread (Streamlit draws only from the script's
    thread): the worker's own latest report, else `what` with a fraction between lo and hi that grows with
    elapsed / expected_s. A cancelled worker is abandoned: it runs on until its library call returns (or checks
    cancel itself), and its result is dropped."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(lambda w, f: box.__setitem__("said", (w, f)))
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"map: {what}", daemon=True)
    started = time.perf_counter()
    worker.start()
    while True:
        worker.join(TICK_S)
        if not worker.is_alive():
            break
        check(cancel)
        elapsed = time.perf_counter() - started
        if "said" in box:
            w, f = box["said"]
            say(w, lo + (hi - lo) * min(max(f, 0.0), 1.0))
        else:
            # the same text each time (benches sum stages by it); the fraction shows the time passing
            say(what, lo + (hi - lo) * (1 - np.exp(-elapsed / max(expected_s, 1e-3))))
    if "error" in box:
        raise box["error"]
    return box["value"]


class _EpochHook:
    """A file for umap-learn's tqdm bar (its only hook into the epoch loop): each write reports the epoch as
    progress, and raises MapCancelled inside the loop when cancel is set."""

    def __init__(self, what: str, lo: float, hi: float, say: Progress, cancel: Cancel):
        self.what, self.lo, self.hi, self.say, self.cancel = what, lo, hi, say, cancel
        self.stopped = False

    def write(self, text: str) -> None:
        m = re.search(r"(\d+)/(\d+)", text)
        if not m or not int(m.group(2)) or self.stopped:
            return
        done, total = int(m.group(1)), int(m.group(2))
        if done < total and is_cancelled(self.cancel):
            # tqdm writes while holding its class-wide lock and releases it without try/finally: release it
            # here, once, or every later tqdm bar in the process would wait forever
            from tqdm.auto import tqdm

            self.stopped = True
            tqdm.get_lock().release()
            raise MapCancelled("Map computation stopped; nothing was saved for it.")
        self.say(f"{self.what}: epoch {done} of {total}", self.lo + (self.hi - self.lo) * done / total)

    def flush(self) -> None:
        pass


def umap_layout(x: np.ndarray, knn: KnnGraph, n_neighbors: int, min_dist: float, seed: int, say: Progress,
                cancel: Cancel, lo: float = 0.0, hi: float = 1.0, what: str = "UMAP layout") -> np.ndarray:
    """umap-learn on a precomputed kNN graph, every core, epochs reported as progress and cancellable."""
    from .projection import import_umap

    umap = import_umap()
    k = max(2, min(n_neighbors, knn.k + 1))
    idx, dist = knn.umap_input()
    hook = _EpochHook(what, lo, hi, say, cancel)
    np.random.seed(seed)  # the parallel layout takes no random_state; seeded through numpy's global state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric="cosine", n_jobs=-1,
                            precomputed_knn=(idx[:, :k], dist[:, :k]),
                            tqdm_kwds={"disable": False, "file": hook, "mininterval": TICK_S,
                                       "bar_format": "{n}/{total}"})
        return np.asarray(reducer.fit_transform(x), np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """x with unit rows: x itself when it has them already (Qdrant normalises cosine vectors), else a copy. No
    n x d temporary for the check (np.linalg.norm would make one: 2 GB at 1M x 512)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if np.allclose(norms, 1.0, atol=1e-3):
        return x
    return x / np.maximum(norms, 1e-12)[:, None]


def large_knn_graph(vectors: np.ndarray, k: int, seed: int = 0) -> KnnGraph:
    """knn_graph's NN-descent (euclidean on unit rows = cosine order) with LARGE_KNN_TREES trees, for bounded memory
    on graphs of hundreds of thousands to millions of rows."""
    import pynndescent

    started = time.perf_counter()
    x = unit_rows(np.ascontiguousarray(vectors, dtype=np.float32))
    index = pynndescent.NNDescent(x, n_neighbors=k + 1, metric="euclidean", random_state=seed,
                                  n_trees=LARGE_KNN_TREES, n_iters=max(5, int(round(np.log2(len(x))))),
                                  max_candidates=60, low_memory=True, compressed=True, n_jobs=-1)
    idx, dist = index.neighbor_graph
    del index
    idx, sims = drop_self(idx, 1.0 - dist.astype(np.float32) ** 2 / 2, k)
    return KnnGraph(idx, sims, "nndescent-large", time.perf_counter() - started)


def sample_rows(n: int, m: int, seed: int) -> np.ndarray:
    """A seeded sorted sample of m of n rows (all rows when m >= n)."""
    if m >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def propagate(coords: np.ndarray, placed: np.ndarray, indices: np.ndarray, similarities: np.ndarray,
              cancel: Cancel = None) -> tuple[np.ndarray, int]:
    """Place every unplaced row at the similarity-weighted mean of its placed kNN neighbours, in rounds (a row
    whose neighbours are all unplaced waits for a later round). The first rounds take only rows with several
    placed neighbours, which keeps chains of single-neighbour placements short. Returns (coords, rows that no
    path of neighbours reaches: left at the centre of the map)."""
    coords = coords.astype(np.float32, copy=True)
    placed = placed.copy()
    weights = np.maximum(similarities, 1e-6).astype(np.float32)
    need = 3
    while not placed.all():
        check(cancel)
        todo = np.flatnonzero(~placed)
        nb = indices[todo]
        w = weights[todo] * placed[nb]
        ready = (placed[nb].sum(axis=1) >= need)
        if not ready.any():
            if need == 1:
                break
            need -= 1
            continue
        rows, w, nb = todo[ready], w[ready], nb[ready]
        coords[rows] = (w[:, :, None] * coords[nb]).sum(axis=1) / w.sum(axis=1, keepdims=True)
        placed[rows] = True
    lost = int((~placed).sum())
    if lost:
        coords[~placed] = np.median(coords[placed], axis=0) if placed.any() else 0.0
    return coords, lost


@dataclass
class LandmarkLayout:
    coords: np.ndarray  # (n, 2) float32
    landmarks: np.ndarray  # rows laid out by UMAP
    unreached: int  # rows no neighbour path reached (placed at the centre)
    notes: list[str]


def landmark_layout(x: np.ndarray, graph: KnnGraph, n_neighbors: int, min_dist: float, seed: int, say: Progress,
                    cancel: Cancel, landmarks: int | None = None, lo: float = 0.0, hi: float = 1.0) -> LandmarkLayout:
    """UMAP of a seeded sample of `landmarks` rows (on their own kNN graph), then every other row placed from the
    shared graph of all rows (propagate). landmarks: default LANDMARKS."""
    n = len(x)
    rows = sample_rows(n, landmarks or LANDMARKS, seed)
    span = hi - lo
    say("kNN graph of the landmarks", lo)
    sub = in_worker(lambda _say: knn_graph(x[rows], max(n_neighbors, graph.k)), "kNN graph of the landmarks",
                    lo, lo + 0.1 * span, 10.0, say, cancel)
    check(cancel)
    laid = umap_layout(x[rows], sub, n_neighbors, min_dist, seed, say, cancel, lo + 0.1 * span, lo + 0.9 * span,
                       f"UMAP of {len(rows):,} landmarks")
    say("placing the other points", lo + 0.9 * span)
    coords = np.zeros((n, 2), np.float32)
    coords[rows] = laid
    placed = np.zeros(n, bool)
    placed[rows] = True
    coords, lost = in_worker(lambda _s: propagate(coords, placed, graph.indices, graph.similarities, cancel),
                             "placing the other points", lo + 0.9 * span, hi, 2.0 + n / 500_000, say, cancel)
    notes = [f"Laid out {len(rows):,} landmark points with UMAP and placed the other {n - len(rows):,} among their "
             "nearest neighbours (a map this large would take too long as one UMAP)."]
    if lost:
        notes.append(f"{lost:,} points have no neighbour path to the rest of the map; they sit at its centre.")
    return LandmarkLayout(coords, rows, lost, notes)


# --- incremental -----------------------------------------------------------------------------------------------
ENTRY_POINTS = 50_000  # old rows searched exactly for each new point's entry into the graph
ENTRIES_PER_ROW = 8


def _topk_exact(x: np.ndarray, queries: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query row q, the k rows of cand[q] (-1: none) most similar to x[q] (rows may repeat: deduplicated)."""
    cand = np.sort(cand, axis=1)
    dup = np.zeros_like(cand, dtype=bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    bad = dup | (cand < 0) | (cand == queries[:, None])
    safe = np.where(bad, 0, cand)
    sims = np.einsum("qd,qcd->qc", x[queries], x[safe], optimize=True)
    sims[bad] = -np.inf
    top = np.argsort(-sims, axis=1)[:, :k]
    return np.take_along_axis(cand, top, 1), np.take_along_axis(sims, top, 1)


def search_rows(x: np.ndarray, queries: np.ndarray, indices: np.ndarray, allowed: np.ndarray, k: int, seed: int,
                cancel: Cancel = None, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours of rows `queries` among the `allowed` rows of x, using the kNN lists
    `indices` (valid for allowed rows): exact search over a seeded sample of entry points, then two rounds of
    looking at the neighbours of the best candidates. Rows of x must be unit vectors."""
    import faiss

    pool = np.flatnonzero(allowed)
    entries = pool[sample_rows(len(pool), ENTRY_POINTS, seed)]
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x[entries]))
    out_i = np.zeros((len(queries), k), np.int64)
    out_s = np.zeros((len(queries), k), np.float32)
    for start in range(0, len(queries), batch):
        check(cancel)
        q = queries[start:start + batch]
        _, e = index.search(np.ascontiguousarray(x[q]), ENTRIES_PER_ROW)
        best = entries[e]
        for _ in range(2):  # neighbours of the best candidates so far
            hop = indices[best].reshape(len(q), -1)
            hop = np.where(allowed[np.maximum(hop, 0)] & (hop >= 0), hop, -1)
            best, sims = _topk_exact(x, q, np.concatenate([best, hop], axis=1), k)
        out_i[start:start + batch], out_s[start:start + batch] = best, sims
    return out_i, out_s


def insert_reverse(indices: np.ndarray, sims: np.ndarray, new_rows: np.ndarray, new_idx: np.ndarray,
                   new_sims: np.ndarray) -> None:
    """Add each new row to the kNN lists of its own neighbours where it is nearer than their farthest (in place)."""
    src = np.repeat(new_rows, new_idx.shape[1])
    dst, s = new_idx.ravel(), new_sims.ravel()
    keep = (dst >= 0) & (s > sims[np.maximum(dst, 0), -1])
    src, dst, s = src[keep], dst[keep], s[keep]
    order = np.argsort(dst, kind="stable")
    src, dst, s = src[order], dst[order], s[order]
    k = indices.shape[1]
    bounds = np.flatnonzero(np.diff(dst)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(dst)]):
        r = dst[a]
        merged_i = np.concatenate([indices[r], src[a:b]])
        merged_s = np.concatenate([sims[r], s[a:b]])
        top = np.argsort(-merged_s, kind="stable")[:k]
        indices[r], sims[r] = merged_i[top], merged_s[top]
