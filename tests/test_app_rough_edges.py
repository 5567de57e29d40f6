"""AppTest over the rough edges of issue 14: unknown labels, the Unlabeled tab, two-click deletes, the kept tab, the
Ingest page's way to the new collection, and Search's query image, self-hit and hand-over note."""
import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from core.catalog import summarize
from core.ingest import point_id
from core.labels import relabel
from tests.conftest import ROOT, make_colors_env
from ui.common import get_store

UNLABELED = {"unlabeled/a.png": (220, 30, 30), "unlabeled/b.png": (30, 200, 40)}


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _of_type(at: AppTest, kind: str) -> list:
    return [n for n in _walk(at._tree) if getattr(n, "type", None) == kind]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_plural_and_clip():
    from ui.text import clip, plural

    assert [plural(n, "point") for n in (0, 1, 2, 1234)] == ["0 points", "1 point", "2 points", "1,234 points"]
    assert plural(1, "exact copy", "exact copies") == "1 exact copy" and plural(3, "copy", "copies") == "3 copies"
    assert clip("short") == "short" and clip("x" * 30, 10) == "x" * 9 + "…"


def test_summary_counts_unknown_labels_as_unlabeled_and_never_lists_an_empty_label(tmp_path, monkeypatch):
    store_path = make_colors_env(tmp_path, monkeypatch, UNLABELED)
    store = get_store("", "", str(store_path))
    s = summarize(store, "colors")
    assert set(s.labels) == {"red", "green", "blue"} and s.unlabeled == 2 and s.unlabeled_values == ["unlabeled"]
    assert summarize(store, "colors", unknown=[]).labels["unlabeled"] == 2  # the setting decides
    relabel(store, "colors", [point_id("unlabeled/a.png")], "red", by="t")
    relabel(store, "colors", [point_id("unlabeled/b.png")], "green", by="t")
    s = summarize(store, "colors")
    assert s.unlabeled == 0 and "unlabeled" not in s.labels and all(n > 0 for n in s.labels.values())


def test_collections_page_counts_an_unlabeled_folder_as_unlabeled(tmp_path, monkeypatch):
    make_colors_env(tmp_path, monkeypatch, UNLABELED)
    at = _app().run()
    assert not at.exception, at.exception
    assert _metrics(at)["Labels"] == "3" and _metrics(at)["Unlabeled"] == "2"
    [counts] = [d.value for d in at.dataframe if list(d.value.columns) == ["label", "points"]]
    assert dict(zip(counts["label"], counts["points"])) == {"red": 12, "green": 12, "blue": 12, "(none)": 2}
    assert any("'unlabeled'" in c.value for c in at.caption)
    assert any(t.value == "red — 12 points" for t in at.text)


def _audit(at: AppTest) -> AppTest:
    at.switch_page("app_pages/audit.py").run()
    at.radio(key="audit_operating_point").set_value("Fixed threshold").run()
    at.slider(key="audit_threshold").set_value(0.2)
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    return at


def test_unlabeled_tab_accepts_by_default_shows_images_and_stays_open(tmp_path, monkeypatch):
    store_path = make_colors_env(tmp_path, monkeypatch, UNLABELED)
    at = _audit(_app().run())
    assert _metrics(at)["Unlabeled"] == "2"
    table = at.session_state["audit_report"][1].table
    unl = table[table["label"].isna()]
    assert len(unl) == 2
    # the starting confidence accepts the suggestions the audit makes (0.90 accepted none of the demo's)
    assert at.slider(key="audit_min_conf::colors").value <= unl["suggestion_confidence"].max()
    accept = at.button(key="audit_accept_unlabeled")
    assert not accept.disabled and accept.label.startswith("Accept ") and "confident suggestion" in accept.label
    rows = [f"audit_unl_{r}_accept" for r in unl.index]
    assert all(k in [b.key for b in at.button] for k in rows)
    assert len(_of_type(at, "image")) >= 2  # each unlabeled point is shown
    # a confidence no suggestion reaches: the button is off, and the page says why
    at.slider(key="audit_min_conf::colors").set_value(1.0).run()
    assert at.button(key="audit_accept_unlabeled").disabled
    assert any("No suggestion reaches 1.00" in c.value for c in at.caption)
    # an action keeps the Unlabeled tab open
    at.session_state["audit_tabs"] = "Unlabeled"
    at.run()
    at.button(key=rows[0]).click().run()
    assert not at.exception, at.exception
    [tabs] = _of_type(at, "tab_container")
    assert tabs.proto.tab_container.default_tab_index == 4 and at.session_state["audit_tabs"] == "Unlabeled"
    store = get_store("", "", str(store_path))
    pid = table.at[unl.index[0], "id"]
    assert store.retrieve("colors", [pid]).payloads[0]["label"] == unl.at[unl.index[0], "suggested_label"]


def test_duplicates_show_file_names_and_delete_asks_first(tmp_path, monkeypatch):
    store_path = make_colors_env(tmp_path, monkeypatch, {"green/twin_a.png": (90, 90, 90),
                                                         "blue/twin_b.png": (90, 90, 90)})
    at = _audit(_app().run())
    report = at.session_state["audit_report"][1]
    assert report.results["duplicate"].extra["groups"], "the twins form a group"
    texts = [t.value for t in at.text]
    assert any("twin_a.png" in t for t in texts) and any("twin_b.png" in t for t in texts)
    table = report.table
    m = int(table.index[table["id"] == point_id("green/twin_a.png")][0])
    [key] = [b.key for b in at.button if b.key and b.key.startswith("audit_del_") and b.key.endswith(f"_{m}")]
    store = get_store("", "", str(store_path))
    at.button(key=key).click().run()  # the first click only asks
    assert not at.exception, at.exception
    assert len(store.retrieve("colors", [point_id("green/twin_a.png")]).ids) == 1
    at.button(key=f"{key}_cancel").click().run()
    assert f"{key}_sure" not in [b.key for b in at.button]
    at.button(key=key).click().run()
    at.button(key=f"{key}_sure").click().run()
    assert not at.exception, at.exception
    assert store.retrieve("colors", [point_id("green/twin_a.png")]).ids == []


def test_confusion_figure_is_big_and_leaves_empty_cells_blank():
    from ui.audit import confusion_figure

    confusion = pd.DataFrame([[0, 3], [1, 0]], index=["cat", "dog"], columns=["cat", "dog"])
    fig = confusion_figure(confusion)
    assert fig.layout.height >= 420
    assert [list(r) for r in fig.data[0].text] == [["", "3"], ["1", ""]]
    assert np.isnan(fig.data[0].z[0][0]) and fig.data[0].z[0][1] == 3


def test_default_confidence_follows_the_suggestions():
    from ui.audit import default_min_confidence

    assert default_min_confidence(pd.Series([0.61, 0.87])) == 0.6
    assert default_min_confidence(pd.Series([0.52, 0.55])) == 0.55  # none reaches 0.6: the most confident one
    assert default_min_confidence(pd.Series([0.3])) == 0.5 and default_min_confidence(pd.Series([], dtype=float)) == 0.6


def test_ingest_lists_the_new_collection_at_once_and_opens_it(app_env):
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(app_env / "fruit"))
    at.text_input(key="ingest_collection").set_value("fruits_effnet")
    at.selectbox(key="ingest_model").set_value("effnet-lite0")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "fruits_effnet" in at.sidebar.selectbox(key="collection").options  # no extra run needed
    assert any("2 collections" in s.value for s in at.sidebar.success)
    at.button(key="ingest_open").click().run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="collection").value == "fruits_effnet"
    assert at.main.title[0].value == "Collections"


def test_search_leaves_the_query_point_out_shows_the_upload_and_drops_the_hand_over_note(app_env):
    at = _app().run()
    at.switch_page("app_pages/search.py").run()
    store = get_store("", "", str(app_env / "qdrant"))
    pid = store.scroll("fruits", with_vectors=False).ids[0]
    at.session_state["search_handoff"] = {"collection": "fruits", "ids": [pid]}
    at.run()
    assert any("1 point handed over" in c.value for c in at.caption)
    # a larger selection than is handed over says so
    at.session_state["search_handoff"] = {"collection": "fruits", "ids": [pid] * 20, "selected": 103}
    at.run()
    assert any("The first 20 of 103 selected points handed over" in c.value for c in at.caption)
    at.session_state["search_handoff"] = {"collection": "fruits", "ids": [pid]}
    at.run()
    at.text_input(key="search_point").set_value(str(pid))
    at.button(key="search_by_point").click().run()
    assert not at.exception, at.exception
    assert not any("handed over" in c.value for c in at.caption)
    hits = at.session_state["search_result"][1].hits
    assert hits and pid not in [h.id for h in hits]
    at.run()
    assert not any("handed over" in c.value for c in at.caption)
    query = (app_env / "fruit" / "apple" / "2.png").read_bytes()
    at.get("file_uploader")[0].set_value(("2.png", query, "image/png")).run()
    assert not at.exception, at.exception
    assert any(getattr(i.proto, "imgs", None) and "Query image" in str(i.proto) for i in _of_type(at, "image"))


def test_unlabeled_tab_says_why_a_collection_without_labels_gets_no_suggestions(tmp_path, monkeypatch):
    from core.store import open_store
    from tests.conftest import unit_rows

    store_path = tmp_path / "qdrant"
    with open_store(path=str(store_path)) as store:  # a flat folder ingested: every point 'unlabeled'
        store.create_collection("inbox", {"m": 8})
        store.upsert("inbox", list(range(1, 6)), {"m": unit_rows(5, 8)},
                     [{"label": "unlabeled", "file_name": f"{i}.png"} for i in range(5)])
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    at = _app().run()
    at.switch_page("app_pages/audit.py").run()
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    assert _metrics(at)["Unlabeled"] == "5"
    assert any("5 points without a label, but no suggestion" in i.value for i in at.info), [i.value for i in at.info]
    assert not any(c.value.startswith("0 points without a label") for c in at.caption)
