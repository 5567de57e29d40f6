"""Map helpers shared by pages: the cached computation with a status box, and selection handling."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import asdict
from typing import Any, Callable

import streamlit as st

from core import settings
from core.cache import ArrayCache, key_of
from core.colors import label_colors
from core.figures import CANVAS_FROM, MapArrays, MapFigure, group_names, map_arrays, map_figure
from core.maps import MapCancelled, MapResult, compute_map
from core.projection import ProjectionParams
from core.store import Filter, Store
from core.warmup import is_warm, warm_up
from ui import warm
from ui.map_jobs import MapJobs
from ui.text import plural


@st.cache_resource(show_spinner=False)
def array_cache() -> ArrayCache:
    return ArrayCache(f"{settings.get('ATLAS_CACHE_DIR')}/results", max_items=16)


_warm = False
_frozen_after: dict[str, bool] = {}
METHOD_NAMES = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}


def method_name(method: str) -> str:
    """A projection method as the UI writes it ("tsne" -> "t-SNE")."""
    return METHOD_NAMES.get(str(method).lower(), str(method).upper())


def map_code_compiled() -> bool:
    """core.warmup.is_warm, asked once per process until it says yes (it reads four packages' metadata)."""
    global _warm
    _warm = _warm or is_warm()
    return _warm


def map_with_status(store: Store, collection: str, params: ProjectionParams, vector: str | None,
                    filter: Filter | None, max_points: int) -> MapResult:
    """compute_map with a live status box; a cached map returns at once."""
    if params.method != "pca" and not map_code_compiled():
        # scripts/setup.sh does this ahead; an install without it pays once, and is told so before it waits
        with st.status("First map on this machine: compiling the map code once (about a minute on 2 cores)…",
                       expanded=True) as status:
            warm_up(lambda what: st.write(f"Compiling {what}"))
            status.update(label="Map code compiled; later maps start at once.", state="complete", expanded=False)
    with st.status(f"Drawing the {method_name(params.method)} map…", expanded=False) as status:
        bar = st.progress(0.0)

        def on_progress(what: str, fraction: float) -> None:
            bar.progress(min(1.0, fraction), text=what)

        result = compute_map(store, collection, params, vector=vector, filter=filter, max_points=max_points,
                             cache=array_cache(), progress=on_progress)
        if not result.cached and not _frozen_after.get(result.method):
            # the first computed map of a kind imports its library (umap-learn, numba, openTSNE) for good
            _frozen_after[result.method] = True
            warm.refreeze()
        status.update(label=f"{method_name(result.method)} map of {plural(len(result.points), 'point')} "
                            f"({'from cache' if result.cached else f'computed in {result.seconds:.1f} s'})",
                      state="complete")
    return result


# Maps of at least this many points are computed on a background job (minutes at 1M points); smaller ones on the
# script thread with a status box, as before (seconds).
BACKGROUND_FROM = 20_000


@st.cache_resource(show_spinner=False)
def map_jobs() -> MapJobs:
    return MapJobs()


def map_job_key(collection: str, params: ProjectionParams, vector: str | None, filter: Filter | None,
                max_points: int) -> str:
    return key_of("map-job", collection, asdict(params), vector, filter, max_points)


def map_in_background(store: Store, collection: str, params: ProjectionParams, vector: str | None,
                      filter: Filter | None, max_points: int,
                      on_stop: Callable[[], None] | None = None, restart: bool = False) -> MapResult | None:
    """The map, or None while its background job runs: then a progress bar and a Stop button are drawn, and the
    page reruns by itself when the map is ready. Other users and pages stay responsive meanwhile. Stop cancels
    the job and calls `on_stop` (the page forgets the request, so that its rerun does not start it again); every
    other session waiting for it gets MapCancelled. restart: a stopped job of the same map starts again (Draw map)."""
    key = map_job_key(collection, params, vector, filter, max_points)
    job = map_jobs().get_or_start(key, {"store": store, "collection": collection, "params": params,
                                        "vector": vector, "filter": filter, "max_points": max_points,
                                        "cache": array_cache()}, restart=restart)
    if job.cancelled.is_set():
        raise MapCancelled("The map was stopped.")
    job.wait(1.0)  # a cached map is back within this: no progress bar flashes
    if job.done():
        map_jobs().forget(key)
        if job.error is not None:
            raise job.error
        result = job.result
        layout = getattr(result, "layout", "")
        how = {"landmarks": ", laid out from landmarks", "incremental": ", updated for new points"}.get(layout, "")
        st.caption(f"{method_name(result.method)} map of {plural(len(result.points), 'point')}{how} "
                   f"({'from cache, ' if result.cached else ''}{result.seconds:.1f} s)")
        return result
    _job_progress(key, on_stop)
    return None


@st.fragment(run_every=0.5)
def _job_progress(key: str, on_stop: Callable[[], None] | None) -> None:
    """While the map's job runs: its step, a bar and Stop; reruns the whole page once it is done."""
    job = map_jobs().get(key)
    if job is None or job.done() or job.cancelled.is_set():
        st.rerun()  # the whole page: it draws the map, or says the map was stopped
    what, fraction = job.progress
    st.progress(min(1.0, max(0.0, fraction)), text=f"Drawing the map: {what} ({time.time() - job.started:.0f} s)")

    def stop() -> None:
        job.cancel()
        if on_stop:
            on_stop()

    st.button("Stop", key="map_job_stop", on_click=stop, help="Stop computing this map. Draw map starts it again.")


def map_view(result: MapResult, summary: Any, label_field: str | None, color_by: str,
             suspects: dict[str, Any] | None) -> MapFigure | tuple[MapArrays, str, dict]:
    """What the Explore page draws for a map: a Plotly figure (hover text, SVG when small) below CANVAS_FROM
    points, else the WebGL component's arrays, their version and a memo for its selections."""
    pts = result.points
    highlight: list[int] = []
    if suspects and len(pts):
        wanted = set(suspects["ids"])
        highlight = [i for i, pid in enumerate(pts.ids) if pid in wanted]
    values = [p.get(color_by) for p in pts.payloads]  # a million lookups: ~0.1 s
    # labels take the collection's colours (the Graph page's too); another field ranks its own values
    colors = (label_colors(summary.labels) if color_by == label_field and summary.labels
              else label_colors(values))
    if len(pts) < CANVAS_FROM:
        return map_figure(result.coords, group_names(values, colors),
                          [p.get("file_name", "") for p in pts.payloads], pts.ids,
                          highlight={"audit suspects": highlight} if suspects else None, colors=colors)
    version = key_of("canvas", pts.fingerprint, result.params, result.method, color_by, colors.colors, highlight)
    arrays = _arrays_kept.get(version)
    if arrays is None:
        arrays = map_arrays(result.coords, values, colors, marks=highlight, mark_name="audit suspects")
        _arrays_kept.put(version, arrays)
    return arrays, version, {}


class _Kept:
    """The last few maps' browser arrays, process-wide: another session opening the same map (a reload, a
    shared link) reuses them (naming a million values takes about a second)."""

    def __init__(self, size: int = 2) -> None:
        self._items: OrderedDict[str, MapArrays] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> MapArrays | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key: str, arrays: MapArrays) -> None:
        with self._lock:
            self._items[key] = arrays
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_arrays_kept = _Kept()
