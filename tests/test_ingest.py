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
    (lambda root: root, "is empty.*one subfolder per label.*manifest.*Hugging Face"),
    (lambda root: (root / "a.txt").write_text("x") and root, "No image files.*a folder of images without subfolders"),
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


# --- label edits survive re-ingest (issue 11) ----------------------------------------------------------------

def _replay(payload):
    """The label that replaying label_history from label_original gives (the current label when no history)."""
    history = payload.get("label_history") or []
    label = payload.get("label_original", payload.get("label")) if history else payload.get("label")
    for entry in history:
        assert entry["old"] == label, f"history breaks its chain at {entry}"
        label = entry["new"]
    return label


def test_changed_file_keeps_label_edits(fruit, store):
    from core.labels import confirm, relabel

    ingest(store, fruit, "fruits", ColorEmbedder())
    edited, confirmed = point_id("apple/0.png"), point_id("apple/1.png")
    relabel(store, "fruits", [edited], "banana", by="ann")
    confirm(store, "fruits", [confirmed], by="ann")
    before = store.retrieve("fruits", [edited, confirmed], with_vectors=True)
    # re-saved with other bytes (as a JPEG re-save at another quality would be)
    write_image(fruit / "apple" / "0.png", (190, 30, 30))
    write_image(fruit / "apple" / "1.png", (191, 31, 31))
    report = ingest(store, fruit, "fruits", ColorEmbedder())
    assert (report.updated, report.added, report.moved) == (2, 0, 0)
    after = store.retrieve("fruits", [edited, confirmed], with_vectors=True)
    assert not np.allclose(after.vectors, before.vectors)  # the new content was embedded
    for old, new in zip(before.payloads, after.payloads):
        for key in ("label", "label_original", "reviewed", "label_history", "label_confirmed"):
            assert new.get(key) == old.get(key), key
        assert new["sha1"] != old["sha1"]
    assert after.payloads[0]["label"] == "banana" and after.payloads[0]["label_original"] == "apple"
    assert after.payloads[1]["label_confirmed"] == "apple"


def test_moved_file_keeps_its_point_and_history(fruit, store):
    from core.labels import relabel

    ingest(store, fruit, "fruits", ColorEmbedder())
    relabel(store, "fruits", [point_id("apple/1.png")], "orange", by="ann")  # a user edit
    relabel(store, "fruits", [point_id("apple/2.png")], "pear", by="ann")
    relabel(store, "fruits", [point_id("apple/2.png")], "apple", by="ann")  # ... and back: no edit left
    before = store.retrieve("fruits", [point_id(f"apple/{i}.png") for i in range(3)], with_vectors=True)
    (fruit / "banana" / "sub").mkdir()
    for i, to in enumerate(["banana/moved-0.png", "banana/sub/1.png", "apple/renamed-2.png"]):
        (fruit / "apple" / f"{i}.png").rename(fruit / to)
    model = ColorEmbedder()
    report = ingest(store, fruit, "fruits", model, prune=True)
    assert (report.moved, report.added, report.updated, report.removed) == (3, 0, 0, 0)
    assert model.batches == 0  # same content: the vectors moved with the points, nothing was re-embedded
    assert store.count("fruits") == 21
    assert not store.retrieve("fruits", [point_id(f"apple/{i}.png") for i in range(3)]).ids  # no duplicates
    after = store.retrieve("fruits", [point_id(p) for p in ["banana/moved-0.png", "banana/sub/1.png",
                                                            "apple/renamed-2.png"]], with_vectors=True)
    np.testing.assert_allclose(after.vectors, before.vectors, atol=1e-6)
    moved, kept, back = after.payloads
    # unedited point: the new folder's label, with the move in its history
    assert moved["label"] == "banana" and moved["label_original"] == "apple" and moved["path"] == "banana/moved-0.png"
    assert moved["label_history"][-1]["action"] == "move" and moved["label_history"][-1]["from"] == "apple/0.png"
    # edited point: the user's label wins, and the report says so
    assert kept["label"] == "orange" and kept["label_history"][:-1] == before.payloads[1]["label_history"]
    assert [(k.path, k.moved_from, k.label, k.folder_label) for k in report.kept_labels] == [
        ("banana/sub/1.png", "apple/1.png", "orange", "banana")]
    assert back["label"] == "apple" and len(back["label_history"]) == 3
    for p in after.payloads:
        assert _replay(p) == p["label"]
    assert report.as_dict()["moved"] == 3 and report.as_dict()["kept_labels"][0]["label"] == "orange"
    again = ingest(store, fruit, "fruits", ColorEmbedder())
    assert (again.moved, again.unchanged) == (0, 21)


def test_move_interrupted_between_copy_and_delete_is_finished(fruit, store):
    ingest(store, fruit, "fruits", ColorEmbedder())
    old = store.retrieve("fruits", [point_id("apple/0.png")], with_vectors=True)
    (fruit / "apple" / "0.png").rename(fruit / "banana" / "moved.png")
    ingest(store, fruit, "fruits", ColorEmbedder())
    # what a kill after writing the new point and before deleting the old one leaves behind
    store.upsert("fruits", old.ids, {"test-color": old.vectors}, old.payloads)
    assert store.count("fruits") == 22
    report = ingest(store, fruit, "fruits", ColorEmbedder())
    assert report.moved == 1 and store.count("fruits") == 21
    assert store.retrieve("fruits", [point_id("banana/moved.png")]).payloads[0]["label_history"][-1]["action"] == "move"


def test_deleted_file_point_is_kept_unless_pruned_and_copies_move_once(fruit, store):
    ingest(store, fruit, "fruits", ColorEmbedder())
    # two new files with the content of one gone file: one is the moved file, the other a new copy
    data = (fruit / "apple" / "0.png").read_bytes()
    (fruit / "apple" / "0.png").unlink()
    (fruit / "banana" / "copy-a.png").write_bytes(data)
    (fruit / "banana" / "copy-b.png").write_bytes(data)
    report = ingest(store, fruit, "fruits", ColorEmbedder())
    assert (report.moved, report.added) == (1, 1) and store.count("fruits") == 22


def test_symlinks_back_into_the_folder_are_skipped(fruit, store, tmp_path):
    (fruit / "all").symlink_to(fruit, target_is_directory=True)  # `all -> .`
    (fruit / "apple" / "again").symlink_to(fruit / "apple", target_is_directory=True)
    (fruit / "banana" / "link.png").symlink_to(fruit / "banana" / "0.png")
    outside = tmp_path / "elsewhere"
    write_image(outside / "kiwi.png", (20, 200, 20))
    (outside / "loop").symlink_to(outside, target_is_directory=True)
    (fruit / "kiwi").symlink_to(outside, target_is_directory=True)  # a label folder kept elsewhere is followed
    report = ingest(store, fruit, "fruits", ColorEmbedder())
    assert report.added == 22 and store.count("fruits") == 22
    assert set(store.count_by("fruits", "label")) == {"apple", "banana", "orange", "kiwi"}
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"all", "apple/again", "banana/link.png", "kiwi/loop"}
    assert "symbolic link" in reasons["all"] and "loop" in reasons["kiwi/loop"]


def test_skipped_files_csv_neutralises_formula_file_names(tmp_path):
    # a file name is user data: opened in a spreadsheet, "=HYPERLINK(...)" must stay text
    from core.ingest import IngestReport, Skipped, write_skipped_csv

    report = IngestReport(collection="c", folder=str(tmp_path), model="m")
    report.skipped.append(Skipped('=HYPERLINK("http://x").png', "not an image"))
    text = write_skipped_csv(report, tmp_path / "reports").read_text()
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
