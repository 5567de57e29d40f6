"""The audit's checks: properties that must hold for any data, planted-noise recovery on real images, and label
changes written back with history."""
import threading

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.metrics import average_precision_score

from core import datasets, models
from core.audit import run_audit
from core.labels import confirm, delete_points, relabel, undo
from core.store import open_store
from tests.conftest import unit_rows


def blobs(n_per=30, classes=4, d=24, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d))
    y = np.repeat(np.arange(classes), n_per)
    x = centers[y] + spread * rng.normal(size=(len(y), d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def store_with(x, labels, name="c", extra=None):
    s = open_store(url=":memory:")
    s.create_collection(name, {"m": x.shape[1]})
    ids = list(range(1, len(x) + 1))
    payloads = [{"label": lab, "sha1": f"h{i}", **(extra[i - 1] if extra else {})} if lab is not None else
                {"sha1": f"h{i}"} for i, lab in zip(ids, labels)]
    s.upsert(name, ids, {"m": x}, payloads)
    return s, ids


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), victim=st.integers(0, 119))
def test_flipping_a_label_to_a_far_class_lowers_its_score(seed, victim):
    x, y = blobs(seed=seed)
    labels = [f"c{v}" for v in y]
    s, ids = store_with(x, labels)
    before = run_audit(s, "c", checks=["label"]).table.label_score[victim]
    # the farthest class from the victim's own centre
    centres = np.stack([x[y == c].mean(0) for c in range(4)])
    far = int(np.argmin(centres @ x[victim]))
    s.set_payload("c", [ids[victim]], {"label": f"c{far}"})
    table = run_audit(s, "c", checks=["label"]).table
    assert table.label_score[victim] < before
    scores = table.label_score.dropna()
    assert ((scores >= 0) & (scores <= 1)).all()
    flagged, unflagged = scores[table.is_label_issue], scores[~table.is_label_issue]
    assert flagged.empty or unflagged.empty or flagged.max() < unflagged.min()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_outlier_and_duplicate_scores_are_in_range_and_ordered(seed):
    x, y = blobs(seed=seed)
    x = np.vstack([x, unit_rows(1, x.shape[1], seed=seed + 1) * -1])  # a point away from every cluster
    s, _ = store_with(x, [f"c{v}" for v in y] + ["c0"])
    table = run_audit(s, "c", checks=["outlier", "duplicate"]).table
    for name in ("outlier", "duplicate"):
        score = table[f"{name}_score"]
        assert ((score >= 0) & (score <= 1)).all()
    flagged = table.outlier_score[table.is_outlier_issue]
    assert flagged.empty or flagged.max() < table.outlier_score[~table.is_outlier_issue].min()


def test_planted_noise_is_recovered_on_real_images():
    """60 Fashion-MNIST images per class through the real offline model; 5% of the labels flipped."""
    images, labels = datasets.load_fashion_mnist() if datasets.fashion_mnist_available() else datasets.load_digits()[:2]
    idx = datasets.stratified_indices(labels, 60, seed=1)
    model = models.load(models.choose("effnet-lite0"), "cpu")
    pil = [Image.fromarray(images[i]).convert("RGB") for i in idx]
    x = np.concatenate([model.embed_images(pil[i:i + 64]) for i in range(0, len(pil), 64)])
    y = labels[idx].copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 20, replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    s, _ = store_with(x, [str(v) for v in y])
    table = run_audit(s, "c", checks=["label"]).table
    truth = np.zeros(len(y), bool)
    truth[flipped] = True
    assert average_precision_score(truth, -table.label_score) > 0.6  # chance is 0.05
    assert table.is_label_issue[truth].mean() >= 0.5  # at least half the flips are flagged


def test_exact_and_near_duplicates_are_grouped_mixed_labels_first():
    x, y = blobs()
    x = np.vstack([x, x[[0, 5]]])  # copies of points 0 and 5
    labels = [f"c{v}" for v in y] + ["c0", "c3"]  # the copy of 5 carries another label
    extra = [{} for _ in labels]
    extra[-2]["sha1"] = "h1"  # same file content as point 1 (row 0)
    s, _ = store_with(x, labels, extra=extra)
    report = run_audit(s, "c", checks=["duplicate"])
    groups = report.results["duplicate"].extra["groups"]
    assert sorted(map(sorted, groups[:2])) == sorted([[0, 120], [5, 121]])
    assert groups[0] == [5, 121]  # different labels: listed first
    assert report.table.exact_copy[120] and report.table.exact_copy[0]


def test_bad_inputs_get_notes_not_errors():
    x, y = blobs(n_per=10)
    one_label, _ = store_with(x, ["a"] * len(x))
    assert "at least two labels" in run_audit(one_label, "c").results["label"].summary["note"]
    labels = [f"c{v}" for v in y]
    labels[:5] = [None, "unknown", None, None, None]
    labels[5] = "rare"  # a class of one
    mixed, _ = store_with(x, labels)
    res = run_audit(mixed, "c", checks=["label"]).results["label"]
    assert res.summary["unlabeled"] == 5 and res.summary["rare_label_points"] == 1
    assert res.table.label_score[:6].isna().all() and res.table.suggested_label[:5].notna().all()
    tiny, _ = store_with(x[:4], ["a", "a", "b", "b"])
    report = run_audit(tiny, "c", k=10)
    assert report.knn.k == 3 and any("neighbours are limited" in n for n in report.notes)


def test_relabel_confirm_delete_and_undo_round_trip():
    x, y = blobs(n_per=5)
    s, ids = store_with(x, [f"c{v}" for v in y])
    first = relabel(s, "c", [ids[0]], "c9", by="ann")
    second = relabel(s, "c", [ids[0]], "c8", by="bob")
    p = s.retrieve("c", [ids[0]]).payloads[0]
    assert p["label"] == "c8" and p["label_original"] == "c0" and p["reviewed"]
    assert [(h["old"], h["new"], h["by"]) for h in p["label_history"]] == [("c0", "c9", "ann"), ("c9", "c8", "bob")]
    undo(s, first + second, by="ann")  # chronological; undone newest first
    p = s.retrieve("c", [ids[0]]).payloads[0]
    assert p["label"] == "c0" and p["label_original"] == "c0" and len(p["label_history"]) == 4
    confirm(s, "c", [ids[1]], by="ann")
    assert s.retrieve("c", [ids[1]]).payloads[0]["label_confirmed"] == "c0"
    gone = delete_points(s, "c", [ids[2]], by="ann")
    assert s.count("c") == len(ids) - 1
    undo(s, gone, by="ann")
    back = s.retrieve("c", [ids[2]], with_vectors=True)
    assert back.ids == [ids[2]] and np.allclose(back.vectors[0], x[2], atol=1e-5)
    assert relabel(s, "c", [999_999], "c1", by="ann") == []  # deleted meanwhile: nothing to change


def test_confirmed_points_are_not_flagged_again():
    x, y = blobs()
    labels = [f"c{v}" for v in y]
    labels[0] = "c3"
    s, ids = store_with(x, labels)
    assert run_audit(s, "c", checks=["label"]).table.is_label_issue[0]
    confirm(s, "c", [ids[0]], by="ann")
    assert not run_audit(s, "c", checks=["label"]).table.is_label_issue[0]


def test_concurrent_edits_keep_both_in_history():
    x, y = blobs(n_per=5)
    s, ids = store_with(x, [f"c{v}" for v in y])
    threads = [threading.Thread(target=relabel, args=(s, "c", [ids[0]], f"t{i}", f"tab{i}")) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    history = s.retrieve("c", [ids[0]]).payloads[0]["label_history"]
    assert sorted(h["by"] for h in history) == ["tab0", "tab1", "tab2", "tab3"]
