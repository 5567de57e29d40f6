"""AppTest over the Audit page's actions: each user action writes exactly once, whatever the reruns."""
import pytest
from streamlit.testing.v1 import AppTest

from core.ingest import ingest, point_id
from core.labels import relabel
from core.store import open_store
from tests.conftest import ROOT, shown
from tests.fakes import ColorEmbedder, write_image
from ui.common import get_store


def _audit(timeout: int = 60) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout).run()
    at.switch_page("app_pages/audit.py").run()
    at.radio(key="audit_operating_point").set_value("Fixed threshold").run()
    at.slider(key="audit_threshold").set_value(0.2)  # 39 toy points give soft probabilities
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    return at


def _history_entries(store_path) -> int:
    store = get_store("", "", str(store_path))  # the app's own handle: the folder admits one opener
    return sum(len(p.get("label_history") or []) for p in store.scroll("colors", with_vectors=False).payloads)


def _row(at: AppTest, file: str):
    """The audit table's row of a file (its index keys the card's widgets)."""
    table = at.session_state["audit_report"][1].table
    return table[table["id"] == point_id(file)].iloc[0]


def test_outlier_relabel_writes_once_over_many_reruns(colors_env):
    at = _audit()
    row = _row(at, "blue/dark.png")
    assert row.is_outlier_issue
    key = f"audit_out_{row.name}"
    at.selectbox(key=f"{key}_other").set_value("green").run()  # choosing a label is not yet an action
    for _ in range(3):
        at.run()
    assert not at.exception, at.exception
    assert _history_entries(colors_env) == 0
    at.button(key=f"{key}_relabel").click().run()  # the one user action
    for _ in range(3):
        at.run()
    assert not at.exception, at.exception
    assert _history_entries(colors_env) == 1
    store = get_store("", "", str(colors_env))
    assert store.retrieve("colors", [row.id]).payloads[0]["label"] == "green"
    assert f"{key}_other" not in [s.key for s in at.selectbox]  # the changed point left the Outliers list
    assert not any(row.id in set(d.value["id"]) for d in at.dataframe if "outlier_score" in d.value.columns)


def test_outlier_cards_show_the_outlier_score_and_keep_writes_once(colors_env):
    at = _audit()
    dark = _row(at, "blue/dark.png")
    assert f"audit_out_{dark.name}_accept" not in [b.key for b in at.button]  # no suggestion to accept here
    assert any(t.value.startswith(f"outlier score {dark.outlier_score:.3f}") for t in at.text)
    at.button(key=f"audit_out_{dark.name}_keep").click().run()
    at.run()
    assert _history_entries(colors_env) == 1  # confirmed once
    assert f"audit_out_{dark.name}_keep" not in [b.key for b in at.button]
    labels = [b.label for b in at.button if b.label.startswith("Accept '")]
    rows = at.session_state["audit_report"][1].table
    for b in at.button:
        if b.key and b.key.endswith("_accept") and b.key.startswith("audit_pt_"):
            r = rows.loc[int(b.key.split("_")[2])]
            assert r.suggested_label != r.label, labels  # never an accept of the label the point has


def test_bulk_accept_is_one_undo_step(colors_env):
    at = _audit()
    suspects = at.session_state["audit_report"][1].suspects("label")
    n = len(suspects)
    assert n >= 2, "the toy set should give a few suspects at this threshold"
    at.session_state["audit_table_0"] = {"selection": {"rows": list(range(n)), "columns": []}}
    at.run()
    [accept] = [b for b in at.button if b.key == "audit_bulk_accept"]
    accept.click().run()
    at.run()
    assert not at.exception, at.exception
    changed = len(at.session_state["audit_changes"])
    assert changed == _history_entries(colors_env) >= 2
    assert len({c.batch for c in at.session_state["audit_changes"]}) == 1
    log = [d.value for d in at.dataframe if "file_name" in d.value.columns and "batch" in d.value.columns]
    assert log and "id" not in log[0].columns and set(log[0]["file_name"]) <= {f"{i}.png" for i in range(12)} | {
        "odd.png", "greenish.png", "dark.png"}
    at.button(key="audit_undo").click().run()
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["audit_changes"] == []
    assert _history_entries(colors_env) == 2 * changed  # each change and its undo, nothing more
    store = get_store("", "", str(colors_env))
    now = {p["file_name"]: p["label"] for p in store.scroll("colors", with_vectors=False).payloads}
    assert now["odd.png"] == "blue"


def test_undo_after_a_later_change_elsewhere_is_refused_with_a_message(colors_env):
    at = _audit()
    odd = _row(at, "blue/odd.png")
    at.button(key=f"audit_pt_{odd.name}_accept").click().run()
    store = get_store("", "", str(colors_env))
    assert store.retrieve("colors", [odd.id]).payloads[0]["label"] == "red"
    relabel(store, "colors", [odd.id], "green", by="cli")  # e.g. the CLI, or another tab
    at.button(key="audit_undo").click().run()
    assert not at.exception, at.exception
    assert any("changed again" in e.value and "cli" in e.value for e in at.error), [e.value for e in at.error]
    assert store.retrieve("colors", [odd.id]).payloads[0]["label"] == "green"
    assert len(at.session_state["audit_changes"]) == 1  # still listed: it can be undone once 'green' is


@pytest.mark.parametrize("n", [1, 2])
def test_a_tiny_collection_gets_a_message_not_a_traceback(tmp_path, monkeypatch, n):
    folder = tmp_path / "tiny"
    for i in range(n):
        write_image(folder / "a" / f"{i}.png", (200, 10 * i, 10))
    with open_store(path=str(tmp_path / "qdrant")) as store:
        ingest(store, folder, "tiny", ColorEmbedder(), cache_dir=tmp_path / "cache")
    monkeypatch.setenv("ATLAS_STORE_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/audit.py").run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    infos = [i.value for i in at.info]
    assert any(f"Only {n} points" in i for i in infos), infos
    assert n > 1 or any("too few points to judge outliers" in i for i in infos), infos


def test_bulk_set_to_a_new_label_needs_a_tick_and_leaves_the_page_whole(colors_env):
    at = _audit()
    at.session_state["audit_table_0"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    at.text_input(key="audit_bulk_label").set_value("  ").run()
    assert at.button(key="audit_bulk_set").disabled  # blank: nothing to set
    at.text_input(key="audit_bulk_label").set_value(" purple ").run()
    assert at.button(key="audit_bulk_set").disabled
    assert "audit_rerun" in [b.key for b in at.button]  # the tabs after it still draw
    at.checkbox(key="audit_bulk_new").check().run()
    at.button(key="audit_bulk_set").click().run()
    at.run()
    assert not at.exception, at.exception
    [change] = at.session_state["audit_changes"]
    assert change.new_label == "purple" and _history_entries(colors_env) == 1


# --- operating points, the calibrated statement and the review loop ----------------------------------------------
AMBIGUOUS = {"blue/odd.png": (225, 25, 35), "red/greenish.png": (35, 205, 45), "blue/dark.png": (0, 0, 0),
             "red/purple1.png": (130, 30, 130), "blue/purple2.png": (140, 35, 120), "green/teal.png": (30, 130, 130),
             "blue/teal2.png": (30, 140, 120), "red/olive.png": (130, 130, 30), "green/olive2.png": (140, 120, 30)}


@pytest.fixture
def ambiguous_env(tmp_path, monkeypatch):
    """Two blatant mislabels and six images halfway between two colours, filed under one of them: how many of
    the in-between ones to flag is what an operating point decides."""
    from tests.conftest import make_colors_env

    return make_colors_env(tmp_path, monkeypatch, AMBIGUOUS)


def _run_with(at: AppTest, choice: str) -> AppTest:
    at.radio(key="audit_operating_point").set_value(choice).run()
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    return at


def _flagged(at: AppTest) -> int:
    return int(at.session_state["audit_report"][1].table["is_label_issue"].sum())


def test_the_operating_point_decides_how_many_are_flagged_and_says_what_to_expect(ambiguous_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/audit.py").run()
    assert "audit_threshold" not in [s.key for s in at.slider]  # the fixed threshold only when chosen
    assert "audit_target_precision" not in [s.key for s in at.slider]
    precise = _flagged(_run_with(at, "Precision-first"))
    request = at.session_state["audit_request"]
    assert (request["threshold"], request["operating_point"], request["similarity"]) == (None, "precision", None)
    infos = [shown(i.value) for i in at.info]
    sentence = at.session_state["audit_report"][1].results["label"].summary["calibration"]["sentence"]
    assert sentence in infos and f"Of the {precise} flagged" in sentence, infos
    recall = _flagged(_run_with(at, "Recall-first"))
    assert 2 <= precise < recall, (precise, recall)  # both blatant errors; recall-first adds in-between images
    assert at.session_state["audit_request"]["operating_point"] == "recall"
    assert any(f"Of the {recall} flagged" in i for i in (shown(i.value) for i in at.info))
    # a target precision: its slider appears only then, and its value reaches the audit
    at.radio(key="audit_operating_point").set_value("Target precision").run()
    at.slider(key="audit_target_precision").set_value(0.6)
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    assert at.session_state["audit_request"]["operating_point"] == 0.6
    assert precise <= _flagged(at) <= recall
    # a fixed threshold: uncalibrated, and the page says so
    at.radio(key="audit_operating_point").set_value("Fixed threshold").run()
    at.slider(key="audit_threshold").set_value(0.3)
    at.button(key="audit_run").click().run()
    assert at.session_state["audit_request"]["threshold"] == 0.3
    assert "calibration" not in at.session_state["audit_report"][1].results["label"].summary
    assert any("uncalibrated" in c.value for c in at.caption)


def test_a_fixed_near_duplicate_cosine_is_passed_only_when_chosen(colors_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/audit.py").run()
    assert "audit_similarity" not in [s.key for s in at.slider]
    at.button(key="audit_run").click().run()
    summary = at.session_state["audit_report"][1].results["duplicate"].summary
    assert summary["rule"] == "adaptive" and at.session_state["audit_request"]["similarity"] is None
    assert any("adaptive rule" in c.value for c in at.caption)
    at.radio(key="audit_duplicate_rule").set_value("Fixed cosine").run()
    at.slider(key="audit_similarity").set_value(0.95)
    at.button(key="audit_run").click().run()
    assert not at.exception, at.exception
    summary = at.session_state["audit_report"][1].results["duplicate"].summary
    assert summary["rule"] == "fixed" and summary["similarity"] == 0.95


def _reranked(at: AppTest):
    """Wait for the background re-rank a decision started, then draw: the page swaps the new ranking in."""
    pending = at.session_state["audit_rerank"]
    assert pending["job"].wait(60)
    at.run()
    assert not at.exception, at.exception
    return at.session_state["audit_report"][1]


def test_a_decision_re_ranks_the_rest_in_the_background(ambiguous_env):
    from core.audit import computed

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/audit.py").run()
    _run_with(at, "Recall-first")
    assert not any("Re-ranked using" in c.value for c in at.caption)
    before = at.session_state["audit_report"][1]
    first = before.suspects("label").iloc[0]
    flagged = _flagged(at)
    at.button(key=f"audit_pt_{first.name}_confirm").click().run()  # "Mark correct": the label is right
    assert not at.exception, at.exception
    # the click did not wait for the refit: the same report, the decided point gone from the list and the count
    assert at.session_state["audit_report"][1] is before
    assert "audit_rerank" in at.session_state
    assert f"audit_pt_{first.name}_confirm" not in [b.key for b in at.button]
    assert [m.value for m in at.metric if m.label == "Label issues"] == [f"{flagged - 1:,}"]
    store = get_store("", "", str(ambiguous_env))
    assert store.retrieve("colors", [first.id]).payloads[0]["label_history"][-1]["action"] == "confirm"
    after = _reranked(at)
    assert after is not before and not after.cached  # refitted with the decision
    row = after.table[after.table["id"] == first.id].iloc[0]
    assert bool(row.trusted) and not row.is_label_issue
    assert after.results["label"].summary["trusted"] == 1
    assert "audit_rerank" not in at.session_state
    assert any("Re-ranked using 1 of your decisions" in c.value for c in at.caption), [c.value for c in at.caption]
    # Run audit with nothing changed since: the report from memory, no audit computed
    runs = computed["audits"]
    at.button(key="audit_run").click().run()
    assert at.session_state["audit_report"][1].cached and computed["audits"] == runs
    # with re-ranking after each decision off, the report waits for the user's re-run
    at.toggle(key="audit_auto_rerank").set_value(False).run()
    current = at.session_state["audit_report"][1]
    second = current.suspects("label").iloc[0]
    at.button(key=f"audit_pt_{second.name}_confirm").click().run()
    assert at.session_state["audit_report"][1] is current and "audit_rerank" not in at.session_state
    at.button(key="audit_rerun").click().run()
    assert _reranked(at).results["label"].summary["trusted"] == 2
    assert any("Re-ranked using 2 of your decisions" in c.value for c in at.caption)


def test_accept_writes_at_once_and_undo_puts_it_back_without_a_synchronous_audit(colors_env):
    from core.audit import computed

    at = _audit()
    at.session_state["audit_prefetch"]["job"].wait(60)  # the audit started when the page opened
    odd = _row(at, "blue/odd.png")
    runs = computed["audits"]
    at.button(key=f"audit_pt_{odd.name}_accept").click().run()
    assert not at.exception, at.exception
    store = get_store("", "", str(colors_env))
    payload = store.retrieve("colors", [odd.id]).payloads[0]
    assert payload["label"] == "red" and payload["label_original"] == "blue"
    assert payload["label_history"][-1]["action"] == "relabel"
    assert f"audit_pt_{odd.name}_accept" not in [b.key for b in at.button]  # the row left the list
    at.session_state["audit_rerank"]["job"].wait(60)
    at.button(key="audit_undo").click().run()
    assert not at.exception, at.exception
    assert store.retrieve("colors", [odd.id]).payloads[0]["label"] == "blue"
    assert at.session_state["audit_changes"] == []
    assert f"audit_pt_{odd.name}_accept" in [b.key for b in at.button]  # back in the list
    _reranked(at)
    # one refit per decision (the accept's, the undo's), each on a background thread; none on the click's path
    assert computed["audits"] - runs <= 2


def test_calibration_helpers_draw_per_class_figures_and_the_curve():
    from ui.audit import calibration_figure, calibration_table, duplicate_caption

    calibration = {"per_class": {"cat": {"flagged": 4, "precision": 0.75, "recall": 0.6, "error_rate": 0.05,
                                         "planted": 25},
                                 "<b>dog</b>": {"flagged": 1, "precision": 1.0, "recall": 0.2, "error_rate": 0.01,
                                                "planted": 21}}}
    table = calibration_table(calibration)
    # a dataframe: labels are shown as text, never rendered
    assert list(table["label"]) == ["cat", "<b>dog</b>"] and list(table["flagged"]) == [4, 1]
    assert calibration_table({}).empty and "expected precision" in calibration_table({}).columns
    curve = [{"threshold": t, "flagged": int(100 * t), "precision": 1 - t, "recall": t, "f1": 0.5} for t in
             (0.0, 0.1, 0.2, 0.3)]
    fig = calibration_figure(curve, 0.2)
    assert [t.name for t in fig.data] == ["expected precision", "expected recall"] and fig.layout.height == 240
    # thresholds on a log axis: the 0 threshold has no place there and is left out
    assert fig.layout.xaxis.type == "log" and list(fig.data[0].x) == [0.1, 0.2, 0.3]
    assert "fixed rule: cosine ≥ 0.950" in duplicate_caption({"groups": 1, "rule": "fixed", "similarity": 0.95})
    text = duplicate_caption({"groups": 2, "points_in_groups": 5, "mixed_label_groups": 1, "exact_copies": 2,
                              "rule": "adaptive", "similarity": 0.99, "ratio": 0.3})
    assert text.startswith("2 groups (5 points, 1 with mixed labels, 2 exact copies") and "ratio ≤ 0.30" in text
