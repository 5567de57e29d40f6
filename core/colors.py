"""One colour per label on every page (UI-free): the 20 most common labels of the collection get a colour each, in
name order, so the Explore map, the Graph view and their legends agree, and a relabel does not swap colours. Conflicts (cross-label edges, audit suspects)
use a dark red and a line style or marker that no label gets."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .catalog import NO_LABEL

# 20 qualitative colours readable on white (contrast >= 2.2 : 1, no pale yellows or greys), none of them red.
# The first five are Okabe-Ito's colour-blind-safe set: the most common labels get the safest colours.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000080", "#808000", "#8C564B", "#4DAF4A", "#800080",
    "#008080", "#17BECF", "#984EA3", "#6495ED", "#332288", "#7B4173", "#8DB600", "#F781BF", "#66A61E", "#6B6ECF")
OTHER = "(other)"
OTHER_COLOR = "#A0A0A0"  # labels beyond the palette, drawn together; a neutral grey no label gets
NONE_COLOR = "#505050"  # points without a label: a dark grey no label gets
CONFLICT_COLOR = "#B2182B"  # cross-label edges (dashed) and audit suspects (ring markers) only
CONFLICT_DASH = "dash"
SUSPECT_SYMBOL = "circle-open"  # labels are filled circles
# hover boxes: dark text on white, whatever the trace colour
HOVER_LABEL = {"bgcolor": "white", "bordercolor": "#888888", "font": {"color": "#1A1A1A"}}


def label_text(value: Any) -> str:
    return NO_LABEL if value is None or value == "" else str(value)


@dataclass(frozen=True)
class LabelColors:
    """Colours for the most common labels (by count, then name), given in name order; every other label is
    grouped as "(other)"."""
    colors: dict[str, str] = field(default_factory=dict)

    def group(self, value: Any) -> str:
        name = label_text(value)
        return name if name in self.colors or name == NO_LABEL else OTHER

    def color(self, name: str) -> str:
        if name == NO_LABEL:
            return NONE_COLOR
        return self.colors.get(name, OTHER_COLOR)

    def order(self, names: Iterable[str]) -> list[str]:
        """Names in legend order: the palette's order, then "(none)", then "(other)"."""
        rank = {n: i for i, n in enumerate(self.colors)}
        rank[NO_LABEL], rank[OTHER] = len(rank), len(rank) + 1
        return sorted(set(names), key=lambda n: (rank.get(n, len(rank) + 2), n))


def label_colors(counts: Mapping[Any, int] | Iterable[Any]) -> LabelColors:
    """Colours for a collection's labels from their counts (a mapping label -> count, e.g. the collection summary's
    labels, or the values themselves). The same counts give the same colours on every page and every run."""
    if not isinstance(counts, Mapping):
        counts = Counter(label_text(v) for v in counts)
    ranked = sorted(((label_text(k), int(v)) for k, v in counts.items() if label_text(k) not in (NO_LABEL, OTHER)),
                    key=lambda kv: (-kv[1], kv[0]))
    # The counts pick which labels get a colour (the most common); names decide which colour each gets, so a
    # relabel that moves two labels' counts past each other does not swap their colours
    chosen = list(dict.fromkeys(name for name, _ in ranked))[:len(PALETTE)]
    return LabelColors(dict(zip(sorted(chosen), PALETTE)))


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha:g})"


def lab(hex_color: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour: for checking that colours stay apart."""
    h = hex_color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, \
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(a: str, b: str) -> float:
    return sum((x - y) ** 2 for x, y in zip(lab(a), lab(b))) ** 0.5


def contrast_on_white(hex_color: str) -> float:
    h = hex_color.lstrip("#")
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (int(h[i:i + 2], 16) / 255
                                                                                 for i in (0, 2, 4))]
    return 1.05 / (0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] + 0.05)
