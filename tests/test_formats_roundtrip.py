"""The round trip of issue 16 on real images with the real offline model (effnet-lite0): ingest a folder, relabel
some points, export as manifest (CSV and Parquet), ImageFolder and Hugging Face dataset, ingest each export into a
new collection: the labels are the corrected ones, and the ids, counts and image contents match."""
import pytest

from core import models
from core.formats.export import export_hf_dataset, export_imagefolder, export_manifest, select
from core.ingest import ingest, point_id
from core.labels import confirm, relabel
from core.store import open_store
from tests.fakes import write_image


@pytest.fixture(scope="module")
def model():
    return models.load(models.choose(models.EFFNET), "cpu", "auto")


def _points(store, collection):
    pts = store.scroll(collection, with_vectors=False)
    return dict(zip(pts.ids, pts.payloads))


def test_export_and_ingest_again_keeps_corrected_labels_and_ids(tmp_path, model):
    root = tmp_path / "fruit"
    for label, color in {"apple": (200, 30, 30), "banana": (230, 220, 40), "grape": (90, 30, 140)}.items():
        for i in range(3):
            shade = tuple(min(255, c + 12 * i) for c in color)
            write_image(root / label / f"{i}.jpg", shade, size=(48, 40), fmt="JPEG")
    write_image(root / "grape" / "big.png", (100, 40, 150), size=(64, 64))
    write_image(root / "unlabeled" / "what.png", (120, 120, 120))
    cache = tmp_path / "cache"
    store = open_store(path=str(tmp_path / "qdrant"))
    report = ingest(store, root, "fruits", model, cache_dir=cache)
    assert report.added == 11
    relabel(store, "fruits", [point_id("apple/1.jpg")], "banana", by="ann")
    relabel(store, "fruits", [point_id("grape/big.png")], "plum", by="ann")  # a label that was no folder
    confirm(store, "fruits", [point_id("banana/0.jpg")], by="ann")
    original = _points(store, "fruits")
    corrected = {pid: p["label"] for pid, p in original.items()}
    assert corrected[point_id("apple/1.jpg")] == "banana" and corrected[point_id("unlabeled/what.png")] == "unlabeled"

    sel = select(store, "fruits", cache_dir=cache)
    exports = {"csv": tmp_path / "out" / "fruits.csv", "parquet": tmp_path / "out" / "fruits.parquet",
               "imagefolder": tmp_path / "tree", "hf": tmp_path / "hf"}
    assert export_manifest(sel, exports["csv"]).exported == 11
    assert export_manifest(sel, exports["parquet"]).exported == 11
    assert export_imagefolder(sel, exports["imagefolder"]).exported == 11
    assert export_hf_dataset(sel, exports["hf"]).exported == 11
    assert (tmp_path / "tree" / "banana" / "1.jpg").is_symlink()  # the relabelled image sits under its new label
    assert (tmp_path / "tree" / "plum" / "big.png").exists()

    from core.formats import SourceOptions

    for name, source in exports.items():
        again = ingest(store, source, f"again_{name}", model, cache_dir=cache,
                       options=SourceOptions(images_dir=tmp_path / "extracted"))
        assert (again.added, again.skipped) == (11, []), name
        points = _points(store, f"again_{name}")
        assert set(points) == set(original), name  # the same ids
        assert {pid: p["label"] for pid, p in points.items()} == corrected, name
        assert {pid: p["sha1"] for pid, p in points.items()} == {pid: p["sha1"] for pid, p in original.items()}, name
        # the same images embed to the same vectors
        a = store.retrieve("fruits", [point_id("apple/1.jpg")], with_vectors=True).vectors[0]
        b = store.retrieve(f"again_{name}", [point_id("apple/1.jpg")], with_vectors=True).vectors[0]
        assert float(a @ b) > 0.999, name
    # the HF dataset kept ClassLabel names and the unlabeled image as -1
    import datasets

    ds = datasets.load_from_disk(str(exports["hf"]))
    assert ds.features["label"].names == ["apple", "banana", "grape", "plum"]
    assert sorted(ds["label"]).count(-1) == 1
    # the manifest export again, of the re-ingested collection: the same rows (a stable format)
    export_manifest(select(store, "again_csv", cache_dir=cache), tmp_path / "second.csv")
    import pandas as pd

    first = pd.read_csv(exports["csv"], dtype=str).set_index("id")[["label", "file_name"]].sort_index()
    second = pd.read_csv(tmp_path / "second.csv", dtype=str).set_index("id")[["label"]].sort_index()
    assert first["label"].equals(second["label"])
    store.close()
