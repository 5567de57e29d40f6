"""Ingest pipeline on real files written by PIL, with a fast stand-in embedder (the real models are tested
in test_models.py)."""
import csv

import numpy as np
import pytest

from core.ingest import IngestError, ingest, point_id, scan_folder
from core.store import open_store
from tests.fakes import ColorEmbedder, write_image

COLORS = {"apple": (200, 20, 20), "banana": (230, 220, 40), "orange": (240, 140, 20)}


@pytest.fixture
def fruit(tmp_path):
    root = tmp_path / "fruit"
    for label, color in COLORS.items():
        for i in range(7):
            write_image(root / label / f"{i}.png", tuple(min(255, c + 3 * i) for c in color))
    return root


@pytest.fixture
def store(tmp_path):
    s = open_store(path=str(tmp_path / "qdrant"))
    yield s
    s.close()


def test_ingest_writes_vectors_and_payload(fruit, store, tmp_path):
    model = ColorEmbedder()
    report = ingest(store, fruit, "fruits", model, base_url="http://localhost:8000/", batch_size=4)
    assert (report.added, report.updated, report.unchanged, report.skipped) == (21, 0, 0, [])
    assert store.count_by("fruits", "label") == {"apple": 7, "banana": 7, "orange": 7}
    pts = store.retrieve("fruits", [point_id("banana/3.png")], with_vectors=True)
    p = pts.payloads[0]
    assert p["label"] == "banana" and p["file_name"] == "3.png" and p["path"] == "banana/3.png"
    assert p["image_url"] == "http://localhost:8000/banana/3.png"
    assert (p["width"], p["height"]) == (32, 32) and len(p["sha1"]) == 40 and p["model"] == "test-color"
    assert "ingested_at" in p
    assert np.linalg.norm(pts.vectors[0]) == pytest.approx(1.0, abs=1e-5)
    # the vector is the model's output for that file, not some other file's
    hit = store.query("fruits", pts.vectors[0], k=1)[0]
    assert hit.id == point_id("banana/3.png")


def test_reingest_adds_nothing_and_updates_changed(fruit, store):
    ingest(store, fruit, "fruits", ColorEmbedder())
    model = ColorEmbedder()
    again = ingest(store, fruit, "fruits", model)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 21) and model.batches == 0
    write_image(fruit / "apple" / "0.png", (0, 0, 255))  # content changed
    write_image(fruit / "apple" / "new.png", (210, 10, 10))
    third = ingest(store, fruit, "fruits", ColorEmbedder())
    assert (third.added, third.updated, third.unchanged) == (1, 1, 20)
    assert store.count("fruits") == 22


def test_interrupted_ingest_resumes(fruit, store):
    class Boom(Exception):
        pass

    def stop_after_first_batches(p):
        if p.done >= 16:
            raise Boom

    with pytest.raises(Boom):
        ingest(store, fruit, "fruits", ColorEmbedder(), batch_size=4, progress=stop_after_first_batches)
    written = store.count("fruits")
    assert 0 < written < 21
    # every point written so far carries its vector and payload
    pts = store.scroll("fruits")
    assert len(pts) == written and all("sha1" in p for p in pts.payloads)
    resumed = ingest(store, fruit, "fruits", ColorEmbedder(), batch_size=4)
    assert resumed.unchanged == written and resumed.added == 21 - written
    assert store.count("fruits") == 21


def test_bad_files_are_skipped_and_reported(fruit, store, tmp_path):
    (fruit / "apple" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (fruit / "apple" / "zero.png").write_bytes(b"")
    (fruit / "apple" / "notes.txt").write_text("hello")
    (fruit / "loose.png").write_bytes(b"x")
    (fruit / "apple" / ".DS_Store").write_bytes(b"junk")  # hidden files are not reported
    write_image(fruit / "banana" / "äpfel 🍌.png", (230, 220, 40))
    write_image(fruit / "orange" / "deep" / "nested.jpg", (240, 140, 20), fmt="JPEG")
    report = ingest(store, fruit, "fruits", ColorEmbedder(), report_dir=tmp_path / "reports")
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"apple/broken.jpg", "apple/zero.png", "apple/notes.txt", "loose.png"}
    assert "empty" in reasons["apple/zero.png"] and "label subfolder" in reasons["loose.png"]
    assert report.added == 23
    assert store.retrieve("fruits", [point_id("banana/äpfel 🍌.png")]).payloads[0]["label"] == "banana"
    assert store.retrieve("fruits", [point_id("orange/deep/nested.jpg")]).payloads[0]["label"] == "orange"
    with open(report.report_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["path"] for r in rows} == set(reasons)


def test_decompression_bomb_skipped(fruit, store):
    write_image(fruit / "apple" / "huge.png", (0, 0, 0), size=(3000, 3000))
    report = ingest(store, fruit, "fruits", ColorEmbedder(), max_pixels=1_000_000)
    assert [s.path for s in report.skipped] == ["apple/huge.png"]
    assert "decompression bomb" in report.skipped[0].reason


def test_prune_removes_points_of_deleted_files(fruit, store):
    ingest(store, fruit, "fruits", ColorEmbedder())
    (fruit / "apple" / "0.png").unlink()
    kept = ingest(store, fruit, "fruits", ColorEmbedder())
    assert store.count("fruits") == 21 and kept.removed == 0
    pruned = ingest(store, fruit, "fruits", ColorEmbedder(), prune=True)
    assert pruned.removed == 1 and store.count("fruits") == 20


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: root, "is empty"),
    (lambda root: (root / "a.png").write_bytes(b"x") and root, "no subfolders"),
    (lambda root: (root / "apple").mkdir() or (root / "apple" / "a.txt").write_text("x") and root, "No image files"),
])
def test_bad_folders_get_clear_messages(tmp_path, make, message):
    root = tmp_path / "in"
    root.mkdir()
    with pytest.raises(IngestError, match=message):
        scan_folder(make(root))


def test_other_model_collection_is_refused_untouched(fruit, store):
    store.create_collection("fruits", {"clip-vit-b-32": 512})
    with pytest.raises(IngestError, match="clip-vit-b-32"):
        ingest(store, fruit, "fruits", ColorEmbedder())
    assert store.count("fruits") == 0
    assert [v.name for v in store.collection_info("fruits").vectors] == ["clip-vit-b-32"]


def test_works_against_client_engine(fruit):
    s = open_store(url=":memory:")
    report = ingest(s, fruit, "fruits", ColorEmbedder())
    assert report.added == 21 and s.count("fruits") == 21
