"""The corrected dataset out of a collection, and a Label Studio review back in: one panel for the Audit and Explore
pages (core.formats.export and core.formats.labelstudio do the work).

- downloads (anyone who can see the collection): manifest CSV / Parquet, Label Studio tasks JSON and its labeling
  config XML; each file is built when its button is clicked (a deferred download), never on a rerun;
- a server folder (admins, like ingest: it writes on the server; checked against ATLAS_ALLOWED_ROOTS): an ImageFolder
  tree of symlinks or copies, or a Hugging Face dataset;
- a reviewed Label Studio export uploaded back (editors): relabels and confirmations with history, one Undo;
- the audit's scores written into each point's payload (admins).

Every write happens in an on_click callback that checks the role again; its outcome is shown once on the next run.
"""
from __future__ import annotations

import io
import json
from typing import Any, Callable, Sequence

import pandas as pd
import streamlit as st

from core import labels as label_ops
from core.exporting import to_csv
from core.formats.export import (ExportError, export_hf_dataset, export_imagefolder, manifest_table, parquet_ready,
                                 select, write_audit_scores)
from core.formats.labelstudio import import_labelstudio, labelstudio_tasks
from core.paths import PathNotAllowed, check_path
from core.store import StoreError
from ui.auth import actor, can
from ui.text import md_escape, plural

FOLDER_FORMATS = {"ImageFolder (symlinks)": ("imagefolder", "symlink"),
                  "ImageFolder (copies)": ("imagefolder", "copy"),
                  "Hugging Face dataset (save_to_disk)": ("hf", None)}


class _Target:
    """What to export, captured when the panel is drawn: the download callables run later, on another thread, and
    must not read the session."""

    def __init__(self, store: Any, collection: str, label_field: str, image_root: str | None, ids: Sequence[Any] | None,
                 audit: Any, suspects_only: bool, labels: list[str] | None):
        self.store, self.collection, self.label_field = store, collection, label_field
        self.image_root, self.ids, self.audit, self.suspects_only = image_root, ids, audit, suspects_only
        self.labels = labels

    def selection(self):
        return select(self.store, self.collection, ids=self.ids, label_field=self.label_field,
                      image_root=self.image_root, audit=self.audit, suspects_only=self.suspects_only)

    # --- download builders (called when a button is clicked) ---
    def manifest_csv(self) -> bytes:
        return to_csv(manifest_table(self.selection())).encode("utf-8")

    def manifest_parquet(self) -> bytes:
        buffer = io.BytesIO()
        parquet_ready(manifest_table(self.selection())).to_parquet(buffer, index=False)
        return buffer.getvalue()

    def labelstudio_json(self) -> bytes:
        tasks, _, _ = labelstudio_tasks(self.selection(), labels=self.labels)
        return json.dumps(tasks, indent=1, ensure_ascii=False).encode("utf-8")

    def labelstudio_xml(self) -> bytes:
        _, config, _ = labelstudio_tasks(self.selection(), labels=self.labels)
        return config.encode("utf-8")


def _say(key: str, kind: str, text: str, lines: Sequence[str] = (), table: pd.DataFrame | None = None) -> None:
    st.session_state[f"{key}_message"] = (kind, text, list(lines), table)


def _show_message(key: str) -> None:
    message = st.session_state.pop(f"{key}_message", None)
    if message:
        kind, text, lines, table = message
        getattr(st, kind)(md_escape(text))
        for line in lines:
            st.text(line)  # paths, labels and notes are user data: plain text
        if table is not None and len(table):
            st.dataframe(table, hide_index=True, width="stretch")


def _bump_version() -> None:
    """Label counts and the audit's tables are keyed by audit_version: a change must be seen at once."""
    st.session_state["audit_version"] = st.session_state.get("audit_version", 0) + 1


# --- callbacks ------------------------------------------------------------------------------------------------
def _write_folder(target: _Target, key: str) -> None:
    """Callback of "Write": the ImageFolder tree or Hugging Face dataset into the server folder typed."""
    if not can("admin"):
        _say(key, "error", "Not allowed: writing to a server folder needs the admin role. Nothing was written.")
        return
    out = str(st.session_state.get(f"{key}_out", "")).strip()
    if not out:
        _say(key, "warning", "Type the server folder to write to first.")
        return
    fmt, mode = FOLDER_FORMATS.get(st.session_state.get(f"{key}_format"), ("imagefolder", "symlink"))
    overwrite = bool(st.session_state.get(f"{key}_overwrite"))
    try:
        folder = check_path(out, "export folder")
        sel = target.selection()
        report = (export_imagefolder(sel, folder, mode=mode, overwrite=overwrite) if fmt == "imagefolder"
                  else export_hf_dataset(sel, folder, overwrite=overwrite))
    except (ExportError, PathNotAllowed, StoreError, OSError) as exc:
        _say(key, "error", str(exc))
        return
    first, *notes = report.lines()
    skipped = pd.DataFrame([{"id": s.path, "reason": s.reason} for s in report.skipped])
    _say(key, "success", first, notes, skipped)


def _apply_review(target: _Target, key: str) -> None:
    """Callback of "Apply the review": the uploaded Label Studio export as relabels and confirmations, one batch."""
    if not can("edit"):
        _say(key, "error", "Not allowed: changing labels needs the editor role. Nothing was written.")
        return
    upload_key = f"{key}_ls_upload_{st.session_state.get(f'{key}_ls_round', 0)}"
    upload = st.session_state.get(upload_key)
    if upload is None:
        _say(key, "warning", "Upload the JSON export of your Label Studio project first.")
        return
    try:
        result = import_labelstudio(target.store, target.collection, upload.getvalue(), label_field=target.label_field,
                                    allow_new_labels=bool(st.session_state.get(f"{key}_ls_new")),
                                    default_by=actor())
    except (label_ops.LabelError, StoreError) as exc:
        _say(key, "error", str(exc))
        return
    if result.changes:
        st.session_state[f"{key}_ls_result"] = result
        st.session_state.setdefault("audit_changes", []).extend(result.changes)  # listed on Audit's Changes tab
        _bump_version()
    # a fresh, empty uploader: the same file is not applied twice by a second click
    st.session_state[f"{key}_ls_round"] = st.session_state.get(f"{key}_ls_round", 0) + 1
    problems = pd.DataFrame([{"task": s.path, "reason": s.reason} for s in result.problems])
    _say(key, "success" if result.changes else "info",
         f"Review applied to {target.collection}: {plural(result.relabelled, 'relabel')}, "
         f"{plural(result.confirmed, 'confirmation')}, {result.unchanged:,} already confirmed, "
         f"{plural(result.not_reviewed, 'task')} not reviewed yet"
         + (f", {plural(len(result.problems), 'task')} left out (listed below)." if result.problems else "."),
         table=problems)


def _undo_review(target: _Target, key: str) -> None:
    """Callback of Undo: every change of the last applied review, all or none."""
    if not can("edit"):
        _say(key, "error", "Not allowed: undoing needs the editor role. Nothing was written.")
        return
    result = st.session_state.get(f"{key}_ls_result")
    if result is None:
        return
    try:
        n = label_ops.undo(target.store, result.changes, actor(), target.label_field)
    except (label_ops.LabelError, StoreError) as exc:
        _say(key, "error", str(exc))
        return
    del st.session_state[f"{key}_ls_result"]
    undone = {id(c) for c in result.changes}
    st.session_state["audit_changes"] = [c for c in st.session_state.get("audit_changes", []) if id(c) not in undone]
    _bump_version()
    _say(key, "success", f"Undid the review: {plural(n, 'change')} reverted (the label history records the undo).")


def _write_scores(target: _Target, key: str) -> None:
    """Callback: the audit's scores into each point's payload (labels untouched)."""
    if not can("admin"):
        _say(key, "error", "Not allowed: writing scores into the payload needs the admin role. Nothing was written.")
        return
    try:
        n = write_audit_scores(target.store, target.collection, target.audit)
    except (StoreError, ValueError, KeyError) as exc:
        _say(key, "error", str(exc))
        return
    _say(key, "success", f"Audit scores written into the payload of {plural(n, 'point')} (label_score, "
                         "suggested_label, is_label_issue, ..., with audit_at and audit_how).")


# --- the panel ----------------------------------------------------------------------------------------------------
def _count(ctx: Any, ids: Sequence[Any] | None, audit: Any, suspects_only: bool) -> int:
    """How many points the export holds, without reading the store."""
    if suspects_only:
        table = audit.table
        flagged = table[table["is_label_issue"].astype(bool)]["id"].astype(str)
        return int(flagged.isin([str(i) for i in ids]).sum()) if ids is not None else len(flagged)
    if ids is not None:
        return len(ids)
    return ctx.summary.points if ctx.summary is not None else 0


def export_panel(ctx: Any, ids: Sequence[Any] | None = None, audit_report: Any = None, key: str = "export",
                 label_field: str | None = None, title: str = "Export the corrected dataset") -> None:
    """The export panel for the sidebar's collection: every point (ids None) or the given ids; with an audit
    report, its suggested labels and scores go into the files, and "Suspects only" limits it to the flagged points.
    `key` prefixes every widget key: one panel per page."""
    if ctx is None or ctx.collection is None:
        return
    field = label_field or ctx.label_field or "label"
    with st.expander(title, icon=":material/download:"):
        _show_message(key)
        if ids is not None and not len(ids):
            st.caption("Select points first: the export holds the selection.")
            return
        has_flags = audit_report is not None and "is_label_issue" in getattr(audit_report, "table", pd.DataFrame())
        suspects_only = False
        if has_flags:
            scope = st.radio("Points", ["All", "Suspects only"], key=f"{key}_scope", horizontal=True,
                             help="Suspects: the points the audit flags as possible label issues.")
            suspects_only = scope == "Suspects only"
        n = _count(ctx, ids, audit_report, suspects_only)
        labels = list(ctx.summary.labels) if ctx.summary is not None and ctx.summary.labels else None
        target = _Target(ctx.store, ctx.collection, field, ctx.image_root, list(ids) if ids is not None else None,
                         audit_report, suspects_only, labels)
        stem = f"{ctx.collection}{'-suspects' if suspects_only else '-selection' if ids is not None else ''}"
        st.caption(f"{plural(n, 'point')} with their current labels, original labels and review marks"
                   + (", the audit's suggested labels and scores" if audit_report is not None else "")
                   + ". Each file is built when you click its button.")
        disabled = n == 0
        c1, c2, c3, c4 = st.columns(4)
        _download(c1, "Manifest (CSV)", target.manifest_csv, f"{stem}.csv", "text/csv", f"{key}_csv", disabled)
        _download(c2, "Manifest (Parquet)", target.manifest_parquet, f"{stem}.parquet",
                  "application/vnd.apache.parquet", f"{key}_parquet", disabled)
        _download(c3, "Label Studio tasks (JSON)", target.labelstudio_json, f"{stem}-labelstudio.json",
                  "application/json", f"{key}_ls_json", disabled,
                  help="One task per image with the suggested label as a prediction. Import it into a Label Studio "
                       "project whose labeling interface is the XML config.")
        _download(c4, "Label Studio config (XML)", target.labelstudio_xml, f"{stem}-labelstudio.xml",
                  "application/xml", f"{key}_ls_xml", disabled,
                  help="Paste it under Settings > Labeling Interface > Code.")
        if not ctx.image_base_urls:
            st.caption("The tasks point at the images as Label Studio local files (`/data/local-files/?d=<path>`): "
                       "start Label Studio with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and the image folder "
                       "as `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`, or ingest with a base URL so that tasks carry "
                       "URLs.")

        if can("admin"):
            st.markdown("**Write to a server folder**")
            st.text_input("Server folder", key=f"{key}_out", placeholder="/data/exports/fruit-fixed",
                          help="A new or empty folder outside the one the images come from (ATLAS_ALLOWED_ROOTS "
                               "applies).")
            f1, f2 = st.columns([2, 1])
            f1.radio("Format", list(FOLDER_FORMATS), key=f"{key}_format", horizontal=True)
            f2.checkbox("Write into a folder that is not empty", key=f"{key}_overwrite")
            st.button("Write", key=f"{key}_write", on_click=_write_folder, args=(target, key), disabled=disabled)

        if can("edit"):
            st.markdown("**Bring a Label Studio review back**")
            st.file_uploader("Label Studio export (JSON or JSON-MIN) of tasks made here", type=["json"],
                             key=f"{key}_ls_upload_{st.session_state.get(f'{key}_ls_round', 0)}")
            st.checkbox("Allow labels no point has yet", key=f"{key}_ls_new")
            r1, r2 = st.columns(2)
            r1.button("Apply the review", key=f"{key}_ls_apply", on_click=_apply_review, args=(target, key),
                      help="A different label is a relabel, the same label a confirmation; by = the annotator. "
                           "One undo step.")
            applied = st.session_state.get(f"{key}_ls_result")
            if applied is not None and applied.changes:
                r2.button(f"Undo the review ({plural(len(applied.changes), 'change')})", key=f"{key}_ls_undo",
                          on_click=_undo_review, args=(target, key))

        if audit_report is not None and can("admin"):
            st.button("Write the audit's scores into the payload", key=f"{key}_scores", on_click=_write_scores,
                      args=(target, key), help="label_score, suggested_label, is_label_issue, ... in each point's "
                                               "payload, for other services to filter on. Labels are not touched.")


def _download(where: Any, label: str, build: Callable[[], bytes], file_name: str, mime: str, key: str,
              disabled: bool, help: str | None = None) -> None:
    where.download_button(label, build, file_name, mime, key=key, disabled=disabled, help=help, on_click="ignore")
