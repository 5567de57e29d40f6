"""A new user's first map: how much longer than a warm one it takes in a new process, with and without the
compiled map code that `python -m core warmup` (run by scripts/setup.sh) leaves in numba's cache.

Data: 2,000 synthetic clustered 1280-d vectors (bench/synthetic.py), the shape of the demo's effnet-lite0
embeddings. Each case runs in a fresh Python process, as a newly started app would:
  (a) empty numba cache: what every new install had before the warm-up;
  (b) numba cache filled by `python -m core warmup` in a separate process first (a new install after setup);
  and in each process the same map again (warm). The first map includes importing umap-learn / openTSNE.
Goal: (b)'s first UMAP <= 3x the warm one.

    .venv/bin/python bench/first_map.py            # both cases, UMAP and t-SNE
    .venv/bin/python bench/first_map.py --quick    # case (b) only, on the project's own numba cache, 500 points
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL_RATIO = 3.0


def child(method: str, n: int) -> None:
    """Runs in the fresh process: first and second map of the same vectors."""
    sys.path.insert(0, str(ROOT / "bench"))
    from synthetic import clustered_vectors

    x, _ = clustered_vectors(n, dim=1280, seed=0)
    started = time.perf_counter()
    from core.knn import knn_graph
    from core.projection import params_from, project

    params = params_from(method)
    times = []
    for _ in range(2):
        t = time.perf_counter() if times else started
        knn = knn_graph(x, 15) if method == "umap" else None
        project(x, params, knn=knn)
        times.append(time.perf_counter() - t)
    print(json.dumps({"first_s": times[0], "warm_s": times[1]}))


def run_child(method: str, n: int, numba_dir: str) -> dict[str, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_dir}
    out = subprocess.run([sys.executable, __file__, "--child", method, "--n", str(n)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", choices=["umap", "tsne"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.n)
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from machine import describe, machine_info

    load_at_start = list(os.getloadavg())
    n = 500 if args.quick else args.n
    out = args.out or ROOT / "bench" / "results" / ("first_map-quick.json" if args.quick else "first_map.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if args.quick:
            import core  # noqa: F401  (sets NUMBA_CACHE_DIR to the project's cache, which setup warmed)

            subprocess.run([sys.executable, "-m", "core", "warmup", "--quiet"], cwd=ROOT, check=True)
            cases.append(("(b) after warmup (project cache)", os.environ["NUMBA_CACHE_DIR"], None))
        else:
            cases.append(("(a) empty numba cache", f"{tmp}/empty", None))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "core", "warmup", "--quiet"], cwd=ROOT, check=True,
                           env={**os.environ, "NUMBA_CACHE_DIR": f"{tmp}/warm"})
            cases.append(("(b) after `core warmup`", f"{tmp}/warm", time.perf_counter() - t))
        for method in ("umap", "tsne"):
            for name, numba_dir, warmup_s in cases:
                r = run_child(method, n, numba_dir)
                rows.append({"method": method, "case": name, "points": n, **r, "ratio": r["first_s"] / r["warm_s"],
                             "warmup_s": warmup_s})
    info = machine_info(("numba", "umap-learn", "pynndescent", "openTSNE", "numpy"), load_at_start)
    table = ["| map | case | first map in a new process | warm | first / warm |", "|---|---|---:|---:|---:|"]
    table += [f"| {r['method']} | {r['case']} | {r['first_s']:.1f} s | {r['warm_s']:.1f} s | {r['ratio']:.1f}x |"
              for r in rows]
    umap_b = [r for r in rows if r["method"] == "umap" and r["case"].startswith("(b)")][0]
    met = umap_b["ratio"] <= GOAL_RATIO
    print("\n".join(table))
    print(f"goal: (b) first UMAP <= {GOAL_RATIO:g}x warm: {'met' if met else 'MISSED'} ({umap_b['ratio']:.1f}x); "
          f"machine: {describe(info)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "first_map", "date": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "machine": info, "settings": {"points": n, "quick": args.quick},
        "goal": {"first_over_warm_max": GOAL_RATIO, "met": met}, "results": rows,
        "markdown": "\n".join(table)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
