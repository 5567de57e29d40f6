"""Tables of points for export (CSV) and display, and the one way every CSV is written."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .points import PointSet

# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|..., @SUM(...));
# tab and carriage return are stripped by some importers, uncovering what follows.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_safe_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, with a leading apostrophe (shown as text there);
    everything else unchanged. Numbers, and text that is just a number ("-3"), are not formulas."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of `table` whose text cells and column names are safe to open in a spreadsheet."""
    out = table.rename(columns=lambda c: csv_safe_cell(c) if isinstance(c, str) else c)
    for i, dtype in enumerate(out.dtypes):
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype)):
            out.isetitem(i, out.iloc[:, i].map(csv_safe_cell))  # by position: column names may repeat
    return out


def to_csv(table: pd.DataFrame, path: Any = None) -> str | None:
    """The table as CSV (text, or written to `path`), formula cells neutralised: every CSV export goes here.
    RFC 4180 line ends: with them a cell holding a carriage return is quoted too (with "\n" alone it is not)."""
    return csv_safe(table).to_csv(path, index=False, lineterminator="\r\n")


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
