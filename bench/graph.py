"""Graph page: a 1,000-node kNN graph (k=5) built, laid out and turned into a Plotly figure, warm.

Goal: <= 3 s on 2 cores. Data: synthetic clustered 512-d embeddings (bench/synthetic.py), 10 labels with 3%
flipped, so that cross-label edges exist.

    .venv/bin/python bench/graph.py            # 1,000 nodes, 5 repeats
    .venv/bin/python bench/graph.py --quick    # 200 nodes, 1 repeat
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from core.figures import figure_bytes  # noqa: E402
from core.graph import build_graph, graph_figure  # noqa: E402
from machine import machine_info  # noqa: E402
from synthetic import clustered_vectors  # noqa: E402

GOAL_S = 3.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 200, 1
    out = args.out or ROOT / "bench" / "results" / ("graph-quick.json" if args.quick else "graph.json")
    x, y = clustered_vectors(args.n, seed=0)
    rng = np.random.default_rng(0)
    labels = y.copy()
    flip = rng.choice(args.n, size=max(1, args.n * 3 // 100), replace=False)
    labels[flip] = (labels[flip] + 1) % 10
    payloads = [{"label": f"c{v}", "file_name": f"img{i:06d}.png"} for i, v in enumerate(labels)]
    ids = list(range(args.n))
    build_graph(ids[:50], payloads[:50], x[:50], "label", k=args.k)  # warm imports
    rows = []
    for tree in (False, True):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            g = build_graph(ids, payloads, x, "label", k=args.k, tree=tree)
            fig = graph_figure(g)
            times.append(time.perf_counter() - t)
        rows.append({"graph": "spanning tree" if tree else "kNN edges", "nodes": args.n, "edges": int(len(g.edges)),
                     "cross_label_edges": int(g.cross_label.sum()), "seconds_p50": float(np.median(times)),
                     "figure_bytes": figure_bytes(fig), "pass": bool(np.median(times) <= GOAL_S)})
    print("| graph | nodes | edges | cross-label | build + layout + figure (p50) | goal | result |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['graph']} | {r['nodes']:,} | {r['edges']:,} | {r['cross_label_edges']:,} | "
              f"{r['seconds_p50']:.2f} s | ≤ {GOAL_S:g} s | {'pass' if r['pass'] else 'FAIL'} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "machine": machine_info(("numpy", "scipy", "plotly"), list(os.getloadavg())),
                               "k": args.k, "repeats": args.repeats, "results": rows}, indent=2))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0  # a missed goal shows in the table and the JSON; the run itself succeeded


if __name__ == "__main__":
    sys.exit(main())
