"""Server-side warm-up: the heavy modules the pages use, imported once per server process, off the click path.

A page's first run in a process used to import pandas, Plotly, torch (through core.models), scipy and more while
the user waited (3-4 s on 2 cores). app.py starts `start()` after its first run, so the imports happen while the
user reads the first page; `python -m ui.serve` (the launcher) does them before the server takes its first
session. After the imports the process's objects are frozen out of the garbage collector (`gc.freeze`): Streamlit
runs a full collection after every script run, and scanning torch's ~300,000 objects took 0.2-0.4 s of every click.
"""
from __future__ import annotations

import gc
import importlib
import threading
import time

# Third-party first, then ours: a page importing one of ours at the same time then waits for a module lock this
# thread is not holding (no import-lock cycle between the two threads).
MODULES = ("numpy", "PIL.Image", "pandas", "pyarrow", "plotly.graph_objects", "altair", "scipy.sparse.csgraph",
           "torch", "core.models", "core.search", "core.graph", "core.maps", "core.points", "core.exporting",
           "core.projection", "core.labels")

_lock = threading.Lock()
_thread: threading.Thread | None = None
done = threading.Event()
seconds: float = 0.0
failed: list[str] = []


def warm(modules: tuple[str, ...] = MODULES) -> float:
    """Import `modules` (a failure is noted, never raised), then freeze what exists out of the GC's scans."""
    global seconds
    started = time.perf_counter()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # an optional dependency missing here: the page that needs it says so itself
            failed.append(name)
    gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    done.set()
    return seconds


def refreeze() -> None:
    """Collect, then freeze what is left out of later collections: after work that imported or compiled a lot for
    good (a first map brings in umap-learn and numba), so that the collection after every run stays quick."""
    gc.collect()
    gc.freeze()


def start(modules: tuple[str, ...] = MODULES) -> bool:
    """Warm up in a background thread, once per process; True when this call started it."""
    global _thread
    with _lock:
        if _thread is not None or done.is_set():
            return False
        _thread = threading.Thread(target=warm, args=(modules,), name="atlas-warm-up", daemon=True)
        _thread.start()
        return True
