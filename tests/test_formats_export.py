"""Export formats (issue 16) with the fast colour embedder: selections, ImageFolder safety, Label Studio tasks checked
against Label Studio's documented format and a reviewed export applied as relabels, audit scores in the payload.
The round trip with the real model is in test_formats_roundtrip.py."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from core.audit import run_audit
from core.formats.export import (ExportError, export_hf_dataset, export_imagefolder, export_manifest, select,
                                 write_audit_scores)
from core.formats.labelstudio import export_labelstudio, import_labelstudio
from core.ingest import ingest, point_id
from core.labels import LabelError, relabel, undo
from core.store import open_store
from tests.conftest import make_colors_env
from tests.fakes import ColorEmbedder, write_image


@pytest.fixture
def fruit(tmp_path):
    root = tmp_path / "fruit"
    for label, color in {"apple": (200, 20, 20), "banana": (230, 220, 40)}.items():
        for i in range(3):
            write_image(root / label / f"{i}.png", tuple(min(255, c + 6 * i) for c in color))
    s = open_store(path=str(tmp_path / "qdrant"))
    ingest(s, root, "fruits", ColorEmbedder(), cache_dir=tmp_path / "cache")
    yield s, root, tmp_path
    s.close()


def _snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_selection_by_label_or_ids_and_missing_ids_reported(fruit):
    store, root, tmp = fruit
    by_label = select(store, "fruits", labels=["banana"], cache_dir=tmp / "cache")
    assert {p["label"] for p in by_label.points.payloads} == {"banana"} and len(by_label) == 3
    assert by_label.image_root == root.resolve()  # remembered at ingest
    wanted = [point_id("apple/0.png"), point_id("banana/2.png"), "00000000-0000-0000-0000-000000000000"]
    by_ids = select(store, "fruits", ids=wanted, cache_dir=tmp / "cache")
    assert set(by_ids.points.ids) == set(wanted[:2]) and [m.path for m in by_ids.missing] == [wanted[2]]
    report = export_manifest(by_ids, tmp / "out" / "m.csv")
    assert report.exported == 2 and "no such point" in report.skipped[0].reason
    with pytest.raises(ExportError, match="No points"):
        export_manifest(select(store, "fruits", labels=["kiwi"], cache_dir=tmp / "cache"), tmp / "x.csv")
    with pytest.raises(ExportError, match="no collection 'nope'"):
        select(store, "nope")


def test_manifest_columns_and_paths_relative_to_it(fruit):
    store, root, tmp = fruit
    relabel(store, "fruits", [point_id("apple/1.png")], "banana", by="ann")
    sel = select(store, "fruits", cache_dir=tmp / "cache")
    export_manifest(sel, tmp / "m.csv")
    table = pd.read_csv(tmp / "m.csv", dtype=str, keep_default_na=False)
    assert list(table.columns[:7]) == ["id", "path", "image_url", "file_name", "label", "label_original", "reviewed"]
    row = table[table["id"] == point_id("apple/1.png")].iloc[0]
    assert (row["label"], row["label_original"], row["reviewed"]) == ("banana", "apple", "True")
    assert row["path"] == "fruit/apple/1.png" and (tmp / row["path"]).is_file()  # relative to the manifest
    export_manifest(sel, tmp / "elsewhere" / "deep" / "m.parquet")
    parquet = pd.read_parquet(tmp / "elsewhere" / "deep" / "m.parquet")
    assert parquet["path"].map(lambda p: (root / p).is_file() if not p.startswith("/") else True).all()
    assert all(p.startswith("/") for p in parquet["path"])  # not under the manifest's folder: absolute
    with pytest.raises(ExportError, match=".csv or .parquet"):
        export_manifest(sel, tmp / "m.xlsx")
    # for a download button: the same table, with absolute paths
    from core.formats.export import manifest_table

    download = manifest_table(sel)
    assert len(download) == 6 and all(str(root.resolve()) in p for p in download["path"])


def test_imagefolder_never_touches_the_source_and_refuses_a_full_target(fruit):
    store, root, tmp = fruit
    before = _snapshot(root)
    sel = select(store, "fruits", cache_dir=tmp / "cache")
    with pytest.raises(ExportError, match="overlap"):
        export_imagefolder(sel, root / "export")
    with pytest.raises(ExportError, match="overlap"):
        export_imagefolder(sel, tmp, overwrite=True)  # a folder that holds the images
    (tmp / "full").mkdir()
    (tmp / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty.*overwrite"):
        export_imagefolder(sel, tmp / "full")
    report = export_imagefolder(sel, tmp / "full", mode="copy", overwrite=True)  # beside the images: fine
    assert report.exported == 6 and (tmp / "full" / "keep.txt").read_text() == "mine"
    copied = tmp / "full" / "apple" / "0.png"
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == (root / "apple" / "0.png").read_bytes()
    linked = export_imagefolder(sel, tmp / "links")
    assert linked.exported == 6 and (tmp / "links" / "banana" / "2.png").is_symlink()
    # writing again over links replaces the links, never the images they point to
    export_imagefolder(sel, tmp / "links", mode="copy", overwrite=True)
    assert not (tmp / "links" / "banana" / "2.png").is_symlink()
    assert _snapshot(root) == before


def test_a_manifest_collection_exports_beside_its_images_but_not_among_them(tmp_path):
    # a manifest's image folder is the one holding the manifest and the images; the images' own folder is off limits
    store = open_store(url=":memory:")
    for i in range(2):
        write_image(tmp_path / "data" / "imgs" / "a" / f"{i}.png", (9 * i, 2, 3))
    pd.DataFrame({"path": ["imgs/a/0.png", "imgs/a/1.png"], "label": ["a", "b"]}).to_csv(tmp_path / "data" / "m.csv",
                                                                                         index=False)
    ingest(store, tmp_path / "data" / "m.csv", "m", ColorEmbedder(), cache_dir=tmp_path / "cache")
    sel = select(store, "m", labels=["b"], cache_dir=tmp_path / "cache")
    assert sel.image_root == (tmp_path / "data").resolve()
    assert sel.source_folder == (tmp_path / "data" / "imgs" / "a").resolve()  # of the whole collection
    assert export_imagefolder(sel, tmp_path / "data" / "export").exported == 1
    with pytest.raises(ExportError, match="overlap"):
        export_imagefolder(sel, tmp_path / "data" / "imgs" / "a" / "export")


def test_labels_that_are_not_folder_names_and_name_clashes(tmp_path):
    store = open_store(url=":memory:")
    root = tmp_path / "img"
    write_image(root / "a" / "x.png", (1, 2, 3))
    write_image(root / "b" / "x.png", (3, 2, 1))
    ingest(store, root, "c", ColorEmbedder(), cache_dir=tmp_path / "cache")
    relabel(store, "c", [point_id("a/x.png"), point_id("b/x.png")], "../up/and away", by="t")
    report = export_imagefolder(select(store, "c", cache_dir=tmp_path / "cache"), tmp_path / "out")
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert len(files) == 2 and all(f.startswith(".._up_and away/") for f in files)
    assert any("cannot be folder names" in n for n in report.notes)


def test_imagefolder_metadata_survives_formula_looking_names(tmp_path):
    # metadata.csv is written like every CSV here (a cell starting with = + - @ gets an apostrophe for spreadsheets);
    # reading it back undoes that, so the point ids still come back
    from core.formats import scan_source

    store = open_store(url=":memory:")
    root = tmp_path / "img"
    write_image(root / "a" / "-1.png", (1, 2, 3))
    write_image(root / "b" / "x.png", (3, 2, 1))
    ingest(store, root, "c", ColorEmbedder(), cache_dir=tmp_path / "cache")
    relabel(store, "c", [point_id("b/x.png")], "=sum", by="t")
    export_imagefolder(select(store, "c", cache_dir=tmp_path / "cache"), tmp_path / "out")
    assert "'=sum/x.png" in (tmp_path / "out" / "metadata.csv").read_text()
    scan = scan_source(tmp_path / "out")
    assert {f.pid: f.label for f in scan.files} == {point_id("a/-1.png"): "a", point_id("b/x.png"): "=sum"}


def test_hf_export_refuses_a_full_folder_and_reports_missing_images(fruit):
    store, root, tmp = fruit
    (root / "apple" / "2.png").unlink()
    sel = select(store, "fruits", cache_dir=tmp / "cache")
    (tmp / "hf").mkdir()
    (tmp / "hf" / "x").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_hf_dataset(sel, tmp / "hf")
    report = export_hf_dataset(sel, tmp / "hf2")
    assert report.exported == 5 and [s.path for s in report.skipped] == [point_id("apple/2.png")]
    import datasets

    ds = datasets.load_from_disk(str(tmp / "hf2"))
    assert ds.features["label"].names == ["apple", "banana"] and len(ds) == 5


def _colors(tmp_path, monkeypatch):
    store_path = make_colors_env(tmp_path, monkeypatch, {"blue/odd.png": (225, 25, 35),
                                                         "red/greenish.png": (35, 205, 45)})
    return open_store(path=str(store_path))


def test_label_studio_tasks_follow_the_documented_format(tmp_path, monkeypatch):
    store = _colors(tmp_path, monkeypatch)
    report = run_audit(store, "colors", checks=["label"])
    sel = select(store, "colors", audit=report, suspects_only=True, cache_dir=tmp_path / "cache")
    flagged = set(report.table.loc[report.table["is_label_issue"], "id"])
    assert set(sel.points.ids) == flagged and point_id("blue/odd.png") in flagged
    out = export_labelstudio(sel, tmp_path / "ls" / "tasks.json")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    config = ET.fromstring((tmp_path / "ls" / "tasks.xml").read_text())
    # the labeling configuration: an Image object reading a data key, a Choices control pointing at it
    image, = config.iter("Image")
    choices, = config.iter("Choices")
    assert choices.get("toName") == image.get("name") and image.get("value").startswith("$")
    key = image.get("value")[1:]
    offered = {c.get("value") for c in choices.iter("Choice")}
    assert len(tasks) == out.exported == len(flagged)
    result_ids = []
    for task in tasks:
        # basic Label Studio JSON: a data object (with the key the config reads) and a predictions list
        assert set(task) <= {"data", "predictions"} and isinstance(task["data"], dict)
        assert task["data"][key].startswith("/data/local-files/?d=")
        row = report.table[report.table["id"] == task["data"]["atlas_id"]].iloc[0]
        prediction, = task["predictions"]
        assert prediction["score"] == pytest.approx(row["suggestion_confidence"]) and 0 <= prediction["score"] <= 1
        result, = prediction["result"]
        assert (result["from_name"], result["to_name"], result["type"]) == (choices.get("name"), image.get("name"),
                                                                             "choices")
        assert result["value"]["choices"] == [row["suggested_label"]] and row["suggested_label"] in offered
        result_ids.append(result["id"])
    assert len(set(result_ids)) == len(result_ids)  # Label Studio needs distinct result ids
    odd = next(t for t in tasks if t["data"]["atlas_id"] == point_id("blue/odd.png"))
    assert odd["predictions"][0]["result"][0]["value"]["choices"] == ["red"]
    store.close()


def _reviewed(tasks, decisions):
    """What Label Studio's JSON export gives back for these tasks: {atlas_id: (label, annotator, cancelled)}."""
    out = []
    for n, task in enumerate(tasks, start=1):
        entry = {"id": n, "data": task["data"], "predictions": task.get("predictions", []), "annotations": []}
        for k, (label, who, cancelled) in enumerate(decisions.get(task["data"]["atlas_id"], [])):
            entry["annotations"].append({
                "id": 100 * n + k, "completed_by": who, "was_cancelled": cancelled,
                "created_at": f"2026-01-0{k + 1}T10:00:00Z", "updated_at": f"2026-01-0{k + 1}T10:00:00Z",
                "result": [{"id": f"r{n}{k}", "from_name": "choice", "to_name": "image", "type": "choices",
                            "value": {"choices": [label]}}]})
        out.append(entry)
    return out


def test_reviewed_label_studio_export_comes_back_as_relabels_with_history(tmp_path, monkeypatch):
    store = _colors(tmp_path, monkeypatch)
    odd, greenish = point_id("blue/odd.png"), point_id("red/greenish.png")
    kept, gone, newish = point_id("red/0.png"), point_id("green/0.png"), point_id("green/1.png")
    sel = select(store, "colors", ids=[odd, greenish, kept, gone, newish], cache_dir=tmp_path / "cache")
    export_labelstudio(sel, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    store.delete("colors", [gone])
    reviewed = _reviewed(tasks, {
        odd: [("green", {"id": 3, "email": "bo@lab"}, False), ("red", {"id": 7, "email": "ann@lab"}, False)],
        greenish: [("green", 4, False), ("blue", 5, True)],  # the later annotation was cancelled
        kept: [("red", {"email": "ann@lab"}, False)],  # the same label: a confirmation
        gone: [("red", {"email": "ann@lab"}, False)],
        newish: [("purple", {"email": "ann@lab"}, False)]})
    (tmp_path / "export.json").write_text(json.dumps(reviewed))
    result = import_labelstudio(store, "colors", tmp_path / "export.json")
    assert (result.relabelled, result.confirmed) == (2, 1)
    reasons = {s.path: s.reason for s in result.skipped}
    assert "not in 'colors'" in reasons["task 4"] and "no point has the label 'purple'" in reasons["task 5"]
    # tasks nobody annotated are a partial review, counted apart from the problems
    assert result.not_reviewed == len(tasks) - 5 and {s.path for s in result.problems} == {"task 4", "task 5"}
    points = dict(zip(*[getattr(store.retrieve("colors", [odd, greenish, kept, newish]), a)
                        for a in ("ids", "payloads")]))
    assert points[odd]["label"] == "red" and points[odd]["label_history"][-1]["by"] == "ann@lab"
    assert points[odd]["label_original"] == "blue" and points[odd]["reviewed"] is True
    assert points[greenish]["label"] == "green" and points[greenish]["label_history"][-1]["by"] == "label-studio user 4"
    assert points[kept]["label_confirmed"] == "red" and points[kept]["label_history"][-1]["action"] == "confirm"
    assert points[newish]["label"] == "green"
    # one undo step takes it all back
    undo(store, result.changes, by="t")
    assert store.retrieve("colors", [odd]).payloads[0]["label"] == "blue"
    # allowed new labels; JSON-MIN rows work as well
    (tmp_path / "min.json").write_text(json.dumps([{"id": 1, "atlas_id": newish, "choice": "purple",
                                                    "annotator": "cy@lab"}]))
    with_new = import_labelstudio(store, "colors", (tmp_path / "min.json").read_bytes(), allow_new_labels=True)
    assert with_new.relabelled == 1
    assert store.retrieve("colors", [newish]).payloads[0]["label_history"][-1]["by"] == "cy@lab"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LabelError, match="Cannot read the Label Studio export"):
        import_labelstudio(store, "colors", tmp_path / "bad.json")
    store.close()


def test_audit_scores_written_into_the_payload(tmp_path, monkeypatch):
    store = _colors(tmp_path, monkeypatch)
    before = {pid: p["label"] for pid, p in zip(*[getattr(store.scroll("colors", with_vectors=False), a)
                                                  for a in ("ids", "payloads")])}
    report = run_audit(store, "colors", checks=["label", "outlier"])
    assert write_audit_scores(store, "colors", report) == len(before)
    pts = store.scroll("colors", with_vectors=False)
    table = report.table.set_index("id")
    for pid, p in zip(pts.ids, pts.payloads):
        assert p["label"] == before[pid]  # labels untouched
        score = table.loc[pid, "label_score"]
        assert (p["label_score"] is None) if np.isnan(score) else p["label_score"] == pytest.approx(score)
        assert p["is_label_issue"] == bool(table.loc[pid, "is_label_issue"])
        assert p["outlier_score"] == pytest.approx(table.loc[pid, "outlier_score"])
        assert "operating point balanced" in p["audit_how"] and p["audit_at"]
    # a later export without an audit carries the stored scores and when they were computed
    export_manifest(select(store, "colors", cache_dir=tmp_path / "cache"), tmp_path / "m.csv")
    table_out = pd.read_csv(tmp_path / "m.csv", dtype=str, keep_default_na=False).set_index("id")
    odd = point_id("blue/odd.png")
    assert table_out.loc[odd, "suggested_label"] == "red" and table_out.loc[odd, "audit_at"]
    # other services can filter on them (a text field here: the embedded engine does not match booleans yet)
    flagged = report.table.loc[report.table["is_label_issue"], "suggested_label"]
    assert store.count("colors", {"suggested_label": "red"}) >= int((flagged == "red").sum()) > 0
    store.close()
