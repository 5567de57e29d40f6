"""Benchmark of similarity search (core/search.py) on the embedded engine against the goals of the Search page.

Goals (embedded engine, 100,000 points):
  1. Vector query through `core.search.search(...)`, default parameters, k=10, 512-d, over queries that are not in
     the collection: p50 <= 20 ms, p99 <= 50 ms; with a label filter (as the page sends it, {"label": [one]})
     p50 <= 20 ms.
  2. recall@10 of that default (HNSW) search against exact search (`exact=True`) on the same queries >= 0.95.
  3. Search by an uploaded image end to end: PNG bytes of a real Fashion-MNIST test image -> `image_query_vector`
     with effnet-lite0 on the CPU (model loaded and warmed first, as the app keeps it) -> `search(...)`:
     p50 <= 300 ms. The collection it searches holds 100,000 *synthetic* 1280-d vectors under the vector name
     "effnet-lite0": clouds around real effnet-lite0 embeddings of 500 Fashion-MNIST *train* images (each point
     is an anchor plus noise in a 32-d subspace, labelled with its anchor's class), so the real query vectors
     land among points as they would in a real collection. Embedding 100,000 real images would cost ~6 min of
     CPU here (Fashion-MNIST has 70,000); purely random synthetic vectors are useless for this: effnet features
     are non-negative, and a real query had cosine <= 0.1 to all of them (HNSW recall@10 0.2). Reported too: the
     embedding and the Qdrant parts apart, and recall@10 of these real-image queries against exact search.

Vectors come from bench/synthetic.clustered_vectors (clusters in a low-dimensional subspace, like real image
embeddings); the queries are drawn with the points and kept out of the collection. The collection is loaded in
batches and `store.optimize()` runs after, as ingest does.

    .venv/bin/python bench/search.py            # full: 100k points x 2 collections, 200 queries, 50 image queries
    .venv/bin/python bench/search.py --quick    # smoke run: 5k points, 30 queries, 5 image queries

Only public APIs are used: `open_store(path=...)`, Store methods, `core.search`, `core.models`, `core.datasets`.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `core` lives at the repo root

from PIL import Image  # noqa: E402

from core import models, settings  # noqa: E402
from core.datasets import FASHION_CLASSES, fashion_mnist_available, load_fashion_mnist  # noqa: E402
from core.search import image_query_vector, search  # noqa: E402
from machine import machine_info  # noqa: E402
from core.store import Filter, PointId, Store, open_store  # noqa: E402

from bench.synthetic import clustered_vectors  # noqa: E402

DIM = 512
VECTOR = "synthetic"  # the 512-d collection's vector name (no model: queried by vector only)
COLLECTION = "bench"
MODEL = models.EFFNET  # "effnet-lite0": vector name of the second collection, so search embeds with this model
IMAGE_COLLECTION = "bench-effnet"
CLUSTERS = len(FASHION_CLASSES)  # one label per cluster, named like Fashion-MNIST classes
K = 10
BATCH = 1000
ANCHORS = 500  # real Fashion-MNIST train images whose embeddings the synthetic effnet-lite0 points surround
WARMUP = 5  # queries run before timing, so one-off costs (page-ins, lazy loads) stay out of p50/p99

# Goals; `None` = reported only. Seconds for "_s", milliseconds for "_ms", a fraction for recall.
GOALS: dict[str, float | None] = {
    "upsert_s": None, "optimize_s": None,
    "query_p50_ms": 20.0, "query_p99_ms": 50.0, "filtered_p50_ms": 20.0, "filtered_p99_ms": None,
    "exact_p50_ms": None, "recall_at_10": 0.95,
    "model_load_s": None, "anchors_s": None, "image_upsert_s": None, "image_optimize_s": None,
    "image_p50_ms": 300.0, "image_p99_ms": None, "image_embed_p50_ms": None, "image_embed_p99_ms": None,
    "image_query_p50_ms": None, "image_query_p99_ms": None, "image_recall_at_10": None,
}
HIGHER_IS_BETTER = {"recall_at_10", "image_recall_at_10"}


# --- data ------------------------------------------------------------------------------------------------------
def make_data(n: int, n_queries: int, dim: int, seed: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]],
                                                                     np.ndarray, list[str]]:
    """Points (uuid ids as ingest writes them, unit vectors, label/file_name payloads) and queries from the same
    distribution that are not in the collection, with the label of each query's cluster."""
    x, cluster = clustered_vectors(n + n_queries, dim=dim, clusters=CLUSTERS, seed=seed)
    labels = [FASHION_CLASSES[c] for c in cluster]
    names = [f"img_{i:06d}.png" for i in range(n)]
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{labels[i]}/{names[i]}")) for i in range(n)]
    payloads = [{"label": labels[i], "file_name": names[i], "path": f"{labels[i]}/{names[i]}"} for i in range(n)]
    return ids, x[:n], payloads, x[n:], labels[n:]


def anchored_data(anchors: np.ndarray, anchor_labels: list[str], n: int, seed: int = 1, intrinsic: int = 32,
                  spread: float = 0.35, noise: float = 0.05) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """n synthetic unit vectors around real embeddings (`anchors`, unit rows): anchor + a displacement of norm
    ~`spread` in a shared `intrinsic`-d subspace + isotropic noise of norm ~`noise` (cosine to the anchor ~0.94),
    labelled with the anchor's class."""
    rng = np.random.default_rng(seed)
    n_anchors, dim = anchors.shape
    basis = np.linalg.qr(rng.normal(size=(dim, intrinsic)))[0].astype(np.float32).T  # (intrinsic, dim)
    which = rng.integers(0, n_anchors, size=n)
    local = rng.normal(size=(n, intrinsic)).astype(np.float32) * (spread / np.sqrt(intrinsic))
    x = anchors[which] + local @ basis + rng.normal(size=(n, dim)).astype(np.float32) * (noise / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [anchor_labels[a] for a in which]
    names = [f"img_{i:06d}.png" for i in range(n)]
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{labels[i]}/{names[i]}")) for i in range(n)]
    payloads = [{"label": labels[i], "file_name": names[i], "path": f"{labels[i]}/{names[i]}"} for i in range(n)]
    return ids, x.astype(np.float32), payloads


def embed_anchors(model: models.Embedder, count: int, batch: int = 32) -> tuple[np.ndarray, list[str]]:
    """effnet-lite0 embeddings (unit rows) of `count` Fashion-MNIST train images, and their class names."""
    imgs, labels = load_fashion_mnist("train")
    idx = np.random.default_rng(1).choice(len(imgs), size=count, replace=False)
    rgb = [Image.fromarray(imgs[i]).convert("RGB") for i in idx]
    vecs = np.concatenate([model.embed_images(rgb[i:i + batch]) for i in range(0, count, batch)])
    return vecs.astype(np.float32), [FASHION_CLASSES[labels[i]] for i in idx]


def load_collection(store: Store, name: str, vector: str, ids: list[str], vectors: np.ndarray,
                    payloads: list[dict[str, Any]]) -> tuple[float, float]:
    """Create, upsert in batches and optimize (as ingest does); returns (upsert s, optimize s)."""
    store.create_collection(name, {vector: vectors.shape[1]})
    t = time.perf_counter()
    for i in range(0, len(ids), BATCH):
        store.upsert(name, ids[i:i + BATCH], {vector: vectors[i:i + BATCH]}, payloads[i:i + BATCH])
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    store.optimize(name)
    return upsert_s, time.perf_counter() - t


def fashion_pngs(count: int) -> tuple[list[bytes], list[str]]:
    """PNG bytes of `count` Fashion-MNIST test images (what a user would upload), and their class names."""
    if not fashion_mnist_available():
        raise SystemExit("Fashion-MNIST is not installed (/usr/share/datasets/fashion-mnist): "
                         "apt-get install dataset-fashion-mnist, or run without image queries (--image-queries 0).")
    imgs, labels = load_fashion_mnist("t10k")
    idx = np.random.default_rng(0).choice(len(imgs), size=count, replace=False)
    out = []
    for i in idx:
        buf = io.BytesIO()
        Image.fromarray(imgs[i]).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out, [FASHION_CLASSES[labels[i]] for i in idx]


# --- measurements ----------------------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def vector_queries(store: Store, name: str, vector: str, queries: np.ndarray,
                   filters: Sequence[Filter | None] | None = None,
                   exact: bool = False) -> tuple[list[float], list[list[PointId]]]:
    """Milliseconds per `search(...)` call (its own Qdrant timing) and the ids found, after a short warm-up."""
    filters = filters or [None] * len(queries)
    for q, f in zip(queries[:WARMUP], filters):
        search(store, name, q, using=vector, k=K, filter=f, exact=exact)
    times, found = [], []
    for q, f in zip(queries, filters):
        start = time.perf_counter()
        result = search(store, name, q, using=vector, k=K, filter=f, exact=exact)
        times.append((time.perf_counter() - start) * 1000)
        found.append([h.id for h in result.hits])
    return times, found


def recall_at_k(approx: list[list[PointId]], exact: list[list[PointId]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approx, exact)]))


def get_model() -> models.Embedder:
    """What the Search page does for every query (the loaded model is cached per process)."""
    return models.load(models.choose(MODEL), "cpu", settings.get("ATLAS_CPU_BF16"))


def image_queries(store: Store, uploads: list[bytes]) -> dict[str, Any]:
    """Upload bytes -> embedding -> search, timed end to end like the page (`started` before embedding). The
    first WARMUP uploads are run untimed."""
    max_bytes = settings.get("ATLAS_MAX_UPLOAD_MB") * 10**6
    max_pixels = settings.get("ATLAS_MAX_IMAGE_PIXELS")

    def one(data: bytes) -> tuple[float, float, float, np.ndarray, list[PointId]]:
        started = time.perf_counter()
        vec = image_query_vector(get_model(), data, max_bytes, max_pixels)
        embedded = time.perf_counter()
        result = search(store, IMAGE_COLLECTION, vec, using=MODEL, k=K, started=started)
        total = (time.perf_counter() - started) * 1000
        return total, (embedded - started) * 1000, result.milliseconds, vec, [h.id for h in result.hits]

    for data in uploads[:WARMUP]:  # the model is warm already; this warms the collection and the decode path
        one(data)
    runs = [one(data) for data in uploads[WARMUP:]]
    total, embed, query = ([row[i] for row in runs] for i in range(3))
    vecs, found = np.asarray([row[3] for row in runs]), [row[4] for row in runs]
    _, exact = vector_queries(store, IMAGE_COLLECTION, MODEL, vecs, exact=True)
    return {"image_p50_ms": pct(total, 50), "image_p99_ms": pct(total, 99), "image_embed_p50_ms": pct(embed, 50),
            "image_embed_p99_ms": pct(embed, 99), "image_query_p50_ms": pct(query, 50),
            "image_query_p99_ms": pct(query, 99), "image_recall_at_10": recall_at_k(found, exact)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(n: int, n_queries: int, n_image_queries: int, n_anchors: int, path: str) -> dict[str, Any]:
    r: dict[str, Any] = {"engine": "embedded", "n": n, "queries": n_queries, "image_queries": n_image_queries}
    store = open_store(path=path)
    try:
        # 1-2. vector queries on 512-d points
        print(f"loading {n:,} x {DIM}-d ...", file=sys.stderr)
        ids, vectors, payloads, queries, query_labels = make_data(n, n_queries, DIM, seed=0)
        r["upsert_s"], r["optimize_s"] = load_collection(store, COLLECTION, VECTOR, ids, vectors, payloads)
        del ids, vectors, payloads
        print("querying ...", file=sys.stderr)
        lat, approx = vector_queries(store, COLLECTION, VECTOR, queries)
        r["query_p50_ms"], r["query_p99_ms"] = pct(lat, 50), pct(lat, 99)
        lat, exact = vector_queries(store, COLLECTION, VECTOR, queries, exact=True)
        r["exact_p50_ms"] = pct(lat, 50)
        r["recall_at_10"] = recall_at_k(approx, exact)
        # the page's label filter is a list ({"label": [chosen labels]}); one label: each query's own class
        filters = [{"label": [label]} for label in query_labels]
        lat, _ = vector_queries(store, COLLECTION, VECTOR, queries, filters=filters)
        r["filtered_p50_ms"], r["filtered_p99_ms"] = pct(lat, 50), pct(lat, 99)

        # 3. uploaded image -> effnet-lite0 -> search, on a collection of synthetic effnet-sized vectors
        if n_image_queries > 0:
            uploads, _ = fashion_pngs(n_image_queries + WARMUP)
            print("loading effnet-lite0 ...", file=sys.stderr)
            r["model_load_s"], model = timed(get_model)
            r["model"] = {"name": model.name, "dim": model.dim, "device": model.device, "cpu_bf16": model.cpu_bf16}
            for data in uploads[:3]:  # warm the model (first forwards allocate and pick kernels)
                image_query_vector(model, data, 10**8, 10**8)
            print(f"embedding {n_anchors:,} anchor images ...", file=sys.stderr)
            r["anchors_s"], (anchors, anchor_labels) = timed(lambda: embed_anchors(model, n_anchors))
            print(f"loading {n:,} x {model.dim}-d (synthetic around the anchors, vector '{MODEL}') ...",
                  file=sys.stderr)
            ids, vectors, payloads = anchored_data(anchors, anchor_labels, n)
            r["image_upsert_s"], r["image_optimize_s"] = load_collection(store, IMAGE_COLLECTION, MODEL, ids,
                                                                         vectors, payloads)
            del ids, vectors, payloads
            print("image queries ...", file=sys.stderr)
            r.update(image_queries(store, uploads))
    finally:
        store.close()
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak (KiB on Linux)
    return r


# --- report ----------------------------------------------------------------------------------------------------
def passed(key: str, value: float, goal: float) -> bool:
    return value >= goal if key in HIGHER_IS_BETTER else value <= goal


def table(r: dict[str, Any]) -> str:
    rows = ["| measurement | N | value | goal | result |", "|---|---:|---:|---:|---|"]
    for key, goal in GOALS.items():
        if key not in r:
            continue
        value = r[key]
        if key.endswith("recall_at_10"):
            shown, goal_text = f"{value:.3f}", (f"≥ {goal:g}" if goal is not None else "—")
        elif key.endswith("_ms"):
            shown, goal_text = f"{value:.1f} ms", (f"≤ {goal:g} ms" if goal is not None else "—")
        else:
            shown, goal_text = f"{value:.2f} s", (f"≤ {goal:g} s" if goal is not None else "—")
        verdict = ("pass" if passed(key, value, goal) else "FAIL") if goal is not None else "info"
        rows.append(f"| {key} | {r['n']:,} | {shown} | {goal_text} | {verdict} |")
    return "\n".join(rows)


def machine(load_at_start: list[float]) -> dict[str, Any]:
    import torch

    return machine_info(("qdrant-edge-py", "numpy", "torch", "pillow"), load_at_start,
                        torch_threads=torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="points in each collection")
    ap.add_argument("--queries", type=int, default=200, help="vector queries per measurement")
    ap.add_argument("--image-queries", type=int, default=50, help="uploaded-image queries (0 skips them)")
    ap.add_argument("--quick", action="store_true", help="smoke run: n=5000, 30 queries, 5 image queries")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default bench/results/search.json, or search-quick.json with --quick)")
    args = ap.parse_args(argv)
    load_at_start = list(os.getloadavg())
    anchors = ANCHORS
    if args.quick:
        args.n, args.queries, args.image_queries, anchors = 5_000, 30, 5, 100
    # A quick run must not overwrite the figures of a full run.
    out = args.out or ROOT / "bench" / "results" / ("search-quick.json" if args.quick else "search.json")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-search-") as tmp:
        result = run(args.n, args.queries, args.image_queries, anchors, str(Path(tmp) / "qdrant"))
    result["runtime_s"] = time.perf_counter() - start
    info = machine(load_at_start)
    info["loadavg_at_end"] = list(os.getloadavg())

    report = table(result)
    print(report)
    failed = [k for k, g in GOALS.items() if g is not None and k in result and not passed(k, result[k], g)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": info,
        "settings": {"dim": DIM, "image_dim": result.get("model", {}).get("dim"), "clusters": CLUSTERS, "k": K,
                     "batch": BATCH, "queries": args.queries, "image_queries": args.image_queries,
                     "warmup": WARMUP, "quick": args.quick, "filter": "{'label': [the query's class]}",
                     "anchors": anchors,
                     "image_collection": "synthetic 1280-d vectors (vector name 'effnet-lite0') around effnet-lite0 "
                                         "embeddings of real Fashion-MNIST train images; queries are real "
                                         "Fashion-MNIST t10k PNGs embedded by effnet-lite0"},
        "goals": GOALS, "results": [result], "failed": failed, "table": report}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {result['runtime_s']:.0f} s; "
          f"load average {info['loadavg_at_start'][0]:.2f} -> {info['loadavg_at_end'][0]:.2f}"
          + (f"; goals missed: {', '.join(failed)}" if failed else "; all goals met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
