"""The Qdrant API key never reaches a browser: every websocket frame and the DOM of a real session in headless
Chromium, against a real `streamlit run` connected to a listener that answers like a Qdrant server."""
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from scripts.check_pages import launch
from tests.conftest import ROOT
from tests.test_security_net import KEY, Listener
from tests.test_browser import _free_port


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])


@pytest.mark.parametrize("lock", ["on", "off"])
def test_api_key_is_in_no_websocket_frame_and_no_dom(tmp_path, lock):
    qdrant = Listener("qdrant")
    env = {**os.environ, "QDRANT_URL": qdrant.url, "QDRANT_API_KEY": KEY, "ATLAS_LOCK_CONNECTION": lock,
           "ATLAS_CACHE_DIR": str(tmp_path / "cache"), "ATLAS_STORE_PATH": str(tmp_path / "qdrant"),
           "HF_HUB_OFFLINE": "1"}
    proc, url = _serve(env)
    frames: list[bytes] = []
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(
                f if isinstance(f, bytes) else f.encode())))
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Connected").first.wait_for(timeout=120_000)
            if lock == "off":  # the connection fields are there: the key field must be empty
                key_field = page.get_by_role("textbox", name="API key")
                assert key_field.input_value() == ""
            dom = page.content() + page.evaluate(
                "Array.from(document.querySelectorAll('input,textarea')).map(e => e.value).join('\\n')")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
        qdrant.close()
    assert qdrant.with_key(), "positive control: the configured server gets the key"
    assert frames, "the session's websocket frames were captured"
    assert not [f for f in frames if KEY.encode() in f]
    assert KEY not in dom
