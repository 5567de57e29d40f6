"""What every check receives and returns: one row per point, `is_<name>_issue` and `<name>_score` columns
(scores in [0, 1], lower = more likely a problem), plus a summary."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..knn import KnnGraph


@dataclass
class AuditData:
    ids: list[Any]
    vectors: np.ndarray  # unit rows
    labels: list[Any]  # the label field's value per point; None where missing or an "unknown" label
    knn: KnnGraph
    payloads: list[dict[str, Any]]
    confirmed: np.ndarray  # bool: a person confirmed or set this label (trusted: never flagged, weighs more)
    views: dict[str, np.ndarray] = field(default_factory=dict)  # other vectors of the same points (e.g. pixels)


@dataclass
class CheckResult:
    name: str
    table: pd.DataFrame  # index = row number of the point
    summary: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. duplicate groups, confusion matrix
