"""Import formats (issue 16): flat and split folders, manifests (CSV, Parquet), Hugging Face datasets, imagefolder
metadata; bad manifests get a message or a skip report. Real image files written by PIL, the fast colour embedder
(the real model runs in test_formats_roundtrip.py)."""
import csv

import pandas as pd
import pytest

from core.catalog import summarize
from core.formats import SourceOptions, scan_source
from core.ingest import IngestError, ingest, point_id
from core.store import open_store
from tests.fakes import ColorEmbedder, write_image

COLORS = {"apple": (200, 20, 20), "banana": (230, 220, 40)}


@pytest.fixture
def store(tmp_path):
    s = open_store(path=str(tmp_path / "qdrant"))
    yield s
    s.close()


def _labels(store, collection):
    pts = store.scroll(collection, with_vectors=False)
    return {pid: p for pid, p in zip(pts.ids, pts.payloads)}


def test_flat_folder_ingests_as_unlabeled(tmp_path, store):
    for i in range(4):
        write_image(tmp_path / "loose" / f"{i}.png", (10 * i, 50, 90))
    (tmp_path / "loose" / "readme.txt").write_text("not an image")
    report = ingest(store, tmp_path / "loose", "loose", ColorEmbedder())
    assert report.added == 4 and report.kind == "flat"
    assert [s.path for s in report.skipped] == ["readme.txt"]
    assert any("unlabeled" in n for n in report.notes)
    assert store.count_by("loose", "label") == {"unlabeled": 4}
    summary = summarize(store, "loose")
    assert summary.unlabeled == 4 and summary.labels == {}  # the app and the audit count them as unlabeled
    assert store.retrieve("loose", [point_id("2.png")]).ids  # ids from the paths, as for any folder


def test_unlabeled_value_follows_the_setting(tmp_path, store, monkeypatch):
    monkeypatch.setenv("ATLAS_UNKNOWN_LABELS", "todo,none")
    write_image(tmp_path / "loose" / "a.png", (1, 2, 3))
    ingest(store, tmp_path / "loose", "loose", ColorEmbedder())
    assert store.count_by("loose", "label") == {"todo": 1}


def test_split_folders_keep_the_split(tmp_path, store):
    root = tmp_path / "data"
    for split, n in {"train": 3, "test": 2}.items():
        for label, color in COLORS.items():
            for i in range(n):
                write_image(root / split / label / f"{i}.png", tuple(min(255, c + i) for c in color))
    report = ingest(store, root, "split", ColorEmbedder())
    assert report.kind == "split-folders" and report.added == 10
    points = _labels(store, "split")
    p = points[point_id("test/banana/1.png")]
    assert (p["label"], p["split"], p["path"]) == ("banana", "test", "test/banana/1.png")
    assert store.count_by("split", "label") == {"apple": 5, "banana": 5}
    assert store.count_by("split", "split") == {"train": 6, "test": 4}
    # a folder with a subfolder that is not a split reads as label folders, as before
    write_image(root / "kiwi" / "0.png", (20, 200, 20))
    scan = scan_source(root)
    assert scan.kind == "folder" and {f.label for f in scan.files} == {"train", "test", "kiwi"}


def _fruit(root, n=3):
    for label, color in COLORS.items():
        for i in range(n):
            write_image(root / label / f"{i}.png", tuple(min(255, c + 5 * i) for c in color))
    return root


def test_manifest_csv_paths_relative_to_it_columns_detected_extras_kept(tmp_path, store):
    _fruit(tmp_path / "images")
    rows = [{"image": f"../images/{lab}/{i}.png", "category": lab, "source": "web" if i else "camera",
             "split": "train" if i < 2 else "test"} for lab in COLORS for i in range(3)]
    manifest = tmp_path / "meta" / "list.csv"
    manifest.parent.mkdir()
    pd.DataFrame(rows).to_csv(manifest, index=False)
    report = ingest(store, manifest, "m", ColorEmbedder())
    assert (report.added, report.skipped, report.kind) == (6, [], "manifest")
    assert any("column 'image'" in n and "column 'category'" in n for n in report.notes)
    points = _labels(store, "m")
    assert {p["label"] for p in points.values()} == set(COLORS)
    p = next(p for p in points.values() if p["file_name"] == "0.png" and p["label"] == "banana")
    assert (p["source"], p["split"]) == ("camera", "train")
    # the image folder is the one that holds the manifest and every image; paths are stored relative to it
    assert p["path"] == "images/banana/0.png" and (tmp_path / p["path"]).is_file()
    assert report.folder == str(manifest.resolve())
    # idempotent: nothing is embedded again; a changed column is written without re-embedding
    rows[0]["source"] = "scanner"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    model = ColorEmbedder()
    again = ingest(store, manifest, "m", model)
    assert (again.added, again.updated, again.unchanged, again.fields_updated) == (0, 0, 6, 1)
    assert model.batches == 0
    assert _labels(store, "m")[point_id("images/apple/0.png")]["source"] == "scanner"
    # a label changed in the manifest is not applied to an existing point (the audit owns it), and the report says so
    rows[1]["category"] = "banana"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    third = ingest(store, manifest, "m", ColorEmbedder())
    assert _labels(store, "m")[point_id("images/apple/1.png")]["label"] == "apple"
    assert any(n.startswith("1 image already in 'm' keeps its current label") and "images/apple/1.png 'apple' "
               "(source says 'banana')" in n for n in third.notes)


def test_manifest_in_the_folder_gives_the_folder_ingest_ids(tmp_path, store):
    root = _fruit(tmp_path / "fruit")
    ingest(store, root, "by_folder", ColorEmbedder())
    pd.DataFrame({"path": [f"{lab}/{i}.png" for lab in COLORS for i in range(3)],
                  "label": [lab for lab in COLORS for _ in range(3)]}).to_parquet(root / "manifest.parquet")
    report = ingest(store, root / "manifest.parquet", "by_manifest", ColorEmbedder())
    assert report.added == 6
    assert _labels(store, "by_folder").keys() == _labels(store, "by_manifest").keys()


def test_manifest_id_column_gives_the_ids(tmp_path, store):
    root = _fruit(tmp_path / "fruit", n=1)
    ids = ["0b8e4d8c-3c1e-4f43-9a57-2f6f2b2f9d01", 77]
    pd.DataFrame({"id": [str(i) for i in ids], "path": ["apple/0.png", "banana/0.png"],
                  "label": ["apple", "banana"]}).to_csv(root / "m.csv", index=False)
    ingest(store, root / "m.csv", "ids", ColorEmbedder())
    assert set(_labels(store, "ids")) == set(ids)
    # an id column that is not made of point ids is kept as data, and the ids come from the paths
    pd.DataFrame({"id": ["img-1", "img-2"], "path": ["apple/0.png", "banana/0.png"],
                  "label": ["apple", "banana"]}).to_csv(root / "n.csv", index=False)
    report = ingest(store, root / "n.csv", "names", ColorEmbedder())
    points = _labels(store, "names")
    assert set(points) == {point_id("apple/0.png"), point_id("banana/0.png")}
    assert {p["id"] for p in points.values()} == {"img-1", "img-2"}
    assert any("not point ids" in n for n in report.notes)


@pytest.mark.parametrize("columns, options, message", [
    ({"picture": ["a.png"], "label": ["x"]}, SourceOptions(), "no column of image paths.*'picture'.*--path-column"),
    ({"path": ["a.png"], "kind": ["x"]}, SourceOptions(), "no label column.*'kind'.*--label-column"),
    ({"path": ["a.png"], "label": ["x"]}, SourceOptions(path_column="where"), "no column 'where'.*'path', 'label'"),
])
def test_manifest_missing_columns_are_refused_naming_the_columns(tmp_path, store, columns, options, message):
    manifest = tmp_path / "m.csv"
    pd.DataFrame(columns).to_csv(manifest, index=False)
    with pytest.raises(IngestError, match=message):
        ingest(store, manifest, "c", ColorEmbedder(), options=options)
    assert not store.collection_exists("c")  # nothing written


def test_manifest_without_label_column_on_request_is_unlabeled(tmp_path, store):
    root = _fruit(tmp_path / "fruit", n=1)
    pd.DataFrame({"path": ["apple/0.png", "banana/0.png"]}).to_csv(root / "m.csv", index=False)
    ingest(store, root / "m.csv", "c", ColorEmbedder(), options=SourceOptions(label_column=""))
    assert store.count_by("c", "label") == {"unlabeled": 2}


def test_manifest_mixing_numbers_and_names_is_refused(tmp_path, store):
    root = _fruit(tmp_path / "fruit")
    pd.DataFrame({"path": [f"{lab}/{i}.png" for lab in COLORS for i in range(3)],
                  "label": ["apple", "apple", "3", "banana", "7", "banana"]}).to_csv(root / "m.csv", index=False)
    with pytest.raises(IngestError, match=r"mixes numbers \(2 rows, e.g. '3' on row 4\) and names.*Nothing was"):
        ingest(store, root / "m.csv", "c", ColorEmbedder())
    assert not store.collection_exists("c")
    # numbers alone are fine, and so are "no label" values among names
    pd.DataFrame({"path": ["apple/0.png", "apple/1.png", "banana/0.png"],
                  "label": ["apple", "unknown", ""]}).to_csv(root / "ok.csv", index=False)
    report = ingest(store, root / "ok.csv", "ok", ColorEmbedder())
    assert report.added == 3 and store.count_by("ok", "label") == {"apple": 1, "unknown": 1, "unlabeled": 1}


def test_manifest_bad_rows_are_skipped_with_row_numbers(tmp_path, store):
    root = _fruit(tmp_path / "fruit")
    (root / "apple" / "broken.png").write_bytes(b"not a png")
    rows = [("apple/0.png", "apple"), ("apple/missing.png", "apple"), ("", "apple"), ("apple/0.png", "apple"),
            ("./apple/0.png", "banana"), ("apple", "apple"), ("apple/broken.png", "apple"), ("banana/1.png", "banana")]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(root / "m.csv", index=False)
    report = ingest(store, root / "m.csv", "c", ColorEmbedder(), report_dir=tmp_path / "reports")
    assert report.added == 2
    reasons = [s.reason for s in report.skipped]
    assert any(r.startswith("row 3: file not found") for r in reasons)
    assert "row 4: no image path in column 'path'" in reasons
    assert "row 5: the same image as row 2 (a duplicate row)" in reasons
    assert any(r.startswith("row 6: the same image as row 2, with another label ('banana' there 'apple')")
               for r in reasons)
    assert any(r.startswith("row 7: not a file") for r in reasons)
    assert any(s.path == "apple/broken.png" and "not an image" in s.reason for s in report.skipped)
    with open(report.report_csv, newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(report.skipped) == 6
    # nothing at all to ingest: refused with the first problem, before anything is written
    pd.DataFrame([("gone.png", "x")], columns=["path", "label"]).to_csv(root / "none.csv", index=False)
    with pytest.raises(IngestError, match="No image in the manifest none.csv.*row 2: file not found"):
        ingest(store, root / "none.csv", "none", ColorEmbedder())
    assert not store.collection_exists("none")


def test_manifest_paths_outside_the_allowed_roots_are_skipped(tmp_path, store, monkeypatch):
    inside = _fruit(tmp_path / "inside", n=1)
    outside = write_image(tmp_path / "secret" / "x.png", (1, 1, 1))
    pd.DataFrame({"path": ["apple/0.png", str(outside)], "label": ["apple", "apple"]}).to_csv(inside / "m.csv",
                                                                                              index=False)
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(inside))
    report = ingest(store, inside / "m.csv", "c", ColorEmbedder())
    assert report.added == 1 and "allowed folders" in report.skipped[0].reason


def test_interrupted_manifest_ingest_resumes(tmp_path, store):
    _fruit(tmp_path / "fruit", n=6)
    pd.DataFrame({"path": [f"fruit/{lab}/{i}.png" for lab in COLORS for i in range(6)],
                  "label": [lab for lab in COLORS for _ in range(6)]}).to_csv(tmp_path / "m.csv", index=False)

    class Stop(Exception):
        pass

    def stop(p):
        if p.done >= 8:
            raise Stop

    with pytest.raises(Stop):
        ingest(store, tmp_path / "m.csv", "c", ColorEmbedder(), batch_size=4, progress=stop)
    written = store.count("c")
    assert 0 < written < 12
    resumed = ingest(store, tmp_path / "m.csv", "c", ColorEmbedder(), batch_size=4)
    assert (resumed.unchanged, resumed.added) == (written, 12 - written) and store.count("c") == 12


def _hf_dataset(path, with_ids=False):
    import io

    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
    from PIL import Image as PILImage

    def png(color):
        out = io.BytesIO()
        PILImage.new("RGB", (16, 16), color).save(out, "PNG")
        return out.getvalue()

    features = {"img": Image(), "fine": ClassLabel(names=["apple", "banana"]), "source": Value("string")}
    if with_ids:
        features["id"] = Value("string")
    splits = {}
    for split, labels in {"train": [0, 0, 1, 1], "test": [1, -1]}.items():
        data = {"img": [{"bytes": png((40 * i + 10 * lab, 90, 30)), "path": None} for i, lab in enumerate(labels)],
                "fine": labels, "source": [f"s{i}" for i in range(len(labels))]}
        if with_ids:
            data["id"] = [str(100 + 10 * (split == "test") + i) for i in range(len(labels))]
        splits[split] = Dataset.from_dict(data, features=Features(features))
    DatasetDict(splits).save_to_disk(str(path))
    return path


def test_hugging_face_dataset_with_class_names_and_splits(tmp_path, store):
    source = _hf_dataset(tmp_path / "hf")
    images_dir = tmp_path / "extracted"
    options = SourceOptions(images_dir=images_dir)
    report = ingest(store, source, "hf", ColorEmbedder(), options=options)
    assert report.kind == "hf-dataset" and report.added == 6
    assert store.count_by("hf", "label") == {"apple": 2, "banana": 3, "unlabeled": 1}  # -1 = no label
    assert store.count_by("hf", "split") == {"train": 4, "test": 2}
    points = list(_labels(store, "hf").values())
    assert all((images_dir / p["path"]).is_file() for p in points)  # the app can show them
    assert {p["source"] for p in points} == {"s0", "s1", "s2", "s3"}
    before = {f: f.stat().st_mtime_ns for f in images_dir.rglob("*.png")}
    again = ingest(store, source, "hf", ColorEmbedder(), options=options)
    assert (again.added, again.unchanged) == (0, 6)
    assert {f: f.stat().st_mtime_ns for f in images_dir.rglob("*.png")} == before  # not written again
    with pytest.raises(IngestError, match="inside the dataset folder"):
        scan_source(source, SourceOptions(images_dir=source / "x"))


def test_hugging_face_dataset_id_column_gives_the_ids(tmp_path, store):
    source = _hf_dataset(tmp_path / "hf", with_ids=True)
    ingest(store, source, "hf", ColorEmbedder(), options=SourceOptions(images_dir=tmp_path / "x"))
    assert set(_labels(store, "hf")) == {100, 101, 102, 103, 110, 111}


def test_imagefolder_metadata_adds_columns_and_ids(tmp_path, store):
    root = _fruit(tmp_path / "fruit", n=2)
    pd.DataFrame({"file_name": ["apple/0.png", "banana/1.png"], "id": ["5", "6"],
                  "photographer": ["ann", "bo"]}).to_csv(root / "metadata.csv", index=False)
    report = ingest(store, root, "meta", ColorEmbedder())
    assert report.added == 4 and not report.skipped  # the metadata file is read, not reported as a non-image
    points = _labels(store, "meta")
    assert points[5]["photographer"] == "ann" and points[5]["label"] == "apple"
    assert points[6]["label"] == "banana" and point_id("apple/1.png") in points


def test_a_file_that_is_no_dataset_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match="cannot read as a dataset"):
        scan_source(tmp_path / "notes.txt")


def test_manifest_urls_are_fetched_through_the_network_guard(tmp_path, store, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    write_image(served / "red.png", (220, 20, 20))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        pd.DataFrame({"url": [f"{base}/red.png", f"{base}/missing.png"], "label": ["red", "red"]}).to_csv(
            tmp_path / "urls.csv", index=False)
        refused = ingest(store, tmp_path / "urls.csv", "refused", ColorEmbedder())
        assert refused.added == 0 and all("loopback, private" in s.reason for s in refused.skipped)
        monkeypatch.setenv("ATLAS_ALLOW_PRIVATE_HOSTS", "on")  # an operator's choice for a local run
        report = ingest(store, tmp_path / "urls.csv", "urls", ColorEmbedder())
        assert report.added == 1 and "cannot download" in report.skipped[0].reason
        payload = store.retrieve("urls", [point_id(f"{base}/red.png")]).payloads[0]
        assert payload["image_url"] == f"{base}/red.png" and "path" not in payload and payload["label"] == "red"
        assert payload["file_name"] == "red.png" and len(payload["sha1"]) == 40
    finally:
        server.shutdown()


def test_splits_survive_an_export_and_a_second_ingest(tmp_path, store):
    import datasets

    from core.formats.export import export_hf_dataset, export_imagefolder, select

    ingest(store, _hf_dataset(tmp_path / "hf"), "hf", ColorEmbedder(), cache_dir=tmp_path / "cache",
           options=SourceOptions(images_dir=tmp_path / "x"))
    original = _labels(store, "hf")
    sel = select(store, "hf", cache_dir=tmp_path / "cache")
    export_imagefolder(sel, tmp_path / "tree")
    assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == ["metadata.csv", "test", "train"]
    export_hf_dataset(sel, tmp_path / "hf_out")
    assert set(datasets.load_from_disk(str(tmp_path / "hf_out"))) == {"train", "test"}
    for name, source in {"tree": tmp_path / "tree", "hf_out": tmp_path / "hf_out"}.items():
        report = ingest(store, source, name, ColorEmbedder(), options=SourceOptions(images_dir=tmp_path / "y"))
        assert report.kind == {"tree": "split-folders", "hf_out": "hf-dataset"}[name]
        again = _labels(store, name)
        assert {pid: (p["label"], p["split"]) for pid, p in again.items()} == {
            pid: (p["label"], p["split"]) for pid, p in original.items()}, name


def test_a_moved_image_in_a_manifest_keeps_its_point_history(tmp_path, store):
    from core.labels import relabel

    root = _fruit(tmp_path / "fruit")
    rows = [(f"{lab}/{i}.png", lab) for lab in COLORS for i in range(3)]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(root / "m.csv", index=False)
    ingest(store, root / "m.csv", "c", ColorEmbedder())
    relabel(store, "c", [point_id("apple/1.png")], "banana", by="ann")  # a user's edit
    (root / "apple" / "0.png").rename(root / "banana" / "was-apple-0.png")
    (root / "apple" / "1.png").rename(root / "banana" / "was-apple-1.png")
    rows[0] = ("banana/was-apple-0.png", "banana")
    rows[1] = ("banana/was-apple-1.png", "orange")
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(root / "m.csv", index=False)
    model = ColorEmbedder()
    report = ingest(store, root / "m.csv", "c", model, prune=True)
    assert (report.moved, report.added, model.batches) == (2, 0, 0) and store.count("c") == 6
    moved = _labels(store, "c")
    unedited, edited = moved[point_id("banana/was-apple-0.png")], moved[point_id("banana/was-apple-1.png")]
    assert unedited["label"] == "banana" and unedited["label_history"][-1]["action"] == "move"
    assert edited["label"] == "banana" and edited["label_history"][0]["by"] == "ann"  # the user's label wins
    assert [k.label for k in report.kept_labels] == ["banana"]


def test_json_lines_manifest_with_windows_paths(tmp_path, store):
    import json

    root = _fruit(tmp_path / "fruit", n=2)
    lines = [{"file_name": f"{lab}\\{i}.png", "label": lab, "weight": i} for lab in COLORS for i in range(2)]
    (root / "m.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    report = ingest(store, root / "m.jsonl", "j", ColorEmbedder())
    assert (report.added, report.skipped) == (4, [])
    points = _labels(store, "j")
    assert points[point_id("banana/1.png")]["weight"] == 1 and points[point_id("banana/1.png")]["label"] == "banana"


def test_a_metadata_file_of_another_kind_is_noted_not_fatal(tmp_path, store):
    root = _fruit(tmp_path / "fruit", n=1)
    (root / "metadata.csv").write_text("camera,lens\nx,y\n")
    report = ingest(store, root, "c", ColorEmbedder())
    assert report.added == 2 and any("metadata.csv was not used" in n and "file_name" in n for n in report.notes)
