"""Near-duplicates: groups of points whose vectors are (almost) identical, and exact copies by content hash.
Groups whose members carry different labels come first: one of them is wrong.

Why not one cosine: what a cosine means depends on the model and the data. Uncentred EfficientNet features of
64 px digits put most *distinct* digits above 0.98 of each other, while a JPEG copy of a 28 px Fashion-MNIST
image can fall to 0.82 from its original. What does carry over is the shape of the neighbourhood: a copy sits
much closer to its original than either sits to its ordinary neighbours, and a collection's ordinary points
rarely have a neighbour that stands out like that. So a pair is judged by the ratio

    rho = distance(a, b) / min(local scale of a, local scale of b)

where the local scale of a point is the median distance to its k nearest neighbours (copies of it excluded), and
the bar for rho comes from the collection's own nearest-neighbour ratios (median and MAD of log rho of every
point's nearest neighbour, robust to the few duplicates among them), never looser than RATIO_CEILING. A pair must
also be close on the collection-wide scale (two remote outliers are each other's nearest neighbour, yet not
copies), and vectors equal up to float noise always count. Ratios of distances from one point do not change when
the collection's mean is subtracted, so the rule needs no centring and works on the audit's kNN graph as it is.

Groups are stars that are also cliques: each member is a near-duplicate of the representative and of every other
member, so a chain a~b~c never puts a and c together when a and c are not near-duplicates themselves (single-link
chaining joined pictures that look nothing alike)."""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import AuditData, CheckResult

# Held-out calibration (Fashion-MNIST *train*, 3,000 images, effnet-lite0; not the 5k t10k set the bench reports):
# the nearest-neighbour ratio of clean images has its 0.1% quantile at 0.59 and the one visibly identical pair
# (the same bag) at 0.38; the bench's planted near copies (cosine 0.995) sit near 0.2.
RATIO_CEILING = 0.5
ROBUST_Z = 4.0  # how many robust standard deviations below the collection's typical nearest-neighbour ratio
SAME_VECTOR = 1e-3  # Euclidean distance between unit vectors (cosine >= 1 - 5e-7): the same vector up to float noise


def _distance(similarity: np.ndarray | float) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine."""
    return np.sqrt(np.maximum(0.0, 2.0 * (1.0 - np.asarray(similarity, np.float64))))


@dataclass
class DuplicateCheck:
    # None: adaptive (see the module's docstring); a number: the cosine at or above which two images count as
    # near-duplicates, as the user chose it.
    similarity: float | None = None
    name: str = "duplicate"

    def run(self, data: AuditData) -> CheckResult:
        n = len(data.ids)
        k = data.knn.k
        x = np.asarray(data.vectors, np.float32)
        sims = np.asarray(data.knn.similarities, np.float64) if k else np.zeros((n, 0))
        nbrs = np.asarray(data.knn.indices) if k else np.zeros((n, 0), np.int64)
        dist = _distance(sims)
        if self.similarity is None:
            judge, score, rule = self._adaptive(dist, nbrs)
        else:
            judge, score, rule = self._fixed(sims)

        def near(a: int, b: int) -> bool:
            return bool(judge(a, b, float(x[a] @ x[b])))

        # exact copies by content hash: always one group, whatever their vectors
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i, payload in enumerate(data.payloads):
            digest = payload.get("sha1")
            if isinstance(digest, str) and digest:
                by_hash[digest].append(i)
        group_of = np.full(n, -1)
        members: list[list[int]] = []
        reps: list[int] = []
        for rows in by_hash.values():
            if len(rows) > 1:
                group_of[rows] = len(members)
                members.append(list(rows))
                reps.append(rows[0])
        exact = {i for rows in members for i in rows}

        # candidate pairs from the kNN graph, strongest first; greedy: a pair of free points starts a group
        # (the representative is the one with more candidates), a free point joins a group only when it is a
        # near-duplicate of every member
        rows_, cols_ = np.nonzero(judge(np.repeat(np.arange(n), k).reshape(n, k), nbrs, sims)) if k else ([], [])
        candidates = defaultdict(int)
        for r, c in zip(rows_, cols_):
            candidates[int(r)] += 1
        order = np.argsort(dist[rows_, cols_], kind="stable") if k else []
        for t in order:
            a, b = int(rows_[t]), int(nbrs[rows_[t], cols_[t]])
            if a == b or (group_of[a] >= 0 and group_of[b] >= 0):
                continue
            if group_of[a] < 0 and group_of[b] < 0:
                rep, other = (a, b) if (candidates[a], -a) >= (candidates[b], -b) else (b, a)
                group_of[[rep, other]] = len(members)
                members.append([rep, other])
                reps.append(rep)
                continue
            g, free = (group_of[a], b) if group_of[a] >= 0 else (group_of[b], a)
            if all(near(free, m) for m in members[g]):
                group_of[free] = g
                members[g].append(free)

        labels = data.labels

        def mixed(rows: list[int]) -> bool:
            return len({str(labels[i]) for i in rows}) > 1

        order_g = sorted(range(len(members)), key=lambda g: (not mixed(members[g]), -len(members[g]),
                                                               min(members[g])))
        groups = [sorted(members[g]) for g in order_g]
        representatives = [reps[g] for g in order_g]
        group_id = np.full(n, -1)
        for g, rows in enumerate(groups):
            group_id[rows] = g
        score = np.where([i in exact for i in range(n)], 0.0, score)
        table = pd.DataFrame({"duplicate_group": group_id, "duplicate_score": np.clip(score, 0.0, 1.0),
                              "exact_copy": [i in exact for i in range(n)], "is_duplicate_issue": group_id >= 0})
        summary = {"groups": len(groups), "points_in_groups": int((group_id >= 0).sum()),
                   "mixed_label_groups": sum(mixed(m) for m in groups), "exact_copies": len(exact), **rule}
        return CheckResult(self.name, table, summary, {"groups": groups, "representatives": representatives})

    def _fixed(self, sims: np.ndarray):
        bar = float(self.similarity)

        def judge(_a, _b, sim):
            return np.asarray(sim) >= bar

        nearest = sims[:, 0] if sims.shape[1] else np.zeros(len(sims))
        return judge, 1.0 - nearest, {"rule": "fixed", "similarity": bar}

    def _adaptive(self, dist: np.ndarray, nbrs: np.ndarray):
        n, k = dist.shape
        if k == 0:
            def judge(_a, _b, sim):
                return _distance(sim) <= SAME_VECTOR

            return judge, np.ones(n), {"rule": "adaptive", "similarity": None, "ratio": None}
        # local scale: median distance to the neighbours that are not the same vector
        far = np.where(dist > SAME_VECTOR, dist, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows made only of copies: no scale (nan)
            scale = np.nan_to_num(np.nanmedian(far, axis=1), nan=0.0)
        typical = float(np.median(scale[scale > 0])) if (scale > 0).any() else 0.0
        pair_scale = np.minimum(scale[:, None], scale[nbrs])
        with np.errstate(all="ignore"):
            ratio = np.where(pair_scale > 0, dist / pair_scale, np.inf)
        # the collection's own nearest-neighbour ratios (the same-vector copies left out: they are not its noise)
        first = np.argmax(dist > SAME_VECTOR, axis=1)
        nn_ratio = ratio[np.arange(n), first]
        ok = np.isfinite(nn_ratio) & (nn_ratio > 0) & (dist[np.arange(n), first] > SAME_VECTOR)
        if ok.sum() >= 5:
            logs = np.log(nn_ratio[ok])
            centre = float(np.median(logs))
            spread = float(1.4826 * np.median(np.abs(logs - centre)))
            bar = float(min(RATIO_CEILING, np.exp(centre - ROBUST_Z * spread)))
        else:
            centre, spread, bar = float("nan"), float("nan"), RATIO_CEILING
        reach = bar * typical  # never farther than this on the collection-wide scale

        def judge(a, b, sim):
            d = _distance(sim)
            s = np.minimum(scale[a], scale[b])
            return (d <= SAME_VECTOR) | ((d <= bar * s) & (d <= reach))

        score = np.where(dist[:, 0] <= SAME_VECTOR, 0.0, ratio[:, 0])  # the nearest neighbour's ratio
        rule = {"rule": "adaptive", "similarity": round(1.0 - reach ** 2 / 2.0, 5), "ratio": round(bar, 4),
                "ratio_ceiling": RATIO_CEILING, "nn_ratio_median": round(float(np.exp(centre)), 4),
                "nn_ratio_log_mad": round(spread, 4), "typical_neighbour_distance": round(typical, 4)}
        return judge, score, rule
