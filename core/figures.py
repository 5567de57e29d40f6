"""Plotly figures (UI-free: the app renders them, tests and benchmarks measure them)."""
from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from .colors import OTHER  # noqa: F401 (importable from here, as before)
from .colors import CONFLICT_COLOR, HOVER_LABEL, PALETTE, SUSPECT_SYMBOL, LabelColors, label_colors

MAX_GROUPS = len(PALETTE) + 1  # legend entries: a colour per label, then the rest drawn together as "(other)"
# Point ids (36-character UUIDs) double the figure's size; above this many points hover shows label + file only.
HOVER_IDS_UP_TO = 20_000
# Up to this many points a map is drawn as SVG, above it with WebGL. WebGL pays a fixed start (a GL context, shader
# compiles: 0.5-1 s in a browser without a GPU) that SVG does not; SVG slows down with the point count instead.
SVG_UP_TO = 5_000


def scatter_class(n: int):
    """go.Scatter (SVG) for small plots, go.Scattergl (WebGL) for large ones (see SVG_UP_TO)."""
    return go.Scatter if n <= SVG_UP_TO else go.Scattergl


def plotly_text(value: Any) -> str:
    """User data as Plotly text (legend names, hover text): Plotly renders a few HTML tags and entities there, so
    `&`, `<` and `>` are escaped, once. Not quotes: Plotly does not decode `&quot;` and would show it as is."""
    return html.escape(str(value), quote=False)


def group_names(values: Sequence[Any], colors: LabelColors | None = None) -> list[str]:
    """A group name per point for coloring: the value as text, "(none)" when missing, "(other)" for a value without
    a colour (`colors`: the collection's label colours; by default the values' own counts rank them)."""
    colors = colors or label_colors(values)
    return [colors.group(v) for v in values]


@dataclass
class MapFigure:
    figure: go.Figure
    trace_rows: list[np.ndarray]  # for each trace, the point rows it draws (selection events give trace + index)

    def rows_of(self, selected: list[dict[str, Any]]) -> list[int]:
        """Rows of the points in a Plotly selection event (Streamlit's `selection.points`)."""
        rows = []
        for p in selected:
            curve, index = p.get("curve_number"), p.get("point_index", p.get("point_number"))
            if curve is None or index is None or curve >= len(self.trace_rows):
                continue
            trace = self.trace_rows[curve]
            if 0 <= index < len(trace):
                rows.append(int(trace[index]))
        return sorted(set(rows))


def map_figure(coords: np.ndarray, groups: Sequence[str], file_names: Sequence[Any], ids: Sequence[Any],
               highlight: dict[str, Sequence[int]] | None = None, height: int = 650,
               colors: LabelColors | None = None) -> MapFigure:
    """One WebGL trace per group (the legend toggles it), coloured by `colors` (the collection's label colours;
    by default the groups' own counts rank them), then one ring trace per highlight (e.g. audit suspects)."""
    coords = np.asarray(coords, dtype=np.float32)
    n = len(coords)
    with_ids = n <= HOVER_IDS_UP_TO
    groups_arr = np.asarray(groups, dtype=object)
    colors = colors or label_colors(Counter(groups))
    fig = go.Figure()
    trace_rows: list[np.ndarray] = []
    marker_size = 6 if n < 5_000 else 4 if n < 30_000 else 3
    trace = scatter_class(n)
    for name in colors.order(groups):
        rows = np.flatnonzero(groups_arr == name)
        # a numpy array, not a list: Plotly validates lists item by item (17x slower at 100k points)
        text = np.asarray([plotly_text(file_names[r]) + (f"<br>id {plotly_text(ids[r])}" if with_ids else "")
                           for r in rows])
        # the name goes in through fullData, not into the template: a label holding %{x} is not a placeholder
        fig.add_trace(trace(
            x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=plotly_text(name), text=text,
            hovertemplate="%{text}<extra>%{fullData.name}</extra>",
            marker={"size": marker_size, "opacity": 0.8, "color": colors.color(name)}))
        trace_rows.append(rows)
    for name, rows in (highlight or {}).items():
        rows = np.asarray(rows, dtype=np.int64)
        fig.add_trace(trace(
            x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=plotly_text(name),
            hoverinfo="skip", marker={"size": marker_size + 6, "symbol": SUSPECT_SYMBOL, "color": CONFLICT_COLOR,
                                      "line": {"width": 2}}))
        trace_rows.append(rows)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="lasso",
                      legend={"itemsizing": "constant", "title": {"text": ""}}, uirevision="map",
                      hoverlabel=HOVER_LABEL,
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return MapFigure(fig, trace_rows)


def figure_bytes(fig: go.Figure) -> int:
    return len(fig.to_json().encode())


# ---- large maps: every point drawn by the WebGL map component (ui/bigmap.py), sent as compact binary ----
# Above this many points the Explore page draws with the component instead of Plotly (measured, see the README's
# note on issue 15: Plotly's per-point hover text and selection events do not scale; below it they are richer).
CANVAS_FROM = 20_000
QUANT = 65535  # coordinates travel as uint16 on a common scale for both axes (aspect kept)


@dataclass
class MapArrays:
    """A map as the browser receives it: quantised coordinates, a group code per point, the groups' names and
    colours (legend order), and the rows to highlight."""
    xy: np.ndarray  # (n, 2) uint16; (0, 0)-(QUANT, QUANT) holds the whole map, centred
    codes: np.ndarray  # (n,) uint8, index into names/colors
    names: list[str]
    colors: list[str]
    marks: np.ndarray  # (m,) uint32 rows
    mark_name: str = ""

    def nbytes(self) -> int:
        return self.xy.nbytes + self.codes.nbytes + self.marks.nbytes


def quantize(coords: np.ndarray) -> np.ndarray:
    """(n, 2) floats -> (n, 2) uint16 in [0, QUANT], one scale for both axes, the map centred."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(coords) == 0:
        return np.zeros((0, 2), np.uint16)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    unit = (coords - (lo + hi) / 2) / span + 0.5
    return np.clip(np.rint(unit * QUANT), 0, QUANT).astype(np.uint16)


def group_codes(values: Sequence[Any], colors: LabelColors) -> tuple[np.ndarray, list[str]]:
    """A uint8 group code per value and the group names in legend order. Each distinct value is named once (a
    million values, a handful of groups)."""
    name_of: dict[Any, str] = {}
    keyed = []
    for v in values:
        k = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
        if k not in name_of:
            name_of[k] = colors.group(v)
        keyed.append(k)
    names = colors.order(name_of.values())
    code_of_key = {k: names.index(n) for k, n in name_of.items()}
    return np.fromiter((code_of_key[k] for k in keyed), dtype=np.uint8, count=len(keyed)), names


def map_arrays(coords: np.ndarray, values: Sequence[Any], colors: LabelColors | None = None,
               marks: Sequence[int] = (), mark_name: str = "audit suspects") -> MapArrays:
    """The browser's arrays for a map coloured by `values` (e.g. each point's label)."""
    colors = colors or label_colors(values)
    codes, names = group_codes(values, colors)
    return MapArrays(quantize(coords), codes, names, [colors.color(n) for n in names],
                     np.asarray(marks, dtype=np.uint32), mark_name)


def rows_in_polygon(xy: np.ndarray, polygon: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows of the quantised points `xy` inside `polygon` (vertices in the map's [0, 1] units, as the browser
    sends a lasso or box), by the even-odd rule; the points the browser drew, not re-projected ones."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * QUANT
    if len(poly) < 3 or len(xy) == 0:
        return np.zeros(0, np.int64)
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    # the bounding box first: a lasso usually covers a small part of the map
    cand = np.flatnonzero((xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1]))
    x = xy[cand, 0].astype(np.float64)
    y = xy[cand, 1].astype(np.float64)
    inside = np.zeros(len(cand), dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        if y0 == y1:
            continue
        crosses = np.flatnonzero((y0 > y) != (y1 > y))  # the edge spans the point's height
        at = x0 + (y[crosses] - y0) / (y1 - y0) * (x1 - x0)  # the ratio lies in [0, 1]: no overflow
        inside[crosses] ^= x[crosses] < at
    return cand[inside]


def selected_rows(arrays: MapArrays, selection: dict[str, Any] | None) -> list[int]:
    """Rows of a selection the map component sent ({kind: lasso|box|point, polygon | row, hidden: [codes],
    marks_hidden}); points of hidden groups are not selected, as with Plotly's legend."""
    if not selection:
        return []
    n = len(arrays.codes)
    if selection.get("kind") == "point":
        row = selection.get("row")
        return [int(row)] if isinstance(row, int) and 0 <= row < n else []
    rows = rows_in_polygon(arrays.xy, selection.get("polygon") or [])
    hidden = [int(c) for c in selection.get("hidden") or [] if isinstance(c, int)]
    if hidden:
        rows = rows[~np.isin(arrays.codes[rows], np.asarray(hidden, dtype=np.uint8))]
    return rows.tolist()
