"""View state in the URL: the connection, collection and page settings live in the query string, so that a reload
or a shared link opens the same view (the page itself is the URL's path, from st.navigation)."""
from __future__ import annotations

from typing import Collection

import streamlit as st


def seed_from_url(param: str, key: str, allowed: Collection[str] | None = None) -> str | None:
    """Once per browser session, put the URL's `param` into the widget state `key` (before the widget is drawn).
    Values outside `allowed` are ignored: a stale or hand-edited link must not break the page."""
    flag = f"_url_seeded::{key}"
    if st.session_state.get(flag):
        return None
    st.session_state[flag] = True
    value = st.query_params.get(param)
    if value is None or (allowed is not None and value not in allowed):
        return None
    st.session_state[key] = value
    return value


def write_url(**values: str | None) -> None:
    """Mirror the current view into the query string; None or "" removes a parameter."""
    for param, value in values.items():
        if value in (None, ""):
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get(param) != value:
            st.query_params[param] = value
