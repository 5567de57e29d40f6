"""AppTest over app.py and every page: no exceptions, key widgets, and the right numbers on screen."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from core.ingest import point_id
from tests.conftest import ROOT, make_colors_env, shown
from ui.common import get_store

PAGES = ["app_pages/collections.py", "app_pages/ingest.py", "app_pages/explore.py", "app_pages/audit.py", "app_pages/search.py",
         "app_pages/graph.py"]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page):
    at = _app().run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert len(at.main.title) == 1  # the page drew itself


def test_collections_page_shows_counts(app_env):
    at = _app().run()
    assert not at.exception
    assert any("Connected: embedded Qdrant" in s.value for s in at.sidebar.success)
    [counts] = [d.value for d in at.dataframe if list(d.value.columns) == ["label", "points"]]
    assert dict(zip(counts["label"], counts["points"])) == {"apple": 5, "banana": 3, "**kiwi** <img src=x>": 2}
    texts = [t.value for t in at.text]
    assert "fruits" in texts
    assert any(t.startswith("**kiwi** <img src=x>") for t in texts)  # shown as text, not as HTML
    assert at.sidebar.selectbox(key="collection").value == "fruits"
    assert at.sidebar.text_input(key=f"image_root::{(app_env / 'qdrant').resolve()}::fruits").value == \
        str((app_env / "fruit").resolve())


def test_unreachable_server_is_named(app_env):
    at = _app().run()
    at.sidebar.radio(key="conn_mode").set_value("Server URL").run()
    at.sidebar.text_input(key="conn_url").set_value("http://127.0.0.1:9").run()
    assert not at.exception
    assert any("http://127.0.0.1:9" in shown(e.value) for e in at.sidebar.error)  # escaped Markdown


def test_locked_embedded_folder_is_explained(app_env, tmp_path):
    other = tmp_path / "busy"
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time; sys.path.insert(0, sys.argv[1]);"
                               "from core.store import open_store; s=open_store(path=sys.argv[2]); print('ok', "
                               "flush=True); time.sleep(60)", str(ROOT), str(other)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        at = _app().run()
        at.sidebar.text_input(key="conn_path").set_value(str(other)).run()
        assert not at.exception
        assert any("in use by another process" in e.value for e in at.sidebar.error)
    finally:
        holder.kill()


def test_ingest_page_refuses_bad_folder_and_ingests_good_one(app_env):
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(app_env / "missing"))
    at.text_input(key="ingest_collection").set_value("more")
    at.button[0].click().run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)

    at.text_input(key="ingest_folder").set_value(str(app_env / "fruit"))
    at.text_input(key="ingest_collection").set_value("fruits")  # built with another model
    at.selectbox(key="ingest_model").set_value("effnet-lite0")
    at.button[0].click().run()
    assert any("not of model 'effnet-lite0'" in e.value for e in at.error)

    at.text_input(key="ingest_collection").set_value("fruits_effnet")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("10 added" in s.value for s in at.success)


def test_explore_draws_map_and_shows_a_selection(app_env):
    at = _app().run()
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception
    at.radio(key="explore_method").set_value("PCA")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Showing 10 of 10 points" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1
    # a lasso over the first three points of a trace that has three (Plotly's event shape, as Streamlit passes it on)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    curve = next(i for i, t in enumerate(traces) if len(t["text"]) >= 3)  # one hover text per point
    at.session_state["explore_map"] = {"selection": {"points": [
        {"curve_number": curve, "point_index": i, "point_number": i} for i in range(3)], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert any(h.value == "Selection: 3 points" for h in at.subheader)
    assert [b.key for b in at.get("download_button")][:2] == ["explore_export", "explore_panel_csv"]


def test_explore_filter_matching_nothing_is_explained(app_env):
    at = _app().run()
    at.switch_page("app_pages/explore.py").run()
    at.selectbox(key="explore_filter_key").set_value("file_name")
    at.text_input(key="explore_filter_value").set_value("no-such-file.png")
    at.radio(key="explore_method").set_value("PCA")
    at.button[0].click().run()
    assert not at.exception
    assert any("No point matches" in w.value for w in at.warning)


@pytest.fixture
def audit_env(tmp_path, monkeypatch):
    """Three colour classes with one planted mislabel: a red image filed under 'blue'."""
    return make_colors_env(tmp_path, monkeypatch, {"blue/odd.png": (225, 25, 35)})


def test_audit_page_flags_the_mislabel_and_accepting_fixes_it(audit_env):
    at = _app().run()
    at.switch_page("app_pages/audit.py").run()
    assert not at.exception
    at.radio(key="audit_operating_point").set_value("Fixed threshold").run()
    at.slider(key="audit_threshold").set_value(0.2)  # 37 toy points give soft probabilities
    at.button[0].click().run()  # Run audit
    assert not at.exception, at.exception
    accept = [b for b in at.button if b.label.startswith("Accept 'red'")]
    assert accept, [b.label for b in at.button]
    accept[0].click().run()
    assert not at.exception, at.exception
    assert "Fixed in this session: 1" in " ".join(c.value for c in at.caption)
    store = get_store("", "", str(audit_env))  # the app's own handle: the folder admits one opener
    payload = store.retrieve("colors", [point_id("blue/odd.png")]).payloads[0]
    assert payload["label"] == "red" and payload["label_original"] == "blue"
    assert payload["label_history"][-1]["new"] == "red"


def test_search_page_upload_shows_results(app_env, tmp_path):
    # app_env's collection uses the test embedder; an effnet collection makes the upload path real
    folder = app_env / "fruit"
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(folder))
    at.text_input(key="ingest_collection").set_value("fruits_effnet")
    at.selectbox(key="ingest_model").set_value("effnet-lite0")
    at.button[0].click().run()
    at.run()  # the sidebar lists the new collection from the next run on
    at.sidebar.selectbox(key="collection").set_value("fruits_effnet")
    at.switch_page("app_pages/search.py").run()
    assert not at.exception, at.exception
    assert any("no text encoder" in i.value for i in at.info)
    query = (folder / "apple" / "2.png").read_bytes()
    at.get("file_uploader")[0].set_value(("2.png", query, "image/png")).run()
    [b for b in at.button if b.label == "Search by image"][0].click().run()
    assert not at.exception, at.exception
    assert any("results" in c.value and "ms" in c.value for c in at.caption)
    assert at.text[0].value.startswith("1.000")  # the same image is the first result


def test_search_page_bad_upload_is_explained(app_env):
    at = _app().run()
    at.switch_page("app_pages/search.py").run()
    at.get("file_uploader")[0].set_value(("x.png", b"not an image", "image/png")).run()
    [b for b in at.button if b.label == "Search by image"][0].click().run()
    assert not at.exception
    assert any("test-color" in e.value or "cannot be used" in e.value for e in at.error)


def test_graph_page_draws_and_shows_a_clicked_node(app_env):
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    assert not at.exception
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("nodes" in c.value and "edges" in c.value for c in at.caption)
    at.session_state["graph_chart"] = {"selection": {"points": [{"curve_number": 1, "point_index": 0,
                                                                 "customdata": {"0": 3}}]}}
    at.run()
    assert not at.exception, at.exception
    assert any(t.value.startswith("id ") for t in at.text)
    [b for b in at.button if b.label.startswith("Expand")][0].click().run()
    assert not at.exception
    assert len(at.session_state["graph_request"]["expand"]) == 1  # its neighbours added to the drawn graph
