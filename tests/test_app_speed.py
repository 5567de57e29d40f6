"""Issue 14 (every click answers within a second): what made reruns slow stays away. No timings here: the work a
rerun does is counted instead (store scans, graph builds, model loads, elements sent)."""
import gc
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core.catalog
import ui.common
from core.graph import build_graph, force_layout, graph_figure, knn_edges
from core.knn import knn_graph
from core.store import open_store
from tests.conftest import ROOT, unit_rows


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.fixture
def counted_summaries(monkeypatch):
    """Every call of core.catalog.summarize the sidebar makes, counted (the cache starts empty)."""
    calls = []
    real = core.catalog.summarize

    def counting(*args, **kwargs):
        calls.append(args[1:2])
        return real(*args, **kwargs)

    monkeypatch.setattr(ui.common, "summarize", counting)
    ui.common._summary.clear()
    yield calls
    ui.common._summary.clear()


# --- the sidebar ---------------------------------------------------------------------------------------------------
def test_reruns_and_other_pages_reuse_the_collection_summary(app_env, counted_summaries):
    at = _app().run()
    assert not at.exception, at.exception
    assert len(counted_summaries) == 1
    at.run()
    at.switch_page("app_pages/explore.py").run()
    at.switch_page("app_pages/graph.py").run()
    assert not at.exception, at.exception
    assert len(counted_summaries) == 1  # three more runs, no second scan of the store
    assert at.session_state["ctx"].summary.labels == {"apple": 5, "banana": 3, "**kiwi** <img src=x>": 2}
    _app().run()  # a new browser session on the same store: the same summary
    assert len(counted_summaries) == 1


def test_an_audit_action_or_an_ingest_makes_the_summary_fresh(app_env, counted_summaries):
    at = _app().run()
    assert len(counted_summaries) == 1
    at.session_state["audit_version"] = 1  # what every audit action (relabel, undo, delete) does
    at.run()
    assert len(counted_summaries) == 2
    at.run()
    assert len(counted_summaries) == 2
    store = ui.common.get_store("", "", str(app_env / "qdrant"))  # the app's own handle
    extra = store.retrieve("fruits", store.scroll("fruits", limit=1).ids, with_vectors=True)
    store.upsert("fruits", [10**6], {name: np.asarray(v)[None] for name, v in
                                     zip([v.name for v in store.collection_info("fruits").vectors],
                                         [extra.vectors[0]])}, [{"label": "cherry", "file_name": "c.png"}])
    at.run()  # one more point: counted again, and the new label is there
    assert len(counted_summaries) == 3
    assert at.session_state["ctx"].summary.labels.get("cherry") == 1


# --- Explore: wording and settings ---------------------------------------------------------------------------------
def test_explore_shows_only_the_chosen_methods_settings(app_env):
    at = _app().run()
    at.switch_page("app_pages/explore.py").run()
    sliders = lambda: {s.key for s in at.slider}  # noqa: E731
    assert sliders() == {"explore_nn", "explore_min_dist"}  # UMAP by default
    at.session_state["explore_nn"] = 30  # as a submitted form leaves it
    at.run()
    at.radio(key="explore_method").set_value("t-SNE").run()
    assert sliders() == {"explore_perplexity"}
    at.radio(key="explore_method").set_value("PCA").run()
    assert sliders() == set()
    at.radio(key="explore_method").set_value("UMAP").run()
    assert at.slider(key="explore_nn").value == 30  # kept while it was not shown
    assert not at.exception, at.exception


def test_explore_says_one_point_and_t_sne(app_env):
    at = _app().run()
    at.switch_page("app_pages/explore.py").run()
    at.radio(key="explore_method").set_value("PCA").run()
    at.button[0].click().run()
    at.session_state["explore_map"] = {"selection": {"points": [{"curve_number": 0, "point_index": 0}],
                                                     "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert [h.value for h in at.subheader if h.value.startswith("Selection")] == ["Selection: 1 point"]
    from ui.maps import method_name

    assert [method_name(m) for m in ("umap", "tsne", "pca")] == ["UMAP", "t-SNE", "PCA"]


# --- Graph: built once for every session; a click keeps the view -----------------------------------------------
def _spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_a_node_click_keeps_the_graph_and_the_users_view(app_env):
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    before = _spec(at)
    chart_id = at.get("plotly_chart")[0].proto.id
    graph = list(at.session_state["graph_cache"].values())[-1]
    at.session_state["graph_chart"] = {"selection": {"points": [{"curve_number": 1, "point_index": 0,
                                                                 "customdata": {"0": 2}}]}}
    at.run()
    assert not at.exception, at.exception
    after = _spec(at)
    assert list(at.session_state["graph_cache"].values())[-1] is graph  # not rebuilt
    assert at.session_state["graph_builds"] == 1
    # the same figure, so the same chart: Streamlit draws a changed figure as a new chart at the full view, which
    # lost the user's zoom on every click; Plotly highlights the clicked node itself
    assert after == before and after["layout"]["uirevision"] == "graph"
    assert at.get("plotly_chart")[0].proto.id == chart_id
    assert any(t.value == f"id {graph.ids[2]}" for t in at.text)  # the clicked node's details
    assert any(c.value.startswith("Its ") and "neighbour" in c.value for c in at.caption)
    # Clear: the details go, and the chart is a new one (Plotly's highlight goes with it)
    [b for b in at.button if b.label == "Clear the selection"][0].click().run()
    assert not at.exception, at.exception
    assert not any(t.value.startswith("id ") for t in at.text)
    assert at.get("plotly_chart")[0].proto.id != chart_id


def test_a_new_session_draws_the_same_graph_without_building_it(app_env):
    first = _app().run()
    first.switch_page("app_pages/graph.py").run()
    first.button[0].click().run()
    assert first.session_state["graph_builds"] == 1
    second = _app().run()
    second.switch_page("app_pages/graph.py").run()
    second.button[0].click().run()
    assert not second.exception, second.exception
    assert "graph_builds" not in second.session_state  # served from the server's graphs
    assert list(second.session_state["graph_cache"].values())[-1] is \
        list(first.session_state["graph_cache"].values())[-1]


def test_graph_figure_keeps_nodes_and_uirevision_when_a_node_is_selected():
    rng = np.random.default_rng(0)
    n = 30
    graph = build_graph(list(range(n)), [{"label": "ab"[i % 2], "file_name": f"{i}.png"} for i in range(n)],
                        rng.random((n, 8)).astype(np.float32), "label", k=3)
    plain, clicked = graph_figure(graph), graph_figure(graph, selected=4)
    markers = lambda fig: sum(len(t.x) for t in fig.data if t.customdata is not None)  # noqa: E731
    assert markers(plain) == markers(clicked) == n
    assert plain.layout.uirevision == clicked.layout.uirevision


def test_force_layout_puts_neighbours_closer_than_strangers():
    x = unit_rows(400, 16, seed=3)
    x[:200] += 2.0  # two groups
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    edges, sim = knn_edges(knn_graph(x, 5, method="exact"), 5)
    pos = force_layout(400, edges, sim)
    assert pos.dtype == np.float32 and np.isfinite(pos).all()
    joined = np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1).mean()
    pairs = np.random.default_rng(0).integers(0, 400, size=(2000, 2))
    anyone = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1).mean()
    assert joined < 0.5 * anyone
    assert np.array_equal(pos, force_layout(400, edges, sim))  # seeded: the same layout every time


# --- Search: no model load to open the page --------------------------------------------------------------------
def test_search_page_opens_without_loading_the_model(tmp_path, monkeypatch):
    path = tmp_path / "qdrant"
    with open_store(path=str(path)) as store:
        store.create_collection("pics", {"effnet-lite0": 8})
        store.upsert("pics", list(range(1, 6)), {"effnet-lite0": unit_rows(5, 8)},
                     [{"label": "a", "file_name": f"{i}.png"} for i in range(5)])
    monkeypatch.setenv("ATLAS_STORE_PATH", str(path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    import core.models

    loads = []
    monkeypatch.setattr(core.models, "load", lambda *a, **k: loads.append(a) or pytest.fail("model loaded"))
    at = _app().run()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception, at.exception
    assert any("no text encoder" in i.value for i in at.info)
    assert loads == []


# --- thumbnails and galleries --------------------------------------------------------------------------------------
def test_thumbnails_are_made_once_and_a_gallery_row_is_one_element(app_env, monkeypatch):
    import core.thumbnails

    made = []
    real = core.thumbnails.thumbnail
    monkeypatch.setattr(core.thumbnails, "thumbnail", lambda *a, **k: made.append(1) or real(*a, **k))
    ui.common._thumbs.clear()
    at = _app().run()
    assert not at.exception, at.exception
    first = len(made)
    assert first == 9  # every sample on the Collections page: 4 (of 5) + 3 + 2
    at.run()
    assert len(made) == first  # the second run draws them from memory
    # one image element per label row (up to 8 thumbnails), captions as escaped Markdown
    images = at.get("image")
    assert [len(el.value) for el in images] == [4, 3, 2]
    assert "\\*\\*kiwi\\*\\* \\<img src=x\\>" in " ".join(c for el in images for c in el.captions)


# --- the warm-up -------------------------------------------------------------------------------------------------
def test_warm_up_imports_once_and_freezes_the_heap(monkeypatch):
    from ui import warm

    monkeypatch.setattr(warm, "done", __import__("threading").Event())
    monkeypatch.setattr(warm, "_thread", None)
    monkeypatch.setattr(warm, "failed", [])
    gc.unfreeze()
    try:
        assert warm.start(("json", "no_such_module_here"))
        assert not warm.start()  # once per process
        assert warm.done.wait(60)
        assert warm.failed == ["no_such_module_here"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_launcher_warms_up_then_runs_the_app_without_the_file_watcher(monkeypatch):
    import streamlit.web.cli

    from ui import serve, warm

    seen = {}
    monkeypatch.setattr(warm, "warm", lambda: seen.setdefault("warmed", True))
    monkeypatch.setattr(streamlit.web.cli, "main", lambda: seen.setdefault("argv", list(serve.sys.argv)) and 0)
    monkeypatch.setattr(serve.sys, "argv", ["serve"])
    assert serve.main(["--server.port", "8600"]) == 0
    assert seen["warmed"]
    assert seen["argv"] == ["streamlit", "run", str(ROOT / "app.py"), "--server.port", "8600",
                            "--server.fileWatcherType", "none"]
    seen.clear()
    serve.main(["--server.fileWatcherType", "auto"])
    assert seen["argv"][-2:] == ["--server.fileWatcherType", "auto"]


def test_search_map_is_made_once_per_result(app_env, monkeypatch):
    import core.maps

    at = _app().run()
    at.switch_page("app_pages/explore.py").run()
    at.radio(key="explore_method").set_value("PCA").run()
    at.button[0].click().run()  # a map to show the results on
    calls = []
    real = core.maps.compute_map
    monkeypatch.setattr(core.maps, "compute_map", lambda *a, **k: calls.append(k.get("cached_only")) or real(*a, **k))
    at.switch_page("app_pages/search.py").run()
    point = str(at.session_state["explore_view"][1].points.ids[0])
    at.text_input(key="search_point").set_value(point).run()
    [b for b in at.button if b.label == "More like this"][0].click().run()
    assert not at.exception, at.exception
    assert calls == [True] and len(at.get("plotly_chart")) == 1
    at.number_input(key="search_k").set_value(5).run()  # another rerun of the page, the same result
    assert calls == [True] and len(at.get("plotly_chart")) == 1
