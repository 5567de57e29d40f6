"""Outliers: points far from all others, by their mean cosine distance to their nearest neighbours."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import AuditData, CheckResult


@dataclass
class OutlierCheck:
    mads: float = 3.0  # flag beyond median + this many (scaled) median absolute deviations: robust to the outliers
    name: str = "outlier"

    def run(self, data: AuditData) -> CheckResult:
        n = len(data.ids)
        if data.knn.k == 0:
            table = pd.DataFrame({"outlier_distance": np.nan, "outlier_score": 1.0, "is_outlier_issue": False},
                                 index=range(n))
            return CheckResult(self.name, table, {"flagged": 0, "note": "too few points to judge outliers"})
        distance = 1.0 - data.knn.similarities.mean(axis=1)
        median = float(np.median(distance))
        mad = float(np.median(np.abs(distance - median))) * 1.4826
        limit = median + self.mads * max(mad, 1e-6)
        # score in (0, 1]: 1 at the typical distance or closer, falling off beyond it; lower = more isolated
        score = np.exp(-np.maximum(distance - median, 0) / max(limit - median, 1e-6))
        table = pd.DataFrame({"outlier_distance": distance, "outlier_score": score,
                              "is_outlier_issue": distance > limit})
        return CheckResult(self.name, table, {"flagged": int((distance > limit).sum()),
                                              "distance_limit": limit, "median_distance": median})
