"""The Qdrant API key never reaches a browser: every websocket frame and the DOM of a real session in headless
Chromium, against a real `streamlit run` connected to a listener that answers like a Qdrant server."""

import pytest

from scripts.check_pages import launch
from tests.conftest import streamlit_app
from tests.test_security_net import KEY, Listener


@pytest.mark.parametrize("lock", ["on", "off"])
def test_api_key_is_in_no_websocket_frame_and_no_dom(tmp_path, lock):
    qdrant = Listener("qdrant")
    frames: list[bytes] = []
    with streamlit_app(QDRANT_URL=qdrant.url, QDRANT_API_KEY=KEY, ATLAS_LOCK_CONNECTION=lock,
                       ATLAS_CACHE_DIR=str(tmp_path / "cache"), ATLAS_STORE_PATH=str(tmp_path / "qdrant")) as url:
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
    qdrant.close()
    assert qdrant.with_key(), "positive control: the configured server gets the key"
    assert frames, "the session's websocket frames were captured"
    assert not [f for f in frames if KEY.encode() in f]
    assert KEY not in dom
