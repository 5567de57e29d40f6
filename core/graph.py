"""The k-nearest-neighbour graph of a sample as nodes and edges: cross-label edges marked (that is where label
errors and class confusion live), an optional minimum spanning tree, and a force-directed layout."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .figures import group_names, plotly_text
from .knn import KnnGraph, knn_graph
from .points import PointSet, load_points, load_vectors
from .store import Filter, PointId, Store


@dataclass
class Graph:
    ids: list[PointId]
    payloads: list[dict]
    labels: list[str]
    edges: np.ndarray  # (m, 2) int rows, i < j
    similarity: np.ndarray  # (m,) cosine similarity of each edge
    cross_label: np.ndarray  # (m,) bool: the two ends carry different labels
    positions: np.ndarray  # (n, 2)
    seconds: float = 0.0


def knn_edges(knn: KnnGraph, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges from each node to its k nearest neighbours; a pair found from both ends counts once."""
    n = len(knn.indices)
    k = min(k, knn.k)
    if n == 0 or k == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    src = np.repeat(np.arange(n), k)
    dst = knn.indices[:, :k].ravel()
    sim = knn.similarities[:, :k].ravel()
    pairs = np.stack([np.minimum(src, dst), np.maximum(src, dst)], axis=1)
    keep = pairs[:, 0] != pairs[:, 1]
    pairs, sim = pairs[keep], sim[keep]
    uniq, first = np.unique(pairs, axis=0, return_index=True)
    return uniq, sim[first]


def spanning_tree(n: int, edges: np.ndarray, similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum spanning tree (forest) by cosine distance: n - c edges for c connected components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    if len(edges) == 0:
        return edges, similarity
    # distances must be > 0 to count as edges in scipy: identical images get a tiny distance instead of none
    dist = np.maximum(1.0 - similarity, 1e-9)
    tree = minimum_spanning_tree(coo_matrix((dist, (edges[:, 0], edges[:, 1])), shape=(n, n))).tocoo()
    pairs = np.stack([np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)], axis=1).astype(np.int64)
    return pairs, (1.0 - tree.data).astype(np.float32)


def cross_label_edges(edges: np.ndarray, labels: list) -> np.ndarray:
    lab = np.array([str(v) for v in labels], dtype=object)
    return lab[edges[:, 0]] != lab[edges[:, 1]] if len(edges) else np.zeros(0, bool)


def force_layout(n: int, edges: np.ndarray, similarity: np.ndarray, seed: int = 0,
                 iterations: int = 60) -> np.ndarray:
    """Fruchterman-Reingold, vectorised with numpy: networkx's version loops in Python above 500 nodes
    (~5 s for 1,000 nodes here); this one takes well under a second."""
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2)).astype(np.float32)
    if n < 2:
        return pos
    k = 1.0 / np.sqrt(n)
    weight = np.maximum(similarity, 0.05).astype(np.float32)
    a, b = edges[:, 0], edges[:, 1]
    temperature = 0.1
    cooling = temperature / (iterations + 1)
    for _ in range(iterations):
        dx = pos[:, 0, None] - pos[None, :, 0]
        dy = pos[:, 1, None] - pos[None, :, 1]
        push = (k * k) / np.maximum(dx * dx + dy * dy, 1e-4)  # every pair repels
        disp = np.stack([(dx * push).sum(axis=1), (dy * push).sum(axis=1)], axis=1)
        d = pos[a] - pos[b]
        pull = d * (np.sqrt((d ** 2).sum(-1)) / k * weight)[:, None]  # neighbours attract
        np.add.at(disp, a, -pull)
        np.add.at(disp, b, pull)
        length = np.maximum(np.sqrt((disp ** 2).sum(-1)), 1e-9)
        pos += disp * (np.minimum(length, temperature) / length)[:, None]
        temperature -= cooling
    return pos


def build_graph(ids: list[PointId], payloads: list[dict], vectors: np.ndarray, label_field: str | None, k: int = 5,
                tree: bool = False, layout: str = "force", coords: np.ndarray | None = None, seed: int = 0) -> Graph:
    started = time.perf_counter()
    n = len(ids)
    knn = knn_graph(vectors, k, method="exact")
    edges, sim = knn_edges(knn, k)
    if tree:
        edges, sim = spanning_tree(n, edges, sim)
    labels = [p.get(label_field) if label_field else None for p in payloads]
    names = group_names(labels)
    if layout == "map" and coords is not None:
        positions = np.asarray(coords, np.float32)
    else:
        positions = force_layout(n, edges, sim, seed)
    return Graph(ids, payloads, names, edges, sim, cross_label_edges(edges, names), positions,
                 time.perf_counter() - started)


def sample_graph(store: Store, collection: str, label_field: str | None, sample: int = 1000, k: int = 5,
                 filter: Filter | None = None, tree: bool = False, seed: int = 0) -> Graph:
    pts: PointSet = load_points(store, collection, filter=filter, max_points=sample, seed=seed)
    return build_graph(pts.ids, pts.payloads, load_vectors(store, pts, filter), label_field, k, tree, seed=seed)


def neighbourhood_graph(store: Store, collection: str, start: list[PointId], label_field: str | None, k: int = 5,
                        hops: int = 1, vector: str | None = None, tree: bool = False) -> Graph:
    """The graph around some points (a search result, audit suspects): them, and their neighbours for `hops`."""
    nodes: list[PointId] = []
    seen: set = set()
    frontier = list(start)
    for _ in range(hops + 1):
        got = store.retrieve(collection, [p for p in frontier if p not in seen], vector=vector, with_vectors=True)
        nxt = []
        for pid, vec in zip(got.ids, got.vectors if got.vectors is not None else []):
            seen.add(pid)
            nodes.append(pid)
            nxt.extend(h.id for h in store.query(collection, vec, using=vector, k=k + 1) if h.id not in seen)
        frontier = nxt
    if not nodes:  # none of the start points exist (any more)
        return Graph([], [], [], np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, bool),
                     np.zeros((0, 2), np.float32))
    pts = store.retrieve(collection, nodes, vector=vector, with_vectors=True)
    return build_graph(pts.ids, pts.payloads, pts.vectors, label_field, k, tree)


def graph_figure(graph: Graph, height: int = 650, highlight: list[int] | None = None) -> go.Figure:
    fig = go.Figure()
    pos = graph.positions
    for cross, color, width, name in ((False, "rgba(150,150,150,0.35)", 0.7, "same-label edges"),
                                      (True, "rgba(220,40,40,0.9)", 1.6, "cross-label edges")):
        chosen = graph.edges[graph.cross_label == cross]
        if len(chosen) == 0:
            continue
        xs = np.full(len(chosen) * 3, np.nan, np.float32)
        ys = np.full(len(chosen) * 3, np.nan, np.float32)
        xs[0::3], xs[1::3] = pos[chosen[:, 0], 0], pos[chosen[:, 1], 0]
        ys[0::3], ys[1::3] = pos[chosen[:, 0], 1], pos[chosen[:, 1], 1]
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line={"color": color, "width": width}, name=name,
                                   hoverinfo="skip"))
    labels = np.array(graph.labels, dtype=object)
    for name in sorted(set(graph.labels)):
        rows = np.flatnonzero(labels == name)
        fig.add_trace(go.Scattergl(
            x=pos[rows, 0], y=pos[rows, 1], mode="markers", name=plotly_text(name), customdata=rows,
            text=[plotly_text(graph.payloads[r].get("file_name", graph.ids[r])) for r in rows],
            hovertemplate="%{text}<extra>%{fullData.name}</extra>", marker={"size": 8}))
    if highlight:
        rows = np.asarray(highlight)
        fig.add_trace(go.Scattergl(x=pos[rows, 0], y=pos[rows, 1], mode="markers", name="start points",
                                   hoverinfo="skip", marker={"size": 16, "symbol": "circle-open", "color": "black"}))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, uirevision="graph",
                      xaxis={"visible": False}, yaxis={"visible": False}, clickmode="event+select")
    return fig
