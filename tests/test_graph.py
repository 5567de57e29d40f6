"""Graph construction: edge counts, symmetric pairs, spanning trees, cross-label marking."""
import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.sparse import coo_matrix

from core.graph import build_graph, cross_label_edges, graph_figure, knn_edges, neighbourhood_graph, spanning_tree
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
    assert "cross-label edges" in names and "c0" in names
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 60


def test_neighbourhood_graph_from_start_points(store):
    x, y = blobs()
    store.create_collection("g", {"m": x.shape[1]})
    store.upsert("g", list(range(1, 61)), {"m": x}, [{"label": f"c{v}"} for v in y])
    g = neighbourhood_graph(store, "g", [1], "label", k=4, hops=1)
    assert 1 in g.ids and 4 < len(g.ids) <= 1 + 4 + 4 * 4
    assert len(set(g.ids)) == len(g.ids)
