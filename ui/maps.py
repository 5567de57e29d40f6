"""Map helpers shared by pages: the cached computation with a status box, and selection handling."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.cache import ArrayCache
from core.maps import MapResult, compute_map
from core.projection import ProjectionParams
from core.store import Filter, Store
from core.warmup import is_warm, warm_up


@st.cache_resource(show_spinner=False)
def array_cache() -> ArrayCache:
    return ArrayCache(f"{settings.get('ATLAS_CACHE_DIR')}/results", max_items=16)


def map_with_status(store: Store, collection: str, params: ProjectionParams, vector: str | None,
                    filter: Filter | None, max_points: int) -> MapResult:
    """compute_map with a live status box; a cached map returns at once."""
    if params.method != "pca" and not is_warm():
        # scripts/setup.sh does this ahead; an install without it pays once, and is told so before it waits
        with st.status("First map on this machine: compiling the map code once (about a minute on 2 cores)…",
                       expanded=True) as status:
            warm_up(lambda what: st.write(f"Compiling {what}"))
            status.update(label="Map code compiled; later maps start at once.", state="complete", expanded=False)
    with st.status(f"Drawing the {params.method.upper()} map…", expanded=False) as status:
        bar = st.progress(0.0)

        def on_progress(what: str, fraction: float) -> None:
            bar.progress(min(1.0, fraction), text=what)

        result = compute_map(store, collection, params, vector=vector, filter=filter, max_points=max_points,
                             cache=array_cache(), progress=on_progress)
        status.update(label=f"{result.method.upper()} map of {len(result.points):,} points "
                            f"({'from cache' if result.cached else f'computed in {result.seconds:.1f} s'})",
                      state="complete")
    return result
