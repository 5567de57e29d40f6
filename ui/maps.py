"""Map helpers shared by pages: the cached computation with a status box, and selection handling."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.cache import ArrayCache
from core.maps import MapResult, compute_map
from core.projection import ProjectionParams
from core.store import Filter, Store
from core.warmup import is_warm, warm_up
from ui import warm
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
