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
