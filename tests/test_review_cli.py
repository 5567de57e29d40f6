"""`python -m core review`: suspects one at a time from standard input; each decision is written, trusted, and
re-ranks the rest. Run as a user runs it: a subprocess fed lines."""
import json
import os
import subprocess
import sys

import pytest

from core.audit import run_audit
from core.store import open_store
from tests.conftest import ROOT, make_colors_env
from tests.test_app_audit import AMBIGUOUS


@pytest.fixture
def review_store(tmp_path, monkeypatch):
    return make_colors_env(tmp_path, monkeypatch, AMBIGUOUS)


def _review(store_path, lines: str, *extra: str):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ATLAS_USER": "reviewer"}
    return subprocess.run([sys.executable, "-m", "core", "review", "--collection", "colors", "--store-path",
                           str(store_path), *extra], cwd=ROOT, env=env, input=lines, capture_output=True, text=True,
                          timeout=300)


def _first_suspect(store_path, operating_point="balanced"):
    with open_store(path=str(store_path)) as store:  # closed before the CLI opens the folder
        report = run_audit(store, "colors", checks=["label"], operating_point=operating_point)
        return report.suspects("label").iloc[0]


def _payload(store_path, pid):
    with open_store(path=str(store_path)) as store:
        return store.retrieve("colors", [pid]).payloads[0]


def test_keep_confirms_the_worst_suspect(review_store):
    first = _first_suspect(review_store)
    out = _review(review_store, "k\nq\n")
    assert out.returncode == 0, out.stderr
    payload = _payload(review_store, first.id)
    assert payload["label"] == first.label and payload["label_confirmed"] == first.label
    assert payload["label_history"][-1]["action"] == "confirm" and payload["label_history"][-1]["by"] == "reviewer"
    assert f"given: {first.label}" in out.stdout and str(first.file_name) in out.stdout
    assert "1 kept" in out.stdout and "Of the" in out.stdout  # the summary and the calibrated statement


def test_accept_relabels_to_the_suggestion_and_the_rest_is_re_ranked(review_store):
    first = _first_suspect(review_store, "recall")
    assert first.suggested_label != first.label
    out = _review(review_store, "a\nq\n", "--operating-point", "recall", "--json")
    assert out.returncode == 0, out.stderr
    payload = _payload(review_store, first.id)
    assert payload["label"] == first.suggested_label and payload["label_original"] == first.label
    summary = json.loads(out.stdout)  # with --json stdout holds only the summary; the session is on stderr
    assert (summary["accepted"], summary["decisions"], summary["shown"]) == (1, 1, 1)
    assert summary["rerankings"] >= 1 and summary["trusted"] == 1  # refitted with the decision as a trusted label
    assert summary["log"] == [{"id": str(first.id), "decision": "accept", "old": first.label,
                               "label": first.suggested_label}]
    assert summary["calibration"]["sentence"].startswith(("Of the", "Nothing flagged"))
    assert f"suggested: {first.suggested_label}" in out.stderr


def test_undo_skip_relabel_and_unknown_labels(review_store):
    first = _first_suspect(review_store, "recall")
    lines = "a\nu\nr purple\nr! purple\nu\nbogus\ns\nr  \nq\n"
    out = _review(review_store, lines, "--operating-point", "recall", "--json")
    assert out.returncode == 0, out.stderr
    payload = _payload(review_store, first.id)
    assert payload["label"] == first.label and not payload.get("label_confirmed")  # both decisions undone
    actions = [e["action"] for e in payload["label_history"]]
    assert actions == ["relabel", "undo relabel", "relabel", "undo relabel"]
    assert "type r! purple to create it" in out.stderr and "Give the new label" in out.stderr
    summary = json.loads(out.stdout)
    assert (summary["undone"], summary["skipped"], summary["decisions"]) == (2, 1, 0)
    assert summary["log"][-1]["decision"] == "skip"


def test_limit_and_end_of_input(review_store):
    out = _review(review_store, "s\ns\ns\n", "--operating-point", "recall", "--limit", "2")
    assert out.returncode == 0, out.stderr
    assert "[2]" in out.stdout and "[3]" not in out.stdout and "2 skipped" in out.stdout
    out = _review(review_store, "", "--operating-point", "recall")  # no input: stops as if q, writing nothing
    assert out.returncode == 0 and "Reviewed 0 suspects" in out.stdout, out.stderr


def test_review_refuses_what_it_cannot_review(tmp_path):
    with open_store(path=str(tmp_path / "q")) as s:
        s.create_collection("colors", {"m": 4})
        s.upsert("colors", [1, 2, 3], {"m": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]}, [{}, {}, {}])
    out = _review(tmp_path / "q", "q\n")
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr, out.stderr
    out = _review(tmp_path / "q", "q\n", "--operating-point", "sometimes")
    assert out.returncode == 1 and "--operating-point" in out.stderr


def test_decisions_from_a_file_are_checked_first_then_applied_as_one_batch(review_store, tmp_path):
    first = _first_suspect(review_store, "recall")
    with open_store(path=str(review_store)) as store:
        report = run_audit(store, "colors", checks=["label"], operating_point="recall")
    second = report.suspects("label").iloc[1]
    table = report.table
    clean = table[~table["is_label_issue"] & (table["label"] != "green")].iloc[0]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"id,decision,label\n{first.id},accept,\n{second.id},relabel,purple\n")
    out = _review(review_store, "", "--decisions", str(bad))
    assert out.returncode == 1 and "line 3" in out.stderr and "'purple'" in out.stderr, out.stderr
    assert _payload(review_store, first.id)["label"] == first.label  # nothing written: the file was refused
    good = tmp_path / "good.csv"
    good.write_text(f"id,decision,label\n{first.id},accept,\n{second.id},k,\n{clean.id},relabel,green\n")
    out = _review(review_store, "", "--decisions", str(good), "--operating-point", "recall", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["accepted"], summary["kept"], summary["relabelled"], summary["rerankings"]) == (1, 1, 1, 1)
    assert _payload(review_store, first.id)["label"] == first.suggested_label
    assert _payload(review_store, second.id)["label_confirmed"] == second.label
    assert _payload(review_store, clean.id)["label"] == "green"
    assert summary["trusted"] == 3
    bad.write_text("point,what\n1,keep\n")
    out = _review(review_store, "", "--decisions", str(bad))
    assert out.returncode == 1 and "needs the columns id and decision" in out.stderr
