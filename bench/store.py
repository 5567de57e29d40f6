"""Benchmark of the store adapter (core/store) against the goals of the embedded engine.

Goals (embedded engine, 100,000 points of 512-d): upsert <= 30 s, scroll of everything (ids, vectors,
payloads) <= 2 s, query p50 <= 20 ms, filtered query p50 <= 20 ms, reopen <= 2 s. Also reported: optimize
(HNSW build) time, query p99 and recall@10 of the default (HNSW) query against exact search.
qdrant-client's in-memory mode runs the same steps at a smaller N as a comparison (it is brute force).

    .venv/bin/python bench/store.py            # full: embedded 100k, client 10k
    .venv/bin/python bench/store.py --quick    # smoke run: embedded 5k, client 1k

Only the public API is used: `open_store(url=..., path=...)` and Store methods.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `core` lives at the repo root

from core.store import Filter, PointId, Store, open_store  # noqa: E402
from machine import machine_info  # noqa: E402

DIM = 512
CLUSTERS = 100
LABELS = 10  # label = c{cluster % 10}: each label spans 10% of the points, like a class folder
VECTOR = "m"
COLLECTION = "bench"
BATCH = 1000
WARMUP = 5  # queries run before timing, so one-off costs (page-ins, lazy loads) stay out of p50/p99

# Goals for the embedded engine; `None` = reported only. Values are seconds (ops) or milliseconds (queries).
GOALS: dict[str, float | None] = {
    "upsert_s": 30.0, "optimize_s": None, "upsert_optimize_s": None, "scroll_s": 2.0,
    "query_p50_ms": 20.0, "query_p99_ms": None, "filtered_p50_ms": 20.0, "filtered_p99_ms": None,
    "exact_p50_ms": None, "recall_at_10": None, "reopen_s": 2.0, "scroll_after_reopen_s": 2.0,
}


# --- data ------------------------------------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, n_queries: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]],
                                                                np.ndarray]:
    """Clustered unit vectors (like image embeddings of a few classes), ingest-like payloads, and queries
    drawn from the same clusters but not in the collection (so a query does not trivially find itself)."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(CLUSTERS, DIM)))
    spread = 0.5 / np.sqrt(DIM)  # noise of norm ~0.5 around a unit center: clusters overlap a little

    def sample(m: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, CLUSTERS, size=m)
        return unit(centers[cluster] + rng.normal(scale=spread, size=(m, DIM))), cluster

    vectors, cluster = sample(n)
    queries, _ = sample(n_queries)
    paths = [f"c{c % LABELS}/img_{i:06d}.jpg" for i, c in enumerate(cluster)]
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, p)) for p in paths]  # uuid strings, as ingest writes them
    payloads = [{"label": p.split("/")[0], "file_name": p.split("/")[1], "path": p} for p in paths]
    return ids, vectors, payloads, queries


# --- measurements ----------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def query_latencies(store: Store, queries: np.ndarray, filters: Sequence[Filter | None] | None = None,
                    exact: bool = False) -> tuple[np.ndarray, list[list[PointId]]]:
    """Milliseconds per query and the returned ids, after a short untimed warm-up."""
    filters = filters or [None] * len(queries)
    for q, f in zip(queries[:WARMUP], filters):
        store.query(COLLECTION, q, using=VECTOR, k=10, filter=f, exact=exact)
    times, found = [], []
    for q, f in zip(queries, filters):
        start = time.perf_counter()
        hits = store.query(COLLECTION, q, using=VECTOR, k=10, filter=f, exact=exact)
        times.append((time.perf_counter() - start) * 1000)
        found.append([h.id for h in hits])
    return np.asarray(times), found


def recall_at_10(approx: list[list[PointId]], exact: list[list[PointId]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approx, exact)]))


def run_engine(engine: str, n: int, n_queries: int, path: str | None) -> dict[str, Any]:
    """Load, optimize, scroll, query and (embedded only) reopen one engine; returns the figures."""
    ids, vectors, payloads, queries = make_data(n, n_queries)
    store = open_store(path=path) if path else open_store(url=":memory:")
    r: dict[str, Any] = {"engine": engine, "n": n, "queries": n_queries}
    try:
        store.create_collection(COLLECTION, {VECTOR: DIM})

        def upsert_all() -> None:
            for i in range(0, n, BATCH):
                store.upsert(COLLECTION, ids[i:i + BATCH], {VECTOR: vectors[i:i + BATCH]}, payloads[i:i + BATCH])

        r["upsert_s"], _ = timed(upsert_all)
        r["optimize_s"], _ = timed(lambda: store.optimize(COLLECTION))
        r["upsert_optimize_s"] = r["upsert_s"] + r["optimize_s"]

        r["scroll_s"], pts = timed(lambda: store.scroll(COLLECTION))
        assert len(pts) == n and pts.vectors.shape == (n, DIM), "scroll did not return every point"
        del pts  # 100k x 512 floats: do not carry them through the query timings

        lat, approx = query_latencies(store, queries)
        r["query_p50_ms"], r["query_p99_ms"] = np.percentile(lat, 50), np.percentile(lat, 99)
        lat, exact = query_latencies(store, queries, exact=True)
        r["exact_p50_ms"] = np.percentile(lat, 50)
        r["recall_at_10"] = recall_at_10(approx, exact)
        label_filters = [{"label": f"c{i % LABELS}"} for i in range(len(queries))]  # each label in turn
        lat, _ = query_latencies(store, queries, filters=label_filters)
        r["filtered_p50_ms"], r["filtered_p99_ms"] = np.percentile(lat, 50), np.percentile(lat, 99)

        if path:  # in-memory mode has nothing to reopen
            store.close()

            def reopen() -> Store:
                s = open_store(path=path)
                assert s.count(COLLECTION) == n, "reopened store lost points"
                s.query(COLLECTION, queries[0], using=VECTOR, k=10)
                return s

            r["reopen_s"], store = timed(reopen)
            # the first full scroll after a restart reads the vector copy from disk, not from memory
            r["scroll_after_reopen_s"], pts = timed(lambda: store.scroll(COLLECTION))
            assert len(pts) == n, "scroll after reopen did not return every point"
    finally:
        store.close()
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak so far (KiB)
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in r.items()}


# --- report ----------------------------------------------------------------------------------------------------
def table(results: list[dict[str, Any]]) -> str:
    rows = ["| engine | operation | N | value | goal | result |", "|---|---|---:|---:|---:|---|"]
    for r in results:
        graded = r["engine"] == "embedded"  # the goals are the embedded engine's; the client is a comparison
        for key, goal in GOALS.items():
            if key not in r:
                continue
            value = r[key]
            if key == "recall_at_10":
                shown, goal_text = f"{value:.3f}", "—"
            else:
                unit_ = "ms" if key.endswith("_ms") else "s"
                shown = f"{value:.1f} ms" if unit_ == "ms" else f"{value:.2f} s"
                goal_text = f"≤ {goal:g} {unit_}" if goal is not None else "—"
            verdict = ("pass" if value <= goal else "FAIL") if graded and goal is not None else "info"
            name = key.rsplit("_", 1)[0] if not key.startswith("recall") else key
            rows.append(f"| {r['engine']} | {name} | {r['n']:,} | {shown} | {goal_text} | {verdict} |")
    return "\n".join(rows)


def machine(load_at_start: list[float]) -> dict[str, Any]:
    return machine_info(("qdrant-edge-py", "qdrant-client", "numpy"), load_at_start)



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="points in the embedded engine")
    ap.add_argument("--client-n", type=int, default=10_000, help="points in qdrant-client in-memory (0 skips)")
    ap.add_argument("--queries", type=int, default=200, help="queries per measurement")
    ap.add_argument("--quick", action="store_true", help="smoke run: n=5000, client-n=1000, 50 queries")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default bench/results/store.json, or store-quick.json with --quick)")
    args = ap.parse_args(argv)
    load_at_start = list(os.getloadavg())
    # qdrant-client's local mode warns on every query that search params are ignored (it is brute force anyway).
    warnings.filterwarnings("ignore", message="Local mode performs exact")
    if args.quick:
        args.n, args.client_n, args.queries = 5_000, 1_000, 50
    # A quick run must not overwrite the figures of a full run.
    out = args.out or ROOT / "bench" / "results" / ("store-quick.json" if args.quick else "store.json")

    results = []
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        print(f"embedded: {args.n:,} points ...", file=sys.stderr)
        results.append(run_engine("embedded", args.n, args.queries, path=str(Path(tmp) / "qdrant")))
    if args.client_n > 0:
        print(f"qdrant-client :memory:: {args.client_n:,} points ...", file=sys.stderr)
        results.append(run_engine("client-memory", args.client_n, args.queries, path=None))

    report = table(results)
    print(report)
    failed = [f"{r['engine']}.{k}" for r in results if r["engine"] == "embedded"
              for k, g in GOALS.items() if g is not None and k in r and r[k] > g]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(load_at_start),
        "settings": {"dim": DIM, "clusters": CLUSTERS, "batch": BATCH, "queries": args.queries,
                     "warmup": WARMUP, "quick": args.quick},
        "goals": GOALS, "results": results, "failed": failed, "table": report}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
          + (f"; goals missed: {', '.join(failed)}" if failed else "; all goals met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
