"""Connection sidebar, shared context and small render helpers. Pages call these and core; nothing else."""
from __future__ import annotations

import functools
import io
import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import streamlit as st

from core import netguard, paths, settings, thumbnails
from core.catalog import CollectionSummary, payload_text, summarize, unknown_labels
from core.store import Store, StoreError, open_store
from ui.auth import can
from ui.state import seed_from_url, write_url
from ui.text import md_escape, plural

MODES = ("Embedded folder", "Server URL")


@dataclass
class Context:
    store: Store
    collection: str | None
    summary: CollectionSummary | None
    label_field: str | None
    image_root: str | None
    image_base_urls: list[str] = field(default_factory=list)  # where ingest published the images (image_url)


@st.cache_resource(show_spinner="Opening Qdrant…")
def get_store(url: str, api_key: str, path: str, connect_url: str = "") -> Store:
    # One store per connection for the whole server: the embedded engine allows one opener per folder.
    return open_store(url, api_key, path, connect_url)


# How long a collection's summary (label counts, payload keys: a scan of the store) is reused across reruns and
# sessions. A change made in this session (an ingest changes the point count; an audit action bumps
# audit_version) is seen at once; one made elsewhere (another session, the CLI) within this many seconds.
SUMMARY_TTL_S = 20


@st.cache_data(ttl=SUMMARY_TTL_S, max_entries=64, show_spinner=False)
def _summary(_store: Store, location: str, name: str, label_field: str | None, points: int,
             unknown: tuple[str, ...], revision: tuple) -> CollectionSummary:
    return summarize(_store, name, label_field, unknown=list(unknown))


def collection_summary(store: Store, name: str, label_field: str | None = None,
                       points: int | None = None) -> CollectionSummary:
    """core.catalog.summarize, computed once and reused by the reruns of every page (see SUMMARY_TTL_S). `points`:
    the collection's point count as just listed (part of the key: an ingest or a delete changes it)."""
    if points is None:
        points = store.collection_info(name).points
    version = st.session_state.get("audit_version", 0)
    # after an audit action in this session, its summaries are its own: another session's older entry at the same
    # version number must not be reused
    revision = (st.session_state.setdefault("_session_token", uuid.uuid4().hex), version) if version else ()
    return _summary(store, store.location, name, label_field, points, tuple(unknown_labels()), revision)


class ConnectionRefused(Exception):
    """A connection the rules do not allow, or that did not answer; the message is shown as is."""


def connection_locked() -> bool:
    """ATLAS_LOCK_CONNECTION: on, off, or auto (locked when QDRANT_URL comes from the environment or secrets)."""
    value = str(settings.get("ATLAS_LOCK_CONNECTION")).strip().lower()
    if value == "auto":
        return settings.source("QDRANT_URL") != "default"
    return settings.is_on("ATLAS_LOCK_CONNECTION")


def _may_change_connection() -> bool:
    return not connection_locked() and can("admin")


def _init_defaults() -> None:
    # Never the API key: a widget's value is sent to the browser. The configured key is added on the server,
    # and only for the exact URL it was configured with (see _server).
    defaults = {"conn_mode": "Server URL" if settings.get("QDRANT_URL") else "Embedded folder",
                "conn_path": settings.get("ATLAS_STORE_PATH"),
                "conn_url": netguard.public_url(settings.get("QDRANT_URL")), "conn_key": ""}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    # Once per browser session, a link can name the connection: ?qdrant=<server URL>, or ?qdrant=embedded&store=
    # <folder>. A folder from a link must already exist under the allowed roots (a link never creates folders on
    # the server); a server URL from a link meets the same host rules as a typed one.
    if st.session_state.get("_url_connection_read"):
        return
    st.session_state["_url_connection_read"] = True
    target = st.query_params.get("qdrant", "")
    if target.startswith(("http://", "https://")):
        st.session_state.update(conn_mode="Server URL", conn_url=target, conn_key="")
    elif target == "embedded":
        st.session_state["conn_mode"] = "Embedded folder"
        folder = st.query_params.get("store", "")
        try:
            if folder and paths.check_path(folder, "embedded store").is_dir():
                st.session_state["conn_path"] = folder
        except paths.PathNotAllowed:
            pass


def _write_connection_to_url(url: str, path: str) -> None:
    default_path = st.session_state.get("conn_mode") == "Embedded folder" and path == settings.get("ATLAS_STORE_PATH")
    write_url(qdrant=netguard.public_url(url) or ("embedded" if not default_path else None),
              store=None if url or default_path else path)


def _server(url: str, typed_key: str) -> tuple[str, str, str]:
    """(url, api key, connect url) for a server URL, or ConnectionRefused. The configured key goes only to the
    configured URL; any other URL must pass core.netguard's host rules and answer as a Qdrant server (probed
    without a key) before the visitor's own key is sent there."""
    configured = settings.get("QDRANT_URL")
    if url in (configured, netguard.public_url(configured)):
        return configured, typed_key or settings.get("QDRANT_API_KEY"), ""
    probed = st.session_state.setdefault("_probed_servers", {})
    if url not in probed:
        try:
            address = netguard.check_url(url)
            answer = json.loads(netguard.fetch(url.rstrip("/") + "/", max_bytes=65536))
            if "qdrant" not in str(answer.get("title", "")).lower():
                raise ValueError("not a Qdrant server")
        except netguard.NotAllowed as exc:
            raise ConnectionRefused(str(exc)) from None
        except (netguard.FetchError, ValueError, AttributeError):
            # one message whether the port is closed, filtered, or open to something else
            raise ConnectionRefused(f"Cannot connect to {netguard.public_url(url)}: no Qdrant server answered. "
                                    "Check the URL and that the server is running.") from None
        probed[url] = address
    # http: connect to the checked address itself, so that a second DNS answer cannot redirect the key; https
    # keeps the name, and its certificate check does the same job.
    if urlsplit(url).scheme.lower() == "https":
        return url, typed_key, ""
    host = probed[url]
    netloc = f"[{host}]" if ":" in host else host
    port = urlsplit(url).port or 80
    return url, typed_key, urlsplit(url)._replace(netloc=f"{netloc}:{port}").geturl()


def _connection(sb) -> tuple[str, str, str, str]:
    """(url, api key, path, connect url) from the sidebar, or ConnectionRefused."""
    if not _may_change_connection():
        # shown as text, no fields; the configured connection only (links naming another are ignored)
        url = settings.get("QDRANT_URL")
        sb.text(f"Qdrant: {netguard.public_url(url)}" if url else
                f"Qdrant: embedded folder {settings.get('ATLAS_STORE_PATH')}")
        return url, settings.get("QDRANT_API_KEY"), settings.get("ATLAS_STORE_PATH"), ""
    _init_defaults()
    sb.radio("Qdrant", MODES, key="conn_mode", horizontal=True)
    if st.session_state.conn_mode == "Embedded folder":
        sb.text_input("Embedded storage folder", key="conn_path")
        path = st.session_state.conn_path
        if path != settings.get("ATLAS_STORE_PATH"):  # the operator's own folder is always allowed
            try:
                path = str(paths.check_path(path, "embedded store"))
            except paths.PathNotAllowed as exc:
                raise ConnectionRefused(str(exc)) from None
        return "", "", path, ""
    sb.text_input("Server URL", key="conn_url", placeholder="http://localhost:6333")
    sb.text_input("API key", key="conn_key", type="password",
                  help="Your key for this server. A key configured on the server is used for its own URL only.")
    url = st.session_state.conn_url.strip()
    if not url:
        sb.warning("Enter the URL of a Qdrant server, e.g. http://localhost:6333.")
        raise ConnectionRefused("")
    url, api_key, connect_url = _server(url, st.session_state.conn_key)
    return url, api_key, "", connect_url


def sidebar() -> Context | None:
    """Connection and collection pickers, shared by every page; the connection status is always shown."""
    sb = st.sidebar
    try:
        url, api_key, path, connect_url = _connection(sb)
    except ConnectionRefused as exc:
        if str(exc):
            sb.error(f"Not connected: {md_escape(exc)}")
        return None
    try:
        # three arguments unless pinned: the cache key is the arguments as passed, and pages share this handle
        store = get_store(url, api_key, path, connect_url) if connect_url else get_store(url, api_key, path)
        infos = store.list_collections()
        collections = [c.name for c in infos]
        point_counts = {c.name: c.points for c in infos}
    except StoreError as exc:
        sb.error(f"Not connected: {md_escape(exc)}")
        return None
    sb.success(f"Connected: {md_escape(store.describe())} · {plural(len(collections), 'collection')}")
    if _may_change_connection():
        _write_connection_to_url(url, path)
    else:
        write_url(qdrant=None, store=None)
    if not collections:
        write_url(collection=None, label_field=None)
        return Context(store, None, None, None, None)
    seed_from_url("collection", "collection", collections)
    if st.session_state.get("collection") not in collections:
        st.session_state["collection"] = collections[0]
    name = sb.selectbox("Collection", collections, key="collection")
    try:
        summary = collection_summary(store, name, points=point_counts.get(name))
    except StoreError as exc:  # a collection this tool cannot read must not take down every page's sidebar
        sb.error(f"Cannot read collection '{md_escape(name)}': {md_escape(exc)}")
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
            summary = collection_summary(store, name, label_field, points=point_counts.get(name))
    else:
        label_field = None
    write_url(collection=name, label_field=label_field if label_field != detected else None)
    cache_dir = settings.get("ATLAS_CACHE_DIR")
    default_root = thumbnails.recall_root(cache_dir, store.location, name) or settings.get("ATLAS_IMAGE_ROOT")
    root_key = f"image_root::{store.location}::{name}"
    st.session_state.setdefault(root_key, default_root)
    image_root = sb.text_input("Image folder", key=root_key,
                               help="Folder that the points' relative `path` values are resolved against.")
    if image_root:
        try:
            paths.check_path(image_root, "image folder")
        except paths.PathNotAllowed as exc:
            sb.error(md_escape(exc))
            image_root = ""
    return Context(store, name, summary, label_field, image_root or None,
                   thumbnails.recall_base_urls(cache_dir, store.location, name))


# Thumbnails as JPEG bytes, kept in memory for the whole server: a page shows dozens, and reading each from the disk
# cache and re-encoding it for st.image on every rerun was a good part of a page's run. Keyed by where the image
# comes from and its content hash (sha1 from ingest).
_thumbs: OrderedDict[tuple, bytes] = OrderedDict()
_thumbs_lock = threading.Lock()
THUMBS_KEPT = 4096


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def _placeholder(size: int) -> bytes:
    return _jpeg(thumbnails.placeholder(size))


def thumb(payload: dict, ctx: Context, size: int = 160) -> bytes:
    """The point's thumbnail as JPEG bytes (st.image shows them as they are), remembered; a placeholder when the
    image cannot be found (not remembered: it may appear)."""
    key = (ctx.image_root, tuple(ctx.image_base_urls or ()), size, str(payload.get("sha1")),
           *(str(payload.get(k)) for k in ("path", "image_url", "url", "image")))
    with _thumbs_lock:
        if key in _thumbs:
            _thumbs.move_to_end(key)
            return _thumbs[key]
    img = thumbnails.thumbnail(payload, ctx.image_root, size=size,
                               cache_dir=f"{settings.get('ATLAS_CACHE_DIR')}/thumbs", base_urls=ctx.image_base_urls)
    if img is None:
        return _placeholder(size)
    data = _jpeg(img)
    with _thumbs_lock:
        _thumbs[key] = data
        while len(_thumbs) > THUMBS_KEPT:
            _thumbs.popitem(last=False)
    return data


def gallery(payloads: list[dict], ctx: Context, label_field: str | None, columns: int = 6, size: int = 128) -> None:
    """Thumbnails with label and file name under each (payload values are user data: Markdown-escaped, since image
    captions render Markdown). One image-list element per row of `columns`, not an element per image and caption:
    a page of 48 thumbnails used to send ~150 elements."""
    for start in range(0, len(payloads), columns):
        row = payloads[start:start + columns]
        captions = []
        for payload in row:
            label = payload.get(label_field) if label_field else None
            captions.append(md_escape(payload_text(label if label is not None else "(none)", 40)) + " · "
                            + md_escape(payload_text(payload.get("file_name", ""), 40)))
        st.image([thumb(p, ctx, size) for p in row], width=size, caption=captions)


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
