"""The label check's self-calibration and operating points: the estimator recovers a known error rate, thresholds
follow the operating point, tiny collections get their blatant errors flagged, and a person's decisions are trusted
and re-rank the rest."""
import numpy as np
import pytest
from PIL import Image

from core import datasets, models
from core.audit import is_trusted, run_audit
from core.audit.calibration import calibrate, check_operating_point, noise_transition
from core.labels import confirm, relabel
from core.store import open_store


def mixture(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a collection where `rate` of the labels are wrong: errors score low, clean labels high."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < rate
    return np.where(wrong, rng.beta(1, 12, n), rng.beta(12, 1.5, n)), wrong


@pytest.mark.parametrize("rate", [0.03, 0.1, 0.25])
def test_estimates_match_the_truth_when_planted_errors_score_like_real_ones(rate):
    observed, wrong = mixture(4000, rate, seed=1)
    planted = np.random.default_rng(2).beta(1, 12, 300)  # the same score distribution as real errors
    cal = calibrate(observed, np.zeros(4000, int), planted, np.zeros(300, int), ["a"], 1, "balanced")
    flagged = observed < cal.threshold
    true_precision = wrong[flagged].mean()
    assert abs(cal.error_rate - wrong.mean()) < 0.25 * rate + 0.01
    assert abs(cal.precision - true_precision) < 0.06
    assert abs(cal.recall - flagged[wrong].mean()) < 0.08
    lo, hi = cal.precision_interval
    assert lo <= cal.precision <= hi and hi - lo < 0.3
    assert cal.flagged == int(flagged.sum()) and f"Of the {cal.flagged:,} flagged" in cal.sentence()


def test_operating_points_order_the_thresholds():
    rng = np.random.default_rng(3)
    wrong = rng.random(3000) < 0.1
    observed = np.where(wrong, rng.beta(2, 8, 3000), rng.beta(8, 2, 3000))  # overlapping: a real trade-off
    planted = np.random.default_rng(4).beta(2, 8, 300)
    cals = {op: calibrate(observed, np.zeros(3000, int), planted, np.zeros(300, int), ["a"], 1, op)
            for op in ("precision", "balanced", "recall", 0.99)}
    assert cals[0.99].threshold <= cals["precision"].threshold <= cals["recall"].threshold
    assert cals["precision"].precision >= 0.9 and cals["recall"].recall >= 0.9
    assert cals[0.99].flagged < cals["precision"].flagged <= cals["balanced"].flagged <= cals["recall"].flagged
    assert cals[0.99].precision >= 0.99


@pytest.mark.parametrize("bad", ["sometimes", "1.5", 0.0, 1, -0.2])
def test_bad_operating_points_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="precision"):
        check_operating_point(bad)


def test_planted_flips_go_to_other_classes_mostly_where_the_data_is_confused():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 50)
    probs = np.full((150, 3), 0.05)
    probs[np.arange(150), y] = 0.9
    probs[:10] = [0.05, 0.9, 0.05]  # ten of class 0 look just like class 1
    probs /= probs.sum(axis=1, keepdims=True)
    confused, uniform = noise_transition(y, probs + rng.random((150, 3)) * 1e-3)
    for t in (confused, uniform):
        assert np.allclose(t.sum(axis=1), 1) and np.allclose(np.diag(t), 0)
    assert confused[0, 1] == 1.0 and uniform[0, 1] == uniform[0, 2] == 0.5


@pytest.fixture(scope="module")
def digits30():
    """The issue's small case: 30 sklearn digits (ten each of 0, 1, 7, 64 px) through the real effnet-lite0, with
    two blatant mislabels (a zero filed as "1", a one filed as "7")."""
    images, labels, _ = datasets.load_digits()
    rows = np.concatenate([np.flatnonzero(labels == c)[:10] for c in (0, 1, 7)])
    model = models.load(models.choose("effnet-lite0"), "cpu")
    x = model.embed_images([Image.fromarray(images[i]).resize((64, 64)).convert("RGB") for i in rows])
    given = [str(v) for v in labels[rows]]
    given[3], given[15] = "1", "7"
    return x, given, {3, 15}


def digit_store(x, given):
    s = open_store(url=":memory:")
    s.create_collection("d", {"m": x.shape[1]})
    s.upsert("d", list(range(1, len(x) + 1)), {"m": x}, [{"label": g, "sha1": f"h{i}"} for i, g in enumerate(given)])
    return s


def test_a_tiny_collection_gets_both_blatant_mislabels_flagged(digits30):
    x, given, wrong = digits30
    s = digit_store(x, given)
    report = run_audit(s, "d", checks=["label", "duplicate"])
    flagged = set(np.flatnonzero(report.table.is_label_issue))
    assert wrong <= flagged and len(flagged - wrong) <= 2, report.table.sort_values("label_score").head(6)
    summary = report.results["label"].summary
    assert summary["calibration"]["planted"] >= 20 and summary["threshold"] > 0.05  # adapted, not the old 0.05
    assert report.results["duplicate"].summary["groups"] == 0
    # the old fixed threshold flags nothing here: the adaptive one is what finds them
    assert not run_audit(s, "d", checks=["label"], threshold=0.05).table.is_label_issue.any()


def test_decisions_are_trusted_and_re_rank_the_rest(digits30):
    x, given, wrong = digits30
    s = digit_store(x, given)
    before = run_audit(s, "d", checks=["label"]).table
    suspect = int(before.label_score.idxmin())
    confirm(s, "d", [suspect + 1], by="tester")  # the reviewer says: this label is right after all
    after = run_audit(s, "d", checks=["label"])
    assert not after.cached and after.results["label"].summary["trusted"] == 1
    assert after.table.trusted[suspect] and not after.table.is_label_issue[suspect]
    # a trusted label counts more in the probe and the vote: the other scores move
    assert not np.allclose(after.table.label_score.drop(suspect), before.label_score.drop(suspect))
    other = next(iter(wrong - {suspect}))
    relabel(s, "d", [other + 1], "0" if given[other] == "1" else "1", by="tester")
    payload = s.retrieve("d", [other + 1]).payloads[0]
    assert is_trusted(payload, "label")
    assert run_audit(s, "d", checks=["label"]).results["label"].summary["trusted"] == 2
