import pandas as pd
import streamlit as st

from core.catalog import NO_LABEL, samples_by_label
from core.store import StoreError
from ui.common import gallery
from ui.text import md_escape, plural

MAX_LABELS_WITH_SAMPLES = 12

st.title("Collections")
ctx = st.session_state.get("ctx")
if ctx is None:
    st.warning("Not connected to Qdrant. Fix the connection in the sidebar (the error is shown there).")
    st.stop()
infos = ctx.store.list_collections()
if not infos:
    st.info("No collections yet. Ingest a folder of labeled images on the Ingest page, or from a terminal: "
            "`python -m core ingest path/to/folder --collection NAME`.")
    st.stop()

st.dataframe(pd.DataFrame([{
    "collection": c.name, "points": c.points,
    "vectors": ", ".join(f"{v.name or '(unnamed)'} ({v.size}-d, {v.distance})" for v in c.vectors) or "none",
} for c in infos]), hide_index=True, width="stretch")

s = ctx.summary
st.subheader("Selected collection")
st.text(s.name)
c1, c2, c3 = st.columns(3)
c1.metric("Points", f"{s.points:,}")
c2.metric("Labels", f"{len(s.labels):,}")
# as the audit counts them: no label, or a value that means "no label" (ATLAS_UNKNOWN_LABELS), such as a folder
# named "unlabeled"; the audit suggests labels for these
c3.metric("Unlabeled", f"{s.unlabeled:,}" if s.label_field else "–")
# vector names are user data (any tool can name them) and can be long: a caption, not a metric, Markdown-escaped
shown = [f"{md_escape(v.name or '(unnamed)')} ({v.size}-d)" for v in s.embeddings]
if len(s.vectors) > len(s.embeddings):
    shown.append("plus a small pixel view the audit uses as second evidence")
st.caption("Vectors: " + (", ".join(shown) or "none"))
if not s.vectors:
    st.warning("This collection has no dense vectors, so it cannot be mapped, audited or searched here.")
if s.points == 0:
    st.info("This collection is empty.")
    st.stop()
if not s.models:
    st.caption("Its vectors were not made by a model this tool knows: maps, audits and point searches work; "
               "searching by a new image or text does not.")
if s.label_field is None:
    st.warning("No label field found in the payload. Pick the field that holds the labels in the sidebar "
               f"(keys seen: {md_escape(', '.join(s.payload_keys)) or 'none'}).")
    st.stop()

counts = pd.DataFrame({"label": list(s.labels), "points": list(s.labels.values())})
if s.unlabeled:
    counts = pd.concat([counts, pd.DataFrame({"label": [NO_LABEL], "points": [s.unlabeled]})], ignore_index=True)
    named = [str(v) for v in s.unlabeled_values]
    st.caption(f"{NO_LABEL}: {plural(s.unlabeled, 'point')} without a label"
               + (f" or labeled {md_escape(', '.join(repr(v) for v in named))}, which mean no label"
                  " (ATLAS_UNKNOWN_LABELS)" if named else "")
               + ". The Audit page suggests labels for them (Unlabeled tab).")
# one table with the counts drawn as bars in it: a separate bar chart loaded the Vega-Lite bundle into every new
# browser session (about a second of the first load) for the same numbers
st.dataframe(counts, hide_index=True, width="stretch", key="label_counts", column_config={
    "points": st.column_config.ProgressColumn("points", format="%d", min_value=0,
                                              max_value=int(counts["points"].max()) if len(counts) else 1)})

st.subheader("Samples per label")
shown = list(s.labels)[:MAX_LABELS_WITH_SAMPLES]
if len(s.labels) > len(shown):
    st.caption(f"The {len(shown)} largest of {len(s.labels):,} labels.")
if not ctx.image_root:
    st.caption("No image folder is set for this collection: images come from `image_url` where the payload has "
               "one. Set the folder in the sidebar to show local files.")
raw_values = {str(k): k for k in ctx.store.count_by(s.name, s.label_field)}
try:
    samples = samples_by_label(ctx.store, s.name, s.label_field, [raw_values.get(x, x) for x in shown], per_label=4)
except StoreError as exc:  # e.g. a label field whose name Qdrant cannot filter on
    st.info(f"No samples per label: {md_escape(exc)}")
    st.stop()
for label, pts in samples.items():
    st.text(f"{label} — {plural(s.labels.get(str(label), 0), 'point')}")
    gallery(pts.payloads, ctx, s.label_field, columns=8, size=96)
