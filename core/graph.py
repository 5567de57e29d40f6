"""The k-nearest-neighbour graph of a sample as nodes and edges: cross-label edges marked (that is where label
errors and class confusion live), an optional minimum spanning tree, and a force-directed layout."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .colors import (CONFLICT_COLOR, CONFLICT_DASH, HOVER_LABEL, LabelColors, label_colors,
                     label_text, rgba)
from .figures import plotly_text, scatter_class
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
    vectors: np.ndarray | None = None  # (n, d), kept so that expanding a node needs no second read of the graph

    def neighbours(self, row: int) -> np.ndarray:
        """Rows joined to `row` by an edge."""
        if len(self.edges) == 0:
            return np.zeros(0, np.int64)
        at = (self.edges[:, 0] == row) | (self.edges[:, 1] == row)
        return np.setdiff1d(self.edges[at].ravel(), [row])


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
    (~5 s for 1,000 nodes here). The all-pairs repulsion is written as matrix products (|a-b|^2 = |a|^2 + |b|^2 -
    2ab; sum_j push_ij (p_i - p_j) = p_i sum_j push_ij - (push p)_i) in float32 on one BLAS thread: 0.15 s for
    1,000 nodes, against 0.6-1.9 s for the pairwise differences with BLAS threads fighting over busy cores."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2)).astype(np.float32)
    if n < 2:
        return pos
    k = float(1.0 / np.sqrt(n))  # a Python float: a numpy float64 scalar would turn every array into float64
    kk = np.float32(k * k)
    weight = (np.maximum(similarity, 0.05) / k).astype(np.float32)
    a, b = edges[:, 0], edges[:, 1]
    diagonal = np.arange(n)
    temperature = 0.1
    cooling = temperature / (iterations + 1)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(iterations):
            sq = (pos * pos).sum(axis=1)
            d2 = sq[:, None] + sq[None, :]
            d2 -= 2 * (pos @ pos.T)
            np.maximum(d2, np.float32(1e-4), out=d2)
            push = np.divide(kk, d2, out=d2)  # every pair repels
            push[diagonal, diagonal] = 0
            disp = pos * push.sum(axis=1)[:, None] - push @ pos
            d = pos[a] - pos[b]
            pull = d * (np.sqrt((d * d).sum(-1)) * weight)[:, None]  # neighbours attract
            np.add.at(disp, a, -pull)
            np.add.at(disp, b, pull)
            length = np.maximum(np.sqrt((disp * disp).sum(-1)), np.float32(1e-9))
            pos += disp * (np.minimum(length, temperature) / length)[:, None]
            temperature -= cooling
    return pos


def build_graph(ids: list[PointId], payloads: list[dict], vectors: np.ndarray, label_field: str | None, k: int = 5,
                tree: bool = False, layout: str = "force", coords: np.ndarray | None = None, seed: int = 0) -> Graph:
    started = time.perf_counter()
    n = len(ids)
    vectors = np.asarray(vectors, np.float32)
    edges, sim = _edges(vectors, k, tree)
    labels = [label_text(p.get(label_field)) if label_field else label_text(None) for p in payloads]
    if layout == "map" and coords is not None:
        positions = np.asarray(coords, np.float32)
    else:
        positions = force_layout(n, edges, sim, seed)
    return Graph(ids, payloads, labels, edges, sim, cross_label_edges(edges, labels), positions,
                 time.perf_counter() - started, vectors)


def _edges(vectors: np.ndarray, k: int, tree: bool) -> tuple[np.ndarray, np.ndarray]:
    knn = knn_graph(vectors, k, method="exact")
    edges, sim = knn_edges(knn, k)
    if tree:
        edges, sim = spanning_tree(len(vectors), edges, sim)
    return edges, sim


def expand_graph(store: Store, collection: str, graph: Graph, row: int, label_field: str | None, k: int = 5,
                 tree: bool = False, vector: str | None = None, seed: int = 0) -> Graph:
    """The graph plus the k nearest neighbours (in the whole collection) of node `row`: every node stays where it
    was, new nodes are placed next to the nodes they join, and the edges are those of the larger graph."""
    started = time.perf_counter()
    if graph.vectors is None:
        raise ValueError("this graph keeps no vectors to expand from")
    have = set(graph.ids)
    hits = store.query(collection, graph.vectors[row], using=vector, k=k + 1)
    new_ids = [h.id for h in hits if h.id not in have]
    if not new_ids:
        return graph
    got = store.retrieve(collection, new_ids, vector=vector, with_vectors=True)
    if not got.ids:
        return graph
    ids = list(graph.ids) + list(got.ids)
    payloads = list(graph.payloads) + list(got.payloads)
    vectors = np.concatenate([graph.vectors, np.asarray(got.vectors, np.float32)])
    edges, sim = _edges(vectors, k, tree)
    labels = list(graph.labels) + [label_text(p.get(label_field)) if label_field else label_text(None)
                                   for p in got.payloads]
    old = len(graph.ids)
    positions = np.concatenate([graph.positions, np.zeros((len(got.ids), 2), np.float32)])
    if len(graph.edges):
        d = graph.positions[graph.edges[:, 0]] - graph.positions[graph.edges[:, 1]]
        step = float(np.median(np.sqrt((d ** 2).sum(-1)))) or 0.05
    else:
        step = 0.05
    rng = np.random.default_rng(seed + len(ids))
    for i in range(old, len(ids)):
        # next to the old nodes it joins (the expanded node at least), a little apart from them
        joined = np.concatenate([edges[edges[:, 0] == i, 1], edges[edges[:, 1] == i, 0]])
        joined = joined[joined < old]
        centre = graph.positions[joined].mean(axis=0) if len(joined) else graph.positions[row]
        angle = rng.random() * 2 * np.pi
        positions[i] = centre + step * np.array([np.cos(angle), np.sin(angle)], np.float32)
    return Graph(ids, payloads, labels, edges, sim, cross_label_edges(edges, labels), positions,
                 graph.seconds + time.perf_counter() - started, vectors)


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


EDGE_MODES = ("all", "cross-label only", "same-label only")


def strong_cross_label(graph: Graph) -> np.ndarray:
    """Cross-label edges as similar as a typical same-label edge (at least the median one): the pairs most worth a
    look. The weaker cross-label edges are the ordinary borders between classes."""
    same = graph.similarity[~graph.cross_label]
    if len(same) == 0:
        return graph.cross_label.copy()
    return graph.cross_label & (graph.similarity >= float(np.median(same)))


def _edge_trace(graph: Graph, chosen: np.ndarray, color: str, width: float, name: str, dash: str = "solid",
                legend: bool = True):
    pos = graph.positions
    xs = np.full(len(chosen) * 3, np.nan, np.float32)
    ys = np.full(len(chosen) * 3, np.nan, np.float32)
    xs[0::3], xs[1::3] = pos[chosen[:, 0], 0], pos[chosen[:, 1], 0]
    ys[0::3], ys[1::3] = pos[chosen[:, 0], 1], pos[chosen[:, 1], 1]
    return scatter_class(len(graph.ids))(x=xs, y=ys, mode="lines", name=name, hoverinfo="skip", showlegend=legend,
                                         line={"color": color, "width": width, "dash": dash})


def graph_figure(graph: Graph, height: int = 650, highlight: list[int] | None = None,
                 colors: LabelColors | None = None, selected: int | None = None, edges: str = "all") -> go.Figure:
    """Nodes coloured by label (`colors`: the collection's label colours, the same as the Explore map's);
    same-label edges in light grey; cross-label edges dashed in the conflict red, bold only where they are as
    similar as a typical same-label edge. `selected`: that node and its neighbours stand out, all else is dimmed.
    `edges`: one of EDGE_MODES."""
    colors = colors or label_colors(graph.labels)
    fig = go.Figure()
    focus = selected is not None and 0 <= selected < len(graph.ids)
    dim = 0.25 if focus else 1.0
    strong = strong_cross_label(graph)
    layers = []
    if edges != "cross-label only":
        layers.append((~graph.cross_label, rgba("#8C8C8C", 0.35 * dim), 0.7, "same-label edges", "solid"))
    if edges != "same-label only":
        layers.append((graph.cross_label & ~strong, rgba(CONFLICT_COLOR, 0.25 * dim), 0.7,
                       "cross-label edges (weaker)", CONFLICT_DASH))
        layers.append((strong, rgba(CONFLICT_COLOR, 0.85 * dim), 1.4, "cross-label edges (as close as same-label)",
                       CONFLICT_DASH))
    for mask, color, width, name, dash in layers:
        chosen = graph.edges[mask]
        if len(chosen):
            fig.add_trace(_edge_trace(graph, chosen, color, width, name, dash))
    near = set()
    if focus:
        at = (graph.edges[:, 0] == selected) | (graph.edges[:, 1] == selected) if len(graph.edges) else \
            np.zeros(0, bool)
        near = set(graph.neighbours(selected).tolist()) | {selected}
        for mask, color, name, dash in ((at & ~graph.cross_label, "#404040", "edges of the selected node", "solid"),
                                        (at & graph.cross_label, CONFLICT_COLOR,
                                         "cross-label edges of the selected node", CONFLICT_DASH)):
            if mask.any():
                fig.add_trace(_edge_trace(graph, graph.edges[mask], color, 2.2, name, dash))
    pos = graph.positions
    trace = scatter_class(len(graph.ids))
    names = np.array([colors.group(v) for v in graph.labels], dtype=object)
    for name in colors.order(names):
        rows = np.flatnonzero(names == name)
        marker = {"size": 8, "color": colors.color(name), "line": {"width": 0}}
        if focus:
            marker["opacity"] = [1.0 if r in near else 0.15 for r in rows]
            marker["size"] = [14 if r == selected else 10 if r in near else 7 for r in rows]
        fig.add_trace(trace(
            x=pos[rows, 0], y=pos[rows, 1], mode="markers", name=plotly_text(name), customdata=rows,
            text=[plotly_text(graph.payloads[r].get("file_name", graph.ids[r])) for r in rows],
            hovertemplate="%{text}<extra>%{fullData.name}</extra>", marker=marker))
    if highlight:
        rows = np.asarray(highlight)
        fig.add_trace(trace(x=pos[rows, 0], y=pos[rows, 1], mode="markers", name="start points",
                            hoverinfo="skip", marker={"size": 16, "symbol": "circle-open", "color": "black",
                                                      "line": {"width": 1.5}}))
    if focus:
        fig.add_trace(trace(x=pos[[selected], 0], y=pos[[selected], 1], mode="markers",
                            name="selected node", hoverinfo="skip",
                            marker={"size": 22, "symbol": "circle-open", "color": "#1A1A1A", "line": {"width": 2.5}}))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, uirevision="graph",
                      xaxis={"visible": False}, yaxis={"visible": False}, clickmode="event+select",
                      hoverlabel=HOVER_LABEL, legend={"itemsizing": "constant"})
    return fig
