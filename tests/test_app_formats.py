"""Data in and out through the app (issue 16): the Ingest page reads a manifest of real images with the real offline
model; the export panel (ui/export.py, rendered alone by tests/export_panel_app.py) downloads the current labels,
writes server folders only under the allowed roots and for admins, and applies a Label Studio review with Undo."""
import io
import json

import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core import auth
from core import labels as label_ops
from core.ingest import point_id
from tests.conftest import ROOT, shown
from tests.fakes import write_image
from ui.common import get_store

PANEL = str(ROOT / "tests" / "export_panel_app.py")


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)


def _panel(secrets: dict | None = None, **state) -> AppTest:
    at = AppTest.from_file(PANEL, default_timeout=120)
    if secrets:
        at.secrets.update(secrets)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


@pytest.fixture
def deferred(monkeypatch):
    """The callables the download buttons register ({file name: callable}): what a click would download."""
    seen: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        seen[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return seen


# --- Ingest page: a manifest ----------------------------------------------------------------------------------
def _manifest(tmp_path):
    data = tmp_path / "pets"
    rows = []
    colors = {"cat": [(200, 40, 40), (210, 60, 30), (190, 30, 50)], "dog": [(30, 40, 200), (40, 60, 220)]}
    for breed, cs in colors.items():
        for i, c in enumerate(cs):
            write_image(data / "img" / f"{breed}{i}.jpg", c, size=(64, 64))
            rows.append({"file": f"img/{breed}{i}.jpg", "breed": breed, "photographer": f"p{i}",
                         "split": "train" if i else "test"})
    rows.append({"file": "img/missing.jpg", "breed": "cat", "photographer": "p9", "split": "train"})
    pd.DataFrame(rows).to_csv(data / "list.csv", index=False)
    return data / "list.csv"


def test_ingest_page_ingests_a_manifest_with_its_labels_and_columns(app_env):
    manifest = _manifest(app_env)
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(manifest)).run()
    assert not at.exception, at.exception
    path_pick = at.selectbox(key=f"ingest_path_column::{manifest}")
    label_pick = at.selectbox(key=f"ingest_label_column::{manifest}")
    assert path_pick.options == ["file", "breed", "photographer", "split"]  # from the file's header
    assert path_pick.value == "file"  # detected
    assert label_pick.value is None  # 'breed' is not a name Image Atlas guesses: the user picks it
    at.text_input(key="ingest_collection").set_value("pets")
    at.selectbox(key="ingest_model").set_value("effnet-lite0")
    [b for b in at.button if b.label == "Ingest"][0].click().run()  # without a label column: the page says what to do
    assert any("Choose the label column above" in e.value for e in at.error), [e.value for e in at.error]
    assert not any("--label-column" in e.value for e in at.error)  # no command-line advice on a page
    assert "pets" not in at.sidebar.selectbox(key="collection").options
    at.selectbox(key=f"ingest_label_column::{manifest}").set_value("breed")
    [b for b in at.button if b.label == "Ingest"][0].click().run()
    assert not at.exception, at.exception
    assert any("pets: 5 added" in shown(s.value) for s in at.success), [s.value for s in at.success]
    texts = [t.value for t in at.text]
    assert any("labels from column 'breed'" in t for t in texts), texts  # the scan's notes
    [skipped] = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert list(skipped["path"]) == ["img/missing.jpg"] and "row 7" in skipped["reason"][0]
    assert "pets" in at.sidebar.selectbox(key="collection").options

    store = get_store("", "", str(app_env / "qdrant"))
    pts = store.scroll("pets", with_vectors=False)
    by_path = {p["path"]: p for p in pts.payloads}
    assert {k: p["label"] for k, p in by_path.items()} == {
        "img/cat0.jpg": "cat", "img/cat1.jpg": "cat", "img/cat2.jpg": "cat", "img/dog0.jpg": "dog",
        "img/dog1.jpg": "dog"}
    assert by_path["img/dog1.jpg"]["photographer"] == "p1" and by_path["img/dog0.jpg"]["split"] == "test"
    assert store.collection_info("pets").vector("effnet-lite0").size == 1280


def test_ingest_page_refuses_a_manifest_outside_the_allowed_roots_before_reading_it(app_env, monkeypatch):
    _manifest(app_env)
    (app_env / "allowed").mkdir()
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(app_env / "allowed"))
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(app_env / "allowed" / ".." / "pets" / "list.csv")).run()
    assert not at.exception, at.exception
    assert any("outside the allowed folders" in shown(e.value) for e in at.error)
    assert not [s for s in at.selectbox if str(s.key).startswith("ingest_path_column")]  # its header was not read
    at.text_input(key="ingest_collection").set_value("escaped")
    [b for b in at.button if b.label == "Ingest"][0].click().run()
    assert "escaped" not in [c.name for c in get_store("", "", str(app_env / "qdrant")).list_collections()]


# --- the export panel -----------------------------------------------------------------------------------------
def _ids(app_env):
    store = get_store("", "", str(app_env / "qdrant"))
    return store, point_id("apple/0.png"), point_id("banana/1.png")


def test_manifest_download_holds_the_labels_at_click_time(app_env, deferred):
    store, apple0, banana1 = _ids(app_env)
    label_ops.relabel(store, "fruits", [apple0], "banana", by="tester")
    at = _panel()
    assert not at.exception, at.exception
    assert {b.label for b in at.download_button} == {"Manifest (CSV)", "Manifest (Parquet)",
                                                     "Label Studio tasks (JSON)", "Label Studio config (XML)"}
    label_ops.relabel(store, "fruits", [banana1], "apple", by="tester")  # after the page was drawn
    table = pd.read_csv(io.BytesIO(deferred["fruits.csv"]()), dtype=str)
    assert len(table) == 10
    rows = table.set_index("id")
    assert (rows.loc[apple0, "label"], rows.loc[apple0, "label_original"]) == ("banana", "apple")
    assert (rows.loc[banana1, "label"], rows.loc[banana1, "label_original"]) == ("apple", "banana")
    assert rows.loc[point_id("apple/1.png"), "label"] == "apple"
    parquet = pd.read_parquet(io.BytesIO(deferred["fruits.parquet"]()))
    assert dict(zip(parquet["id"], parquet["label"]))[apple0] == "banana"


def test_selection_export_holds_only_the_selected_points(app_env, deferred):
    _, apple0, banana1 = _ids(app_env)
    at = _panel(export_test_ids=[apple0, banana1])
    assert not at.exception, at.exception
    assert any("2 points" in c.value for c in at.caption)
    table = pd.read_csv(io.BytesIO(deferred["fruits-selection.csv"]()), dtype=str)
    assert sorted(table["id"]) == sorted([apple0, banana1])
    tasks = json.loads(deferred["fruits-selection-labelstudio.json"]())
    assert sorted(t["data"]["atlas_id"] for t in tasks) == sorted([apple0, banana1])
    config = deferred["fruits-selection-labelstudio.xml"]().decode()
    assert '<Choice value="banana"/>' in config and "kiwi" in config  # every label of the collection to choose from

    at = _panel(export_test_ids=[])
    assert not at.download_button and any("Select points first" in c.value for c in at.caption)


def test_labelstudio_review_relabels_with_history_and_undo_restores(app_env, deferred):
    store, apple0, banana1 = _ids(app_env)
    at = _panel()
    tasks = json.loads(deferred["fruits-labelstudio.json"]())
    by_id = {t["data"]["atlas_id"]: t for t in tasks}
    choice = lambda label: [{"from_name": "choice", "to_name": "image", "type": "choices",  # noqa: E731
                             "value": {"choices": [label]}}]
    by_id[apple0]["annotations"] = [{"id": 1, "completed_by": {"email": "ann@example.org"}, "result": choice("banana"),
                                     "updated_at": "2026-01-02T10:00:00Z"}]
    by_id[banana1]["annotations"] = [{"id": 2, "completed_by": {"email": "bob@example.org"},
                                      "result": choice("banana")}]  # the same label: a confirmation
    export = json.dumps([by_id[apple0], by_id[banana1]]).encode()
    at.file_uploader(key="exp_ls_upload_0").set_value(("project-1.json", export, "application/json")).run()
    at.button(key="exp_ls_apply").click().run()
    assert not at.exception, at.exception
    assert any("1 relabel, 1 confirmation" in shown(s.value) for s in at.success), [s.value for s in at.success]
    p_apple, p_banana = store.retrieve("fruits", [apple0, banana1]).payloads
    assert p_apple["label"] == "banana" and p_apple["label_history"][-1]["by"] == "ann@example.org"
    assert p_banana["label"] == "banana" and p_banana.get("reviewed") and \
        p_banana["label_history"][-1]["by"] == "bob@example.org"
    assert [f.key for f in at.file_uploader] == ["exp_ls_upload_1"]  # emptied: the same file is not applied twice
    assert len(at.session_state["audit_changes"]) == 2  # listed on the Audit page's Changes tab

    at.button(key="exp_ls_undo").click().run()
    assert not at.exception, at.exception
    assert any("Undid the review: 2 changes" in shown(s.value) for s in at.success)
    p_apple, p_banana = store.retrieve("fruits", [apple0, banana1]).payloads
    assert p_apple["label"] == "apple" and p_apple["label_history"][-1]["action"] == "undo relabel"
    assert not p_banana.get("reviewed")
    assert at.session_state["audit_changes"] == []
    assert not [b for b in at.button if b.key == "exp_ls_undo"]


def test_server_folder_export_only_under_the_allowed_roots(app_env, monkeypatch):
    store, apple0, _ = _ids(app_env)
    label_ops.relabel(store, "fruits", [apple0], "banana", by="tester")
    allowed = app_env / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", f"{app_env / 'fruit'},{allowed}")
    at = _panel()
    outside = app_env / "elsewhere"
    at.text_input(key="exp_out").set_value(str(allowed / ".." / "elsewhere"))
    at.button(key="exp_write").click().run()
    assert not at.exception, at.exception
    assert any("outside the allowed folders" in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert not outside.exists()

    at.text_input(key="exp_out").set_value(str(allowed / "tree"))
    at.radio(key="exp_format").set_value("ImageFolder (copies)")
    at.button(key="exp_write").click().run()
    assert not at.exception, at.exception
    assert any("10 images exported as imagefolder" in shown(s.value) for s in at.success), [s.value for s in at.error]
    tree = allowed / "tree"
    assert (tree / "banana" / "0.png").is_file() and not (tree / "banana" / "0.png").is_symlink()
    assert not (tree / "apple" / "0.png").exists()  # the corrected label, not the folder it came from
    assert sorted(p.name for p in (tree / "apple").iterdir()) == ["1.png", "2.png", "3.png", "4.png"]


PASSWORDS = {"vera": "viewer pass", "ed": "editor pass"}
USERS = {"vera": {"password_hash": auth.hash_password(PASSWORDS["vera"]), "role": "viewer"},
         "ed": {"password_hash": auth.hash_password(PASSWORDS["ed"]), "role": "editor"}}


@pytest.mark.parametrize("user,writes,reviews", [("vera", False, False), ("ed", False, True)])
def test_panel_offers_writes_by_role(app_env, user, writes, reviews):
    at = _panel({"atlas_users": USERS})
    at.text_input(key="login_name").input(user)
    at.text_input(key="login_password").input(PASSWORDS[user])
    [b for b in at.button if b.label == "Log in"][0].click().run()
    assert not at.exception, at.exception
    assert len(at.download_button) == 4  # downloads for everyone who can see the collection
    keys = {b.key for b in at.button}
    assert ("exp_write" in keys) is writes
    assert ("exp_ls_apply" in keys) is reviews


def test_audit_report_adds_scores_offers_suspects_only_and_writes_them_into_the_payload(colors_env, deferred):
    from core import api

    store = get_store("", "", str(colors_env))
    report = api.audit("colors", store=store, checks=["label"], threshold=0.3)
    flagged = {str(i) for i in report.suspects("label")["id"]}
    assert point_id("blue/odd.png") in flagged and len(flagged) < 39
    at = _panel(export_test_audit=report)
    assert not at.exception, at.exception
    every = pd.read_csv(io.BytesIO(deferred["colors.csv"]()), dtype=str)
    assert len(every) == 39 and {"suggested_label", "label_score"} <= set(every.columns)
    assert every.set_index("id").loc[point_id("blue/odd.png"), "suggested_label"] == "red"

    at.radio(key="exp_scope").set_value("Suspects only").run()
    assert any(f"{len(flagged)} point" in c.value for c in at.caption)
    suspects = pd.read_csv(io.BytesIO(deferred["colors-suspects.csv"]()), dtype=str)
    assert set(suspects["id"]) == flagged
    tasks = json.loads(deferred["colors-suspects-labelstudio.json"]())
    odd = next(t for t in tasks if t["data"]["atlas_id"] == point_id("blue/odd.png"))
    assert odd["predictions"][0]["result"][0]["value"]["choices"] == ["red"]

    assert "label_score" not in store.retrieve("colors", [point_id("blue/odd.png")]).payloads[0]
    at.button(key="exp_scores").click().run()
    assert not at.exception, at.exception
    assert any("39 points" in shown(s.value) for s in at.success), [s.value for s in at.success]
    payload = store.retrieve("colors", [point_id("blue/odd.png")]).payloads[0]
    assert payload["is_label_issue"] is True and payload["suggested_label"] == "red" and "audit_at" in payload
    assert payload["label"] == "blue"  # labels are not touched


def test_ingest_page_ingests_a_hugging_face_dataset(app_env):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

    def png(color):
        out = io.BytesIO()
        from PIL import Image as PILImage

        PILImage.new("RGB", (32, 32), color).save(out, "PNG")
        return out.getvalue()

    features = Features({"img": Image(), "fine": ClassLabel(names=["apple", "banana"]), "source": Value("string")})
    splits = {split: Dataset.from_dict({"img": [{"bytes": png((60 * i + 20 * lab, 90, 30)), "path": None}
                                                for i, lab in enumerate(labels)],
                                        "fine": labels, "source": [f"s{i}" for i in range(len(labels))]},
                                       features=features)
              for split, labels in {"train": [0, 0, 1], "test": [1, -1]}.items()}
    DatasetDict(splits).save_to_disk(str(app_env / "hf"))
    at = _app().run()
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(app_env / "hf")).run()
    assert any("Hugging Face dataset" in c.value for c in at.caption)
    at.text_input(key="ingest_collection").set_value("hf")
    at.selectbox(key="ingest_model").set_value("effnet-lite0")
    [b for b in at.button if b.label == "Ingest"][0].click().run()
    assert not at.exception, at.exception
    assert any("hf: 5 added" in shown(s.value) for s in at.success), [s.value for s in at.success]
    store = get_store("", "", str(app_env / "qdrant"))
    assert store.count_by("hf", "label") == {"apple": 2, "banana": 2, "unlabeled": 1}
    assert store.count_by("hf", "split") == {"train": 3, "test": 2}


def test_a_panel_drawn_before_read_only_cannot_write_after(app_env, monkeypatch, deferred):
    store, apple0, _ = _ids(app_env)
    at = _panel()  # local single-user mode: admin
    tasks = json.loads(deferred["fruits-labelstudio.json"]())
    task = next(t for t in tasks if t["data"]["atlas_id"] == apple0)
    task["annotations"] = [{"id": 1, "result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                                 "value": {"choices": ["banana"]}}]}]
    at.file_uploader(key="exp_ls_upload_0").set_value(("review.json", json.dumps([task]).encode(), "application/json"))
    at.text_input(key="exp_out").set_value(str(app_env / "tree"))
    monkeypatch.setenv("ATLAS_READ_ONLY", "on")
    at.button(key="exp_ls_apply").click().run()
    assert any("Not allowed" in e.value for e in at.error)
    assert store.retrieve("fruits", [apple0]).payloads[0]["label"] == "apple"
    monkeypatch.delenv("ATLAS_READ_ONLY")
    at = _panel()
    at.text_input(key="exp_out").set_value(str(app_env / "tree"))
    monkeypatch.setenv("ATLAS_READ_ONLY", "on")
    at.button(key="exp_write").click().run()
    assert any("Not allowed" in e.value for e in at.error)
    assert not (app_env / "tree").exists()
