"""Audits computed in a background thread, so that a page stays responsive while one runs: the page starts a job,
reads its progress whenever it draws, and takes the report once it is done. A click, a rerun or leaving the page
never stops the work (a Streamlit rerun would interrupt an audit computed on the script's own thread, and the next
draw would start it again from scratch).

Identical audits are computed once however many jobs ask for them (run_audit shares one that is under way)."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from . import AuditReport, Progress, run_audit


# Niceness of a background audit's thread (Linux): on a small machine the browser and the page's own script share the
# cores with it, and a click's redraw should not wait behind a re-rank nobody is waiting for.
BACKGROUND_NICE = 10


class Cancelled(Exception):
    """Raised inside a cancelled job's computation; becomes its error."""


class AuditJob:
    """One audit on its own daemon thread; every attribute is safe to read from any thread.

    delay: seconds to wait before computing, extended by postpone(): decisions in quick succession make one re-rank
    (it reads the labels when it begins), and the click that asked for it is drawn before the work takes the cores.
    nice: lower the thread's scheduling priority by this much (where the system allows it)."""

    def __init__(self, compute: Callable[[Progress], AuditReport], name: str = "audit", delay: float = 0.0,
                 nice: int = 0) -> None:
        self.progress: tuple[str, float] = ("waiting for more decisions" if delay else "starting", 0.0)
        self.report: AuditReport | None = None
        self.error: BaseException | None = None
        self.started = time.time()
        self._compute = compute
        self._nice = nice
        self._begin_at = time.monotonic() + delay
        self._lock = threading.Lock()
        self._begun = False
        self._done = threading.Event()
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, name=f"atlas-{name}", daemon=True)
        self._thread.start()

    def postpone(self, delay: float) -> bool:
        """Begin no sooner than `delay` seconds from now; False when the job has begun already (too late)."""
        with self._lock:
            if self._begun:
                return False
            self._begin_at = max(self._begin_at, time.monotonic() + delay)
            return True

    def begun(self) -> bool:
        return self._begun

    def _work(self) -> None:
        if self._nice:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)  # this thread only (Linux)
            except (AttributeError, OSError):
                pass
        while True:
            with self._lock:
                wait = self._begin_at - time.monotonic()
                if wait <= 0 or self._cancelled:
                    self._begun = True
                    break
            time.sleep(min(wait, 0.1))
        try:
            self.report = self._compute(self._say)
        except BaseException as e:  # kept for the page to show: a thread's exception would otherwise vanish
            self.error = e
        finally:
            self._done.set()

    def _say(self, what: str, fraction: float) -> None:
        if self._cancelled:
            raise Cancelled("The audit was cancelled.")
        self.progress = (what, fraction)

    def cancel(self) -> None:
        """Stop at the next step (between checks; a check under way finishes first): its result is not wanted."""
        self._cancelled = True

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the job is done, waiting up to `timeout` seconds (None: until it is)."""
        return self._done.wait(timeout)

    def result(self) -> AuditReport:
        """The report; the job's exception if it failed. Only once done()."""
        if not self.done():
            raise RuntimeError("The audit is still running.")
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def start_audit(store: Any, collection: str, delay: float = 0.0, nice: int = 0, **options: Any) -> AuditJob:
    """run_audit(store, collection, **options) on a background thread; progress goes to the job."""
    return AuditJob(lambda say: run_audit(store, collection, progress=say, **options), name=f"audit-{collection}",
                    delay=delay, nice=nice)
