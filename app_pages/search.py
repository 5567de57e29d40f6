import time

import pandas as pd
import streamlit as st

from core import images, models, settings
from core.catalog import payload_text
from core.exporting import to_csv
from core.figures import group_names, map_figure
from core.maps import compute_map
from core.search import (SearchError, hits_table, image_query_vector, model_for, point_vector, recommend, search,
                         text_query_vector)
from core.store import StoreError
from ui.common import require_collection, thumb
from ui.maps import array_cache
from ui.text import md_escape, plural

st.title("Search")
ctx = require_collection("search")
s = ctx.summary

handoff = st.session_state.get("search_handoff")
handoff_ids = handoff["ids"] if handoff and handoff.get("collection") == s.name else []
handoff_note = st.empty()  # until the next search: emptied by run()
if handoff_ids and not handoff.get("searched"):
    selected = handoff.get("selected", len(handoff_ids))
    first = f"the first {len(handoff_ids):,} of {plural(selected, 'selected point')}" if selected > len(handoff_ids) \
        else plural(len(handoff_ids), "point")
    handoff_note.caption(f"{first[0].upper()}{first[1:]} handed over from another page: see the Point and Examples "
                         "tabs.")

c1, c2, c3, c4, c5 = st.columns(5)
vector = c1.selectbox("Vector", [v.name for v in s.embeddings], key="search_vector",
                      format_func=lambda v: v or "(unnamed)") if len(s.embeddings) > 1 else s.embeddings[0].name
if len(s.embeddings) == 1:
    c1.caption(f"Vector: {md_escape(vector or '(unnamed)')} ({s.embeddings[0].size}-d)")
k = c2.number_input("Results (k)", 1, 500, 12, key="search_k")
hnsw_ef = c3.number_input("hnsw_ef (0: default)", 0, 4096, 0, key="search_ef",
                          help="How many candidates the HNSW index explores: higher is more exact and slower.")
exact = c4.checkbox("Exact search", key="search_exact", help="Compare with every point (slow on big collections).")
min_score = c5.number_input("Minimum score", -1.0, 1.0, -1.0, 0.05, key="search_min_score")
labels = st.multiselect("Only these labels", list(s.labels), key="search_labels") if ctx.label_field else []
filt = {ctx.label_field: labels} if labels else None
opts = dict(using=vector, k=int(k), filter=filt, hnsw_ef=int(hnsw_ef) or None, exact=exact,
            min_score=None if min_score <= -1 else float(min_score))


def get_model():
    return model_for(vector, settings.get("ATLAS_CLIP_WEIGHTS"), settings.get("ATLAS_DEVICE"),
                     settings.get("ATLAS_CPU_BF16"))


def run(query) -> None:
    if handoff_ids:  # the hand-over note is about the search to come, not the ones after it
        handoff["searched"] = True
        handoff_note.empty()
    try:
        st.session_state["search_result"] = (s.name, query())
    except (SearchError, StoreError) as exc:  # a bad id, image or filter: say so, keep no stale result
        st.session_state.pop("search_result", None)
        st.error(md_escape(exc))


max_bytes = settings.get("ATLAS_MAX_UPLOAD_MB") * 10**6
tab_image, tab_text, tab_point, tab_examples = st.tabs(["Image", "Text", "Point", "Examples"], key="search_tabs")
with tab_image:
    upload = st.file_uploader("Query image", type=["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic",
                                                   "heif"], key="search_upload")
    if upload is not None:
        try:  # the query as the model sees it (decoded as for the search; a bad file is explained on search)
            data = upload.getvalue()
            if len(data) <= max_bytes:
                st.image(images.decode(data, settings.get("ATLAS_MAX_IMAGE_PIXELS")).image, width=160,
                         caption="Query image")
        except images.BadImage:
            pass
    if upload is not None and st.button("Search by image", key="search_by_image", type="primary"):
        started = time.perf_counter()
        run(lambda: search(ctx.store, s.name, image_query_vector(get_model(), upload.getvalue(), max_bytes,
                                                                 settings.get("ATLAS_MAX_IMAGE_PIXELS")),
                           started=started, **opts))
with tab_text:
    # decided without loading the model (a second or more on a page's first open): EfficientNet has no text
    # encoder, CLIP models have one when their weights are found; the first text search loads the model
    try:
        if models.is_model_name(vector):
            models.choose(vector, settings.get("ATLAS_CLIP_WEIGHTS"))
            text_ok = vector != models.EFFNET
        else:
            text_ok = get_model().supports_text  # raises: not a model this tool knows
        text_why = "" if text_ok else (f"The model '{md_escape(vector)}' has no text encoder, so text search is off. "
                                       "Collections ingested with clip-vit-b-32 support it.")
    except models.ModelError as exc:
        text_ok, text_why = False, md_escape(f"This collection was built with '{vector}', whose weights are not "
                                             f"available here: {exc}")
    except SearchError as exc:
        text_ok, text_why = False, md_escape(exc)
    if text_why:
        st.info(text_why)
    text = st.text_input("Describe the images", key="search_text", disabled=not text_ok,
                         placeholder="a red apple on a table")
    if st.button("Search by text", key="search_by_text", disabled=not text_ok):
        started = time.perf_counter()
        run(lambda: search(ctx.store, s.name, text_query_vector(get_model(), text), started=started, **opts))
with tab_point:
    point = st.text_input("Point id", value=str(handoff_ids[0]) if handoff_ids else "", key="search_point")
    if st.button("More like this", key="search_by_point") and point.strip():
        started = time.perf_counter()
        # the point itself would be the first hit, at 1.000: left out
        run(lambda: search(ctx.store, s.name, point_vector(ctx.store, s.name, point, vector), started=started,
                           exclude=[point.strip()], **opts))
with tab_examples:
    pos = st.text_area("Positive example ids (one per line)", "\n".join(map(str, handoff_ids)), key="search_pos")
    neg = st.text_area("Negative example ids (one per line)", key="search_neg")
    pos_upload = st.file_uploader("Or a positive example image", key="search_pos_upload")
    if st.button("Recommend", key="search_recommend"):
        def query():
            extra = [image_query_vector(get_model(), pos_upload.getvalue(), max_bytes,
                                        settings.get("ATLAS_MAX_IMAGE_PIXELS"))] if pos_upload else []
            return recommend(ctx.store, s.name, [x for x in pos.splitlines() if x.strip()],
                             [x for x in neg.splitlines() if x.strip()], positive_vectors=extra, using=vector,
                             k=int(k), filter=filt)
        run(query)

held = st.session_state.get("search_result")
if not held or held[0] != s.name:
    st.stop()
result = held[1]
if not result.hits:
    st.warning("No result: the label filter or the minimum score matches nothing. Loosen them and search again.")
    st.stop()
st.caption(f"{plural(len(result.hits), 'result')} · Qdrant query {result.milliseconds:.1f} ms · "
           f"end to end {result.total_milliseconds:.0f} ms")
cols = st.columns(6)
for i, hit in enumerate(result.hits):
    with cols[i % 6]:
        st.image(thumb(hit.payload, ctx, 128), width=128)
        label = hit.payload.get(ctx.label_field) if ctx.label_field else None
        st.text(f"{hit.score:.3f}  {label if label is not None else ''}\n{hit.payload.get('file_name', '')}")
table = pd.DataFrame(hits_table(result.hits, ctx.label_field))
for col in ("label", "file_name", "path", "image_url"):  # payload values of any type, shown as text
    table[col] = table[col].map(lambda v: v if v is None or isinstance(v, str) else payload_text(v))
with st.expander("Results as a table"):
    st.dataframe(table, hide_index=True, width="stretch")
st.download_button("Export results (CSV)", to_csv(table), f"{s.name}-results.csv", "text/csv",
                   key="search_export")

req = st.session_state.get("explore_request")
if req and req["collection"] == s.name:
    # made once per result and map: the page's other reruns (typing a query, switching tabs) reuse it
    map_key = (id(result), repr(req), ctx.label_field, len(st.session_state.get("audit_changes", [])))
    held = st.session_state.get("search_map_figure")
    if held is None or held[0] != map_key or held[1] is not result:
        shown = compute_map(ctx.store, s.name, req["params"], vector=req["vector"], filter=req["filter"],
                            max_points=req["max_points"], cache=array_cache(), cached_only=True)
        figure = None
        if shown is not None:
            wanted = {h.id for h in result.hits}
            rows = [i for i, pid in enumerate(shown.points.ids) if pid in wanted]
            values = [p.get(ctx.label_field) if ctx.label_field else None for p in shown.points.payloads]
            figure = map_figure(shown.coords, group_names(values),
                                [p.get("file_name", "") for p in shown.points.payloads], shown.points.ids,
                                highlight={"search results": rows}, height=450).figure
        held = (map_key, result, figure)
        st.session_state["search_map_figure"] = held
    if held[2] is not None:
        st.plotly_chart(held[2], key="search_map")
