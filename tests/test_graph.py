"""Graph construction: edge counts, symmetric pairs, spanning trees, cross-label marking."""
import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.sparse import coo_matrix

from core.colors import CONFLICT_COLOR, CONFLICT_DASH, label_colors, rgba
from core.graph import (build_graph, cross_label_edges, expand_graph, graph_figure, knn_edges, neighbourhood_graph,
                        spanning_tree, strong_cross_label)
from core.knn import knn_graph
from tests.conftest import unit_rows


def blobs(n_per=20, classes=3, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 4
    y = np.repeat(np.arange(classes), n_per)
    x = centers[y] + rng.normal(size=(len(y), d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def test_knn_edges_are_undirected_without_duplicates():
    x, _ = blobs()
    knn = knn_graph(x, 5, method="exact")
    edges, sim = knn_edges(knn, 5)
    assert (edges[:, 0] < edges[:, 1]).all()
    assert len(np.unique(edges, axis=0)) == len(edges)
    directed = {(i, int(j)) for i in range(len(x)) for j in knn.indices[i, :5]}
    undirected = {(min(a, b), max(a, b)) for a, b in directed}
    assert {tuple(e) for e in edges.tolist()} == undirected  # every kNN pair, once
    assert len(x) * 5 / 2 <= len(edges) <= len(x) * 5


@pytest.mark.parametrize("k", [1, 2, 5])
def test_spanning_tree_has_n_minus_components_edges(k):
    x, _ = blobs()
    edges, sim = knn_edges(knn_graph(x, k, method="exact"), k)
    n = len(x)
    comps, _ = connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)),
                                    directed=False)
    t_edges, t_sim = spanning_tree(n, edges, sim)
    assert len(t_edges) == n - comps
    t_comps, _ = connected_components(coo_matrix((np.ones(len(t_edges)), (t_edges[:, 0], t_edges[:, 1])),
                                                 shape=(n, n)), directed=False)
    assert t_comps == comps  # the tree spans the same components
    assert set(map(tuple, t_edges.tolist())) <= set(map(tuple, edges.tolist()))


def test_identical_points_still_join_the_tree():
    x = np.repeat(unit_rows(3, 8), 2, axis=0)
    edges, sim = knn_edges(knn_graph(x, 2, method="exact"), 2)
    t_edges, _ = spanning_tree(6, edges, sim)
    assert len(t_edges) >= 3  # zero-distance twins are connected, not dropped


def test_cross_label_edges_marked():
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    assert cross_label_edges(edges, ["a", "a", "b", "b"]).tolist() == [False, True, False]


def test_build_graph_and_figure():
    x, y = blobs()
    labels = [f"c{v}" for v in y]
    labels[0] = "c2"  # a mislabel makes cross-label edges
    payloads = [{"label": lab, "file_name": f"{i}.png"} for i, lab in enumerate(labels)]
    g = build_graph(list(range(len(x))), payloads, x, "label", k=5)
    assert g.positions.shape == (60, 2) and g.cross_label.any()
    assert all(0 in e for e in g.edges[g.cross_label].tolist())  # only the mislabelled point's edges cross
    fig = graph_figure(g)
    names = [t.name for t in fig.data]
    assert any(n.startswith("cross-label edges") for n in names) and "c0" in names
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 60


def test_neighbourhood_graph_from_start_points(store):
    x, y = blobs()
    store.create_collection("g", {"m": x.shape[1]})
    store.upsert("g", list(range(1, 61)), {"m": x}, [{"label": f"c{v}"} for v in y])
    g = neighbourhood_graph(store, "g", [1], "label", k=4, hops=1)
    assert 1 in g.ids and 4 < len(g.ids) <= 1 + 4 + 4 * 4
    assert len(set(g.ids)) == len(g.ids)


def _stored_blobs(store):
    x, y = blobs()
    store.create_collection("g", {"m": x.shape[1]})
    ids = list(range(1, 61))
    store.upsert("g", ids, {"m": x}, [{"label": f"c{v}", "file_name": f"{i}.png"} for i, v in zip(ids, y)])
    return x, y, ids


def test_expand_adds_the_neighbours_to_the_graph_and_keeps_the_rest(store):
    x, y, ids = _stored_blobs(store)
    first = [0, 1, 2, 20, 21, 40]  # a few nodes of each blob
    g = build_graph([ids[i] for i in first], [{"label": f"c{y[i]}"} for i in first], x[first], "label", k=2)
    bigger = expand_graph(store, "g", g, 0, "label", k=5)
    assert bigger.ids[:len(g.ids)] == g.ids  # every node stays, in place
    assert np.array_equal(bigger.positions[:len(g.ids)], g.positions)
    assert len(bigger.ids) > len(g.ids) and len(set(bigger.ids)) == len(bigger.ids)
    new = set(bigger.ids) - set(g.ids)
    assert {int(y[i - 1]) for i in new} == {int(y[0])}  # the neighbours of a c0 node are c0 nodes
    assert len(bigger.labels) == len(bigger.ids) == len(bigger.positions) == len(bigger.vectors)
    assert bigger.edges.max() < len(bigger.ids)
    again = expand_graph(store, "g", bigger, 0, "label", k=5)
    assert again.ids == bigger.ids  # expanding the same node twice adds nothing


def test_figure_colours_follow_the_collection_and_conflicts_stand_apart():
    x, y = blobs()
    labels = [f"c{v}" for v in y]
    labels[0] = "c2"
    g = build_graph(list(range(60)), [{"label": lab} for lab in labels], x, "label", k=5)
    colors = label_colors({"c2": 100, "c1": 50, "c0": 10})
    fig = graph_figure(g, colors=colors)
    nodes = {t.name: t.marker.color for t in fig.data if t.mode == "markers"}
    assert nodes == {"c2": colors.color("c2"), "c1": colors.color("c1"), "c0": colors.color("c0")}
    cross = [t for t in fig.data if t.mode == "lines" and t.name.startswith("cross-label")]
    assert cross and all(t.line.dash == CONFLICT_DASH for t in cross)
    assert all(t.line.color.startswith(rgba(CONFLICT_COLOR, 1)[:-3]) for t in cross)
    same = [t for t in fig.data if t.name == "same-label edges"]
    assert same and same[0].line.dash == "solid"
    only_cross = graph_figure(g, colors=colors, edges="cross-label only")
    assert not [t for t in only_cross.data if t.name == "same-label edges"]
    assert strong_cross_label(g).sum() <= g.cross_label.sum()


def test_a_selected_node_dims_the_rest_including_edges():
    x, y = blobs()
    g = build_graph(list(range(60)), [{"label": f"c{v}"} for v in y], x, "label", k=5)
    plain = graph_figure(g)
    focused = graph_figure(g, selected=5)
    alpha = lambda c: float(c.rsplit(",", 1)[1].rstrip(")"))  # noqa: E731
    before = {t.name: alpha(t.line.color) for t in plain.data if t.mode == "lines"}
    after = {t.name: t.line.color for t in focused.data if t.mode == "lines"}
    for name, a in before.items():
        assert alpha(after[name]) < a  # every edge layer fades
    mine = [t for t in focused.data if t.name == "edges of the selected node"][0]
    assert np.isfinite(np.asarray(mine.x, float)).sum() == 2 * len(g.neighbours(5))
    lit = {int(r) for t in focused.data if t.mode == "markers" and t.customdata is not None
           for r, o in zip(t.customdata, t.marker.opacity) if o == 1.0}
    assert lit == set(g.neighbours(5).tolist()) | {5}
