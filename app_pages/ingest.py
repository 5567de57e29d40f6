import pandas as pd
import streamlit as st

from core import models, settings
from core.ingest import IngestError, check_collection, ingest, scan_folder, summary_lines
from core.paths import PathNotAllowed, check_path
from core.exporting import to_csv
from core.store import StoreError
from ui.auth import can
from ui.text import clip, md_escape, plural


@st.cache_resource(show_spinner=False)
def load_model(choice: models.ModelChoice, device: str, cpu_bf16: str) -> models.Embedder:
    return models.load(choice, device, cpu_bf16)


def open_collection(name: str) -> None:
    """Callback: select the collection in the sidebar (before its selectbox is drawn on the next run)."""
    st.session_state["collection"] = name


st.title("Ingest a folder of labeled images")
if not can("admin"):
    st.warning("Ingesting is for admins: it reads server folders and writes collections. Ask an admin to ingest, "
               "or to give you the admin role.")
    st.stop()
ctx = st.session_state.get("ctx")
if ctx is None:
    st.warning("Not connected to Qdrant. Fix the connection in the sidebar first.")
    st.stop()
st.caption(f"Into {md_escape(ctx.store.describe())}. The folder holds one subfolder per label (apple/1.jpg, banana/2.png, …). "
           "Running it again adds only new or changed images.")

with st.form("ingest_form"):
    folder = st.text_input("Folder on the server", key="ingest_folder", placeholder="/data/fruit")
    collection = st.text_input("Collection", key="ingest_collection", placeholder="fruits")
    model_name = st.selectbox("Model", ["auto", models.CLIP, models.EFFNET], key="ingest_model",
                              help="auto: clip-vit-b-32 when its weights are available, otherwise effnet-lite0.")
    base_url = st.text_input("Base URL of the images (optional)", key="ingest_base_url",
                             value=settings.get("ATLAS_IMAGE_BASE_URL"),
                             help="Where the folder is served over HTTP; stored as image_url in each point.")
    batch_size = st.number_input("Batch size", 1, 512, settings.get("ATLAS_BATCH_SIZE"), key="ingest_batch")
    submitted = st.form_submit_button("Ingest", type="primary")

if submitted:
    try:
        if not folder.strip() or not collection.strip():
            raise IngestError("Give both a folder and a collection name.")
        check_path(folder.strip(), "ingest folder")
        files, _ = scan_folder(folder.strip())
        choice = models.choose(model_name, settings.get("ATLAS_CLIP_WEIGHTS"))
        check_collection(ctx.store, collection.strip(), choice.name)
        with st.spinner(f"Loading {choice.name}…"):
            model = load_model(choice, settings.get("ATLAS_DEVICE"), settings.get("ATLAS_CPU_BF16"))
        st.caption(f"Model: {choice.name} — {md_escape(choice.reason)}")
        bar = st.progress(0.0, text=f"0 of {plural(len(files), 'image')}")

        def on_progress(p) -> None:
            eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
            bar.progress(p.done / p.total, text=f"{p.done:,} of {plural(p.total, 'image')} · {p.rate:.1f} images/s{eta}")

        report = ingest(ctx.store, folder.strip(), collection.strip(), model, base_url=base_url.strip(),
                        batch_size=int(batch_size), workers=settings.get("ATLAS_WORKERS"),
                        max_pixels=settings.get("ATLAS_MAX_IMAGE_PIXELS"), model_reason=choice.reason,
                        report_dir=settings.get("ATLAS_REPORT_DIR"), cache_dir=settings.get("ATLAS_CACHE_DIR"),
                        progress=on_progress)
        st.session_state["ingest_report"] = report.as_dict()
    except (IngestError, PathNotAllowed, models.ModelError, StoreError) as exc:
        st.error(md_escape(exc))
    else:
        st.rerun()  # the sidebar was drawn before the ingest: draw it again, listing the new collection


report = st.session_state.get("ingest_report")
if report:
    first, *kept = summary_lines(report)
    st.success(md_escape(first))
    for line in kept:
        st.text(line)  # labels and paths are user data: plain text
    if report["skipped_files"]:
        skipped = pd.DataFrame(report["skipped_files"])
        st.dataframe(skipped, hide_index=True, width="stretch")
        st.download_button("Download skipped files (CSV)", to_csv(skipped), "skipped.csv", "text/csv")
    name = report.get("collection")
    if name:
        st.caption("Next: look at its labels and samples on Collections, then map it on Explore and check its "
                   "labels on Audit.")
        if st.button(f"Open {md_escape(clip(name, 40))} on Collections", key="ingest_open", type="primary", on_click=open_collection,
                     args=(name,), help="Select the new collection in the sidebar and open the Collections page."):
            st.switch_page("app_pages/collections.py")
