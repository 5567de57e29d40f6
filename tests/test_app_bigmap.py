"""AppTest over the Explore page with a map of CANVAS_FROM points: computed on a background job (progress, Stop),
drawn by the WebGL map component (not Plotly), and a selection from the component opens the gallery."""
import threading
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from bench.map_browser import COLLECTION, build_store
from core.figures import CANVAS_FROM
from tests.conftest import ROOT
from ui import map_jobs


@pytest.fixture
def big_env(tmp_path, monkeypatch):
    build_store(tmp_path / "store", CANVAS_FROM)
    monkeypatch.setenv("ATLAS_STORE_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    return tmp_path


def explore() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["collection"] = COLLECTION
    at.run()
    at.switch_page("app_pages/explore.py").run()
    at.radio(key="explore_method").set_value("PCA").run()
    return at


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("caption", "info", "subheader", "markdown") for e in at.get(kind))


def test_a_large_map_computes_in_the_background_and_stops(big_env, monkeypatch):
    release, stopped = threading.Event(), threading.Event()

    def slow_map(progress=None, **_):
        try:
            while not release.wait(0.02):
                progress("kNN graph", 0.4)
        except map_jobs.MapCancelled:
            stopped.set()
            raise

    monkeypatch.setattr(map_jobs, "compute_map", slow_map)
    at = explore()
    at.button(key="FormSubmitter:explore_form-Draw map").click().run()
    assert not at.exception, at.exception
    [stop] = [b for b in at.button if b.label == "Stop"]
    [bar] = at.get("progress")
    assert bar.proto.value == 40 and bar.proto.text.startswith("Drawing the map: kNN graph")
    stop.click().run()
    assert stopped.wait(5)
    assert not at.exception and "The map was stopped" in texts(at)
    at.run()  # a later rerun does not start it again
    assert not [b for b in at.button if b.label == "Stop"] and "Draw map" in texts(at)
    release.set()


def test_stop_in_one_session_stops_the_map_for_a_session_that_joined_it(big_env, monkeypatch):
    release, calls = threading.Event(), []

    def slow_map(progress=None, **_):
        calls.append(1)
        while not release.wait(0.02):
            progress("kNN graph", 0.4)

    monkeypatch.setattr(map_jobs, "compute_map", slow_map)
    first, second = explore(), explore()
    first.button(key="FormSubmitter:explore_form-Draw map").click().run()
    second.button(key="FormSubmitter:explore_form-Draw map").click().run()
    assert len(calls) == 1  # the second session joined the running job
    [stop] = [b for b in first.button if b.label == "Stop"]
    stop.click().run()
    second.run()
    assert not second.exception, second.exception
    assert "The map was stopped" in texts(second) and not [b for b in second.button if b.label == "Stop"]
    second.run()  # and it is not started again behind the user's back
    assert len(calls) == 1 and not [b for b in second.button if b.label == "Stop"]
    release.set()


def test_a_large_map_is_drawn_by_the_component_and_a_selection_opens_the_gallery(big_env):
    at = explore()
    at.button(key="FormSubmitter:explore_form-Draw map").click().run()
    deadline = time.time() + 120
    while f"Showing {CANVAS_FROM:,} of {CANVAS_FROM:,} points" not in texts(at) and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception, at.exception
    assert f"Showing {CANVAS_FROM:,} of {CANVAS_FROM:,} points" in texts(at)
    assert len(at.get("plotly_chart")) == 0 and len(at.get("component_instance")) == 1
    # the Audit page's suspects are ringed: their rows travel with the map
    at.session_state["audit_suspects"] = {"collection": COLLECTION, "ids": [3, 5, 8]}
    at.run()
    [component] = at.get("component_instance")
    marks = {a.key: a.bytes for a in component.proto.special_args}["marks"]
    rows = np.frombuffer(marks, dtype=np.uint32)
    ids = at.session_state["explore_view"][1].points.ids
    assert sorted(ids[r] for r in rows) == [3, 5, 8]

    # the component's value, as the browser would send it: a box over the whole map
    at.session_state["explore_canvas"] = {"selection": {"kind": "box", "hidden": [],
                                                        "polygon": [[-1, -1], [2, -1], [2, 2], [-1, 2]]}}
    at.run()
    assert not at.exception, at.exception
    assert f"Selection: {CANVAS_FROM:,} points" in texts(at)
    # the gallery's first page: 48 thumbnails (rows of 8), each captioned with its point's file name
    captions = [img.caption for row in at.get("image") for img in row.proto.imgs]
    assert len(captions) == 48 and all(".png" in c for c in captions)
