"""Datasets in and out of a collection, in the formats people keep their labels in.

In (read into the list of images that core.ingest embeds, with the same ids, idempotence, resume and skip reports
as a folder): a folder (one subfolder per label, split folders, or flat = unlabeled), a manifest (CSV, TSV or
Parquet: an image path or URL column, a label column, other columns kept in the payload) and a Hugging Face dataset
saved with `save_to_disk` (its images extracted to files once, so the app can show them).

Out (core.formats.export): a manifest, an ImageFolder tree, a Hugging Face dataset, Label Studio tasks (and the
reviewed Label Studio export back as relabels, core.formats.labelstudio), and audit scores written into the payload.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ingest import IngestError, Scan, scan_folder_layout
from .manifest import MANIFEST_SUFFIXES, read_metadata, scan_manifest

__all__ = ["MANIFEST_SUFFIXES", "SourceOptions", "describe", "detect_kind", "read_metadata", "scan_source"]


@dataclass
class SourceOptions:
    """How to read a source. Columns: None = detect (the message says which were found); label_column "" = no
    label column (every image unlabeled). id_column "auto": the `id` column when every value is a point id."""
    path_column: str | None = None
    label_column: str | None = None
    id_column: str | None = "auto"
    images_dir: str | Path | None = None  # where a Hugging Face dataset's images are written (default: cache)


def detect_kind(source: str | Path) -> str:
    """folder, manifest or hf-dataset (a folder holding a saved dataset: dataset_dict.json or state.json)."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            return "manifest"
        raise IngestError(f"{path} is a file Image Atlas cannot read as a dataset (suffix '{path.suffix}'). Give a "
                          f"folder, a manifest ({', '.join(sorted(MANIFEST_SUFFIXES))}) or a Hugging Face dataset "
                          "folder saved with save_to_disk.")
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        return "hf-dataset"
    return "folder"


def scan_source(source: str | Path, options: SourceOptions | None = None,
                cache_dir: str | Path | None = None) -> Scan:
    """What `source` holds, read by its kind (see detect_kind); raises IngestError, writing nothing, when it cannot
    be ingested at all (the message says what was wrong and what to do)."""
    options = options or SourceOptions()
    kind = detect_kind(source)
    if kind == "manifest":
        return scan_manifest(source, path_column=options.path_column, label_column=options.label_column,
                             id_column=options.id_column)
    if kind == "hf-dataset":
        from .hf import scan_hf_dataset

        return scan_hf_dataset(source, images_dir=options.images_dir, label_column=options.label_column,
                               cache_dir=cache_dir, id_column=options.id_column)
    return scan_folder_layout(source)


def describe(scan: Scan) -> dict[str, Any]:
    """A scan in a few numbers, for a page to show before ingesting."""
    return {"kind": scan.kind, "root": str(scan.root), "images": len(scan.files), "skipped": len(scan.skipped),
            "notes": list(scan.notes)}
