"""Label edits are never lost or corrupted: random sequences of file changes, ingests and label actions on the real
engines, checked against a small model after every step (Hypothesis stateful testing)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from core import labels
from core.ingest import folder_label, ingest, point_id
from core.store import open_store
from tests.fakes import ColorEmbedder, write_image

FOLDERS = ["apple", "banana"]
LABELS = ["apple", "banana", "pear"]  # "pear" has no folder: a label only a user gives
REVIEW = ("label", "reviewed", "label_confirmed")  # what undo puts back (label_original stays: the first label)


def replay(payload: dict) -> object:
    """The label that label_history gives, replayed from label_original; fails on a broken chain."""
    history = payload.get("label_history") or []
    if not history:
        return payload.get("label")
    label = payload.get("label_original", history[0]["old"])  # a confirm alone does not set label_original
    for entry in history:
        assert entry["old"] == label, f"label_history breaks its chain at {entry}: expected old={label!r}"
        label = entry["new"]
    return label


class LabelIntegrity(RuleBasedStateMachine):
    engine = "embedded"

    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="atlas-integrity-"))
        self.folder = self.tmp / "images"
        self.store = open_store(path=str(self.tmp / "qdrant")) if self.engine == "embedded" else open_store(url=":memory:")
        self.disk: dict[str, int] = {}  # rel path -> content number (every write is new content)
        self.points: dict[str, dict] = {}  # point id -> {"path", "content", "label", "first"}
        self.batches: list[dict] = []  # label actions that undo may revert: changes + states around them
        self.writes = 0  # store writes, to know whether the newest batch is still the newest change
        self.serial = 0

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- files -------------------------------------------------------------------------------------------
    def _write(self, rel: str) -> None:
        self.serial += 1
        n = self.serial
        write_image(self.folder / rel, (n % 251, (n * 7) % 253, 40 + n % 200), size=(8, 8))
        self.disk[rel] = n

    @initialize(n=st.integers(1, 4))
    def start(self, n):
        for i in range(n):
            self._write(f"{FOLDERS[i % 2]}/f{i}.png")
        self.ingest_folder(prune=False)

    @rule(folder=st.sampled_from(FOLDERS))
    def add_file(self, folder):
        self._write(f"{folder}/f{self.serial + 1}.png")

    @precondition(lambda self: self.disk)
    @rule(data=st.data())
    def change_file(self, data):
        self._write(data.draw(st.sampled_from(sorted(self.disk))))

    @precondition(lambda self: self.disk)
    @rule(data=st.data(), folder=st.sampled_from(FOLDERS))
    def move_file(self, data, folder):
        rel = data.draw(st.sampled_from(sorted(self.disk)))
        self.serial += 1
        to = f"{folder}/m{self.serial}.png"
        (self.folder / to).parent.mkdir(parents=True, exist_ok=True)
        (self.folder / rel).rename(self.folder / to)
        self.disk[to] = self.disk.pop(rel)

    @precondition(lambda self: len(self.disk) > 1)  # an ingest needs at least one image
    @rule(data=st.data())
    def delete_file(self, data):
        rel = data.draw(st.sampled_from(sorted(self.disk)))
        (self.folder / rel).unlink()
        del self.disk[rel]

    # --- ingest --------------------------------------------------------------------------------------------
    @rule(prune=st.booleans())
    def ingest_folder(self, prune):
        report = ingest(self.store, self.folder, "c", ColorEmbedder(), batch_size=2, workers=1, prune=prune)
        self.writes += 1
        expected_moves = 0
        on_disk = {point_id(rel) for rel in self.disk}
        for rel, content in sorted(self.disk.items()):
            pid = point_id(rel)
            if pid in self.points:
                self.points[pid]["content"] = content  # a changed file: label and history stay
                continue
            # as ingest pairs them: each gone point with this content once, in path order
            old = min((q for q, p in self.points.items() if q not in on_disk and p["content"] == content),
                      key=lambda q: self.points[q]["path"], default=None)
            if old is None:  # a new file
                self.points[pid] = {"path": rel, "content": content, "label": folder_label(rel),
                                    "first": folder_label(rel)}
                continue
            p = self.points.pop(old)  # a moved file: its point, with any user edit, moves with it
            edited = p["label"] != folder_label(p["path"])
            self.points[pid] = {**p, "path": rel, "label": p["label"] if edited else folder_label(rel)}
            expected_moves += 1
        if prune:
            self.points = {pid: p for pid, p in self.points.items() if pid in on_disk}
        assert report.moved == expected_moves

    # --- label actions ---------------------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        pts = self.store.scroll("c", with_vectors=False)
        return dict(zip(pts.ids, pts.payloads))

    def _record(self, changes, before: dict) -> None:
        self.writes += 1
        after = self._snapshot()
        self.batches.append({"changes": changes, "before": before, "after": after, "writes": self.writes})

    @precondition(lambda self: self.points)
    @rule(data=st.data(), label=st.sampled_from(LABELS))
    def relabel(self, data, label):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.points)), min_size=1, max_size=3, unique=True))
        before = self._snapshot()
        changes = labels.relabel(self.store, "c", ids, label, by="t")
        for pid in ids:
            self.points[pid]["label"] = label
        self._record(changes, before)

    @precondition(lambda self: self.points)
    @rule(data=st.data())
    def confirm(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.points)), min_size=1, max_size=3, unique=True))
        before = self._snapshot()
        self._record(labels.confirm(self.store, "c", ids, by="t"), before)
        for pid in ids:
            assert before[pid]["label"] == self._snapshot()[pid]["label"]

    @precondition(lambda self: self.points)
    @rule(data=st.data())
    def delete(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.points)), min_size=1, max_size=2, unique=True))
        before = self._snapshot()
        changes = labels.delete_points(self.store, "c", ids, by="t")
        self.deleted = {pid: self.points.pop(pid) for pid in ids}
        for change in changes:
            change.model = self.deleted[change.id]
        self._record(changes, before)

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def undo(self, data):
        newest = len(self.batches) - 1
        i = data.draw(st.integers(0, newest))
        batch = self.batches.pop(i)
        state = self._snapshot()
        untouched = i == newest and batch["writes"] == self.writes
        try:
            labels.undo(self.store, batch["changes"], by="t")
        except labels.LabelError as exc:
            assert str(exc), "a refusal says why"
            assert not untouched, f"undo of the newest change, with nothing written since, was refused: {exc}"
            assert self._snapshot() == state, "a refused undo wrote something"
            return
        self.writes += 1
        now = self._snapshot()
        for change in batch["changes"]:
            pid = change.id
            if change.action == "delete":
                assert pid not in state, "undo of a deletion overwrote a point that exists again"
                assert now[pid] == batch["before"][pid], "undo of a deletion did not restore the point as it was"
                self.points[pid] = change.model
                continue
            # the point must have been as the change left it: an undo may never overwrite a later change
            assert pid in state, "undo of a change to a point that no longer exists"
            assert {k: state[pid].get(k) for k in REVIEW} == {k: batch["after"][pid].get(k) for k in REVIEW}, \
                "undo overwrote a later change"
            assert {k: now[pid].get(k) for k in REVIEW} == {k: batch["before"][pid].get(k) for k in REVIEW}, \
                "undo did not restore the label and review fields as they were"
            self.points[pid]["label"] = now[pid]["label"]

    # --- invariants --------------------------------------------------------------------------------------------
    @invariant()
    def store_matches_model(self):
        if not self.points and not self.store.collection_exists("c"):
            return
        state = self._snapshot()
        assert set(state) == set(self.points), "a point was lost or duplicated"
        for pid, p in self.points.items():
            payload = state[pid]
            assert payload["path"] == p["path"]
            assert payload["label"] == p["label"], f"edit lost: {p['path']} has {payload['label']!r}"
            assert replay(payload) == payload["label"], "replaying label_history does not give the label"
            history = payload.get("label_history") or []
            first = payload.get("label_original", history[0]["old"] if history else payload["label"])
            assert first == p["first"], "label_original is not the first label ever seen"


def _run(engine: str) -> None:
    machine = type(f"LabelIntegrity_{engine}", (LabelIntegrity,), {"engine": engine})
    machine.TestCase.settings = settings(max_examples=20, stateful_step_count=20, deadline=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()


@pytest.mark.parametrize("engine", ["embedded", "client"])
def test_label_edits_survive_any_sequence(engine):
    _run(engine)
