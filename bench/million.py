"""Benchmark of the map at a million points (issue 15, part 2): 1,000,000 synthetic clustered 512-d points in the
embedded store, on this machine's cores.

Goals (issue): cold map (reading from the store through the layout) <= 15 min, peak RSS <= 12 GB, trustworthiness
(sklearn, 10 neighbours, cosine, 3,000-point sample) within 0.01 of a full UMAP of a 100k sample. Reported too: the
time of each stage, adding 1% more points (incremental), and reopening the cached map (server side).

    .venv/bin/python bench/million.py                      # full: 1M points (builds the store: ~3 min; ~20 min all)
    .venv/bin/python bench/million.py --store DIR          # reuse (or build once into) DIR
    .venv/bin/python bench/million.py --quick              # smoke run: 10,000 points, < 1 min
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `core` lives at the repo root
sys.path.insert(0, str(ROOT / "bench"))

from core import projection  # noqa: E402,F401  (first: it points numba's cache at ATLAS_CACHE_DIR)
from core import landmarks, maps  # noqa: E402
from core.cache import ArrayCache  # noqa: E402
from core.knn import knn_graph  # noqa: E402
from core.landmarks import sample_rows, umap_layout  # noqa: E402
from core.maps import compute_map  # noqa: E402
from core.points import clear_recent, load_points  # noqa: E402
from core.store import open_store  # noqa: E402
from core.store.edge import EdgeStore  # noqa: E402
from machine import describe, machine_info  # noqa: E402

DIM = 512
CLUSTERS = 10
COLLECTION = "million"
VECTOR = "synthetic"
BATCH = 5000
LABELS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


# --- data ------------------------------------------------------------------------------------------------------
def clustered_chunks(n: int, seed: int, chunk: int = 50_000, dim: int = DIM, clusters: int = CLUSTERS,
                     intrinsic: int = 32, spread: float = 0.35, noise: float = 0.02
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """bench/synthetic.py's clustered_vectors in chunks (same centres and subspace for every chunk), so that a
    million rows never need the 4 GB float64 temporaries of one call."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32)
    basis = np.linalg.qr(rng.normal(size=(dim, intrinsic)))[0].astype(np.float32).T
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        r = np.random.default_rng([seed, start])
        labels = r.integers(0, clusters, size=m)
        local = r.standard_normal((m, intrinsic), dtype=np.float32) * spread * np.sqrt(dim / intrinsic)
        x = centers[labels] + local @ basis + r.standard_normal((m, dim), dtype=np.float32) * (noise * np.sqrt(dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x.astype(np.float32), labels


def point_ids(start: int, stop: int, seed: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-million/{seed}/{i}")) for i in range(start, stop)]


def payloads(start: int, labels: np.ndarray, seed: int) -> list[dict[str, Any]]:
    """Ingest-like payloads (label, file name, path, content hash)."""
    return [{"label": LABELS[int(c)], "file_name": f"img{start + i:07d}.png",
             "path": f"{LABELS[int(c)]}/img{start + i:07d}.png",
             "sha1": hashlib.sha1(f"{seed}/{start + i}".encode()).hexdigest()} for i, c in enumerate(labels)]


def write_points(store: Any, n: int, seed: int, first: int = 0, say: Callable[[str], None] = print) -> None:
    """Points first..first+n-1 of the seed's sequence into the collection (created if missing)."""
    if not store.collection_exists(COLLECTION):
        store.create_collection(COLLECTION, {VECTOR: DIM})
    done = 0
    start = 0
    for x, labels in clustered_chunks(first + n, seed):
        stop = start + len(x)
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:
            for b in range(lo, hi, BATCH):
                e = min(b + BATCH, hi)
                store.upsert(COLLECTION, point_ids(b, e, seed), {VECTOR: x[b - start:e - start]},
                             payloads(b, labels[b - start:e - start], seed))
            done += hi - lo
            if done % 100_000 < len(x):
                say(f"  wrote {done:,} of {n:,} points")
        start = stop


def vectors_of(n: int, seed: int, first: int = 0) -> np.ndarray:
    """Rows first..first+n-1 of the seed's vectors, regenerated (the store holds the same ones)."""
    parts = []
    start = 0
    for x, _ in clustered_chunks(first + n, seed):
        stop = start + len(x)
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:
            parts.append(x[lo - start:hi - start])
        start = stop
    return np.concatenate(parts)



# --- measuring ---------------------------------------------------------------------------------------------------
Goal = dict[str, Any]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def rss_gb() -> float:
    """This process's resident memory now (GB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class PeakRss:
    """The highest RSS of this process while the block runs, sampled every 0.2 s in a thread."""

    def __enter__(self) -> "PeakRss":
        self.peak, self._stop = rss_gb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_gb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_gb())


def staged(fn: Callable[[Callable[[str, float], None]], Any]) -> tuple[float, dict[str, float], Any,
                                                                      tuple[float, str]]:
    """fn(progress) timed, split into stages by the progress messages (their text before any '(' or ':'), and
    the longest gap between two progress calls (what a user would see frozen) with the stage it began in."""
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()

    def progress(what: str, _fraction: float) -> None:
        marks.append((what.split(" (")[0].split(":")[0].strip(), time.perf_counter()))

    result = fn(progress)
    end = time.perf_counter()
    stamps = [("start", started)] + marks + [("end", end)]
    stages: dict[str, float] = {}
    for (name, t0), (_, t1) in zip(stamps[1:], stamps[2:]):
        stages[name] = round(stages.get(name, 0.0) + t1 - t0, 3)
    gaps = [(b[1] - a[1], a[0]) for a, b in zip(stamps, stamps[1:])]
    gap = max(gaps, default=(0.0, ""))
    return end - started, stages, result, gap


def goal(name: str, value: float, limit: float, unit: str, higher_is_better: bool = False, note: str = "") -> Goal:
    ok = value >= limit if higher_is_better else value <= limit
    return {"goal": name, "value": round(value, 4), "limit": round(limit, 4), "unit": unit,
            "op": ">=" if higher_is_better else "<=", "pass": bool(ok), "note": note}


def trust(x: np.ndarray, coords: np.ndarray, rows: np.ndarray) -> float:
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(x[rows], coords[rows], n_neighbors=10, metric="cosine"))


def warm_jit(n: int) -> float:
    """Compile (or load from numba's cache) NN-descent's and the parallel UMAP's kernels on a small set."""
    started = time.perf_counter()
    x = vectors_of(n, seed=99)
    umap_layout(x, knn_graph(x, 15, method="nndescent"), 15, 0.1, 0, lambda w, f: None, None)
    return time.perf_counter() - started


def ensure_store(path: Path, n: int, seed: int) -> float:
    """The collection with the first n points of the seed's sequence (written unless already there); seconds."""
    with open_store(path=str(path)) as store:
        have = store.count(COLLECTION) if store.collection_exists(COLLECTION) else 0
        if have == n:
            return 0.0
        if have:
            raise SystemExit(f"{path} holds {have:,} points, not {n:,}: give another --store folder.")
        started = time.perf_counter()
        say(f"writing {n:,} points into the embedded store ...")
        write_points(store, n, seed, say=say)
        return time.perf_counter() - started


class _GenerationStore(EdgeStore):
    """The embedded store with a write generation that never changes (this bench writes nothing meanwhile)."""

    def write_generation(self, name: str) -> int:
        return 0


def run(args: argparse.Namespace, store_dir: Path, cache_dir: Path) -> dict[str, Any]:
    r: dict[str, Any] = {"n": args.n, "seed": args.seed, "landmarks": landmarks.LANDMARKS,
                         "landmark_above": maps.LANDMARK_ABOVE}
    r["build_store_s"] = round(ensure_store(store_dir, args.n, args.seed), 1)
    r["vector_copy_at_start"] = any(store_dir.joinpath(COLLECTION).glob("atlas-vectors-*.npz"))
    if not args.quick:  # quick: compile (or load from numba's cache) inside the cold map
        say("warming numba ...")
        r["jit_warmup_s"] = round(warm_jit(5000), 1)

    # 1. cold map: open the store, read points and vectors, kNN graph, layout, save
    r["loadavg_before_cold"] = loadavg()
    say(f"cold map of {args.n:,} points ...")
    with PeakRss() as peak:
        store = open_store(path=str(store_dir))
        total, stages, res, gap = staged(lambda p: compute_map(store, COLLECTION, cache=ArrayCache(cache_dir),
                                                               progress=p))
    r.update(cold_s=round(total, 1), cold_stages_s=stages, cold_peak_rss_gb=round(peak.peak, 2),
             cold_longest_silence_s=round(gap[0], 1), cold_longest_silence_after=gap[1], layout=res.layout,
             notes=res.notes, loadavg_after_cold=loadavg())
    say(f"  {total:.0f} s, peak RSS {peak.peak:.1f} GB, {stages}")

    # 2. cached reopen, server side: same process (as the app's next run), and a new cache object on the same
    # folder (as a restarted app; the store stays open, as the app's cached store client)
    reopen = timed(lambda: compute_map(store, COLLECTION, cache=ArrayCache(cache_dir)))[0]
    r["reopen_same_process_s"] = round(reopen, 3)
    again = ArrayCache(cache_dir)
    clear_recent()
    r["reopen_new_cache_s"] = round(timed(lambda: compute_map(store, COLLECTION, cache=again))[0], 3)
    r["load_points_s"] = round(timed(lambda: load_points(store, COLLECTION, reuse=False))[0], 2)
    r["store_has_write_generation"] = hasattr(store, "write_generation")
    if not r["store_has_write_generation"]:
        # what the reuse of point sets gives once the store keeps a write generation: simulated by a subclass
        # whose generation never changes (nothing is written meanwhile); the first call fills the reuse
        store.close()
        gen_store = _GenerationStore(store_dir)
        compute_map(gen_store, COLLECTION, cache=ArrayCache(cache_dir))
        r["reopen_with_generation_s"] = round(timed(
            lambda: compute_map(gen_store, COLLECTION, cache=ArrayCache(cache_dir)))[0], 3)
        gen_store.close()
        clear_recent()
        store = open_store(path=str(store_dir))

    # 3. trustworthiness of the map against a full UMAP of a 100k sample, on the same 3k points of that sample
    say("trustworthiness against a full UMAP of a sample ...")
    x = vectors_of(args.n, args.seed)
    row_of = {pid: i for i, pid in enumerate(point_ids(0, args.n, args.seed))}
    order = np.array([row_of[pid] for pid in res.points.ids])
    coords = np.empty_like(res.coords)
    coords[order] = res.coords  # rows of x
    ref_rows = sample_rows(args.n, args.ref_sample, seed=1001)  # not the layout's landmark seed
    t0 = time.perf_counter()
    ref = umap_layout(x[ref_rows], knn_graph(x[ref_rows], 15), 15, 0.1, 42, lambda w, f: None, None)
    r["ref_umap_s"] = round(time.perf_counter() - t0, 1)
    in_ref = sample_rows(len(ref_rows), args.trust_sample, seed=1002)
    full_ref = np.zeros((args.n, 2), np.float32)
    full_ref[ref_rows] = ref
    r["trust_map"] = round(trust(x, coords, ref_rows[in_ref]), 4)
    r["trust_ref"] = round(trust(x, full_ref, ref_rows[in_ref]), 4)
    say(f"  map {r['trust_map']:.4f}, {args.ref_sample:,}-point UMAP {r['trust_ref']:.4f}")
    del x, full_ref

    # 4. +1%: write new points, then the map again (as after an ingest)
    extra = max(1, args.n // 100)
    say(f"adding {extra:,} points and updating the map ...")
    write_points(store, extra, args.seed, first=args.n, say=lambda m: None)
    total, stages, inc, _ = staged(lambda p: compute_map(store, COLLECTION, cache=ArrayCache(cache_dir), progress=p))
    r.update(incremental_s=round(total, 1), incremental_stages_s=stages, incremental_layout=inc.layout,
             incremental_added=inc.added)
    x = vectors_of(args.n + extra, args.seed)
    row_of.update({pid: args.n + i for i, pid in enumerate(point_ids(args.n, args.n + extra, args.seed))})
    order = np.array([row_of[pid] for pid in inc.points.ids])
    coords = np.empty_like(inc.coords)
    coords[order] = inc.coords
    new_rows = np.arange(args.n, args.n + extra)
    mixed = np.concatenate([ref_rows[in_ref][: args.trust_sample - min(extra, args.trust_sample // 3)],
                            new_rows[sample_rows(extra, min(extra, args.trust_sample // 3), seed=1003)]])
    r["trust_incremental"] = round(trust(x, coords, mixed), 4)  # a third of the sample are new points
    say(f"  {total:.1f} s ({inc.layout}), trustworthiness with new points {r['trust_incremental']:.4f}")
    del x
    store.close()
    return r


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def grade(r: dict[str, Any]) -> list[Goal]:
    return [goal(f"cold map of {r['n']:,} points (store to layout)", r["cold_s"], 900.0, "s"),
            goal("peak RSS of the cold map", r["cold_peak_rss_gb"], 12.0, "GB"),
            goal("trustworthiness (3k sample) vs full UMAP of a sample, minus 0.01", r["trust_map"],
                 r["trust_ref"] - 0.01, "", higher_is_better=True, note=f"sample UMAP {r['trust_ref']:.4f}"),
            goal("+1% points: incremental update vs 25% of the cold map", r["incremental_s"], 0.25 * r["cold_s"], "s",
                 note=r["incremental_layout"]),
            goal("cached reopen, server side, same process", r["reopen_same_process_s"], 1.5, "s",
                 note="store as it is" if not r["store_has_write_generation"] else ""),
            goal("cached reopen, server side, new cache object", r["reopen_new_cache_s"], 2.5, "s"),
            *([goal("cached reopen, server side, with Store.write_generation (simulated)",
                    r["reopen_with_generation_s"], 1.5, "s")] if "reopen_with_generation_s" in r else []),
            goal("no progress silence longer than 5 s (cold map)", r["cold_longest_silence_s"], 5.0, "s")]


def table(goals: list[Goal], r: dict[str, Any]) -> str:
    rows = ["| goal | measured | limit | result |", "|---|---:|---:|---|"]
    rows += [f"| {g['goal']} | {g['value']:g} {g['unit']} | {g['op']} {g['limit']:g} | "
             f"{'pass' if g['pass'] else 'FAIL'} |" for g in goals]
    rows += [f"| stage: {k} | {v:g} s | | |" for k, v in r["cold_stages_s"].items()]
    rows += [f"| incremental stage: {k} | {v:g} s | | |" for k, v in r["incremental_stages_s"].items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="points in the collection")
    ap.add_argument("--seed", type=int, default=0, help="the generator's seed (tune on another one)")
    ap.add_argument("--store", type=Path, default=None, help="embedded store folder to reuse or build (default: temp)")
    ap.add_argument("--ref-sample", type=int, default=100_000, help="points of the reference full UMAP")
    ap.add_argument("--trust-sample", type=int, default=3_000)
    ap.add_argument("--quick", action="store_true", help="smoke run: 10,000 points, small landmark set")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/million.json)")
    args = ap.parse_args(argv)
    load_at_start = loadavg()
    if args.quick:
        args.n, args.ref_sample, args.trust_sample = 10_000, 3_000, 1_000
        maps.LANDMARK_ABOVE, landmarks.LANDMARKS, maps.INCREMENTAL_ABOVE = 3_000, 2_000, 3_000
    out = args.out or ROOT / "bench" / "results" / ("million-quick.json" if args.quick else "million.json")
    with tempfile.TemporaryDirectory(prefix="atlas-bench-million-") as tmp:
        store_dir = args.store or Path(tmp) / "qdrant"
        if args.store and args.quick:
            raise SystemExit("--quick builds its own small store: leave out --store.")
        r = run(args, store_dir.resolve(), Path(tmp) / "cache")
    goals = grade(r)
    info = machine_info(("numpy", "umap-learn", "pynndescent", "numba", "faiss-cpu", "scikit-learn",
                         "qdrant-edge-py"), load_at_start, loadavg_at_end=loadavg())
    result = {"benchmark": "million", "quick": args.quick, "machine": info, "goals": goals, "results": r}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nMachine: {describe(info)}; load {load_at_start} -> {info['loadavg_at_end']}\n")
    print(table(goals, r))
    return 0 if all(g["pass"] for g in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
