"""Label issues: how likely each point's given label is, according to a classifier that never saw that point.

A linear probe (multinomial logistic regression) is cross-validated on the embeddings, so every labeled point
gets out-of-sample class probabilities; its label score is the probability of its given label. On the
Fashion-MNIST planted-noise benchmark this ranks flipped labels far better than a kNN vote or cleanlab's
Datalab on the same embeddings (bench/audit.py)."""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .base import AuditData, CheckResult

MIN_CLASS_SIZE = 3  # a label with fewer examples cannot be learned, so its points are not scored


@dataclass
class LabelCheck:
    # Flag when the given label's out-of-sample probability is below this. 0.05 flagged about as many points as
    # were planted (249 for 250 at 5% noise) and gave the best F1 at 2-10% noise in bench/audit.py; 0.1 is
    # better only when a fifth or more of the labels are wrong.
    threshold: float = 0.05
    folds: int = 5
    name: str = "label"

    def run(self, data: AuditData) -> CheckResult:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        n = len(data.ids)
        labels = [None if v is None else str(v) for v in data.labels]
        counts = Counter(v for v in labels if v is not None)
        classes = sorted(c for c, m in counts.items() if m >= MIN_CLASS_SIZE)
        table = pd.DataFrame({"label": labels, "label_score": np.nan, "is_label_issue": False,
                              "suggested_label": None, "suggestion_confidence": np.nan,
                              "neighbour_agreement": _neighbour_agreement(data.knn.indices, labels)})
        summary = {"scored": 0, "unlabeled": sum(v is None for v in labels),
                   "rare_label_points": sum(m for c, m in counts.items() if m < MIN_CLASS_SIZE),
                   "threshold": self.threshold, "classes": len(classes)}
        if len(classes) < 2:
            summary["note"] = ("Label issues need at least two labels with 3 or more points each; "
                               f"this selection has {len(classes)}.")
            return CheckResult(self.name, table, summary)

        x = data.vectors - data.vectors.mean(axis=0)
        x /= max(float(np.linalg.norm(x, axis=1).mean()), 1e-12)  # unit mean norm: one C fits every model's scale
        cls_index = {c: i for i, c in enumerate(classes)}
        train = np.array([v in cls_index for v in labels])
        y = np.array([cls_index[v] for v in np.array(labels, dtype=object)[train]])
        folds = max(2, min(self.folds, min(Counter(y).values())))
        probe = LogisticRegression(C=1.0, max_iter=200, tol=1e-3)
        # One BLAS thread: the probe's matrices are thin (a column per class), and two threads on a busy 2-core
        # machine made it 4-40x slower in bench/audit.py.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # convergence warnings: 200 iterations rank labels well already
            probs = np.zeros((n, len(classes)))
            probs[train] = cross_val_predict(probe, x[train], y, method="predict_proba",
                                             cv=StratifiedKFold(folds, shuffle=True, random_state=0))
            if (~train).any():  # unlabeled and rare-label points: suggestions from a probe fit on all labeled
                probs[~train] = probe.fit(x[train], y).predict_proba(x[~train])
        best = probs.argmax(axis=1)
        table["suggested_label"] = [classes[i] for i in best]
        table["suggestion_confidence"] = probs.max(axis=1)
        scores = np.full(n, np.nan)
        scores[train] = probs[np.flatnonzero(train), y]
        table["label_score"] = scores
        table["is_label_issue"] = (scores < self.threshold) & train & ~data.confirmed
        flagged = table[table.is_label_issue]
        summary.update(scored=int(train.sum()), flagged=int(len(flagged)),
                       estimated_errors=int(((scores < self.threshold) & train).sum()))
        confusion = pd.crosstab(flagged["label"], flagged["suggested_label"]) if len(flagged) else pd.DataFrame()
        quality = table[train].groupby("label")["label_score"].mean().rename("label_quality")
        return CheckResult(self.name, table, summary, {"confusion": confusion, "label_quality": quality,
                                                       "classes": classes, "probabilities": probs})


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
