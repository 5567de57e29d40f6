"""One colour per label: the same label gets the same colour on the Explore map and in the Graph view, 20 labels
stay distinct and readable on white, the rest are grouped in a grey no label gets, conflicts look like no label."""
import itertools

import numpy as np

from core.catalog import NO_LABEL
from core.colors import (CONFLICT_COLOR, NONE_COLOR, OTHER, OTHER_COLOR, PALETTE, SUSPECT_SYMBOL, contrast_on_white,
                         delta_e, label_colors)
from core.figures import group_names, map_figure
from core.graph import build_graph, graph_figure


def _counts(n):
    return {f"label{i:02d}": 1000 - i for i in range(n)}


def test_twenty_labels_get_distinct_readable_colours_none_of_them_the_conflict_red():
    colors = label_colors(_counts(20))
    got = [colors.color(f"label{i:02d}") for i in range(20)]
    assert len(set(got)) == 20
    reserved = {CONFLICT_COLOR, OTHER_COLOR, NONE_COLOR}
    assert not reserved & set(got)
    assert min(delta_e(a, b) for a, b in itertools.combinations(got, 2)) >= 12  # apart, not just unequal
    assert min(delta_e(c, CONFLICT_COLOR) for c in got) >= 40  # no label reads as the conflict red
    assert min(delta_e(c, g) for c in got for g in (OTHER_COLOR, NONE_COLOR)) >= 15  # nor as a grey
    assert min(contrast_on_white(c) for c in got) >= 2.2  # no pale yellow or light grey on white


def test_labels_beyond_the_palette_are_other_in_grey():
    colors = label_colors(_counts(25))
    assert len(PALETTE) >= 20
    assert [colors.group(f"label{i:02d}") for i in range(len(PALETTE), 25)] == [OTHER] * (25 - len(PALETTE))
    assert colors.color(OTHER) == OTHER_COLOR and colors.color(NO_LABEL) == NONE_COLOR
    assert colors.group(None) == NO_LABEL and colors.group("") == NO_LABEL
    names = group_names([f"label{i:02d}" for i in range(25)], colors)
    assert names[:len(PALETTE)] == [f"label{i:02d}" for i in range(len(PALETTE))] and names[-1] == OTHER


def test_colours_do_not_depend_on_order_or_swap_when_a_relabel_moves_counts():
    a = label_colors({"Bag": 5, "Coat": 9, "Trouser": 7})
    b = label_colors({"Trouser": 7, "Bag": 5, "Coat": 9})
    assert a == b and len({a.color(n) for n in ("Bag", "Coat", "Trouser")}) == 3
    # one Sneaker relabeled: Sneaker and Coat trade places in the counts, not their colours
    before = label_colors({"Sneaker": 200, "Coat": 199, "Bag": 150})
    after = label_colors({"Sneaker": 198, "Coat": 199, "Bag": 150, "Trouser": 1})
    assert all(before.color(n) == after.color(n) for n in ("Sneaker", "Coat", "Bag"))
    # beyond the palette the most common labels keep a colour, the rarest go to "(other)"
    many = label_colors({f"l{i:02d}": 100 - i for i in range(len(PALETTE) + 3)})
    assert many.group("l00") == "l00" and many.group(f"l{len(PALETTE) + 2:02d}") == OTHER


def test_same_label_same_colour_on_the_map_and_the_graph():
    rng = np.random.default_rng(0)
    counts = {"T-shirt": 300, "Trouser": 250, "Coat": 200, "Bag": 150, "Ankle_boot": 100}
    colors = label_colors(counts)
    # the map shows a filtered sample (no T-shirt), the graph a neighbourhood: different subsets, same colours
    map_labels = ["Bag"] * 30 + ["Coat"] * 5 + ["Ankle_boot"] * 10
    mf = map_figure(rng.random((45, 2)), group_names(map_labels, colors), ["f.png"] * 45, list(range(45)),
                    highlight={"audit suspects": [0, 1]}, colors=colors)
    on_map = {t.name: t.marker.color for t in mf.figure.data if t.marker.symbol != SUSPECT_SYMBOL}
    graph_labels = ["Ankle_boot"] * 3 + ["Bag"] * 8 + ["Trouser"] * 9
    g = build_graph(list(range(20)), [{"label": v} for v in graph_labels], rng.random((20, 8)).astype(np.float32),
                    "label", k=3)
    on_graph = {t.name: t.marker.color for t in graph_figure(g, colors=colors).data if t.mode == "markers"}
    assert on_map["Bag"] == on_graph["Bag"] == colors.color("Bag")
    assert on_map["Ankle_boot"] == on_graph["Ankle_boot"]
    assert len(set(on_map.values()) | set(on_graph.values())) == 4  # Bag, Coat, Ankle_boot, Trouser
    suspects = [t for t in mf.figure.data if t.name == "audit suspects"][0]
    assert suspects.marker.symbol == SUSPECT_SYMBOL and suspects.marker.color == CONFLICT_COLOR
    assert mf.figure.layout.hoverlabel.bgcolor == "white"


def test_map_without_colours_colours_its_own_groups():
    groups = ["a"] * 5 + ["b"] * 9
    mf = map_figure(np.zeros((14, 2)), groups, ["x"] * 14, list(range(14)))
    assert sorted(t.name for t in mf.figure.data) == ["a", "b"]
    assert {t.name: t.marker.color for t in mf.figure.data} == {"a": PALETTE[0], "b": PALETTE[1]}
