import streamlit as st

from core import settings
from core.exporting import selection_table, to_csv
from core.figures import MapFigure
from core.projection import params_from
from ui.bigmap import canvas_rows, hovered_row, map_canvas
from ui.common import gallery, require_collection, thumb
from ui.export import export_panel
from ui.map_jobs import MapCancelled
from ui.maps import BACKGROUND_FROM, map_in_background, map_view, map_with_status
from ui.state import seed_from_url, write_url
from ui.text import md_escape, plural

PAGE_SIZE = 48
TABLE_ROWS = 1000

st.title("Explore")
ctx = require_collection("map")
s = ctx.summary

METHODS = ["UMAP", "t-SNE", "PCA"]
keys = s.payload_keys or ["(none)"]
# a reload or a shared link (?method=PCA&color=label&map=1) opens the same map
seed_from_url("method", "explore_method", METHODS)
seed_from_url("color", "explore_color", keys)
if st.session_state.get("explore_color") not in keys:
    st.session_state["explore_color"] = ctx.label_field if ctx.label_field in keys else keys[0]
redraw_from_url = st.query_params.get("map") == "1" and not st.session_state.get("_explore_url_drawn")
st.session_state["_explore_url_drawn"] = True

# each method's settings are drawn only while it is chosen: keep the others' values across the runs without them
for kept in ("explore_nn", "explore_min_dist", "explore_perplexity"):
    if kept in st.session_state:
        st.session_state[kept] = st.session_state[kept]
# outside the form, so that the form shows the chosen method's settings only (a form reruns only on submit)
method = st.radio("Projection", METHODS, horizontal=True, key="explore_method")
with st.form("explore_form"):
    c1, c2, c3 = st.columns(3)
    vector = c1.selectbox("Vector", [v.name for v in s.embeddings], key="explore_vector",
                          format_func=lambda v: v or "(unnamed)") if len(s.embeddings) > 1 else s.embeddings[0].name
    if len(s.embeddings) == 1:
        c1.caption(f"Vector: {md_escape(vector or '(unnamed)')} ({s.embeddings[0].size}-d)")
    color_by = c2.selectbox("Color by", keys, key="explore_color")
    cap = settings.get("ATLAS_MAP_MAX_POINTS")
    max_points = c3.number_input("Points (sampled above)", 1, max(cap, s.points), min(s.points, cap),
                                 key="explore_max_points")
    f1, f2, f3 = st.columns(3)
    labels = f1.multiselect("Only these labels", list(s.labels), key="explore_labels") if ctx.label_field else []
    extra_key = f2.selectbox("Also filter on field", ["(no filter)"] + s.payload_keys, key="explore_filter_key")
    extra_value = f3.text_input("…equal to", key="explore_filter_value")
    m1, m2 = st.columns(2)
    # the other method's values stay in the session (and in the request: they do not change its map)
    n_neighbors = st.session_state.get("explore_nn", 15)
    min_dist = st.session_state.get("explore_min_dist", 0.1)
    perplexity = st.session_state.get("explore_perplexity", 30)
    # the default only for a slider the session has no value for (a kept value and a default together warn)
    default = lambda key, value: {} if key in st.session_state else {"value": value}  # noqa: E731
    if method == "UMAP":
        n_neighbors = m1.slider("UMAP n_neighbors", 2, 200, key="explore_nn", **default("explore_nn", 15))
        min_dist = m2.slider("UMAP min_dist", 0.0, 0.99, key="explore_min_dist", **default("explore_min_dist", 0.1))
    elif method == "t-SNE":
        perplexity = m1.slider("t-SNE perplexity", 2, 100, key="explore_perplexity",
                               **default("explore_perplexity", 30))
    else:
        m1.caption("PCA has no settings: the two directions of largest variance, computed at once.")
    drawn = st.form_submit_button("Draw map", type="primary")

if drawn or (redraw_from_url and "explore_request" not in st.session_state):
    st.session_state["explore_draws"] = st.session_state.get("explore_draws", 0) + 1
    filt = {}
    if labels:
        filt[ctx.label_field] = labels
    if extra_key != "(no filter)" and extra_value.strip():
        raw = extra_value.strip()
        filt[extra_key] = int(raw) if raw.lstrip("-").isdigit() else raw
    st.session_state["explore_request"] = {
        "collection": s.name, "vector": vector, "method": method, "filter": filt or None, "max_points": int(max_points),
        "params": params_from(method.replace("-", "").lower(), n_neighbors=n_neighbors, min_dist=min_dist,
                              perplexity=float(perplexity))}

def stop_map() -> None:
    """Stop pressed while the map computes: forget the request, so that the rerun does not start it again."""
    st.session_state.pop("explore_request", None)
    st.session_state["explore_stopped"] = True


def compute_view(big: bool, restart: bool):
    """The map for the request: minutes at a million points, so then a background job with progress and Stop."""
    if big:
        result = map_in_background(ctx.store, s.name, req["params"], req["vector"], req["filter"], req["max_points"],
                                   on_stop=stop_map, restart=restart)
        if result is None:
            st.stop()
        return result
    return map_with_status(ctx.store, s.name, req["params"], req["vector"], req["filter"], req["max_points"])


stopped = st.session_state.pop("explore_stopped", False)
req = st.session_state.get("explore_request")
write_url(method=req["method"] if req else None, color=color_by if req else None, map="1" if req else None)
if stopped and not req:
    st.info("The map was stopped. Press **Draw map** to start it again.")
    st.stop()
if not req or req["collection"] != s.name:
    st.info("Choose the settings and press **Draw map**. Maps are cached: the same map opens at once next time.")
    st.stop()

# A selection reruns the page: keep the map and its figure in the session, so a lasso does not re-read the
# points and rebuild the figure (seconds at 100k points). Draw map, another color or new label changes rebuild it.
suspects = st.session_state.get("audit_suspects") or {}
show_suspects = bool(suspects.get("collection") == s.name and suspects.get("ids"))
if show_suspects:
    show_suspects = st.toggle(f"Highlight the {len(suspects['ids']):,} label suspects from the Audit page", True,
                              key="explore_show_suspects")
view_key = (repr(req), color_by, show_suspects, len(st.session_state.get("audit_changes", [])),
            st.session_state.get("explore_draws", 0))
big = min(req["max_points"], s.points) >= BACKGROUND_FROM
held = st.session_state.get("explore_view")
# the status of a computation goes in here: a container on every run, so that the map below keeps its place in
# the page (an element that moves is mounted again: the map would upload and draw its million points again)
status_box = st.container()
if held is None or held[0] != view_key:
    try:
        with status_box:
            # a new Draw map restarts a map that someone stopped; a rerun or another session only hears of it
            result = compute_view(big, restart=bool(drawn or redraw_from_url))
    except (LookupError, ValueError) as exc:
        st.warning(md_escape(exc))
        st.stop()
    except MapCancelled:
        st.session_state.pop("explore_request", None)  # a later rerun must not start it again
        st.info("The map was stopped (here or in another session watching it). Press **Draw map** to start it "
                "again.")
        st.stop()
    held = (view_key, result, map_view(result, s, ctx.label_field, color_by, suspects if show_suspects else None))
    st.session_state["explore_view"] = held
_, result, view = held
pts = result.points
if len(pts) == 0:
    st.warning("No point matches this filter. Remove a label or field filter and draw again.")
    st.stop()
st.caption(f"Showing {len(pts):,} of {plural(pts.total, 'point')}"
           + (" (a seeded sample)" if len(pts) < pts.total else ""))
for note in result.notes:
    st.info(md_escape(note))

if isinstance(view, MapFigure):
    event = st.plotly_chart(view.figure, key="explore_map", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
    selection = (event or {}).get("selection", {}) if isinstance(event, dict) else getattr(event, "selection", {})
    rows = view.rows_of(list((selection or {}).get("points", [])))
else:
    arrays, version, memo = view
    map_col, hover_col = st.columns([5, 1])
    with map_col:
        value = map_canvas(arrays, version, key="explore_canvas")
    rows = canvas_rows(arrays, value, memo)
    hovered = hovered_row(value, len(pts))
    with hover_col:
        if hovered is None:
            st.caption("Rest the pointer on a point to see its image here. Wheel: zoom; Pan, Box, Lasso: top left.")
        else:  # the one hovered point's image, looked up now (never a million hover strings)
            payload = pts.payloads[hovered]
            st.image(thumb(payload, ctx, 160), width=160)
            st.text(f"{payload.get(ctx.label_field or '', '')}\n{payload.get('file_name', '')}")

if not rows:
    st.caption("Click a point, or select with the box or lasso tool, to see the images.")
    st.stop()

st.subheader(f"Selection: {plural(len(rows), 'point')}")
# the table shows the first TABLE_ROWS; the CSV is built when clicked (100,000 rows take seconds, and a hover
# or a page turn reruns the page)
table = selection_table(pts, result.coords, rows[:TABLE_ROWS], ctx.label_field)
b1, b2 = st.columns(2)
b1.download_button("Export selection (CSV)",
                   lambda: to_csv(selection_table(pts, result.coords, rows, ctx.label_field)),
                   f"{s.name}-selection.csv", "text/csv", key="explore_export")
if b2.button("Find similar images (Search page)", key="explore_find_similar"):
    st.session_state["search_handoff"] = {"collection": s.name, "ids": [pts.ids[r] for r in rows[:20]],
                                          "selected": len(rows)}
    st.switch_page("app_pages/search.py")
export_panel(ctx, ids=[pts.ids[r] for r in rows], key="explore_panel", title="Export the selection")
pages = max(1, -(-len(rows) // PAGE_SIZE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="explore_page") if pages > 1 else 1
shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
gallery([pts.payloads[r] for r in shown], ctx, ctx.label_field, columns=8, size=96)
with st.expander("Selected points as a table"):
    st.dataframe(table, hide_index=True, width="stretch")
