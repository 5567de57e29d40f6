"""The WebGL map component (ui/map_frontend): every point of a large map drawn in the browser from compact binary
(uint16 coordinates and a uint8 group code per point: 5 bytes a point), selections answered as a polygon that the
server resolves on the same quantised coordinates (core.figures.selected_rows).

The arguments stay the same from one rerun to the next (a selection or a hover changes only the component's
value), so Streamlit's message cache sends the megabytes once per map, not once per click; the hovered point's
image is shown by the page beside the map, for the same reason."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit.components.v1 as components

from core.colors import CONFLICT_COLOR
from core.figures import MapArrays, selected_rows

_component = components.declare_component("atlas_map", path=str(Path(__file__).parent / "map_frontend"))


def map_canvas(arrays: MapArrays, version: str, key: str, height: int = 650) -> dict[str, Any]:
    """Draw the map; returns the component's value: {"selection": {...} | None, "hover": row | None}.
    `version` names the arrays (a new one uploads and redraws; the same one keeps the view and legend state)."""
    value = _component(xy=arrays.xy.tobytes(), codes=arrays.codes.tobytes(), marks=arrays.marks.tobytes(),
                       names=arrays.names, colors=arrays.colors, mark_name=arrays.mark_name,
                       mark_color=CONFLICT_COLOR, version=version, height=height, key=key, default=None)
    return value if isinstance(value, dict) else {}


def canvas_rows(arrays: MapArrays, value: dict[str, Any], memo: dict[str, Any]) -> list[int]:
    """The selected rows of a component value, resolved once per selection (a hover reruns the page with the
    same selection: `memo`, e.g. a session_state dict, keeps the last answer)."""
    selection = value.get("selection") if isinstance(value, dict) else None
    if not isinstance(selection, dict):
        return []
    ident = repr(sorted(selection.items()))
    if memo.get("ident") != ident:
        memo["ident"], memo["rows"] = ident, selected_rows(arrays, selection)
    return memo["rows"]


def hovered_row(value: dict[str, Any], n: int) -> int | None:
    row = value.get("hover") if isinstance(value, dict) else None
    return row if isinstance(row, int) and 0 <= row < n else None
