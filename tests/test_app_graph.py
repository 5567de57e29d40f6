"""The Graph page over a real collection: a click dims and shows the node without rebuilding the graph, Expand adds
the node's neighbours to the graph, and the graph's label colours are the Explore map's."""
from streamlit.testing.v1 import AppTest

from core.colors import label_colors
from tests.conftest import ROOT


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def _graph(at):
    [graph] = list(at.session_state["graph_cache"].values())[-1:]
    return graph


def _click(at, row):
    at.session_state["graph_chart"] = {"selection": {"points": [{"curve_number": 1, "point_index": 0,
                                                                 "customdata": {"0": row}}]}}
    at.run()
    assert not at.exception, at.exception


def test_clicks_reuse_the_graph_and_expand_adds_to_it(app_env):
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    at.number_input(key="graph_sample").set_value(4)
    at.slider(key="graph_k").set_value(2)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["graph_builds"] == 1
    before = _graph(at)
    assert len(before.ids) == 4
    _click(at, 3)
    assert any(t.value == f"id {before.ids[3]}" for t in at.text)
    _click(at, 1)  # a second click, and an edge option: still the same graph
    at.radio(key="graph_edges").set_value("cross-label only").run()
    assert not at.exception, at.exception
    assert at.session_state["graph_builds"] == 1
    assert _graph(at) is before
    [b for b in at.button if b.label.startswith("Expand")][0].click().run()
    assert not at.exception, at.exception
    after = _graph(at)
    assert at.session_state["graph_builds"] == 2  # the expansion, from the cached graph
    assert after.ids[:4] == before.ids and len(after.ids) > 4  # added to the graph, not a new one
    assert at.session_state["graph_request"]["start"] == []  # still the sample it was
    assert any("expanded" in c.value for c in at.caption)


def test_graph_labels_take_the_collection_colours(app_env):
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    colors = label_colors(at.session_state["ctx"].summary.labels)
    import json
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    nodes = {t["name"]: t["marker"]["color"] for t in spec["data"] if t.get("mode") == "markers"}
    assert nodes and all(c == colors.color(name) for name, c in nodes.items() if "&" not in name and "<" not in name)
