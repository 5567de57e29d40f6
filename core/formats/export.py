"""The corrected dataset out of a collection: the whole collection, some labels, or a list of point ids.

- a manifest (CSV or Parquet): id, path (relative to the manifest where the image lies under its folder, else
  absolute), image_url, file name, current label, original label, reviewed, and the audit's suggested label and
  scores when an audit is given, then the payload's other fields (split, source, ...);
- an ImageFolder tree (<label>/<file>, or <split>/<label>/<file> when every point has a split) of symlinks or copies,
  with a Hugging Face `metadata.csv` that carries each image's point id, so ingesting the tree gives the same ids;
- a Hugging Face dataset (`save_to_disk`) with the labels as a ClassLabel (-1 = unlabeled) and the images embedded;
- Label Studio tasks (core.formats.labelstudio);
- the audit's scores written into each point's payload (write_audit_scores), for other services to filter on.

Nothing here writes into the folder the images come from; a target folder that is not empty is refused unless
`overwrite` says to write into it. Every export returns an ExportReport: what was written, and each point left
out with the reason.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import settings, thumbnails
from ..exporting import to_csv
from ..ingest import SPLIT_NAMES, Skipped, unlabeled_label
from ..store import Points, Store, parse_point_id, parse_point_ids

FORMATS = ("manifest", "imagefolder", "hf", "labelstudio")
AUDIT_COLUMNS = ("suggested_label", "suggestion_confidence", "label_score", "is_label_issue")
# Payload fields that are bookkeeping, not data: not exported as columns.
INTERNAL = {"label_history", "label_confirmed", "sha1", "model", "ingested_at", "width", "height", "audit_at",
            "audit_how", *AUDIT_COLUMNS, "outlier_score", "is_outlier_issue", "duplicate_group",
            "is_duplicate_issue"}
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")


class ExportError(ValueError):
    """The export cannot start (a bad target, nothing selected); nothing was written."""


@dataclass
class ExportReport:
    format: str
    collection: str
    out: str
    exported: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # points left out, and why
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "collection": self.collection, "out": self.out, "exported": self.exported,
                "skipped": len(self.skipped), "skipped_points": [{"id": s.path, "reason": s.reason}
                                                                 for s in self.skipped], "notes": list(self.notes)}

    def lines(self) -> list[str]:
        return [f"{self.collection}: {self.exported:,} {'image' if self.exported == 1 else 'images'} exported as "
                f"{self.format} to {self.out}" + (f", {len(self.skipped):,} left out" if self.skipped else "")
                ] + self.notes


@dataclass
class Selection:
    """The points to export, with their image folder (where `path` is resolved) and the audit's scores by id."""
    collection: str
    points: Points
    label_field: str = "label"
    image_root: Path | None = None
    audit: pd.DataFrame | None = None  # indexed by str(id): AUDIT_COLUMNS
    missing: list[Skipped] = field(default_factory=list)  # ids asked for that do not exist
    source_folder: Path | None = None  # the folder that holds every image of the collection: exports stay out of it

    def __len__(self) -> int:
        return len(self.points)


def audit_scores(report: Any) -> pd.DataFrame | None:
    """The audit's per-point columns (suggested label, scores, flag) indexed by str(id), from an AuditReport or its
    table; None when there is none."""
    if report is None:
        return None
    table = getattr(report, "table", report)
    cols = [c for c in AUDIT_COLUMNS if c in table.columns]
    if not cols:
        return None
    out = table[["id", *cols]].copy()
    out.index = out["id"].astype(str)
    return out.drop(columns=["id"])


def select(store: Store, collection: str, *, labels: Sequence[Any] | None = None, ids: Sequence[Any] | None = None,
           label_field: str = "label", image_root: str | Path | None = None, audit: Any = None,
           suspects_only: bool = False, cache_dir: str | Path | None = None) -> Selection:
    """The points to export: every point, those with one of `labels`, or those with the given `ids` (ids that do not
    exist are reported, not fatal); with `suspects_only`, only the ones the audit flags. The image folder defaults to
    the one the collection was ingested from (remembered), then ATLAS_IMAGE_ROOT."""
    if not store.collection_exists(collection):
        raise ExportError(f"There is no collection '{collection}' in {store.describe()}.")
    missing: list[Skipped] = []
    if ids is not None:
        wanted = parse_point_ids(ids)
        points = store.retrieve(collection, wanted)
        found = set(points.ids)
        missing = [Skipped(str(pid), "no such point in the collection") for pid in wanted if pid not in found]
        if labels is not None:
            keep = [i for i, p in enumerate(points.payloads) if str(p.get(label_field)) in {str(v) for v in labels}]
            points = Points([points.ids[i] for i in keep], None, [points.payloads[i] for i in keep])
    else:
        points = store.scroll(collection, with_vectors=False,
                              filter={label_field: list(labels)} if labels is not None else None)
    scores = audit_scores(audit)
    if suspects_only:
        if scores is None or "is_label_issue" not in scores.columns:
            raise ExportError("Exporting only the suspects needs an audit with the label check: run the audit "
                              "first (audit=... or --audit).")
        flagged = set(scores.index[scores["is_label_issue"].astype(bool)])
        keep = [i for i, pid in enumerate(points.ids) if str(pid) in flagged]
        points = Points([points.ids[i] for i in keep], None, [points.payloads[i] for i in keep])
    root = image_root
    if root is None:
        cache = cache_dir if cache_dir is not None else settings.get("ATLAS_CACHE_DIR")
        root = thumbnails.recall_root(cache, store.location, collection) or settings.get("ATLAS_IMAGE_ROOT") or None
    root = Path(root).expanduser().resolve() if root else None
    return Selection(collection, points, label_field, root, scores, missing,
                     _source_folder(store, collection, root) if root else None)


def _source_folder(store: Store, collection: str, root: Path) -> Path:
    """The deepest folder under the image folder that holds every image of the collection (not only the selected
    ones): a manifest's image folder can be wide (the folder holding the manifest and its images), the images less."""
    common: list[str] | None = None
    for payload in store.scroll(collection, with_vectors=False, payload_keys=["path"]).payloads:
        path = payload.get("path")
        if not isinstance(path, str) or not path:
            continue
        parts = path.split("/")[:-1]
        if common is None:
            common = parts
        else:
            n = 0
            while n < min(len(common), len(parts)) and common[n] == parts[n]:
                n += 1
            common = common[:n]
        if not common:
            break
    folder = root.joinpath(*common) if common else root
    return folder if folder.resolve().is_relative_to(root) else root


def _value(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def records(sel: Selection) -> list[dict[str, Any]]:
    """One row per point: the fields every format writes, then the payload's other scalar fields."""
    rows = []
    for pid, p in zip(sel.points.ids, sel.points.payloads):
        label = p.get(sel.label_field)
        row: dict[str, Any] = {"id": str(pid), "path": p.get("path"), "image_url": p.get("image_url"),
                               "file_name": p.get("file_name"), "label": label,
                               "label_original": p.get("label_original", label), "reviewed": bool(p.get("reviewed"))}
        if sel.audit is not None:
            scores = sel.audit.loc[str(pid)] if str(pid) in sel.audit.index else None
            for c in sel.audit.columns:
                row[c] = _value(scores[c]) if scores is not None else None
        elif "audit_at" in p:  # scores an earlier audit stored in the payload (write_audit_scores), with their date
            for c in (*AUDIT_COLUMNS, "audit_at"):
                row[c] = p.get(c)
        for key, value in p.items():
            if key not in row and key not in INTERNAL and key != sel.label_field and not isinstance(value,
                                                                                                     (dict, list)):
                row[key] = value
        rows.append(row)
    return rows


def source_file(sel: Selection, payload_path: Any) -> Path | None:
    """The image file of a point: its `path` under the image folder, when it exists (and stays inside it)."""
    if sel.image_root is None or not isinstance(payload_path, str) or not payload_path:
        return None
    candidate = (sel.image_root / payload_path).resolve()
    return candidate if candidate.is_relative_to(sel.image_root) and candidate.is_file() else None


def _no_root_note(sel: Selection) -> str:
    return (f"The folder the images of '{sel.collection}' came from is not known here: give it as image_root "
            "(--image-root).")


def _check_target(out: Path, sel: Selection, overwrite: bool, what: str) -> None:
    """Refuse a target inside (or holding) the image folder, and a non-empty one unless told to write into it."""
    source = sel.source_folder or sel.image_root
    if source is not None and (out == source or out.is_relative_to(source) or source.is_relative_to(out)):
        raise ExportError(f"The {what} {out} and the folder the images come from ({source}) overlap: an export "
                          "never writes into it. Choose a folder outside it.")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file: give a folder for the {what}.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"The {what} {out} is not empty. Choose an empty or new folder, or pass overwrite "
                          "(--overwrite) to write into it (files with the same names are replaced).")


def _folder_export(sel: Selection, out: str | Path, overwrite: bool, kind: str, what: str,
                   why_images: str) -> tuple[Path, ExportReport]:
    """The checks every export into a folder of image files makes first: a selection, the images' folder, a target
    apart from it."""
    out = Path(out).expanduser().resolve()
    report = ExportReport(kind, sel.collection, str(out))
    _selected(sel, report)
    if sel.image_root is None:
        raise ExportError(_no_root_note(sel) + " " + why_images)
    _check_target(out, sel, overwrite, what)
    return out, report


def _selected(sel: Selection, report: ExportReport) -> None:
    report.skipped.extend(sel.missing)
    if not len(sel):
        raise ExportError(f"No points of '{sel.collection}' match the selection: nothing to export.")


# --- manifest ----------------------------------------------------------------------------------------------------
def manifest_table(sel: Selection, relative_to: str | Path | None = None,
                   report: ExportReport | None = None) -> pd.DataFrame:
    """The manifest as a table (for a page's download button: core.exporting.to_csv(table)). A path is written
    relative to `relative_to` when the image lies under it, else absolute (when the image folder is known), else as
    stored; the rows of missing ids are not in it (they are in sel.missing)."""
    base = Path(relative_to).expanduser().resolve() if relative_to is not None else None
    rows = records(sel)
    unresolved = 0
    for row in rows:
        file = source_file(sel, row["path"])
        if file is not None:
            row["path"] = file.relative_to(base).as_posix() if base is not None and file.is_relative_to(base) \
                else str(file)
        elif row["path"] is not None:
            unresolved += 1
    if unresolved and report is not None:
        report.notes.append(f"{unresolved:,} paths are written as stored (relative to the collection's image folder), "
                            "not found under " + (str(sel.image_root) if sel.image_root else "a known folder")
                            + (": " + _no_root_note(sel) if sel.image_root is None else "."))
    return pd.DataFrame.from_records(rows)


def export_manifest(sel: Selection, out: str | Path) -> ExportReport:
    """A CSV (formula cells neutralised, as every CSV here) or Parquet manifest, by the file's suffix. Paths are
    relative to the manifest's folder when the image lies under it, else absolute, so that ingesting the manifest
    finds the images (and, from its `id` column, gives the same point ids)."""
    out = Path(out).expanduser().resolve()
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ExportError(f"A manifest is written as .csv or .parquet, not '{out.suffix or out.name}'.")
    report = ExportReport("manifest", sel.collection, str(out))
    _selected(sel, report)
    table = manifest_table(sel, out.parent, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        to_csv(table, out)
    else:
        parquet_ready(table).to_parquet(out, index=False)
    report.exported = len(table)
    return report


def parquet_ready(table: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns hold one type: a payload field with mixed values (text and numbers) becomes text."""
    table = table.copy()
    for col in table.columns:
        kinds = {type(v) for v in table[col] if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            table[col] = [None if v is None else str(v) for v in table[col]]
    return table


# --- ImageFolder -------------------------------------------------------------------------------------------------
def folder_name(label: Any) -> str:
    """A label as one folder name: no path separators or control characters, never '', '.' or '..'."""
    name = _UNSAFE_NAME.sub("_", str(label)).strip()
    return name if name not in ("", ".", "..") else f"_{name}"


def export_imagefolder(sel: Selection, out: str | Path, mode: str = "symlink", overwrite: bool = False) -> ExportReport:
    """<label>/<file> (or <split>/<label>/<file> when every point has a split) as symbolic links to the images or
    copies of them, and a `metadata.csv` (Hugging Face imagefolder) with each file's point id, original label and
    scores. Unlabeled points go to the folder named like the unlabeled value, which ingest reads as unlabeled."""
    if mode not in ("symlink", "copy"):
        raise ExportError(f"mode is symlink or copy, not '{mode}'.")
    out, report = _folder_export(sel, out, overwrite, "imagefolder", "export folder",
                                 "An ImageFolder export links or copies the image files.")
    rows = records(sel)
    splits = all(str(r.get("split", "")).lower() in SPLIT_NAMES for r in rows)
    from ..catalog import unknown_labels

    unknown = unknown_labels()
    taken: set[str] = set()
    meta = []
    renamed = set()
    try:
        _link_or_copy(sel, rows, out, mode, splits, unknown, taken, meta, renamed, report)
    except OSError as exc:
        raise ExportError(f"Writing the ImageFolder tree stopped after {report.exported:,} images ({exc}); the "
                          f"partial tree is in {out}: fix the cause and export again with overwrite "
                          "(--overwrite), or remove it.") from None
    if meta:
        to_csv(pd.DataFrame.from_records(meta), out / "metadata.csv")
    if renamed:
        report.notes.append("Labels that cannot be folder names were changed: "
                            + ", ".join(f"'{r}' as '{folder_name(r)}'" for r in sorted(renamed)))
    report.notes.append(f"{'Symbolic links to' if mode == 'symlink' else 'Copies of'} the images, one folder per "
                        "label" + (" inside split folders" if splits else "") + "; metadata.csv holds the point ids.")
    return report


def _link_or_copy(sel: Selection, rows: list[dict[str, Any]], out: Path, mode: str, splits: bool,
                  unknown: list[str], taken: set[str], meta: list[dict[str, Any]], renamed: set[str],
                  report: ExportReport) -> None:
    from ..catalog import is_unknown

    for row in rows:
        file = source_file(sel, row["path"])
        if file is None:
            reason = ("only a URL (image_url): download the images first" if row["path"] is None and row["image_url"]
                      else f"image file not found under {sel.image_root}")
            report.skipped.append(Skipped(row["id"], reason))
            continue
        label = unlabeled_label() if is_unknown(row["label"], unknown) else row["label"]
        folder = folder_name(label)
        if folder != str(label):
            renamed.add(str(label))
        prefix = f"{SPLIT_NAMES[str(row['split']).lower()]}/" if splits else ""
        name = row["file_name"] or file.name
        rel = f"{prefix}{folder}/{name}"
        if rel in taken:  # two images with one name under one label
            stem, dot, ext = name.rpartition(".")
            rel = f"{prefix}{folder}/{stem or ext}-{row['id'][:8]}{dot}{ext if stem else ''}"
        taken.add(rel)
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()  # overwrite: replace the entry itself, never write through a link
        if mode == "symlink":
            os.symlink(file, target)
        else:
            shutil.copyfile(file, target)
        meta.append({"file_name": rel, "id": row["id"], "label_original": row["label_original"],
                     "reviewed": row["reviewed"], "source_path": row["path"],
                     **{c: row[c] for c in AUDIT_COLUMNS if c in row}})
        report.exported += 1


# --- Hugging Face ------------------------------------------------------------------------------------------------
def export_hf_dataset(sel: Selection, out: str | Path, overwrite: bool = False) -> ExportReport:
    """A dataset saved with `save_to_disk`: `image` (the bytes embedded), `label` as a ClassLabel of the current
    labels (-1 for unlabeled points), `id`, `label_original`, `reviewed`, the audit's columns when given, and the
    payload's other fields; a DatasetDict by split when every point has a split."""
    try:
        import datasets
    except ImportError:
        raise ExportError("A Hugging Face export needs the `datasets` package: pip install datasets.") from None
    from ..catalog import is_unknown, unknown_labels

    out, report = _folder_export(sel, out, overwrite, "hf", "dataset folder",
                                 "A Hugging Face export embeds the image files.")
    unknown = unknown_labels()
    rows = []
    for row in records(sel):
        file = source_file(sel, row["path"])
        if file is None:
            report.skipped.append(Skipped(row["id"], f"image file not found under {sel.image_root}"))
            continue
        row["image"] = {"bytes": file.read_bytes(), "path": row["file_name"] or file.name}
        row["label"] = None if is_unknown(row["label"], unknown) else str(row["label"])
        rows.append(row)
    if not rows:
        raise ExportError(f"None of the selected images of '{sel.collection}' were found under {sel.image_root}.")
    names = sorted({r["label"] for r in rows if r["label"] is not None})
    index = {n: i for i, n in enumerate(names)}
    columns = list(dict.fromkeys(k for r in rows for k in r))
    splits = all(str(r.get("split", "")).lower() in SPLIT_NAMES for r in rows)
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}
    data: dict[str, list] = {"image": [r["image"] for r in rows], "label": [index.get(r["label"], -1) for r in rows]}
    for col in columns:
        if col in ("image", "label") or (splits and col == "split"):
            continue
        values = [_value(r.get(col)) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds == {bool}:
            features[col] = datasets.Value("bool")
        elif kinds and kinds <= {int, float} and not kinds & {bool}:
            features[col] = datasets.Value("float64" if float in kinds else "int64")
        else:
            features[col], values = datasets.Value("string"), [None if v is None else str(v) for v in values]
        data[col] = values
    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_dict(data, features=datasets.Features(features))
    if splits:
        keys = [SPLIT_NAMES[str(r["split"]).lower()] for r in rows]
        dataset = datasets.DatasetDict({s: dataset.select([i for i, k in enumerate(keys) if k == s])
                                        for s in dict.fromkeys(keys)})
    out.mkdir(parents=True, exist_ok=True)
    dataset.save_to_disk(str(out))
    report.exported = len(rows)
    report.notes.append(f"ClassLabel names: {', '.join(names) or 'none'}" + (
        f"; {sum(r['label'] is None for r in rows):,} unlabeled as -1" if any(r["label"] is None for r in rows) else "")
        + (f"; splits {', '.join(dict.fromkeys(keys))}" if splits else "") + ".")
    return report


# --- audit scores into the payload ---------------------------------------------------------------------------------
def write_audit_scores(store: Store, collection: str, report: Any, checks: Sequence[str] | None = None) -> int:
    """Store each audited point's scores in its payload (`label_score`, `suggested_label`, `suggestion_confidence`,
    `is_label_issue`, `outlier_score`, `is_outlier_issue`, `duplicate_group`), with `audit_at` (UTC time) and
    `audit_how` (the checks, operating point, threshold, neighbours and point count), so that other services can
    filter on them, e.g. label_score < 0.05. Labels and their history are not touched. Returns the points written.
    The scores describe the labels at `audit_at`: a later relabel does not update them."""
    table = report.table
    results = report.results
    wanted = [c for c in (checks or list(results)) if c in results]
    columns = {"label": ["label_score", "suggested_label", "suggestion_confidence", "is_label_issue"],
               "outlier": ["outlier_score", "is_outlier_issue"], "duplicate": ["duplicate_group", "is_duplicate_issue"]}
    how = []
    for name in wanted:
        summary = results[name].summary
        if name == "label":
            cal = summary.get("calibration") or {}
            point = cal.get("operating_point")
            threshold = cal.get("threshold", summary.get("threshold"))
            how.append(f"label check ({'operating point ' + str(point) if point else 'fixed threshold'}"
                       + (f", flagged below {float(threshold):.4f}" if threshold is not None else "") + ")")
        else:
            how.append(f"{name} check")
    how_text = (f"Image Atlas audit of {len(table):,} points, k={report.knn.k} neighbours on vector "
                f"'{report.points.vector}': " + "; ".join(how))
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    keep = [c for name in wanted for c in columns.get(name, []) if c in table.columns]
    written = 0
    for _, row in table.iterrows():
        payload = {c: _value(row[c]) for c in keep}
        for c, v in payload.items():
            if isinstance(v, (bool, np.bool_)):
                payload[c] = bool(v)
        payload.update({"audit_at": at, "audit_how": how_text})
        store.set_payload(collection, [parse_point_id(row["id"])], payload)
        written += 1
    return written
