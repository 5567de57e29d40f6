"""Self-calibration of the label check on the user's own collection.

A label score alone does not say how many flags are real errors: that depends on the model, the classes and the
noise. So the audit plants a few extra label flips in memory (never written), re-runs the label check on the same
folds, and reads off how planted errors score. Their scores give the recall of any threshold; the share of all
points scoring like errors, against the share of planted errors doing so, gives the collection's error rate
(mixture-proportion estimation), hence the expected precision. Half the flips go towards the classes the data
itself confuses (the confident joint of the out-of-fold probabilities), half uniformly: real noise lies somewhere
between. Bootstrap resampling of both score sets gives the uncertainty.

Known bias, measured in bench/audit.py: clean but ambiguous images score like errors, and this estimator cannot
tell them apart, so expected precision runs high when the noise is low (few real errors next to a fixed share
of ambiguous images).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# Operating points: how the threshold follows the estimates.
OPERATING_POINTS = ("precision", "balanced", "recall")
PRECISION_FIRST = 0.9  # "precision-first": the widest threshold whose expected precision reaches this
RECALL_FIRST = 0.9  # "recall-first": the narrowest threshold whose expected recall reaches this
PLANT_SHARE = 0.03  # flips planted per round, as a share of the scored points
MIN_PLANTED = 120  # small collections plant in several rounds until this many flips were scored (60 left the
# demo's 2,000 images swinging by a quarter of the flags after one decision)
MAX_ROUNDS = 12
FIT_QUANTILE = 0.6  # the error rate is fitted below the score under which this share of planted errors falls
MIX_GRID = tuple(np.linspace(0.0, 1.0, 11))  # candidate shares of uniform-like errors
BOOTSTRAP = 200
BOOTSTRAP_MAX = 20_000
INTERVAL = (5, 95)  # percentiles of the reported interval (a 90% interval)
# The estimate is optimistic (see the module docstring): on held-out Fashion-MNIST train images it overstated
# precision by 0.12 on average and by up to 0.22 in 9 of 10 runs (bench/audit.py --tune). The interval's low end
# reaches at least this far below the estimate, so that it says how far the estimate itself can be trusted.
OPTIMISM = 0.22

Rescore = Callable[[np.ndarray], np.ndarray]  # class index per point -> label score per point (same folds)


@dataclass
class Calibration:
    threshold: float
    operating_point: str
    flagged: int
    precision: float
    precision_interval: tuple[float, float]
    recall: float
    recall_interval: tuple[float, float]
    error_rate: float  # estimated share of wrong labels among scored points
    error_rate_interval: tuple[float, float]
    planted: int
    rounds: int
    curve: list[dict[str, float]] = field(default_factory=list)  # threshold, flagged, precision, recall, f1
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    uniform_share: float = 0.5  # fitted share of errors that look like uniform flips (the rest: confusions)
    note: str = ""  # e.g. why an operating point flags as many as balanced

    @property
    def expected_real(self) -> float:
        return self.precision * self.flagged

    @property
    def expected_real_interval(self) -> tuple[float, float]:
        return self.precision_interval[0] * self.flagged, self.precision_interval[1] * self.flagged

    def sentence(self) -> str:
        """What a user reads: how many of the flags are expected to be real errors."""
        if not self.flagged:
            return (f"Nothing flagged at this operating point; about {self.error_rate:.1%} of labels are estimated "
                    f"wrong (calibrated with {self.planted:,} planted flips).")
        lo, hi = self.expected_real_interval
        one = round(self.expected_real) == 1
        text = (f"Of the {self.flagged:,} flagged, about {self.expected_real:.0f} ({lo:.0f}–{hi:.0f}) "
                f"{'is expected to be a real error' if one else 'are expected to be real errors'}: precision ≈ {self.precision:.0%} ({lo / self.flagged:.0%}–{hi / self.flagged:.0%}), "
                f"finding ≈ {self.recall:.0%} of all wrong labels (calibrated with {self.planted:,} planted flips).")
        return f"{text} {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "operating_point": self.operating_point, "flagged": self.flagged,
                "precision": self.precision, "precision_interval": list(self.precision_interval),
                "recall": self.recall, "recall_interval": list(self.recall_interval),
                "expected_real_errors": self.expected_real,
                "expected_real_errors_interval": list(self.expected_real_interval),
                "error_rate": self.error_rate, "error_rate_interval": list(self.error_rate_interval),
                "planted": self.planted, "rounds": self.rounds, "per_class": self.per_class,
                "uniform_share": self.uniform_share, "note": self.note,
                "sentence": self.sentence()}


def noise_transition(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where planted flips go: (the data's own confusions (confident joint), uniform over the other classes)."""
    c = probs.shape[1]
    per_class = np.array([probs[y == k, k].mean() if (y == k).any() else 1.0 for k in range(c)])
    above = probs >= per_class
    best = np.where(above, probs, -1.0).argmax(axis=1)
    off = above.any(axis=1) & (best != y)
    joint = np.zeros((c, c))
    np.add.at(joint, (y[off], best[off]), 1.0)
    uniform = (1.0 - np.eye(c)) / max(c - 1, 1)
    rows = joint.sum(axis=1, keepdims=True)
    confused = np.where(rows > 0, joint / np.maximum(rows, 1e-12), uniform)
    return confused, uniform


def plant_and_rescore(y: np.ndarray, candidates: np.ndarray, probs: np.ndarray, rescore: Rescore,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Scores of planted flips: (planted scores, their new class, uniform or not, rounds run).
    Every other flip goes uniformly, the rest towards confused classes; `calibrate` weighs the two kinds."""
    rng = np.random.default_rng(seed)
    confused, uniform = noise_transition(y, probs)
    per_round = int(min(max(2, round(PLANT_SHARE * len(candidates))), max(1, len(candidates) // 3)))
    rounds = int(min(MAX_ROUNDS, max(1, math.ceil(MIN_PLANTED / per_round))))
    scores, classes, kinds = [], [], []
    for r in range(rounds):
        pick = rng.choice(candidates, size=min(per_round, len(candidates)), replace=False)
        kind = (np.arange(len(pick)) + r) % 2 == 0
        flipped = y.copy()
        for i, is_uniform in zip(pick, kind):
            row = (uniform if is_uniform else confused)[y[i]]
            flipped[i] = rng.choice(len(row), p=row)
        new_scores = rescore(flipped)
        scores.append(new_scores[pick])
        classes.append(flipped[pick])
        kinds.append(kind)
    return np.concatenate(scores), np.concatenate(classes), np.concatenate(kinds), rounds


def _cdf(sorted_scores: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Weighted share of scores strictly below each grid value (weights in sorted order, summing to 1)."""
    return np.concatenate([[0.0], np.cumsum(weights)])[np.searchsorted(sorted_scores, grid, side="left")]


def _estimates(observed: np.ndarray, planted: np.ndarray, uniform: np.ndarray,
               grid: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(error rate, share of uniform-like errors, precision per threshold, recall per threshold).

    Errors are modelled as a mix of the two planted kinds; the mix and the error rate are fitted where planted
    errors score lowest, where clean labels are assumed rare (their share is the estimator's known bias)."""
    obs = np.sort(observed)
    order = np.argsort(planted, kind="stable")
    pl, kind = planted[order], uniform[order]
    flagged_share = np.searchsorted(obs, grid, side="left") / max(len(obs), 1)
    low = np.quantile(pl, np.linspace(0.05, FIT_QUANTILE, 24)) if len(pl) else np.zeros(1)
    observed_low = np.searchsorted(obs, low, side="left") / max(len(obs), 1)
    best = (np.inf, 0.5, 0.0)
    n_u, n_c = max(int(kind.sum()), 1), max(int((~kind).sum()), 1)
    for share in MIX_GRID if kind.any() and (~kind).any() else (0.5,):
        w = np.where(kind, share / n_u, (1 - share) / n_c) if kind.any() and (~kind).any() else np.full(
            len(pl), 1.0 / max(len(pl), 1))
        f1 = _cdf(pl, w, low)
        rate = float((observed_low * f1).sum() / max((f1 * f1).sum(), 1e-12))
        err = float(((observed_low - rate * f1) ** 2).sum())
        if err < best[0] - 1e-15:
            best = (err, share, rate)
    _, share, rate = best
    w = np.where(kind, share / n_u, (1 - share) / n_c) if kind.any() and (~kind).any() else np.full(
        len(pl), 1.0 / max(len(pl), 1))
    rate = min(1.0, max(rate, 0.0))
    recall = _cdf(pl, w, grid)
    precision = np.where(flagged_share > 0, np.minimum(1.0, rate * recall / np.maximum(flagged_share, 1e-12)), 1.0)
    return rate, share, precision, recall


def choose(grid: np.ndarray, precision: np.ndarray, recall: np.ndarray, operating_point: str | float) -> int:
    """Index into grid of the threshold an operating point asks for. Precision-first never flags more than
    balanced, recall-first never fewer: the names promise an order."""
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    balanced = int(np.argmax(f1))
    if operating_point == "balanced":
        return balanced
    if operating_point == "recall":
        ok = np.flatnonzero(recall >= RECALL_FIRST)
        return max(int(ok.min()) if len(ok) else len(grid) - 1, balanced)
    target = PRECISION_FIRST if operating_point == "precision" else float(operating_point)
    ok = np.flatnonzero(precision >= target)
    if not len(ok):
        return 0
    at = int(ok[np.argmax(recall[ok])])  # the most recall the target allows, at its narrowest threshold
    return min(at, balanced) if operating_point == "precision" else at


def check_operating_point(value: str | float) -> str | float:
    """The operating point as run_audit takes it, or a ValueError that says what is accepted."""
    if isinstance(value, str):
        text = value.strip().lower()
        aliases = {"precision-first": "precision", "recall-first": "recall", "f1": "balanced"}
        text = aliases.get(text, text)
        if text in OPERATING_POINTS:
            return text
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"Unknown operating point {value!r}: use precision, balanced, recall, or a target "
                             "precision between 0 and 1 such as 0.8.") from None
    if not (isinstance(value, (int, float)) and 0.0 < float(value) < 1.0):
        raise ValueError(f"A target precision must lie between 0 and 1 (got {value!r}), e.g. 0.8.")
    return float(value)


def calibrate(observed: np.ndarray, observed_class: np.ndarray, planted: np.ndarray, planted_class: np.ndarray,
              classes: list[str], rounds: int, operating_point: str | float, seed: int = 0,
              planted_uniform: np.ndarray | None = None) -> Calibration:
    """Threshold for the operating point and what to expect of the points it flags."""
    observed = np.asarray(observed, float)
    planted = np.asarray(planted, float)
    kinds = np.zeros(len(planted), bool) if planted_uniform is None else np.asarray(planted_uniform, bool)
    grid = np.unique(np.concatenate([observed, planted, [0.0]]))
    grid = np.append(grid[1:], np.nextafter(grid[-1], np.inf)) if len(grid) > 1 else np.array([1e-9])
    rate, share, precision, recall = _estimates(observed, planted, kinds, grid)
    at = choose(grid, precision, recall, operating_point)
    threshold = float(grid[at])
    note = ""
    if operating_point in ("precision", "recall") and at == choose(grid, precision, recall, "balanced"):
        note = ("Precision-first flags the same as balanced here: balanced already reaches the expected precision."
                if operating_point == "precision" else
                "Recall-first flags the same as balanced here: balanced already reaches the expected recall.")
    flagged = int((observed < threshold).sum())
    rng = np.random.default_rng(seed)
    boot_p, boot_r, boot_rate = [], [], []
    # Resamples of at most BOOTSTRAP_MAX observed scores: sorting 70k scores 200 times cost more than the refit; a
    # smaller resample only widens the interval a little (conservative).
    size = min(len(observed), BOOTSTRAP_MAX)
    for _ in range(BOOTSTRAP):
        o = observed[rng.integers(0, len(observed), size)]
        pick = rng.integers(0, len(planted), len(planted))
        b_rate, _share, b_prec, b_rec = _estimates(o, planted[pick], kinds[pick], np.array([threshold]))
        boot_rate.append(b_rate)
        boot_p.append(b_prec[0])
        boot_r.append(b_rec[0])
    interval = lambda v: tuple(float(x) for x in np.percentile(v, INTERVAL))  # noqa: E731
    p_lo, p_hi = interval(boot_p)
    precision_interval = (max(0.0, min(p_lo, float(precision[at]) - OPTIMISM)), p_hi)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    sample = np.unique(np.linspace(0, len(grid) - 1, min(len(grid), 60)).astype(int))
    curve = [{"threshold": float(grid[i]), "flagged": int((observed < grid[i]).sum()),
              "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])} for i in sample]
    per_class = {}
    for k, name in enumerate(classes):
        mine, theirs = observed[observed_class == k], planted[planted_class == k]
        if len(theirs) < 20 or len(mine) < 20:
            continue  # too few planted flips into this class for its own estimate
        c_rate, _share, c_prec, c_rec = _estimates(mine, theirs, kinds[planted_class == k], np.array([threshold]))
        per_class[name] = {"flagged": int((mine < threshold).sum()), "precision": float(c_prec[0]),
                           "recall": float(c_rec[0]), "error_rate": c_rate, "planted": int(len(theirs))}
    return Calibration(threshold, str(operating_point), flagged, float(precision[at]), precision_interval,
                       float(recall[at]), interval(boot_r), rate, interval(boot_rate), len(planted), rounds,
                       curve, per_class, share, note)
