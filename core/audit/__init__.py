"""The label audit: label issues, outliers and near-duplicates over one shared kNN graph."""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..cache import ArrayCache, key_of
from ..knn import KnnGraph
from ..maps import shared_knn
from ..pixels import PIXELS
from ..points import PointSet, load_points, load_vectors
from ..store import Filter, Store
from .base import AuditData, CheckResult
from .calibration import check_operating_point
from .duplicate_check import DuplicateCheck
from .label_check import LabelCheck
from .outlier_check import OutlierCheck

CHECKS = ("label", "outlier", "duplicate")
DEFAULT_UNKNOWN = ("unknown", "unlabeled", "unlabelled", "none", "?", "")

Progress = Callable[[str, float], None]


@dataclass
class AuditReport:
    points: PointSet
    label_field: str | None
    table: pd.DataFrame  # one row per point: id, label, file/path, and every check's columns
    results: dict[str, CheckResult]
    knn: KnnGraph
    seconds: float = 0.0
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    def suspects(self, check: str) -> pd.DataFrame:
        """Flagged points of one check, worst first."""
        if check not in self.results:
            return self.table.iloc[0:0]
        flagged = self.table[self.table[f"is_{check}_issue"]]
        if check == "duplicate":
            return flagged.sort_values(["duplicate_group", "label"], kind="stable")
        return flagged.sort_values(f"{check}_score", kind="stable")


_memory: OrderedDict[str, AuditReport] = OrderedDict()
_memory_lock = threading.Lock()
# Audits being computed now, by key: a second caller (another session, a prefetch and a click) waits for the first
# and shares its result instead of computing the same audit twice on the same cores.
_inflight: dict[str, "_Flight"] = {}
# How many audits were computed (not served from memory) in this process: lets tests see that a click did not
# recompute one, without timing it.
computed = {"audits": 0}


def _niceness() -> int:
    """This thread's scheduling niceness (Linux; 0 elsewhere): background jobs lower their priority."""
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    progress: tuple[str, float] = ("reading points", 0.0)
    nice: int = field(default_factory=_niceness)


def _label_state(points: PointSet, label_field: str | None) -> str:
    """Changes when any label or review decision changes: an audit depends on labels, unlike a map."""
    return key_of([(str(i), p.get(label_field) if label_field else None, p.get("label_confirmed"),
                    len(p.get("label_history") or [])) for i, p in zip(points.ids, points.payloads)])


def is_trusted(payload: dict, label_field: str) -> bool:
    """A person decided this label: confirmed it as correct, or set it (the last change in its history)."""
    label = payload.get(label_field)
    if label is None:
        return False
    if payload.get("label_confirmed") is not None and payload.get("label_confirmed") == label:
        return True
    history = payload.get("label_history") or []
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    return last.get("action") in ("relabel", "confirm") and last.get("new") == label


def run_audit(store: Store, collection: str, label_field: str | None = "label", checks: Sequence[str] = CHECKS,
              k: int = 10, vector: str | None = None, filter: Filter | None = None, threshold: float | None = None,
              operating_point: str | float = "balanced", duplicate_similarity: float | None = None,
              unknown_labels: Sequence[str] = DEFAULT_UNKNOWN,
              max_points: int | None = None, cache: ArrayCache | None = None,
              progress: Progress | None = None) -> AuditReport:
    """Run the checks over one collection (or a filtered part of it).

    threshold: None lets the label check calibrate itself and follow `operating_point` ("precision", "balanced",
    "recall" or a target precision in (0, 1)); a number flags labels scoring below it, uncalibrated."""
    started = time.perf_counter()
    operating_point = check_operating_point(operating_point)
    say = progress or (lambda _w, _f: None)
    unknown = {u.lower() for u in unknown_labels}
    bad = [c for c in checks if c not in CHECKS]
    if bad:
        raise ValueError(f"Unknown check(s) {', '.join(bad)}: choose from {', '.join(CHECKS)}.")
    say("reading points", 0.0)
    pts = load_points(store, collection, vector, filter, max_points)
    key = key_of("audit", pts.fingerprint, _label_state(pts, label_field), list(checks), k, threshold,
                 operating_point, duplicate_similarity, sorted(unknown))
    while True:
        with _memory_lock:
            if key in _memory:
                _memory.move_to_end(key)
                hit = _memory[key]
                return AuditReport(pts, label_field, hit.table, hit.results, hit.knn, time.perf_counter() - started,
                                   True, hit.notes)
            flight = _inflight.get(key)
            # a caller at a higher priority than the one computing (someone waiting, not a background re-rank)
            # computes its own rather than wait behind a thread the system serves last
            if flight is None or flight.nice > _niceness():
                flight = _inflight[key] = _Flight()
                break
        while not flight.done.wait(0.2):  # the same audit is under way elsewhere: show its progress, then share it
            say(*flight.progress)
    try:
        return _compute(store, collection, pts, key, label_field, checks, k, filter, threshold, operating_point,
                        duplicate_similarity, unknown, cache, started, say, flight)
    finally:
        with _memory_lock:
            if _inflight.get(key) is flight:
                del _inflight[key]
        flight.done.set()


def _compute(store: Store, collection: str, pts: PointSet, key: str, label_field: str | None,
             checks: Sequence[str], k: int, filter: Filter | None, threshold: float | None,
             operating_point: str | float, duplicate_similarity: float | None, unknown: set[str],
             cache: ArrayCache | None, started: float, progress: Progress, flight: _Flight) -> AuditReport:
    def say(what: str, fraction: float) -> None:
        flight.progress = (what, fraction)
        progress(what, fraction)

    with _memory_lock:
        computed["audits"] += 1
    say("reading vectors", 0.05)
    vectors = load_vectors(store, pts, filter)
    views = {}  # more evidence per point for the label check: the pixel view that ingest stores (core.pixels)
    if pts.vector != PIXELS and PIXELS in [v.name for v in store.collection_info(collection).vectors]:
        views[PIXELS] = load_vectors(store, replace(pts, vector=PIXELS), filter)
    say("kNN graph", 0.15)
    graph = shared_knn(pts, vectors, k, cache) if len(pts) > 1 else KnnGraph(
        np.zeros((len(pts), 0), np.int64), np.zeros((len(pts), 0), np.float32), "exact", 0.0)
    k_used = min(k, graph.k)
    knn = KnnGraph(graph.indices[:, :k_used], graph.similarities[:, :k_used], graph.method, graph.seconds)
    labels = []
    for p in pts.payloads:
        value = p.get(label_field) if label_field else None
        labels.append(None if value is None or str(value).strip().lower() in unknown else value)
    confirmed = np.array([is_trusted(p, label_field) for p in pts.payloads], bool) if label_field else np.zeros(
        len(pts), bool)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else np.ones((0, 1))
    data = AuditData(pts.ids, vectors / np.maximum(norms, 1e-12), labels, knn, pts.payloads, confirmed, views)
    notes = []
    if len(pts) <= k:
        notes.append(f"Only {len(pts)} points: neighbours are limited to {k_used} per point.")
    runners = {"label": LabelCheck(threshold=threshold, operating_point=operating_point), "outlier": OutlierCheck(),
               "duplicate": DuplicateCheck(similarity=duplicate_similarity)}
    results: dict[str, CheckResult] = {}
    for i, name in enumerate(checks):
        say(f"{name} check", 0.3 + 0.6 * i / max(1, len(checks)))
        if name == "label" and label_field is None:
            notes.append("No label field: the label check was skipped.")
            continue
        results[name] = runners[name].run(data)
    table = pd.DataFrame({"id": pts.ids, "label": [None if v is None else str(v) for v in labels],
                          "file_name": [p.get("file_name") for p in pts.payloads],
                          "path": [p.get("path") for p in pts.payloads],
                          "image_url": [p.get("image_url") for p in pts.payloads]})
    for result in results.values():
        table = table.join(result.table.drop(columns=[c for c in result.table.columns if c in table.columns]))
    report = AuditReport(pts, label_field, table, results, knn, time.perf_counter() - started, False, notes)
    with _memory_lock:
        _memory[key] = report
        while len(_memory) > 4:
            _memory.popitem(last=False)
    say("done", 1.0)
    return report
