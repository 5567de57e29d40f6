"""Label issues: how likely each point's given label is, according to evidence that never saw that label.

Two views vote: a linear probe (multinomial logistic regression) cross-validated on the embeddings, so every
labeled point gets out-of-fold class probabilities, and the point's nearest neighbours' labels (weighted by
similarity). The label score is the mixed probability of the given label. Which points to flag is not one absolute
number: the check calibrates itself on the collection (core/audit/calibration.py) and the threshold follows the
chosen operating point. Labels a person has confirmed or set are trusted: they are never flagged and weigh more
when the probe is fitted, so every review decision re-ranks the rest.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..pixels import PIXELS
from .base import AuditData, CheckResult
from .calibration import calibrate, check_operating_point, plant_and_rescore

MIN_CLASS_SIZE = 3  # a label with fewer examples cannot be learned, so its points are not scored
# Chosen on 2 x 5,000 Fashion-MNIST *train* images (not the reported t10k set): mixing in the neighbours' vote
# raised average precision by 0.003-0.006 at 5-10% uniform and class-conditional noise; 0.1-0.3 were alike.
KNN_WEIGHT = 0.2
VOTE_PRIOR = 0.5  # pseudo-count spread over the classes: a point with no neighbours votes uniformly
# The pixel view (core/pixels.py), where the collection has one, is stacked onto the embedding at this weight:
# 0.35-0.7 all helped on held-out Fashion-MNIST train images, 0.7 most (bench/audit.py --tune).
PIXEL_WEIGHT = 0.7
TRUSTED_WEIGHT = 3.0  # a label a person decided counts this many times in the probe and the vote
MIN_CALIBRATION_POINTS = 12  # below this, planting flips says nothing: the fixed fallback threshold is used
FALLBACK_THRESHOLD = 0.05


@dataclass
class LabelCheck:
    # None: the threshold follows the operating point, calibrated on the collection. A number: flag labels whose
    # score is below it (the user's explicit choice; no calibration is run).
    threshold: float | None = None
    operating_point: str | float = "balanced"
    folds: int = 5
    knn_weight: float = KNN_WEIGHT
    pixel_weight: float = PIXEL_WEIGHT
    seed: int = 0
    name: str = "label"

    def run(self, data: AuditData) -> CheckResult:
        from sklearn.model_selection import StratifiedKFold

        n = len(data.ids)
        labels = [None if v is None else str(v) for v in data.labels]
        counts = Counter(v for v in labels if v is not None)
        classes = sorted(c for c, m in counts.items() if m >= MIN_CLASS_SIZE)
        trusted = np.asarray(data.confirmed, bool) if len(data.confirmed) == n else np.zeros(n, bool)
        table = pd.DataFrame({"label": labels, "label_score": np.nan, "probe_score": np.nan, "is_label_issue": False,
                              "suggested_label": None, "suggestion_confidence": np.nan,
                              "neighbour_agreement": _neighbour_agreement(data.knn.indices, labels),
                              "trusted": trusted})
        summary = {"scored": 0, "unlabeled": sum(v is None for v in labels),
                   "rare_label_points": sum(m for c, m in counts.items() if m < MIN_CLASS_SIZE),
                   "threshold": self.threshold, "classes": len(classes), "trusted": int(trusted.sum())}
        if len(classes) < 2:
            summary["note"] = ("Label issues need at least two labels with 3 or more points each; "
                               f"this selection has {len(classes)}.")
            return CheckResult(self.name, table, summary)

        x = _standard(data.vectors)
        if PIXELS in data.views and self.pixel_weight > 0:
            x = np.hstack([x, self.pixel_weight * _standard(data.views[PIXELS])])
        summary["evidence"] = ["embedding"] + ([PIXELS] if x.shape[1] > data.vectors.shape[1] else []) + [
            "neighbours' labels"]
        cls_index = {c: i for i, c in enumerate(classes)}
        train = np.array([v in cls_index for v in labels])
        rows = np.flatnonzero(train)
        y = np.full(n, -1)
        y[rows] = [cls_index[labels[i]] for i in rows]
        folds = max(2, min(self.folds, min(Counter(y[rows]).values())))
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(rows, y[rows]))
        weight = np.where(trusted, TRUSTED_WEIGHT, 1.0)

        fold_models: list = []  # the first fit's per-fold probes start the planted refits (a few labels differ)

        def evidence(y_now: np.ndarray, planted: bool = False) -> tuple[np.ndarray, np.ndarray]:
            probe = _probe(x, y_now, rows, splits, weight, len(classes), fold_models, suggest=not planted)
            vote = _vote(data.knn.indices, data.knn.similarities, y_now, weight, len(classes))
            return probe, (1.0 - self.knn_weight) * probe + self.knn_weight * vote

        probe, mixed = evidence(y)
        best = mixed.argmax(axis=1)
        table["suggested_label"] = [classes[i] for i in best]
        table["suggestion_confidence"] = mixed.max(axis=1)
        scores = np.full(n, np.nan)
        scores[rows] = mixed[rows, y[rows]]
        table["label_score"] = scores
        table.loc[rows, "probe_score"] = probe[rows, y[rows]]
        candidates = rows[~trusted[rows]]  # points that can be flagged
        calibration = None
        threshold = self.threshold
        if threshold is None and len(candidates) >= MIN_CALIBRATION_POINTS:
            def rescore(y_planted: np.ndarray) -> np.ndarray:
                return evidence(y_planted, planted=True)[1][np.arange(n), np.maximum(y_planted, 0)]

            planted, planted_class, uniform, rounds = plant_and_rescore(y, candidates, mixed, rescore, self.seed)
            calibration = calibrate(scores[candidates], y[candidates], planted, planted_class, classes, rounds,
                                    check_operating_point(self.operating_point), self.seed, uniform)
            threshold = calibration.threshold
        elif threshold is None:
            threshold = FALLBACK_THRESHOLD
            summary["note"] = (f"Only {len(candidates)} labeled points can be checked: too few to calibrate, so "
                               f"labels below {FALLBACK_THRESHOLD} are flagged.")
        flag = np.zeros(n, bool)
        flag[candidates] = scores[candidates] < threshold
        table["is_label_issue"] = flag
        flagged = table[flag]
        summary.update(scored=len(rows), flagged=int(flag.sum()), threshold=float(threshold),
                       operating_point=None if self.threshold is not None else str(self.operating_point))
        if calibration is not None:
            summary["calibration"] = calibration.as_dict()
        confusion = pd.crosstab(flagged["label"], flagged["suggested_label"]) if len(flagged) else pd.DataFrame()
        quality = table[train].groupby("label")["label_score"].mean().rename("label_quality")
        return CheckResult(self.name, table, summary, {"confusion": confusion, "label_quality": quality,
                                                       "classes": classes, "probabilities": probe,
                                                       "mixed_probabilities": mixed, "calibration": calibration})


def _standard(v: np.ndarray) -> np.ndarray:
    """Centred, and scaled to unit mean norm: one C fits every model's scale, and views can be stacked."""
    x = np.asarray(v, np.float64) - np.mean(v, axis=0)
    return x / max(float(np.linalg.norm(x, axis=1).mean()), 1e-12)


def _probe(x: np.ndarray, y: np.ndarray, rows: np.ndarray, splits: list, weight: np.ndarray, n_classes: int,
           fold_models: list, suggest: bool = True) -> np.ndarray:
    """Out-of-fold class probabilities for the scored rows; with `suggest`, a probe on all of them for the rest
    (suggestions). `fold_models` is filled with each fold's probe on the first call and warm-starts later calls:
    a refit after planting a few flips then converges in a fraction of the iterations."""
    from sklearn.linear_model import LogisticRegression

    probs = np.zeros((len(y), n_classes))

    def fit(train_rows: np.ndarray, fold: int | None = None) -> LogisticRegression:
        args = (x[train_rows], y[train_rows])
        if fold is not None and fold < len(fold_models):
            model = fold_models[fold]
            model.set_params(warm_start=True)
            try:
                return model.fit(*args, sample_weight=weight[train_rows])
            except ValueError:  # a class left this fold's training rows: start afresh
                pass
        model = LogisticRegression(C=1.0, max_iter=200, tol=1e-3).fit(*args, sample_weight=weight[train_rows])
        if fold is not None and fold >= len(fold_models):
            fold_models.append(model)
        return model

    def put(model: LogisticRegression, target: np.ndarray) -> None:
        out = np.zeros((len(target), n_classes))
        out[:, model.classes_] = model.predict_proba(x[target])
        probs[target] = out

    # One BLAS thread: the probe's matrices are thin (a column per class), and two threads on a busy 2-core
    # machine made it 4-40x slower in bench/audit.py.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence warnings: 200 iterations rank labels well already
        for fold, (train_pos, test_pos) in enumerate(splits):
            put(fit(rows[train_pos], fold), rows[test_pos])
        rest = np.setdiff1d(np.arange(len(y)), rows)
        if len(rest) and suggest:  # unlabeled and rare-label points: suggestions from a probe fit on all labeled
            put(fit(rows), rest)
    return probs


def _vote(indices: np.ndarray, similarities: np.ndarray, y: np.ndarray, weight: np.ndarray,
          n_classes: int) -> np.ndarray:
    """Similarity-weighted label distribution of each point's neighbours (never the point itself)."""
    n = len(y)
    votes = np.full((n, n_classes), VOTE_PRIOR / n_classes)
    if indices.size:
        labels = y[indices]
        w = np.maximum(similarities, 0.0) * weight[indices] * (labels >= 0)
        for j in range(indices.shape[1]):
            np.add.at(votes, (np.arange(n), np.maximum(labels[:, j], 0)), w[:, j])
    return votes / votes.sum(axis=1, keepdims=True)


def _neighbour_agreement(indices: np.ndarray, labels: list) -> np.ndarray:
    """Share of each point's neighbours that carry its label (NaN without a label or neighbours)."""
    arr = np.array(labels, dtype=object)
    out = np.full(len(labels), np.nan)
    if indices.size == 0:
        return out
    same = arr[indices] == arr[:, None]
    has = np.array([v is not None for v in labels])
    out[has] = same[has].mean(axis=1)
    return out
