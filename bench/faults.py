"""Fault injection: kill -9 an ingest or a relabel batch at a random moment, then check that nothing was lost.

Each run builds a fresh embedded store (real Fashion-MNIST images, or scikit-learn digits where the Debian package
is missing) with some label edits, changes the folder (re-saved files, files moved to another label folder, new
files), and starts one operation in a subprocess, killed with SIGKILL after a random delay within its measured
duration:
  ingest   re-ingest of the changed folder (batches of 4: updates, moves, new files)
  relabel  label batches (relabel, confirm, undo) through core.labels
Afterwards the store must open. Then the interrupted ingest is run again (an ingest must be safe to re-run), and:
  points lost            a file (or its moved copy) without a point, or a point missing from a vector scroll
  duplicated             points beyond one per file (e.g. a moved file's old point left behind)
  histories inconsistent a label_history that does not replay to the label, a label_original that is not the
                         first label, or an edit made before the run that is no longer in the history
The model is a tiny deterministic stand-in (mean colour of an 8x8 image): the question is what the store keeps,
and a real model would only slow the runs down.

    .venv/bin/python bench/faults.py            # 20 runs of each operation -> bench/results/faults.json
    .venv/bin/python bench/faults.py --quick    # 2 runs of each -> bench/results/faults-quick.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLLECTION = "faults"
OPS = ("ingest", "relabel")


def _model():
    import torch
    from PIL import Image

    from core.models.base import Embedder

    class MeanColour(Embedder):
        name = "fault-mean-colour"
        dim = 12

        def preprocess(self, image: Image.Image) -> torch.Tensor:
            arr = np.asarray(image.resize((8, 8)), dtype=np.float32) / 255.0
            return torch.from_numpy(arr.transpose(2, 0, 1).copy())

        def _forward(self, x: torch.Tensor) -> torch.Tensor:
            quads = [x[:, :, :4, :4], x[:, :, :4, 4:], x[:, :, 4:, :4], x[:, :, 4:, 4:]]
            return torch.cat([q.mean(dim=(2, 3)) for q in quads], dim=1) + 0.01

    return MeanColour()


# --- the child: one operation, killed somewhere in the middle ------------------------------------------------
def child(op: str, work: Path, seed: int) -> None:
    from core import labels
    from core.ingest import ingest
    from core.store import open_store

    store = open_store(path=str(work / "qdrant"))
    print("ready", flush=True)
    if op == "ingest":
        ingest(store, work / "images", COLLECTION, _model(), batch_size=4, workers=1)
    else:
        rng = random.Random(seed)
        ids = sorted(store.scroll(COLLECTION, with_vectors=False, payload_keys=[]).ids)
        names = sorted(store.count_by(COLLECTION, "label")) + ["pear"]
        last: list = []
        for _ in range(12):
            batch = rng.sample(ids, 5)
            kind = rng.random()
            if kind < 0.6:
                last = labels.relabel(store, COLLECTION, batch, rng.choice(names), by="bench")
            elif kind < 0.8:
                last = labels.confirm(store, COLLECTION, batch, by="bench")
            elif last:
                try:
                    labels.undo(store, last, by="bench")
                except labels.LabelError:
                    pass
                last = []
    store.close()
    print("done", flush=True)


# --- the parent ------------------------------------------------------------------------------------------------
def _images(n_per_class: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from core import datasets

    if datasets.fashion_mnist_available():
        imgs, y = datasets.load_fashion_mnist("t10k")
        names = datasets.FASHION_CLASSES
    else:
        imgs, y, names = datasets.load_digits()
    keep = np.isin(y, [0, 1, 2])
    imgs, y = imgs[keep], y[keep]
    idx = datasets.stratified_indices(y, n_per_class, seed=0)
    return imgs[idx], y[idx], tuple(n.replace("/", "-") for n in names)


def prepare(work: Path, imgs: np.ndarray, y: np.ndarray, names: tuple[str, ...], seed: int) -> dict[str, Any]:
    """A store with edits, and a folder changed since: the state a run starts from, as a dict of payloads."""
    from PIL import Image

    from core import datasets, labels
    from core.ingest import ingest, point_id
    from core.store import open_store

    rng = random.Random(seed)
    folder = work / "images"
    datasets.write_image_folder(imgs, y, names, folder)
    with open_store(path=str(work / "qdrant")) as store:
        ingest(store, folder, COLLECTION, _model(), batch_size=16, workers=1)
        ids = sorted(store.scroll(COLLECTION, with_vectors=False, payload_keys=[]).ids)
        for i, pid in enumerate(rng.sample(ids, len(ids) // 4)):
            labels.relabel(store, COLLECTION, [pid], rng.choice([*names[:3], "pear"]), by="setup")
            if i % 3 == 0:
                labels.confirm(store, COLLECTION, [pid], by="setup")
        before = store.scroll(COLLECTION, with_vectors=False)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    moves = {}
    for rel in rng.sample(files, len(files) // 3):
        action = rng.random()
        if action < 0.5:  # re-saved: same picture, other bytes
            arr = np.asarray(Image.open(folder / rel)).copy()
            arr[0, 0] = 255 - arr[0, 0]
            Image.fromarray(arr).save(folder / rel)
        else:  # moved to another label folder
            to = f"{rng.choice(names[:3])}/moved-{Path(rel).name}"
            if not (folder / to).exists():
                (folder / rel).rename(folder / to)
                moves[point_id(rel)] = point_id(to)
    for i in range(4):  # new files
        Image.fromarray(imgs[i][::-1].copy()).save(folder / names[int(y[i])] / f"new-{i}.png")
    return {"payloads": dict(zip(before.ids, before.payloads)), "moves": moves}


def _replays(payload: dict[str, Any]) -> bool:
    history = payload.get("label_history") or []
    if not history:
        return "label_original" not in payload or payload["label_original"] == payload.get("label")
    label = payload.get("label_original", history[0]["old"])
    if label != history[0]["old"]:
        return False
    for entry in history:
        if entry["old"] != label:
            return False
        label = entry["new"]
    return label == payload.get("label")


def check(store: Any, folder: Path, start: dict[str, Any]) -> dict[str, int]:
    """Points lost, duplicated, and histories inconsistent, against the files and the state before the run."""
    from core.ingest import point_id

    pts = store.scroll(COLLECTION, with_vectors=False)
    now = dict(zip(pts.ids, pts.payloads))
    expected = {point_id(p.relative_to(folder).as_posix()) for p in folder.rglob("*.png")}
    lost = len(expected - set(now))
    # the vector scroll (the embedded engine's numpy copy) must hold every point with its own vector
    with_vectors = store.scroll(COLLECTION)
    lost += len(set(now) - set(with_vectors.ids))
    exact = store.retrieve(COLLECTION, with_vectors.ids, with_vectors=True)
    if not np.allclose(exact.vectors, with_vectors.vectors, atol=1e-6):
        lost += int((~np.isclose(exact.vectors, with_vectors.vectors, atol=1e-6).all(axis=1)).sum())
    duplicated = len(set(now) - expected)
    bad = {pid for pid, p in now.items() if not _replays(p)}
    for pid, old in start["payloads"].items():  # every edit made before the run is still there
        new = now.get(start["moves"].get(pid, pid))
        if new is None:
            new = now.get(pid)
        if new is None:
            continue  # counted as lost
        history = old.get("label_history") or []
        if (new.get("label_history") or [])[:len(history)] != history:
            bad.add(pid)
    return {"lost": lost, "duplicated": duplicated, "inconsistent": len(bad)}


def run_child(op: str, work: Path, seed: int, kill_after: float | None) -> tuple[float, bool]:
    """Run one operation in a subprocess; kill -9 it `kill_after` seconds after it is ready. Returns how long it
    ran after ready, and whether it was killed before it finished."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", op, str(work), str(seed)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"{op} child did not start: {line}{proc.communicate()[1][-2000:]}")
    t0 = time.perf_counter()
    killed = False
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
    out, err = proc.communicate()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"{op} child failed: {err[-2000:]}")
    return time.perf_counter() - t0, killed


def one_run(op: str, run: int, base: Path, data: tuple, duration: float | None) -> dict[str, Any]:
    from core.ingest import ingest
    from core.store import open_store

    work = base / f"{op}-{run}"
    start = prepare(work, *data, seed=run)
    kill_after = None if duration is None else random.Random(run).uniform(0.0, duration)
    seconds, killed = run_child(op, work, run, kill_after)
    row: dict[str, Any] = {"op": op, "run": run, "kill_after_s": kill_after, "killed": killed,
                           "ran_s": round(seconds, 3)}
    try:
        store = open_store(path=str(work / "qdrant"))
        store.count(COLLECTION)
        row["opened"] = True
    except Exception as exc:  # the point of the benchmark: say so rather than stop
        row.update(opened=False, error=f"{type(exc).__name__}: {exc}", lost=-1, duplicated=-1, inconsistent=-1)
        return row
    with store:
        pts = store.scroll(COLLECTION, with_vectors=False)
        row["inconsistent_after_kill"] = sum(not _replays(p) for p in pts.payloads)
        if op == "ingest":  # an interrupted ingest is finished by running it again
            ingest(store, work / "images", COLLECTION, _model(), batch_size=4, workers=1)
            row.update(check(store, work / "images", start))
        else:  # a relabel changes no files: the points are the ones the store had
            row.update(_check_relabel(store, start))
    shutil.rmtree(work, ignore_errors=True)
    return row


def _check_relabel(store: Any, start: dict[str, Any]) -> dict[str, int]:
    pts = store.scroll(COLLECTION, with_vectors=False)
    now = dict(zip(pts.ids, pts.payloads))
    lost = len(set(start["payloads"]) - set(now)) + len(set(now) - set(store.scroll(COLLECTION).ids))
    duplicated = len(set(now) - set(start["payloads"]))
    bad = {pid for pid, p in now.items() if not _replays(p)}
    for pid, old in start["payloads"].items():
        history = old.get("label_history") or []
        if pid in now and (now[pid].get("label_history") or [])[:len(history)] != history:
            bad.add(pid)
    return {"lost": lost, "duplicated": duplicated, "inconsistent": len(bad)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="killed runs of each operation")
    ap.add_argument("--per-class", type=int, default=20, help="images per class (3 classes)")
    ap.add_argument("--quick", action="store_true", help="2 runs of each operation, 8 images per class")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("OP", "WORK", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return 0
    if args.quick:
        args.runs, args.per_class = 2, 8
    out = args.out or ROOT / "bench" / "results" / ("faults-quick.json" if args.quick else "faults.json")
    from machine import describe, machine_info

    load_at_start = list(os.getloadavg())
    data = _images(args.per_class)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atlas-faults-") as tmp:
        base = Path(tmp)
        for op in OPS:
            # how long the operation takes when left alone (the faster of two: load from other processes only
            # slows it down), so that kills land anywhere within it
            calibration = [one_run(op, -1 - i, base, data, None) for i in range(2)]
            duration = min(r["ran_s"] for r in calibration)
            for run in range(args.runs):
                rows.append(one_run(op, run, base, data, duration))
            rows += [{**r, "calibration": True} for r in calibration]
    summary = []
    for op in OPS:
        mine = [r for r in rows if r["op"] == op and not r.get("calibration")]
        summary.append({"operation": op, "runs": len(mine), "killed": sum(r["killed"] for r in mine),
                        "opened": sum(r["opened"] for r in mine),
                        "points_lost": sum(max(r["lost"], 0) for r in mine),
                        "duplicated": sum(max(r["duplicated"], 0) for r in mine),
                        "histories_inconsistent": sum(max(r["inconsistent"], 0) for r in mine),
                        "inconsistent_right_after_kill": sum(r.get("inconsistent_after_kill", 0) for r in mine),
                        "calibration_clean": all(
                            r["lost"] == r["duplicated"] == r["inconsistent"] == 0
                            for r in rows if r["op"] == op and r.get("calibration"))})
    info = machine_info(("qdrant-edge-py", "numpy", "torch"), load_at_start)
    print("| operation | runs | killed mid-way | store opened | points lost | duplicated | histories inconsistent |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        print(f"| {s['operation']} | {s['runs']} | {s['killed']} | {s['opened']} | {s['points_lost']} | "
              f"{s['duplicated']} | {s['histories_inconsistent']} |")
    print(f"{len(data[0])} images, {time.perf_counter() - started:.0f} s; machine: {describe(info)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": info,
                               "settings": {"runs": args.runs, "images": len(data[0]), "quick": args.quick},
                               "summary": summary, "runs": rows}, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    bad = any(s["points_lost"] or s["duplicated"] or s["histories_inconsistent"] or s["opened"] < s["runs"]
              for s in summary)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
