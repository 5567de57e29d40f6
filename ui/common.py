"""Connection sidebar, shared context and small render helpers. Pages call these and core; nothing else."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core import settings, thumbnails
from core.catalog import CollectionSummary, payload_text, summarize
from core.store import Store, StoreError, open_store
from ui.state import seed_from_url, write_url

MODES = ("Embedded folder", "Server URL")


@dataclass
class Context:
    store: Store
    collection: str | None
    summary: CollectionSummary | None
    label_field: str | None
    image_root: str | None


@st.cache_resource(show_spinner="Opening Qdrant…")
def get_store(url: str, api_key: str, path: str) -> Store:
    # One store per connection for the whole server: the embedded engine allows one opener per folder.
    return open_store(url, api_key, path)


def _init_defaults() -> None:
    defaults = {"conn_mode": "Server URL" if settings.get("QDRANT_URL") else "Embedded folder",
                "conn_path": settings.get("ATLAS_STORE_PATH"), "conn_url": settings.get("QDRANT_URL"),
                "conn_key": settings.get("QDRANT_API_KEY")}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    # Once per browser session, a link can name the connection: ?qdrant=<server URL>, or ?qdrant=embedded&store=
    # <folder>. A folder from a link must already exist (a link never creates folders on the server), and the
    # configured API key is never sent to a server named by a link.
    if st.session_state.get("_url_connection_read"):
        return
    st.session_state["_url_connection_read"] = True
    target = st.query_params.get("qdrant", "")
    if target.startswith(("http://", "https://")):
        st.session_state.update(conn_mode="Server URL", conn_url=target)
        if target != settings.get("QDRANT_URL"):
            st.session_state["conn_key"] = ""
    elif target == "embedded":
        st.session_state["conn_mode"] = "Embedded folder"
        folder = st.query_params.get("store", "")
        if folder and Path(folder).is_dir():
            st.session_state["conn_path"] = folder


def _write_connection_to_url(url: str, path: str) -> None:
    default_path = st.session_state.get("conn_mode") == "Embedded folder" and path == settings.get("ATLAS_STORE_PATH")
    write_url(qdrant=url or ("embedded" if not default_path else None), store=None if url or default_path else path)


def sidebar() -> Context | None:
    """Connection and collection pickers, shared by every page; the connection status is always shown."""
    _init_defaults()
    sb = st.sidebar
    sb.radio("Qdrant", MODES, key="conn_mode", horizontal=True)
    if st.session_state.conn_mode == "Embedded folder":
        sb.text_input("Embedded storage folder", key="conn_path")
        url, api_key, path = "", "", st.session_state.conn_path
    else:
        sb.text_input("Server URL", key="conn_url", placeholder="http://localhost:6333")
        sb.text_input("API key", key="conn_key", type="password")
        url, api_key, path = st.session_state.conn_url.strip(), st.session_state.conn_key, ""
        if not url:
            sb.warning("Enter the URL of a Qdrant server, e.g. http://localhost:6333.")
            return None
    try:
        store = get_store(url, api_key, path)
        collections = [c.name for c in store.list_collections()]
    except StoreError as exc:
        sb.error(f"Not connected: {exc}")
        return None
    sb.success(f"Connected: {store.describe()} · {len(collections)} collection(s)")
    _write_connection_to_url(url, path)
    if not collections:
        write_url(collection=None, label_field=None)
        return Context(store, None, None, None, None)
    seed_from_url("collection", "collection", collections)
    if st.session_state.get("collection") not in collections:
        st.session_state["collection"] = collections[0]
    name = sb.selectbox("Collection", collections, key="collection")
    try:
        summary = summarize(store, name)
    except StoreError as exc:  # a collection this tool cannot read must not take down every page's sidebar
        sb.error(f"Cannot read collection '{name}': {exc}")
        return Context(store, None, None, None, None)
    detected = summary.label_field
    if summary.payload_keys:
        options = summary.payload_keys
        field_key = f"label_field::{name}"
        seed_from_url("label_field", field_key, options)
        if st.session_state.get(field_key) not in options:
            st.session_state[field_key] = detected if detected in options else options[0]
        label_field = sb.selectbox("Label field", options, key=field_key,
                                   help="The payload key that holds each image's label.")
        if label_field != detected:
            summary = summarize(store, name, label_field)
    else:
        label_field = None
    write_url(collection=name, label_field=label_field if label_field != detected else None)
    default_root = thumbnails.recall_root(settings.get("ATLAS_CACHE_DIR"), store.location, name) or \
        settings.get("ATLAS_IMAGE_ROOT")
    root_key = f"image_root::{store.location}::{name}"
    st.session_state.setdefault(root_key, default_root)
    image_root = sb.text_input("Image folder", key=root_key,
                               help="Folder that the points' relative `path` values are resolved against.")
    return Context(store, name, summary, label_field, image_root or None)


def thumb(payload: dict, ctx: Context, size: int = 160):
    img = thumbnails.thumbnail(payload, ctx.image_root, size=size, cache_dir=f"{settings.get('ATLAS_CACHE_DIR')}/thumbs")
    return img if img is not None else thumbnails.placeholder(size)


def gallery(payloads: list[dict], ctx: Context, label_field: str | None, columns: int = 6, size: int = 128) -> None:
    """Thumbnails with label and file name as plain text (payload values are user data)."""
    cols = st.columns(columns)
    for i, payload in enumerate(payloads):
        with cols[i % columns]:
            st.image(thumb(payload, ctx, size), width=size)
            label = payload.get(label_field) if label_field else None
            st.text(payload_text(label if label is not None else "(none)", 40) + "\n"
                    + payload_text(payload.get("file_name", ""), 40))


def require_collection(purpose: str) -> Context:
    """The page's context, or a message and a stop when there is no collection with points to work on."""
    ctx = st.session_state.get("ctx")
    if ctx is None or ctx.collection is None or ctx.summary is None:
        st.info("Connect to Qdrant and pick a collection in the sidebar (or ingest one first).")
        st.stop()
    if not ctx.summary.vectors or ctx.summary.points == 0:
        st.warning(f"This collection has no points with vectors to {purpose}: ingest images first.")
        st.stop()
    return ctx
