"""Maps computed off the script thread: a 1M-point map takes minutes, and a Streamlit rerun (any click) would
interrupt and restart a map computed on the script's own thread. One job per map request, shared by every session
that asks for the same map (a second user or a reload joins it). Stop cancels it for every session watching it:
they are told it was stopped, and only a new Draw map (restart=True) starts it again."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from core.maps import MapCancelled, MapResult, compute_map

__all__ = ["MapCancelled", "MapJob", "MapJobs"]

# Lower than the pages' scripts: a user's clicks on any page are drawn before the layout's next step.
BACKGROUND_NICE = 10


class MapJob:
    """compute_map(**args) on a daemon thread; progress, result and error are safe to read from any thread."""

    def __init__(self, key: str, args: dict[str, Any]) -> None:
        self.key = key
        self.progress: tuple[str, float] = ("starting", 0.0)
        self.result: MapResult | None = None
        self.error: BaseException | None = None
        self.started = time.time()
        self.cancelled = threading.Event()
        self._done = threading.Event()
        self._args = args
        threading.Thread(target=self._work, name=f"atlas-map-{key[:8]}", daemon=True).start()

    def _work(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        try:
            # cancel stops compute_map inside its long steps; _say stops it at the next progress report too
            self.result = compute_map(**self._args, progress=self._say, cancel=self.cancelled)
        except BaseException as e:  # kept for the page to show: a thread's exception would otherwise vanish
            self.error = e
        finally:
            self._done.set()

    def _say(self, what: str, fraction: float) -> None:
        if self.cancelled.is_set():
            raise MapCancelled("The map was stopped.")
        self.progress = (what, fraction)

    def cancel(self) -> None:
        self.cancelled.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


class MapJobs:
    """The running and just-finished map jobs of the process, by request key."""

    def __init__(self) -> None:
        self._jobs: dict[str, MapJob] = {}
        self._lock = threading.Lock()

    def get_or_start(self, key: str, args: dict[str, Any], start: Callable[[str, dict], MapJob] = MapJob,
                     restart: bool = True) -> MapJob:
        """The job for `key`, started when there is none or the last one failed. A stopped job is handed out as it
        is (its sessions say it was stopped) unless `restart` (someone pressed Draw map again)."""
        with self._lock:
            job = self._jobs.get(key)
            stopped = job is not None and job.cancelled.is_set()
            failed = job is not None and not stopped and job.done() and job.error is not None
            if job is None or failed or (stopped and restart):
                job = self._jobs[key] = start(key, args)
            return job

    def get(self, key: str) -> MapJob | None:
        with self._lock:
            return self._jobs.get(key)

    def forget(self, key: str) -> None:
        """Drop a finished job (its map is in the cache now; the job need not hold it)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.done():
                del self._jobs[key]
