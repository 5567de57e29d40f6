"""Safe to share, network and files: the API key stays on the server, outbound fetches only where allowed,
folders only under the allowed roots. Real listeners on 127.0.0.1 count what reaches them; no network mocks."""
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import netguard, paths, thumbnails
from tests.conftest import ROOT, shown

KEY = "sekret-KEY-6d1f0c"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


class Listener:
    """An HTTP server on 127.0.0.1 that records every request. `mode` picks its answer."""

    def __init__(self, mode: str = "image", target: str = ""):
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.mode, self.target = mode, target
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                listener.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                listener.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        if self.mode == "image":
            body = _png()
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        elif self.mode == "redirect":
            h.send_response(302)
            h.send_header("Location", self.target)
            h.send_header("Content-Length", "0")
            h.end_headers()
        elif self.mode == "trickle":  # one byte at a time, as a slow-loris image host would
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
            for _ in range(40):
                try:
                    h.wfile.write(b"x")
                    h.wfile.flush()
                except OSError:
                    return
                time.sleep(0.3)
        elif self.mode == "trickle-headers":  # the status line itself, one byte at a time
            for byte in b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello":
                try:
                    h.wfile.write(bytes([byte]))
                    h.wfile.flush()
                except OSError:
                    return
                time.sleep(0.3)
        elif self.mode == "qdrant":  # enough of Qdrant's REST API for the sidebar to connect
            body = json.dumps({"title": "qdrant - vector search engine", "version": "1.19.0"} if h.path == "/"
                              else {"result": {"collections": []}, "status": "ok", "time": 0.0}).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        else:  # some other web server on an open port
            h.send_response(404)
            h.send_header("Content-Length", "9")
            h.end_headers()
            h.wfile.write(b"not found")

    def with_key(self) -> list[str]:
        return [path for path, headers in self.requests if any(KEY in v for v in headers.values())]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listen():
    made: list[Listener] = []

    def make(mode: str = "image", target: str = "") -> Listener:
        made.append(Listener(mode, target))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


@pytest.fixture(autouse=True)
def no_network_settings(monkeypatch):
    for name in ("ATLAS_ALLOWED_HOSTS", "ATLAS_ALLOW_PRIVATE_HOSTS", "ATLAS_ALLOWED_ROOTS", "ATLAS_IMAGE_BASE_URL",
                 "ATLAS_LOCK_CONNECTION", "QDRANT_URL", "QDRANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- 1. the configured key stays on the server -----------------------------------------------------------------
def _everything_sent(at: AppTest) -> str:
    """Every element's protobuf (what the browser receives, widget values included) and the session state."""
    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    parts = [str(getattr(n, "proto", "")) + repr(getattr(n, "value", "")) for n in walk(at._tree)]
    parts.append(repr(at._session_state.filtered_state))
    parts.append(repr(dict(at.query_params)))
    return "\n".join(parts)


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_configured_key_is_in_no_widget_and_no_session_value(app_env, monkeypatch, listen):
    configured = listen("qdrant")
    monkeypatch.setenv("QDRANT_URL", configured.url)
    monkeypatch.setenv("QDRANT_API_KEY", KEY)
    monkeypatch.setenv("ATLAS_LOCK_CONNECTION", "off")  # the fields are shown: the case where a key could leak
    at = _app().run()
    assert not at.exception, at.exception
    assert at.sidebar.text_input(key="conn_key").value == ""
    assert any("Connected" in s.value for s in at.sidebar.success)
    assert configured.with_key(), "the configured key is used for its own URL (else this test proves nothing)"
    assert KEY not in _everything_sent(at)


def test_configured_key_is_not_sent_to_another_url(app_env, monkeypatch, listen):
    configured, other = listen("qdrant"), listen("qdrant")
    monkeypatch.setenv("QDRANT_URL", configured.url)
    monkeypatch.setenv("QDRANT_API_KEY", KEY)
    monkeypatch.setenv("ATLAS_LOCK_CONNECTION", "off")
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{other.port}")
    at = _app().run()
    at.sidebar.text_input(key="conn_url").set_value(other.url).run()
    assert not at.exception, at.exception
    assert other.requests, "the other server was asked (else this test proves nothing)"
    assert other.with_key() == []
    assert KEY not in _everything_sent(at)


def test_locked_connection_shows_text_and_ignores_links(app_env, monkeypatch, listen):
    configured, other = listen("qdrant"), listen("qdrant")
    monkeypatch.setenv("QDRANT_URL", f"http://atlas:pa55word@127.0.0.1:{configured.port}")
    monkeypatch.setenv("QDRANT_API_KEY", KEY)  # ATLAS_LOCK_CONNECTION=auto: locked, QDRANT_URL is from the env
    at = _app()
    at.query_params["qdrant"] = other.url
    at.run()
    assert not at.exception, at.exception
    assert len(at.sidebar.text_input) == 0 and len(at.sidebar.radio) == 0
    assert any(t.value == f"Qdrant: http://127.0.0.1:{configured.port}" for t in at.sidebar.text)
    assert other.requests == []  # the link's server was never contacted
    sent = _everything_sent(at)
    assert KEY not in sent and "pa55word" not in sent


# --- 2. outbound requests only where allowed ----------------------------------------------------------------------
def test_image_url_on_loopback_is_not_fetched(listen):
    target = listen("image")
    assert thumbnails.thumbnail({"image_url": f"{target.url}/a.png"}, None) is None
    assert target.requests == []


def test_ingest_base_url_allows_its_host_but_not_a_private_address(listen, monkeypatch):
    target = listen("image")
    payload, base = {"image_url": f"{target.url}/imgs/a.png"}, [f"{target.url}/imgs"]
    assert thumbnails.thumbnail(payload, None, base_urls=base) is None
    assert target.requests == []
    monkeypatch.setenv("ATLAS_ALLOW_PRIVATE_HOSTS", "on")  # a single-user local run
    assert thumbnails.thumbnail(payload, None, base_urls=base).size == (24, 24)
    assert len(target.requests) == 1
    assert thumbnails.thumbnail({"image_url": f"{target.url}/other/a.png"}, None, base_urls=base) is None
    assert len(target.requests) == 1  # outside the base URL's path: not its images


def test_listed_host_is_fetched(listen, monkeypatch):
    target = listen("image")
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{target.port}")
    assert thumbnails.thumbnail({"image_url": f"{target.url}/a.png"}, None).size == (24, 24)
    assert len(target.requests) == 1


@pytest.mark.parametrize("host", ["169.254.169.254", "metadata.google.internal", "[::1]", "0.0.0.0", "10.0.0.1"])
def test_metadata_and_private_addresses_are_refused_before_connecting(host, monkeypatch):
    url = f"http://{host}/latest/meta-data/"
    with pytest.raises(netguard.NotAllowed, match="not in ATLAS_ALLOWED_HOSTS"):
        netguard.check_url(url)
    # even as a collection's base URL: the address rule still applies
    if host != "metadata.google.internal":  # not resolvable here; refused by the host rule above
        with pytest.raises(netguard.NotAllowed, match="private or link-local"):
            netguard.check_url(url, base_urls=[f"http://{host}/"])
    started = time.monotonic()
    assert thumbnails.thumbnail({"image_url": url}, None) is None
    assert time.monotonic() - started < 1.0  # refused, not timed out


def test_redirect_from_an_allowed_host_to_a_private_one_is_not_followed(listen, monkeypatch):
    forbidden = listen("image")
    hop = listen("redirect", f"{forbidden.url}/secret.png")
    meta = listen("redirect", "http://169.254.169.254/latest/meta-data/")
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{hop.port},127.0.0.1:{meta.port}")
    assert thumbnails.thumbnail({"image_url": f"{hop.url}/a.png"}, None) is None
    assert len(hop.requests) == 1 and forbidden.requests == []
    with pytest.raises(netguard.NotAllowed, match="169.254.169.254"):
        netguard.fetch(f"{meta.url}/a.png")
    assert len(meta.requests) == 1


def test_redirects_are_followed_three_hops_at_most(listen, monkeypatch):
    image = listen("image")
    loop = listen("redirect")
    loop.target = f"{loop.url}/again"
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{loop.port},127.0.0.1:{image.port}")
    with pytest.raises(netguard.FetchError, match="Cannot connect to"):
        netguard.fetch(f"{loop.url}/a.png")
    assert len(loop.requests) == 4  # the first request and three redirects
    ok = listen("redirect", f"{image.url}/a.png")
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{ok.port},127.0.0.1:{image.port}")
    assert thumbnails.thumbnail({"image_url": f"{ok.url}/a.png"}, None).size == (24, 24)  # allowed -> allowed


@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_trickling_server_is_given_up_at_the_total_deadline(listen, monkeypatch, mode):
    slow = listen(mode)
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{slow.port}")
    started = time.monotonic()
    assert thumbnails.thumbnail({"image_url": f"{slow.url}/a.png"}, None, timeout=2.0) is None
    assert time.monotonic() - started < 3.0
    assert len(slow.requests) == 1


def test_download_larger_than_the_cap_is_refused(listen, monkeypatch):
    target = listen("image")
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{target.port}")
    assert netguard.fetch(f"{target.url}/a.png", max_bytes=10_000) == _png()
    with pytest.raises(netguard.FetchError):
        netguard.fetch(f"{target.url}/a.png", max_bytes=50)


def test_server_url_probe_says_the_same_for_closed_and_open_ports(app_env, monkeypatch, listen):
    web = listen("other")
    closed = _closed_port()
    monkeypatch.setenv("ATLAS_ALLOWED_HOSTS", f"127.0.0.1:{web.port},127.0.0.1:{closed}")
    messages = {}
    for name, port in (("open", web.port), ("closed", closed)):
        at = _app().run()
        at.sidebar.radio(key="conn_mode").set_value("Server URL").run()
        at.sidebar.text_input(key="conn_url").set_value(f"http://127.0.0.1:{port}").run()
        assert not at.exception, at.exception
        [error] = [shown(e.value) for e in at.sidebar.error]
        messages[name] = error.replace(str(port), "PORT")
    assert messages["open"] == messages["closed"]
    assert "Cannot connect to http://127.0.0.1:PORT" in messages["open"]
    assert all("Errno" not in m and "refused" not in m for m in messages.values())


def test_server_url_must_be_an_allowed_host(app_env, listen):
    target = listen("qdrant")
    at = _app().run()
    at.sidebar.radio(key="conn_mode").set_value("Server URL").run()
    at.sidebar.text_input(key="conn_url").set_value(target.url).run()
    assert not at.exception, at.exception
    assert any("not in ATLAS_ALLOWED_HOSTS" in shown(e.value) for e in at.sidebar.error)
    assert target.requests == []


# --- 3. folders only under allowed roots ------------------------------------------------------------------------
@pytest.fixture
def roots(tmp_path, monkeypatch):
    inside, outside = tmp_path / "root", tmp_path / "outside"
    (inside / "imgs").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (20, 20)).save(outside / "secret.png")
    Image.new("RGB", (20, 20)).save(inside / "imgs" / "ok.png")
    (inside / "link").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", f"{inside},{tmp_path / 'second'}")
    return inside, outside


@pytest.mark.parametrize("escape", ["dotdot", "symlink", "absolute"])
def test_path_escapes_are_refused_with_the_roots_and_purpose(roots, escape):
    inside, outside = roots
    path = {"dotdot": f"{inside}/imgs/../../outside", "symlink": str(inside / "link"), "absolute": "/etc"}[escape]
    with pytest.raises(paths.PathNotAllowed) as info:
        paths.check_path(path, "image folder")
    assert "image folder" in str(info.value) and str(inside) in str(info.value)
    assert paths.check_path(f"{inside}/imgs/../imgs", "image folder") == (inside / "imgs").resolve()


def test_no_allowed_roots_means_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv("ATLAS_ALLOWED_ROOTS", raising=False)
    assert paths.allowed_roots() == []
    assert paths.check_path("/etc", "image folder") == Path("/etc").resolve()
    assert str(paths.check_path(tmp_path, "ingest folder")) == str(tmp_path.resolve())


def test_thumbnails_stay_inside_the_allowed_roots(roots):
    inside, outside = roots
    assert thumbnails.thumbnail({"path": "imgs/ok.png"}, inside).size == (20, 20)
    assert thumbnails.thumbnail({"path": "secret.png"}, outside) is None  # root outside the allowed roots
    assert thumbnails.thumbnail({"path": "secret.png"}, inside / "link") is None  # symlinked out
    assert thumbnails.thumbnail({"path": "../outside/secret.png"}, inside) is None


def test_sidebar_folders_outside_the_roots_are_refused(app_env, monkeypatch):
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(app_env))
    at = _app().run()
    root_key = f"image_root::{(app_env / 'qdrant').resolve()}::fruits"
    at.sidebar.text_input(key=root_key).set_value("/").run()
    assert not at.exception, at.exception
    assert any("image folder" in e.value and "outside the allowed folders" in e.value for e in at.sidebar.error)
    assert at.session_state["ctx"].image_root is None
    elsewhere = app_env.parent / f"{app_env.name}-elsewhere"
    at.sidebar.text_input(key="conn_path").set_value(str(elsewhere)).run()
    assert not at.exception, at.exception
    assert any("embedded store" in e.value and "outside the allowed folders" in e.value for e in at.sidebar.error)
    assert not elsewhere.exists()  # no folder and no lock created outside the roots


def test_store_link_outside_the_roots_is_ignored(app_env, monkeypatch, tmp_path_factory):
    other = tmp_path_factory.mktemp("other-store")
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(app_env))
    at = _app()
    at.query_params["qdrant"] = "embedded"
    at.query_params["store"] = str(other)
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.text_input(key="conn_path").value == str(app_env / "qdrant")
    assert list(other.iterdir()) == []
