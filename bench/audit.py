"""Benchmark of the label audit (core/audit): label-issue quality against planted noise, cleanlab's Datalab on the
same embeddings, exact/near duplicates, and the time of a whole audit and of a relabel at 70,000 points.

1. Quality: the 5,000 Fashion-MNIST test images of bench/data/fmnist5k_planted_noise.json (500 per class),
   embedded with effnet-lite0 (product defaults), labels flipped at 5% and, separately, 10% (the JSON's arrays,
   seed 0). For each level the vectors go into a fresh embedded store and `run_audit(checks=["label"])` runs; its
   flagged set and label score are compared with the planted flips (precision, recall, F1, average precision of
   -score), next to cleanlab's Datalab label check and a plain 10-NN majority vote on the same embeddings, and the
   anchor figures stored in the JSON. Goals: 5% AP >= 0.90, F1 >= 0.75; 10% AP >= 0.93, F1 >= 0.80.
2. Duplicates: 20 exact copies (same vector, same sha1) and 5 near copies (cosine ~0.995, own sha1) planted into
   the 5k set; `run_audit(checks=["duplicate"])` must find every planted exact pair.
3. Scale: 70,000 synthetic clustered 512-d vectors (bench/synthetic.py, 10 clusters, spread 0.6, 5% labels
   flipped, seed 0) in an embedded store; the whole `run_audit` (label, outlier, duplicate; kNN graph included,
   empty cache) <= 90 s, after warming numba's JIT (NN-descent is used above 20k points) on a small set. Then
   `core.labels.relabel` of one point, p50 of 20 calls <= 100 ms. A time goal missed while the machine is loaded
   is rerun (--retries) and the best attempt counts; every attempt and its load average is kept.
   Also reported (info, not graded): the same audit on synthetic classes that overlap for the linear probe
   (noise 0.3), since with bench/synthetic.py's defaults the probe separates the clusters perfectly at any spread
   and so costs far less than on real embeddings.

    .venv/bin/python bench/audit.py            # full: 5k images, 70k synthetic  -> bench/results/audit.json
    .venv/bin/python bench/audit.py --quick    # smoke run: 1k images, 5k synthetic -> bench/results/audit-quick.json

Only the public API is used: core.models, core.datasets, core.store.open_store, core.audit.run_audit,
core.labels.relabel (plus clearing run_audit's in-process result memory before a rerun of the same data).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
import uuid
import warnings
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `core` lives at the repo root
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark must never sit in network retries

import core.audit as audit_module  # noqa: E402
from core.audit import run_audit  # noqa: E402
from core.cache import ArrayCache  # noqa: E402
from core.labels import relabel  # noqa: E402
from core.store import Store, open_store  # noqa: E402
from machine import machine_info  # noqa: E402
from synthetic import clustered_vectors  # noqa: E402

# The team's shared benchmark set (../shared/bench/ next to the checkout), copied into the repository so that the
# benchmark runs from any clone; --planted or ATLAS_PLANTED_JSON use another copy.
PLANTED = Path(os.environ.get("ATLAS_PLANTED_JSON") or ROOT / "bench" / "data" / "fmnist5k_planted_noise.json")
MODEL = "effnet-lite0"
EMBED_BATCH = 64
UPSERT_BATCH = 1000
NOISE_LEVELS = ("05", "10")
# Quality goals per noise level (ours only; cleanlab and the kNN vote are comparisons).
QUALITY_GOALS = {"05": {"average_precision": 0.90, "f1": 0.75}, "10": {"average_precision": 0.93, "f1": 0.80}}
AUDIT_GOAL_S = 90.0  # whole run_audit at 70k points
RELABEL_GOAL_MS = 100.0  # p50 of one relabel at 70k points
EXACT_PAIRS, NEAR_PAIRS = 20, 5
SYN_CLUSTERS, SYN_SPREAD, SYN_NOISE, SYN_FLIP = 10, 0.6, 0.02, 0.05  # noise: bench/synthetic.py default
SYN_HARD_NOISE = 0.3  # classes overlap for the linear probe too (probe accuracy ~0.94 on clean labels)
RELABEL_CALLS, RELABEL_WARMUP = 20, 2


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def ids_for(prefix: str, n: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{i}")) for i in range(n)]


def upsert_all(store: Store, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
               vector: str) -> float:
    started = time.perf_counter()
    store.create_collection(name, {vector: vectors.shape[1]})
    for i in range(0, len(ids), UPSERT_BATCH):
        store.upsert(name, ids[i:i + UPSERT_BATCH], {vector: vectors[i:i + UPSERT_BATCH]}, payloads[i:i + UPSERT_BATCH])
    return time.perf_counter() - started


def staged_audit(store: Store, name: str, **kwargs: Any) -> tuple[Any, float, dict[str, float]]:
    """run_audit with an empty memory-only cache, its wall time and the seconds of each stage it reports."""
    marks: list[tuple[str, float]] = []
    audit_module._memory.clear()  # a rerun on the same data must compute, not return the remembered report
    started = time.perf_counter()
    report = run_audit(store, name, cache=ArrayCache(None), progress=lambda w, _f: marks.append(
        (w, time.perf_counter())), **kwargs)
    seconds = time.perf_counter() - started
    assert not report.cached, "run_audit answered from its memory: the timing would be meaningless"
    stages = {}
    for (what, t0), (_next, t1) in pairwise(marks):
        stages[what.replace(" ", "_")] = round(t1 - t0, 3)
    return report, seconds, stages


# --- quality metrics -------------------------------------------------------------------------------------------
def detection(flagged: np.ndarray, score: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Flagged set against the truth, and the average precision of the score (lower = more suspicious)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    score = np.asarray(score, float)
    score = np.where(np.isnan(score), np.nanmax(score) + 1.0, score)  # unscored points: least suspicious
    tp = int((flagged & truth).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    p, r, thr = precision_recall_curve(truth, -score)
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)[:-1]
    best = int(np.argmax(f)) if len(f) else 0
    return {"flagged": int(flagged.sum()), "true_positives": tp, "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4),
            "average_precision": round(float(average_precision_score(truth, -score)), 4),
            "best_threshold_f1": round(float(f[best]), 4) if len(f) else 0.0,
            "best_threshold": round(float(-thr[best]), 4) if len(f) else None}


def threshold_sweep(score: np.ndarray, truth: np.ndarray, thresholds: tuple[float, ...]) -> list[dict[str, Any]]:
    rows = []
    for t in thresholds:
        m = detection(score < t, score, truth)
        rows.append({"threshold": t, **{k: m[k] for k in ("flagged", "precision", "recall", "f1")}})
    return rows


# --- 1. quality on Fashion-MNIST -------------------------------------------------------------------------------
def embed_fmnist(positions: np.ndarray, test_index: np.ndarray, cache_file: Path | None) -> tuple[np.ndarray, float,
                                                                                                   dict[str, Any]]:
    from PIL import Image

    from core import datasets, models

    if cache_file and cache_file.is_file():
        data = np.load(cache_file)
        if np.array_equal(data["test_index"], test_index[positions]):
            say(f"embeddings from {cache_file}")
            return data["vectors"], float(data["seconds"]), {"from_file": str(cache_file)}
    images, _ = datasets.load_fashion_mnist("t10k")
    choice = models.choose(MODEL)
    t0 = time.perf_counter()
    model = models.load(choice, "cpu")
    load_s = time.perf_counter() - t0
    say(f"embedding {len(positions):,} images with {model.name} (bf16 autocast: {model.cpu_bf16}) ...")
    started = time.perf_counter()
    chunks = []
    for i in range(0, len(positions), EMBED_BATCH):
        batch = [Image.fromarray(images[test_index[p]]).convert("RGB") for p in positions[i:i + EMBED_BATCH]]
        chunks.append(model.embed_images(batch))
    vectors = np.concatenate(chunks).astype(np.float32)
    seconds = time.perf_counter() - started
    if cache_file:
        np.savez(cache_file, vectors=vectors, test_index=test_index[positions], seconds=seconds)
    return vectors, seconds, {"model_load_s": round(load_s, 2), "cpu_bf16": model.cpu_bf16, "device": model.device}


def cleanlab_label(labels: list[str], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from cleanlab import Datalab

    started = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
        lab.find_issues(features=vectors, issue_types={"label": {}})
        issues = lab.get_issues("label")
    seconds = time.perf_counter() - started
    return issues["is_label_issue"].to_numpy(bool), issues["label_score"].to_numpy(float), seconds


def quality(planted: dict[str, Any], positions: np.ndarray, vectors: np.ndarray, tmp: Path) -> list[dict[str, Any]]:
    classes = planted["classes"]
    test_index = np.asarray(planted["test_index"])
    clean = np.asarray(planted["label_clean"])[positions]
    ids = ids_for("fmnist", len(positions))
    row_of = {pid: i for i, pid in enumerate(ids)}
    anchors = planted["anchor_measured_here"]
    out = []
    for level in NOISE_LEVELS:
        noisy = np.asarray(planted[f"label_noisy_{level}"])[positions]
        truth = noisy != clean
        flipped = np.zeros(len(planted["label_clean"]), bool)
        flipped[planted[f"flipped_{level}"]] = True
        assert np.array_equal(truth, flipped[positions]), "label arrays disagree with the flipped list"
        labels = [classes[int(c)] for c in noisy]
        payloads = [{"label": labels[i], "sha1": f"fmnist-t10k-{int(test_index[p])}"} for i, p in enumerate(positions)]
        store = open_store(path=str(tmp / f"fmnist-{level}"))
        try:
            load_before = load()
            upsert_all(store, "fmnist", ids, vectors, payloads, MODEL)
            say(f"{level}% noise: run_audit(label) on {len(ids):,} points ...")
            report, seconds, stages = staged_audit(store, "fmnist", checks=["label"])
        finally:
            store.close()
        order = np.array([row_of[pid] for pid in report.table["id"]])  # report row -> our row
        score = np.empty(len(ids))
        flag = np.zeros(len(ids), bool)
        agree = np.empty(len(ids))
        score[order] = report.table["label_score"].to_numpy(float)
        flag[order] = report.table["is_label_issue"].to_numpy(bool)
        agree[order] = report.table["neighbour_agreement"].to_numpy(float)
        ours = {**detection(flag, score, truth), "seconds": round(seconds, 2), "label_check_s": stages.get(
            "label_check"), "stages": stages, "loadavg_before": load_before,
            "threshold": report.results["label"].summary.get("threshold")}
        ours["threshold_sweep"] = threshold_sweep(score, truth, (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5))
        say(f"{level}% noise: cleanlab Datalab ...")
        cl_flag, cl_score, cl_s = cleanlab_label(labels, vectors)
        theirs = {**detection(cl_flag, cl_score, truth), "seconds": round(cl_s, 2)}
        # 10-NN majority vote on the audit's own kNN graph: flag when more than half the neighbours disagree
        vote = {**detection(agree < 0.5, agree, truth), "seconds": None}
        out.append({"noise": f"{int(level)}%", "n": len(ids), "planted_flips": int(truth.sum()),
                    "ours": ours, "cleanlab_datalab": theirs, "knn10_vote": vote,
                    "anchor": {k.rsplit("_", 1)[0]: v for k, v in anchors.items()
                               if isinstance(v, dict) and k.endswith(f"_{int(level)}pct")},
                    "goals": QUALITY_GOALS[level], "graded": len(ids) == len(planted["test_index"])})
    return out


# --- 2. duplicates ---------------------------------------------------------------------------------------------
def duplicates(planted: dict[str, Any], positions: np.ndarray, vectors: np.ndarray, tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    classes = planted["classes"]
    test_index = np.asarray(planted["test_index"])
    n = len(positions)
    labels = [classes[int(c)] for c in np.asarray(planted["label_noisy_05"])[positions]]
    sha = [f"fmnist-t10k-{int(test_index[p])}" for p in positions]
    picks = rng.choice(n, size=EXACT_PAIRS + NEAR_PAIRS, replace=False)
    exact_src, near_src = picks[:EXACT_PAIRS], picks[EXACT_PAIRS:]
    noise = rng.normal(size=(NEAR_PAIRS, vectors.shape[1])).astype(np.float32) * (0.1 / np.sqrt(vectors.shape[1]))
    near_vec = vectors[near_src] + noise
    near_vec /= np.linalg.norm(near_vec, axis=1, keepdims=True)
    all_vec = np.concatenate([vectors, vectors[exact_src], near_vec]).astype(np.float32)
    all_labels = labels + [labels[i] for i in exact_src] + [labels[i] for i in near_src]
    all_sha = sha + [sha[i] for i in exact_src] + [f"{sha[i]}-near" for i in near_src]
    ids = ids_for("fmnist-dup", len(all_vec))
    payloads = [{"label": lab, "sha1": s} for lab, s in zip(all_labels, all_sha)]
    pairs_exact = [(int(s), n + j) for j, s in enumerate(exact_src)]
    pairs_near = [(int(s), n + EXACT_PAIRS + j) for j, s in enumerate(near_src)]
    store = open_store(path=str(tmp / "fmnist-dup"))
    try:
        upsert_all(store, "dup", ids, all_vec, payloads, MODEL)
        say(f"duplicates: run_audit(duplicate) on {len(ids):,} points ...")
        report, seconds, _ = staged_audit(store, "dup", checks=["duplicate"])
    finally:
        store.close()
    row_of = {pid: i for i, pid in enumerate(ids)}
    group = np.full(len(ids), -1)
    exact_flag = np.zeros(len(ids), bool)
    order = np.array([row_of[pid] for pid in report.table["id"]])
    group[order] = report.table["duplicate_group"].to_numpy(int)
    exact_flag[order] = report.table["exact_copy"].to_numpy(bool)

    def found(pairs: list[tuple[int, int]], need_exact: bool) -> int:
        return sum(group[a] >= 0 and group[a] == group[b] and (not need_exact or (exact_flag[a] and exact_flag[b]))
                   for a, b in pairs)

    planted_rows = {r for pair in pairs_exact + pairs_near for r in pair}
    summary = report.results["duplicate"].summary
    other_groups = len({int(g) for i, g in enumerate(group) if g >= 0 and i not in planted_rows})
    near_cos = [float(all_vec[a] @ all_vec[b]) for a, b in pairs_near]
    return {"n": len(ids), "seconds": round(seconds, 2), "exact_pairs_planted": EXACT_PAIRS,
            "exact_pairs_found": found(pairs_exact, True), "near_pairs_planted": NEAR_PAIRS,
            "near_pairs_found": found(pairs_near, False), "near_pair_cosine_min": round(min(near_cos), 4),
            "groups": summary["groups"], "points_in_groups": summary["points_in_groups"],
            "groups_without_planted_points": other_groups, "similarity": summary["similarity"]}


# --- 3. scale --------------------------------------------------------------------------------------------------
def warm_jit() -> float:
    """Compile pynndescent's numba code (the kNN path above 20k points) on a small set, outside the timings."""
    from core.knn import knn_graph

    x, _ = clustered_vectors(3000, clusters=SYN_CLUSTERS, spread=SYN_SPREAD, seed=1)
    started = time.perf_counter()
    knn_graph(x, 15, method="nndescent")
    return time.perf_counter() - started


def synthetic_set(n: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, given labels, true clusters): SYN_FLIP of the labels moved to another class, seed 0."""
    vectors, clusters = clustered_vectors(n, clusters=SYN_CLUSTERS, spread=SYN_SPREAD, noise=noise, seed=0)
    rng = np.random.default_rng(0)
    labels = clusters.copy()
    flip = rng.choice(n, size=round(SYN_FLIP * n), replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, SYN_CLUSTERS, size=len(flip))) % SYN_CLUSTERS  # a different class
    return vectors, labels, clusters


def timed_audit(store: Store, name: str, ids: list[str], labels: np.ndarray, clusters: np.ndarray, retries: int,
                what: str) -> dict[str, Any]:
    """The whole run_audit (all checks), rerun while it misses the goal (up to `retries` times)."""
    n = len(ids)
    attempts = []
    report = None
    for attempt in range(1 + retries):
        load_before = load()
        say(f"{what}: run_audit(label, outlier, duplicate) on {n:,} points, attempt {attempt + 1} ...")
        report, seconds, stages = staged_audit(store, name)
        attempts.append({"seconds": round(seconds, 2), "stages": stages, "knn_method": report.knn.method,
                         "loadavg_before": load_before, "loadavg_after": load()})
        if seconds <= AUDIT_GOAL_S:
            break
    row_of = {pid: i for i, pid in enumerate(ids)}
    order = np.array([row_of[pid] for pid in report.table["id"]])
    score = np.empty(n)
    flag = np.zeros(n, bool)
    score[order] = report.table["label_score"].to_numpy(float)
    flag[order] = report.table["is_label_issue"].to_numpy(bool)
    probs = report.results["label"].extra["probabilities"]
    classes = report.results["label"].extra["classes"]
    true_class = np.array([classes.index(f"c{int(c)}") for c in clusters])
    quality = {k: v for k, v in detection(flag, score, labels != clusters).items()
               if k in ("flagged", "precision", "recall", "f1", "average_precision")}
    quality["probe_accuracy_vs_true_class"] = round(float((probs.argmax(axis=1) == true_class[order]).mean()), 4)
    agree = report.table["neighbour_agreement"].to_numpy(float)
    return {"audit_attempts": attempts, "audit_s": min(a["seconds"] for a in attempts),
            "best_attempt": min(attempts, key=lambda a: a["seconds"]), "label_quality": quality,
            "knn_label_agreement": round(float(np.nanmean(agree)), 4),
            "outliers_flagged": report.results["outlier"].summary["flagged"],
            "duplicate_groups": report.results["duplicate"].summary["groups"]}


def scale(n: int, tmp: Path, retries: int, hard: bool) -> dict[str, Any]:
    vectors, labels, clusters = synthetic_set(n, SYN_NOISE)
    ids = ids_for("synthetic", n)
    payloads = [{"label": f"c{int(c)}", "sha1": f"syn-{i}"} for i, c in enumerate(labels)]
    r: dict[str, Any] = {"n": n, "dim": vectors.shape[1], "clusters": SYN_CLUSTERS, "spread": SYN_SPREAD,
                         "noise": SYN_NOISE, "flipped": int((labels != clusters).sum())}
    say("warming numba JIT (pynndescent) on 3,000 points ...")
    r["jit_warmup_s"] = round(warm_jit(), 2)
    store = open_store(path=str(tmp / "synthetic"))
    try:
        say(f"upserting {n:,} synthetic vectors ...")
        r["upsert_s"] = round(upsert_all(store, "syn", ids, vectors, payloads, "m"), 2)
        r.update(timed_audit(store, "syn", ids, labels, clusters, retries, "synthetic"))
        rng = np.random.default_rng(1)

        def relabel_p50() -> tuple[float, float]:
            pick = rng.choice(n, size=RELABEL_WARMUP + RELABEL_CALLS, replace=False)
            times, expected = [], {}
            for j, i in enumerate(pick):
                current = store.retrieve("syn", [ids[i]]).payloads[0]["label"]
                new = f"c{(int(current[1:]) + 1) % SYN_CLUSTERS}"
                started = time.perf_counter()
                changes = relabel(store, "syn", [ids[i]], new, by="bench")
                if j >= RELABEL_WARMUP:
                    times.append((time.perf_counter() - started) * 1000)
                assert len(changes) == 1 and changes[0].new_label == new
                expected[ids[i]] = new
            back = store.retrieve("syn", list(expected))  # the writes really landed
            assert [p["label"] for p in back.payloads] == list(expected.values()), "relabel did not persist"
            assert all(p["label_history"][-1]["new"] == p["label"] for p in back.payloads)
            return float(np.percentile(times, 50)), float(np.max(times))

        tries = []
        for attempt in range(1 + retries):
            load_before = load()
            say(f"relabel x {RELABEL_CALLS} on {n:,} points, attempt {attempt + 1} ...")
            p50, worst = relabel_p50()
            tries.append({"p50_ms": round(p50, 3), "max_ms": round(worst, 3), "loadavg_before": load_before})
            if p50 <= RELABEL_GOAL_MS:
                break
        best = min(tries, key=lambda t: t["p50_ms"])
        r.update(relabel_attempts=tries, relabel_p50_ms=best["p50_ms"], relabel_max_ms=best["max_ms"],
                 relabel_calls=RELABEL_CALLS)
        if hard:
            # bench/synthetic.py's cluster spread lives in one subspace shared by all clusters, so whatever the
            # spread, a linear probe separates the clusters perfectly and converges in a few iterations. More
            # isotropic noise makes the classes overlap for the probe too, which is what costs time on real data.
            hv, hl, hc = synthetic_set(n, SYN_HARD_NOISE)
            hids = ids_for("synthetic-hard", n)
            hp = [{"label": f"c{int(c)}", "sha1": f"syn-hard-{i}"} for i, c in enumerate(hl)]
            say(f"upserting {n:,} overlapping synthetic vectors ...")
            upsert_all(store, "syn-hard", hids, hv, hp, "m")
            r["overlapping"] = {"noise": SYN_HARD_NOISE, **timed_audit(store, "syn-hard", hids, hl, hc, retries,
                                                                        "overlapping synthetic")}
    finally:
        store.close()
    return r


# --- report ----------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def quality_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| noise | method | flagged | precision | recall | F1 | AP | best-threshold F1 | seconds | goal | result |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    names = {"ours": "ours (run_audit label)", "cleanlab_datalab": "cleanlab Datalab", "knn10_vote": "10-NN vote"}
    for q in rows:
        for key, name in names.items():
            m = q[key]
            sec = f"{m['seconds']:.2f}" if m.get("seconds") is not None else "—"
            if key == "ours":
                g = q["goals"]
                ok = m["average_precision"] >= g["average_precision"] and m["f1"] >= g["f1"]
                goal = f"AP ≥ {g['average_precision']}, F1 ≥ {g['f1']}"
                res = verdict(ok) if q["graded"] else "info (subset: goals are for all 5,000)"
            else:
                goal, res = "—", "info"
            lines.append(f"| {q['noise']} | {name} | {m['flagged']} | {m['precision']:.3f} | {m['recall']:.3f} | "
                         f"{m['f1']:.3f} | {m['average_precision']:.3f} | {m['best_threshold_f1']:.3f} | {sec} | "
                         f"{goal} | {res} |")
        for key, a in q["anchor"].items():
            cells = [a.get(c) for c in ("flagged", "precision", "recall", "f1", "average_precision",
                                        "best_threshold_f1", "seconds")]
            shown = ["—" if c is None else (f"{c}" if isinstance(c, int) else f"{c:.3f}" if c < 10 else f"{c:g}")
                     for c in cells]
            lines.append(f"| {q['noise']} | anchor: {key} | " + " | ".join(shown) + " | — | anchor |")
    return "\n".join(lines)


def audit_rows(lines: list[str], title: str, n: int, a: dict[str, Any], graded: bool) -> None:
    goal = f"≤ {AUDIT_GOAL_S:g} s"
    lines.append(f"| {title} | {n:,} | {a['audit_s']:.1f} s | {goal} | "
                 f"{verdict(a['audit_s'] <= AUDIT_GOAL_S) if graded else 'info'} |")
    best = a["best_attempt"]
    for stage in ("reading_points", "reading_vectors", "kNN_graph", "label_check", "outlier_check",
                  "duplicate_check"):
        if stage in best["stages"]:
            extra = f" ({best['knn_method']})" if stage == "kNN_graph" else ""
            lines.append(f"| &nbsp;&nbsp;{stage.replace('_', ' ')}{extra} | {n:,} | {best['stages'][stage]:.1f} s "
                         "| — | info |")
    lq = a["label_quality"]
    lines.append(f"| &nbsp;&nbsp;label check P / R / F1 / AP; probe accuracy; 10-NN label agreement | {n:,} | "
                 f"{lq['precision']:.3f} / {lq['recall']:.3f} / {lq['f1']:.3f} / {lq['average_precision']:.3f}; "
                 f"{lq['probe_accuracy_vs_true_class']:.3f}; {a['knn_label_agreement']:.3f} | — | info |")


def other_table(dup: dict[str, Any], sc: dict[str, Any]) -> str:
    lines = ["| measurement | N | value | goal | result |", "|---|---:|---:|---|---|"]
    lines.append(f"| exact duplicate pairs found | {dup['n']:,} | {dup['exact_pairs_found']} of "
                 f"{dup['exact_pairs_planted']} | all | {verdict(dup['exact_pairs_found'] == dup['exact_pairs_planted'])} |")
    lines.append(f"| near-duplicate pairs found (cos ≥ {dup['near_pair_cosine_min']:.3f}) | {dup['n']:,} | "
                 f"{dup['near_pairs_found']} of {dup['near_pairs_planted']} | — | info |")
    lines.append(f"| duplicate groups without planted points | {dup['n']:,} | {dup['groups_without_planted_points']} "
                 f"| — | info |")
    lines.append(f"| numba JIT warm-up (NN-descent, 3k points; not in the timings below) | 3,000 | "
                 f"{sc['jit_warmup_s']:.1f} s | — | info |")
    lines.append(f"| upsert (embedded) | {sc['n']:,} | {sc['upsert_s']:.1f} s | — | info |")
    audit_rows(lines, f"run_audit: label + outlier + duplicate, kNN included (spread {sc['spread']}, noise "
                      f"{sc['noise']})", sc["n"], sc, True)
    lines.append(f"| relabel one point, p50 of {sc['relabel_calls']} (max {sc['relabel_max_ms']:.2f} ms) | "
                 f"{sc['n']:,} | {sc['relabel_p50_ms']:.2f} ms | ≤ {RELABEL_GOAL_MS:g} ms | "
                 f"{verdict(sc['relabel_p50_ms'] <= RELABEL_GOAL_MS)} |")
    if "overlapping" in sc:
        audit_rows(lines, f"run_audit, classes overlapping for the probe (noise {sc['overlapping']['noise']})",
                   sc["n"], sc["overlapping"], False)
    return "\n".join(lines)


def failures(qual: list[dict[str, Any]], dup: dict[str, Any], sc: dict[str, Any]) -> list[str]:
    failed = []
    for q in qual:
        if not q["graded"]:
            continue
        for metric, goal in q["goals"].items():
            if q["ours"][metric] < goal:
                failed.append(f"{q['noise']} {metric} {q['ours'][metric]:.3f} < {goal}")
    if dup["exact_pairs_found"] < dup["exact_pairs_planted"]:
        failed.append(f"exact duplicates {dup['exact_pairs_found']}/{dup['exact_pairs_planted']}")
    if sc["audit_s"] > AUDIT_GOAL_S:
        failed.append(f"audit {sc['audit_s']:.1f} s > {AUDIT_GOAL_S:g} s")
    if sc["relabel_p50_ms"] > RELABEL_GOAL_MS:
        failed.append(f"relabel p50 {sc['relabel_p50_ms']:.1f} ms > {RELABEL_GOAL_MS:g} ms")
    return failed


def machine(load_at_start: list[float]) -> dict[str, Any]:
    return machine_info(("numpy", "scikit-learn", "cleanlab", "pynndescent", "numba", "faiss-cpu", "torch",
                         "qdrant-edge-py"), load_at_start, loadavg_at_end=load())


def _plain(o: Any) -> Any:
    """numpy scalars (e.g. in check summaries) as plain JSON numbers."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 of the 5k images, 5,000 synthetic points")
    ap.add_argument("--images", type=int, default=None, help="images of the 5k set to use (default all 5,000)")
    ap.add_argument("--synthetic-n", type=int, default=None, help="synthetic points for the timings (default 70,000)")
    ap.add_argument("--retries", type=int, default=1, help="reruns of a timing that misses its goal (default 1)")
    ap.add_argument("--no-overlapping", action="store_true",
                    help="skip the extra (info) audit timing on synthetic classes that overlap for the probe")
    ap.add_argument("--embeddings", type=Path, default=None,
                    help="an .npz to reuse the 5k embeddings from (written there when missing); default: embed")
    ap.add_argument("--planted", type=Path, default=PLANTED, help="the planted-noise JSON")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default bench/results/audit.json, or audit-quick.json with --quick)")
    args = ap.parse_args(argv)
    load_at_start = load()
    wall = time.perf_counter()
    n_images = args.images or (1_000 if args.quick else 5_000)
    n_syn = args.synthetic_n or (5_000 if args.quick else 70_000)
    out = args.out or ROOT / "bench" / "results" / ("audit-quick.json" if args.quick else "audit.json")

    if not args.planted.is_file():
        print(f"error: the planted-noise set {args.planted} is missing. It ships with the repository as "
              "bench/data/fmnist5k_planted_noise.json (the team's copy is ../shared/bench/); pass another path "
              "with --planted or ATLAS_PLANTED_JSON.", file=sys.stderr)
        return 1
    planted = json.loads(args.planted.read_text())
    positions = np.arange(min(n_images, len(planted["test_index"])))  # rows of the 5k set (classes interleaved)
    vectors, embed_s, embed_info = embed_fmnist(positions, np.asarray(planted["test_index"]), args.embeddings)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        qual = quality(planted, positions, vectors, tmp)
        dup = duplicates(planted, positions, vectors, tmp)
        sc = scale(n_syn, tmp, args.retries, not args.no_overlapping)

    q_table, o_table = quality_table(qual), other_table(dup, sc)
    print(f"Label issues: Fashion-MNIST {len(positions):,} test images, {MODEL}, planted flips (seed 0)\n")
    print(q_table)
    print(f"\nDuplicates ({len(positions):,} images + planted copies) and timings at scale "
          f"({n_syn:,} synthetic 512-d vectors)\n")
    print(o_table)
    failed = failures(qual, dup, sc)
    total_s = time.perf_counter() - wall
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(load_at_start),
        "settings": {"quick": args.quick, "images": len(positions), "model": MODEL, "embed_batch": EMBED_BATCH,
                     "synthetic_n": n_syn, "synthetic_spread": SYN_SPREAD, "synthetic_noise": SYN_NOISE,
                     "synthetic_flip": SYN_FLIP, "synthetic_overlapping_noise": SYN_HARD_NOISE,
                     "retries": args.retries, "planted": os.path.relpath(args.planted.resolve(), ROOT)},
        "embedding": {"seconds": round(embed_s, 2), "images_per_second": round(len(positions) / embed_s, 1)
                      if embed_s else None, **embed_info},
        "goals": {"quality": QUALITY_GOALS, "audit_s": AUDIT_GOAL_S, "relabel_p50_ms": RELABEL_GOAL_MS,
                  "exact_duplicates": "all"},
        "quality": qual, "duplicates": dup, "scale": sc, "failed": failed,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "total_s": round(total_s, 1), "tables": {"quality": q_table, "other": o_table}}, indent=2, default=_plain) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {total_s:.0f} s"
          + (f"; goals missed: {'; '.join(failed)}" if failed else "; all goals met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
