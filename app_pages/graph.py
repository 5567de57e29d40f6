import uuid

import pandas as pd
import streamlit as st

from core.catalog import payload_text
from core.colors import label_colors
from core.graph import EDGE_MODES, Graph, build_graph, expand_graph, graph_figure, neighbourhood_graph
from core.maps import compute_map
from core.points import load_points, load_vectors
from core.search import SearchError, parse_point_id
from core.store import StoreError
from ui.common import gallery, require_collection, thumb
from ui.maps import array_cache
from ui.text import md_escape, plural

NEIGHBOURS_SHOWN = 16

st.title("Graph")
ctx = require_collection("draw")
s = ctx.summary
if s.points < 2:
    st.warning("The graph needs at least two points.")
    st.stop()

sources = ["A sample of the collection", "Around points (ids)"]
suspects = st.session_state.get("audit_suspects")
if suspects and suspects["collection"] == s.name and suspects["ids"]:
    sources.append("Around the Audit page's label suspects")
search = st.session_state.get("search_result")
if search and search[0] == s.name and search[1].hits:
    sources.append("Around the last search results")


def chart_key() -> str:
    """The chart's key: a new one after "Clear the selection", so that Plotly's own highlight of the clicked node
    goes too (that redraw may reset the zoom; a click does not)."""
    n = st.session_state.get("graph_chart_clears", 0)
    return "graph_chart" if n == 0 else f"graph_chart_{n}"


with st.form("graph_form"):
    c1, c2, c3 = st.columns(3)
    source = c1.selectbox("Start from", sources, key="graph_source")
    sample = c2.number_input("Sample size", 2, 5000, min(1000, s.points), key="graph_sample")
    k = c3.slider("Neighbours per node (k)", 1, 20, 5, key="graph_k")
    d1, d2, d3 = st.columns(3)
    ids_text = d1.text_input("Point ids (comma-separated)", key="graph_ids")
    layout = d2.radio("Layout", ["force-directed", "Explore map coordinates"], key="graph_layout")
    tree = d3.toggle("Minimum spanning tree instead of all kNN edges", key="graph_tree")
    labels = st.multiselect("Only these labels", list(s.labels), key="graph_labels") if ctx.label_field else []
    drawn = st.form_submit_button("Draw graph", type="primary")

if drawn:
    start: list = []
    if source.startswith("Around points"):
        try:
            start = [parse_point_id(x) for x in ids_text.split(",") if x.strip()]
        except SearchError as exc:
            st.session_state.pop("graph_request", None)  # a failed request must not be redrawn on every rerun
            st.error(md_escape(exc))
            st.stop()
        if not start:
            st.error("Give at least one point id, or start from a sample.")
            st.stop()
    elif source.startswith("Around the Audit"):
        start = suspects["ids"][:20]
    elif source.startswith("Around the last search"):
        start = [h.id for h in search[1].hits[:20]]
    st.session_state["graph_request"] = {"collection": s.name, "start": start, "sample": int(sample), "k": k,
                                         "tree": tree, "layout": layout,
                                         "filter": {ctx.label_field: labels} if labels else None, "expand": []}
    st.session_state.pop("graph_selected", None)
    st.session_state["graph_click_seen"] = repr(st.session_state.get(chart_key()))

req = st.session_state.get("graph_request")
if not req or req["collection"] != s.name:
    st.info("Choose where to start and press **Draw graph**. Edges between different labels are drawn dashed in "
            "dark red: that is where label errors and confused classes show.")
    st.stop()


class TooFew(Exception):
    pass


def build(req: dict):
    """The requested graph; store errors propagate to the one handler below."""
    if req["start"]:
        graph = neighbourhood_graph(ctx.store, s.name, req["start"], ctx.label_field, k=req["k"], tree=req["tree"])
    else:
        pts = load_points(ctx.store, s.name, filter=req["filter"], max_points=req["sample"])
        if len(pts) < 2:
            raise TooFew("Fewer than two points match: loosen the label filter.")
        coords = None
        if req["layout"] == "Explore map coordinates":
            ex = st.session_state.get("explore_request")
            shown = compute_map(ctx.store, s.name, ex["params"], vector=ex["vector"], filter=ex["filter"],
                                max_points=ex["max_points"], cache=array_cache(), cached_only=True) \
                if ex and ex["collection"] == s.name else None
            if shown is None:
                st.info("No map of this collection yet: draw one on the Explore page. Using the force layout.")
            else:
                row = {pid: i for i, pid in enumerate(shown.points.ids)}
                keep = [i for i, pid in enumerate(pts.ids) if pid in row]
                pts.ids, pts.payloads = [pts.ids[i] for i in keep], [pts.payloads[i] for i in keep]
                coords = shown.coords[[row[pid] for pid in pts.ids]]
        graph = build_graph(pts.ids, pts.payloads, load_vectors(ctx.store, pts, req["filter"]), ctx.label_field,
                            k=req["k"], tree=req["tree"], layout="map" if coords is not None else "force",
                            coords=coords)
    return graph


def graph_key(req: dict, expand: list) -> tuple:
    """What a drawn graph depends on: the connection, the request, the nodes expanded so far, and the collection's
    data (a relabel or an ingest changes the label counts or the point count; an audit action in this session
    makes its graphs its own)."""
    base = {k: v for k, v in req.items() if k != "expand"}
    ex = st.session_state.get("explore_request") if req["layout"] == "Explore map coordinates" else None
    version = st.session_state.get("audit_version", 0)
    revision = (st.session_state.setdefault("_session_token", uuid.uuid4().hex), version) if version else ()
    return (ctx.store.location, s.name, repr(base), repr(ex), tuple(map(repr, expand)), ctx.label_field, s.points,
            tuple(s.labels.items()), revision)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def shared_graph(key: tuple, _make) -> Graph:
    """Graphs shared by every session of this server (a new session drawing the same graph gets it at once).
    Graph objects are never changed in place: an expansion makes a new one."""
    return _make()


def cached_graph(req: dict, expand: list | None = None) -> Graph:
    """The requested graph, built once: clicks, edge options and reruns reuse it; expanding a node extends the
    cached graph instead of building a new one. `graph_builds` counts the builds."""
    expand = list(req.get("expand", [])) if expand is None else expand
    cache: dict = st.session_state.setdefault("graph_cache", {})
    key = graph_key(req, expand)
    if key in cache:
        return cache[key]

    def make() -> Graph:
        st.session_state["graph_builds"] = st.session_state.get("graph_builds", 0) + 1
        if expand:
            prev = cached_graph(req, expand[:-1])
            row = prev.ids.index(expand[-1]) if expand[-1] in prev.ids else None
            return prev if row is None else expand_graph(ctx.store, s.name, prev, row, ctx.label_field, k=req["k"],
                                                         tree=req["tree"])
        return build(req)

    graph = shared_graph(key, make)
    while len(cache) >= 6:  # a few graphs: the current one and the steps of its expansion
        cache.pop(next(iter(cache)))
    cache[key] = graph
    return graph


def clicked_rows(event) -> list[int]:
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", [])
    rows = []
    for p in points or []:
        cd = p.get("customdata")
        if isinstance(cd, dict):
            cd = next(iter(cd.values()), None)
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is not None:
            rows.append(int(cd))
    return rows


def expand_selected() -> None:
    pid = st.session_state.get("graph_selected")
    req = st.session_state.get("graph_request")
    if req is not None and pid is not None and pid not in req.setdefault("expand", []):
        req["expand"].append(pid)


def clear_selected() -> None:
    st.session_state.pop("graph_selected", None)
    st.session_state["graph_chart_clears"] = st.session_state.get("graph_chart_clears", 0) + 1


def figure_for(graph: Graph, edges: str, start_rows: list[int]):
    """The graph's figure, made once per graph and edge option: a click does not change it. Streamlit identifies
    a chart by its figure, so a changed figure is a new chart, drawn from scratch at the full view: keeping the
    figure the same is what keeps the user's zoom and pan (Plotly's uirevision alone does not, across a new chart).
    Plotly highlights the clicked node itself (clickmode event+select)."""
    key = (edges, tuple(start_rows), tuple(s.labels.items()))
    held = st.session_state.get("graph_figure")
    if held is None or held[0] is not graph or held[1] != key:
        colors = label_colors(s.labels) if ctx.label_field else None
        held = (graph, key, graph_figure(graph, highlight=start_rows, colors=colors, edges=edges))
        st.session_state["graph_figure"] = held
    return held[2]


@st.fragment
def graph_view() -> None:
    """The graph and the clicked node: a click, an edge option or an expansion reruns only this part."""
    req = st.session_state["graph_request"]
    try:
        with st.spinner("Building the graph…"):
            graph = cached_graph(req)
    except TooFew as exc:
        st.warning(str(exc))
        return
    except (SearchError, StoreError, LookupError) as exc:  # e.g. ids from another page that no longer parse
        st.session_state.pop("graph_request", None)  # drawn again only when the user asks again
        st.error(f"The graph cannot be drawn: {md_escape(exc)}")
        return
    if graph.ids == []:
        st.warning("None of the start points exist any more.")
        return
    n_cross = int(graph.cross_label.sum())
    expanded = len(req.get("expand", []))
    st.caption(f"{plural(len(graph.ids), 'node')} · {plural(len(graph.edges), 'edge')} · {n_cross:,} join "
               f"different labels · built in {graph.seconds:.2f} s"
               + (f" · {plural(expanded, 'node')} expanded" if expanded else ""))
    edges = st.radio("Edges", EDGE_MODES, horizontal=True, key="graph_edges",
                     help="Same-label edges are light grey. Cross-label edges are dashed dark red: bold where the "
                          "two images are as similar as a typical same-label pair (worth a look), faint otherwise.")
    # a click arrives as the chart's state; the same state again (a rerun, or the last graph's click after Draw
    # graph) is no new click
    event = st.session_state.get(chart_key())
    rows = clicked_rows(event)
    if rows and 0 <= rows[0] < len(graph.ids) and repr(event) != st.session_state.get("graph_click_seen"):
        st.session_state["graph_selected"] = graph.ids[rows[0]]
        st.session_state["graph_click_seen"] = repr(event)
    pid = st.session_state.get("graph_selected")
    r = graph.ids.index(pid) if pid is not None and pid in graph.ids else None
    starts = set(req["start"])
    start_rows = [i for i, p in enumerate(graph.ids) if p in starts] if starts else []
    st.plotly_chart(figure_for(graph, edges, start_rows), key=chart_key(), on_select="rerun",
                    selection_mode=("points",))
    if r is None:
        st.caption("Click a node to see its image, its payload and its neighbours (the rest of the graph dims).")
        return
    left, right = st.columns([1, 3])
    with left:
        st.image(thumb(graph.payloads[r], ctx, 192), width=192)
    with right:
        st.text(f"id {graph.ids[r]}")
        st.dataframe(pd.DataFrame({"field": list(graph.payloads[r]),
                                   "value": [payload_text(v) for v in graph.payloads[r].values()]}),
                     hide_index=True, width="stretch")
        b1, b2 = st.columns(2)
        b1.button("Expand its neighbours into the graph", key="graph_expand", on_click=expand_selected,
                  disabled=graph.ids[r] in req.get("expand", []))
        b2.button("Clear the selection", key="graph_clear", on_click=clear_selected)
    near = [int(i) for i in graph.neighbours(r)][:NEIGHBOURS_SHOWN]
    if near:
        other = sum(graph.labels[i] != graph.labels[r] for i in near)
        st.caption(f"Its {plural(len(near), 'neighbour')} in the graph"
                   + (f", {other:,} with another label" if other else "") + ":")
        gallery([graph.payloads[i] for i in near], ctx, ctx.label_field, columns=8, size=96)


graph_view()
