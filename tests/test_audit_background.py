"""Audits off the page's thread (core.audit.jobs): identical audits computed once, progress and errors reach the
job, a delayed job reads the labels as they are when it begins, and the Audit page's open starts the audit that
Run audit then finds ready."""
import threading

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.audit import computed, run_audit
from core.audit.jobs import AuditJob, start_audit
from core.store import open_store
from tests.conftest import ROOT


def _store(n_per=20, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, 16))
    y = np.repeat(np.arange(classes), n_per)
    x = (centers[y] + 0.3 * rng.normal(size=(len(y), 16))).astype(np.float32)
    s = open_store(url=":memory:")
    s.create_collection("c", {"m": 16})
    ids = list(range(1, len(x) + 1))
    s.upsert("c", ids, {"m": x}, [{"label": f"c{v}", "sha1": f"h{i}"} for i, v in zip(ids, y)])
    return s, ids


def test_identical_audits_asked_at_once_are_computed_once():
    s, _ = _store()
    before = computed["audits"]
    reports, barrier = [], threading.Barrier(3)

    def ask():
        barrier.wait()
        reports.append(run_audit(s, "c", checks=["label", "outlier"], threshold=0.1))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(reports) == 3 and computed["audits"] - before == 1
    assert sum(not r.cached for r in reports) == 1  # the others shared it
    assert all(r.table["label_score"].equals(reports[0].table["label_score"]) for r in reports)


def test_a_job_reports_progress_and_its_result_or_its_error():
    s, _ = _store(seed=1)
    job = start_audit(s, "c", checks=["label"], threshold=0.1)
    assert job.wait(120) and job.done()
    assert job.progress == ("done", 1.0)
    assert job.result().results["label"].summary["scored"] == 60

    failing = start_audit(s, "no such collection")
    assert failing.wait(60)
    assert failing.error is not None
    with pytest.raises(type(failing.error)):
        failing.result()
    with pytest.raises(RuntimeError):
        AuditJob(lambda say: threading.Event().wait(5), delay=0).result()  # not done yet


def test_a_postponed_job_reads_the_labels_as_they_are_when_it_begins():
    s, ids = _store(seed=2)
    job = start_audit(s, "c", delay=0.5, checks=["label"], threshold=0.1)
    assert not job.begun() and job.postpone(0.5)
    s.set_payload("c", [ids[0]], {"label": "c2"})  # a decision made while it waits
    assert job.wait(120)
    assert job.begun() and not job.postpone(1.0)  # too late once begun
    assert job.result().table.loc[0, "label"] == "c2"


def test_opening_the_audit_page_starts_the_audit_that_run_audit_then_finds_ready(colors_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/audit.py").run()
    prefetch = at.session_state["audit_prefetch"]
    assert prefetch["collection"] == "colors"
    assert prefetch["job"].wait(60) and prefetch["job"].error is None
    runs = computed["audits"]
    at.button(key="audit_run").click().run()  # the controls as they were when the page opened
    assert not at.exception, at.exception
    assert computed["audits"] == runs and at.session_state["audit_report"][1].cached
    at.run()  # another draw starts no second prefetch
    assert at.session_state["audit_prefetch"] is prefetch


def test_a_cancelled_job_stops_and_says_so():
    from core.audit.jobs import Cancelled

    s, _ = _store(seed=3)
    before = computed["audits"]
    job = start_audit(s, "c", delay=5, checks=["label"], threshold=0.1)
    job.cancel()  # e.g. Run audit was pressed while this re-rank waited
    assert job.wait(10)
    assert isinstance(job.error, Cancelled) and computed["audits"] == before
