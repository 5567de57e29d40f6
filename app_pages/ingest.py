from pathlib import Path

import pandas as pd
import streamlit as st

from core import models, settings
from core.models.runtime import describe
from core.exporting import to_csv
from core.formats import MANIFEST_SUFFIXES, SourceOptions, detect_kind, scan_source
from core.formats.manifest import LABEL_COLUMNS, PATH_COLUMNS, read_table
from core.ingest import IngestError, check_collection, ingest, summary_lines
from core.paths import PathNotAllowed, check_path
from core.store import StoreError
from ui.auth import can
from ui.text import clip, md_escape, plural

NO_LABEL = "(none: every image unlabeled)"
LAYOUTS = ("What works: a folder with one subfolder per label (apple/1.jpg, banana/2.png); split folders "
           "(train/apple/1.jpg, val/apple/2.jpg: the split is kept); a folder of images without subfolders (ingested "
           "as unlabeled); a manifest file (" + ", ".join(sorted(MANIFEST_SUFFIXES)) + ") with an image path (relative "
           "to the manifest) or URL column and a label column, its other columns kept; or a Hugging Face dataset "
           "folder written by save_to_disk (its ClassLabel names become the labels).")


@st.cache_resource(show_spinner=False)
def load_model(choice: models.ModelChoice, device: str, cpu_bf16: str, runtime: str) -> models.Embedder:
    return models.load(choice, device, cpu_bf16, runtime)


@st.cache_data(max_entries=16, show_spinner=False)
def manifest_columns(path: str, mtime_ns: int, size: int) -> list[str]:
    """A manifest's column names (keyed by the file's time and size: an edited file is read again)."""
    return [str(c) for c in read_table(Path(path)).columns]


def detected(columns: list[str], guesses: tuple[str, ...]) -> int | None:
    """The position of the column core.formats would pick by itself (None: no recognised name)."""
    folded = {c.strip().lower(): i for i, c in enumerate(columns)}
    return next((folded[g] for g in guesses if g in folded), None)


def open_collection(name: str) -> None:
    """Callback: select the collection in the sidebar (before its selectbox is drawn on the next run)."""
    st.session_state["collection"] = name


st.title("Ingest images")
if not can("admin"):
    st.warning("Ingesting is for admins: it reads server folders and writes collections. Ask an admin to ingest, "
               "or to give you the admin role.")
    st.stop()
ctx = st.session_state.get("ctx")
if ctx is None:
    st.warning("Not connected to Qdrant. Fix the connection in the sidebar first.")
    st.stop()
st.caption(f"Into {md_escape(ctx.store.describe())}. A folder, a manifest file or a Hugging Face dataset on the "
           "server. Running it again adds only new or changed images; labels you fixed are kept.")

source = st.text_input("Folder or manifest on the server", key="ingest_folder",
                       placeholder="/data/fruit  or  /data/pets.csv", help=LAYOUTS).strip()
kind, columns, source_error = None, [], None
if source:
    try:
        resolved = check_path(source, "ingest folder")  # before anything is read from it
        kind = detect_kind(resolved)
        if kind == "manifest":
            stat = resolved.stat()
            columns = manifest_columns(str(resolved), stat.st_mtime_ns, stat.st_size)
    except (IngestError, PathNotAllowed, OSError) as exc:
        source_error = str(exc)
if source_error:
    st.error(md_escape(source_error))
elif kind == "manifest":
    st.caption(f"A manifest with {plural(len(columns), 'column')}: pick the image path (or URL) and label columns.")
elif kind == "hf-dataset":
    st.caption("A Hugging Face dataset (save_to_disk): its images are extracted to files once, under the cache folder.")
else:
    st.caption(md_escape(LAYOUTS))

with st.form("ingest_form"):
    path_column = label_column = None
    if kind == "manifest" and columns:
        # keyed by the file: another manifest gets its own pickers, with its own detected defaults
        path_column = st.selectbox("Image path or URL column", columns, key=f"ingest_path_column::{source}",
                                   index=detected(columns, PATH_COLUMNS),
                                   help="Paths are read relative to the manifest's folder; absolute paths and "
                                        "http(s) URLs work too.")
        label_options = [*columns, NO_LABEL]
        label_column = st.selectbox("Label column", label_options, key=f"ingest_label_column::{source}",
                                    index=detected(columns, LABEL_COLUMNS),
                                    help="The other columns are kept in each point's payload (split, source, ...).")
    collection = st.text_input("Collection", key="ingest_collection", placeholder="fruits")
    model_name = st.selectbox("Model", ["auto", models.CLIP, models.EFFNET], key="ingest_model",
                              help="auto: clip-vit-b-32 when its weights are available, otherwise effnet-lite0.")
    base_url = st.text_input("Base URL of the images (optional)", key="ingest_base_url",
                             value=settings.get("ATLAS_IMAGE_BASE_URL"),
                             help="Where the folder is served over HTTP; stored as image_url in each point.")
    batch_size = st.number_input("Batch size", 1, 512, settings.get("ATLAS_BATCH_SIZE"), key="ingest_batch")
    submitted = st.form_submit_button("Ingest", type="primary")

if submitted:  # True in this one run only: the ingest runs once per click
    try:
        if not source or not collection.strip():
            raise IngestError("Give both a folder (or manifest) and a collection name.")
        resolved = check_path(source, "ingest folder")
        if kind == "manifest" and columns and path_column is None:
            raise IngestError("Choose the column that holds the image paths or URLs.")
        if kind == "manifest" and columns and label_column is None:
            raise IngestError(f"Choose the label column above: none of the columns looks like one, or pick "
                              f"'{NO_LABEL}' to ingest every image as unlabeled.")
        options = SourceOptions(path_column=path_column,
                                label_column="" if label_column == NO_LABEL else label_column)
        scan = scan_source(resolved, options, cache_dir=settings.get("ATLAS_CACHE_DIR"))
        for note in scan.notes:
            st.caption(md_escape(note))
        choice = models.choose(model_name, settings.get("ATLAS_CLIP_WEIGHTS"))
        check_collection(ctx.store, collection.strip(), choice.name)
        exporting = settings.get("ATLAS_RUNTIME") != "torch"
        with st.spinner(f"Loading {choice.name}" + (" (the first time on this machine it is also exported for a "
                                                   "faster CPU runtime, a few seconds)…" if exporting else "…")):
            model = load_model(choice, settings.get("ATLAS_DEVICE"), settings.get("ATLAS_CPU_BF16"),
                               settings.get("ATLAS_RUNTIME"))
        reason = f"{choice.reason}; runs on {describe(model)}"
        st.caption(f"Model: {choice.name} — {md_escape(reason)}")
        bar = st.progress(0.0, text=f"0 of {plural(len(scan.files), 'image')}")

        def on_progress(p) -> None:
            eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
            bar.progress(p.done / p.total,
                         text=f"{p.done:,} of {plural(p.total, 'image')} · {p.rate:.1f} images/s{eta}")

        report = ingest(ctx.store, resolved, collection.strip(), model, base_url=base_url.strip(),
                        batch_size=int(batch_size), workers=settings.get("ATLAS_WORKERS"),
                        max_pixels=settings.get("ATLAS_MAX_IMAGE_PIXELS"), model_reason=reason,
                        report_dir=settings.get("ATLAS_REPORT_DIR"), cache_dir=settings.get("ATLAS_CACHE_DIR"),
                        progress=on_progress, options=options, scan=scan)
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
        st.text(line)  # notes, labels and paths are user data: plain text
    if report.get("model_reason"):
        st.text(f"Model: {report.get('model', '')} ({report['model_reason']})")
    if report["skipped_files"]:
        skipped = pd.DataFrame(report["skipped_files"])
        st.dataframe(skipped, hide_index=True, width="stretch")
        st.download_button("Download skipped files (CSV)", to_csv(skipped), "skipped.csv", "text/csv")
    name = report.get("collection")
    if name:
        st.caption("Next: look at its labels and samples on Collections, then map it on Explore and check its "
                   "labels on Audit.")
        if st.button(f"Open {md_escape(clip(name, 40))} on Collections", key="ingest_open", type="primary",
                     on_click=open_collection, args=(name,),
                     help="Select the new collection in the sidebar and open the Collections page."):
            st.switch_page("app_pages/collections.py")
