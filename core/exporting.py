"""Tables of points for export (CSV) and display."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .points import PointSet


def selection_table(points: PointSet, coords: np.ndarray, rows: list[int], label_field: str | None) -> pd.DataFrame:
    """id, label, path/url, x, y and every scalar payload field, one row per selected point."""
    records = []
    for r in rows:
        payload = points.payloads[r]
        record = {"id": points.ids[r], "label": payload.get(label_field) if label_field else None,
                  "path": payload.get("path"), "image_url": payload.get("image_url"),
                  "x": float(coords[r, 0]), "y": float(coords[r, 1])}
        for key, value in payload.items():
            if key not in record and not isinstance(value, (dict, list)):
                record[key] = value
        records.append(record)
    return pd.DataFrame.from_records(records)
