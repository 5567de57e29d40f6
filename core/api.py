"""Image Atlas from Python (a notebook, a script): ingest, audit, export, and a Label Studio review back in.

    from core import api

    api.ingest("data/fruit", "fruits")                     # a folder, a manifest .csv/.parquet, or a HF dataset
    report = api.audit("fruits")                           # label issues, outliers, near-duplicates
    report.suspects("label").head()                        # a pandas DataFrame, worst first
    api.export("fruits", "fixed.csv", audit=report)        # manifest with current/original labels and scores
    api.export("fruits", "fixed_tree", format="imagefolder", mode="copy")
    api.export("fruits", "fixed_hf", format="hf")          # datasets.load_from_disk("fixed_hf")
    api.export("fruits", "review.json", audit=report, suspects_only=True)   # Label Studio tasks
    api.import_labelstudio("fruits", "project-1-export.json")                # the reviewed labels, as relabels

Every function takes `store=` (core.store.open_store(...)); without it, it opens the store the settings name
(QDRANT_URL, or the embedded engine in ATLAS_STORE_PATH) for the call and closes it after. The app and the command
line (`python -m core ...`) call the same functions.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import settings
from .store import Store


@contextmanager
def _using(store: Store | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    from .store import open_from_settings

    with open_from_settings() as opened:
        yield opened


def connect(url: str = "", path: str = "", api_key: str = "") -> Store:
    """A store: a Qdrant server by URL, else the embedded engine in `path` (default: the settings)."""
    from .store import open_store

    return open_store(url or settings.get("QDRANT_URL"), api_key or settings.get("QDRANT_API_KEY"),
                      path or settings.get("ATLAS_STORE_PATH"))


def ingest(source: str | Path, collection: str, *, model: Any = None, store: Store | None = None,
           path_column: str | None = None, label_column: str | None = None, id_column: str | None = "auto",
           images_dir: str | Path | None = None, base_url: str | None = None, prune: bool = False,
           batch_size: int | None = None, progress: Callable[[Any], None] | None = None, scan: Any = None,
           model_reason: str = ""):
    """Embed a source into `collection` (created when missing); returns an IngestReport (added, updated, unchanged,
    skipped with reasons, notes). `source`: a folder (one subfolder per label, split folders, or a flat folder of
    unlabeled images), a manifest (.csv, .tsv, .parquet: an image path or URL column and a label column, detected
    or named by path_column/label_column; label_column="" for none), or a Hugging Face dataset saved with
    save_to_disk. `model`: a name (auto, clip-vit-b-32, effnet-lite0), a loaded Embedder, or None for
    ATLAS_MODEL. Re-running adds only new or changed images and continues an interrupted run."""
    from . import models
    from .formats import SourceOptions
    from .ingest import ingest as run
    from .models.runtime import describe

    reason = model_reason
    if model is None or isinstance(model, str):
        choice = models.choose(model or settings.get("ATLAS_MODEL"), settings.get("ATLAS_CLIP_WEIGHTS"))
        model = models.load(choice, settings.get("ATLAS_DEVICE"), settings.get("ATLAS_CPU_BF16"))
        reason = f"{choice.reason}; runs on {describe(model)}"
    options = SourceOptions(path_column=path_column, label_column=label_column, id_column=id_column,
                            images_dir=images_dir)
    with _using(store) as s:
        return run(s, source, collection, model, base_url=settings.get("ATLAS_IMAGE_BASE_URL") if base_url is None
                   else base_url, batch_size=batch_size or settings.get("ATLAS_BATCH_SIZE"),
                   workers=settings.get("ATLAS_WORKERS"), max_pixels=settings.get("ATLAS_MAX_IMAGE_PIXELS"),
                   prune=prune, report_dir=settings.get("ATLAS_REPORT_DIR"), model_reason=reason,
                   cache_dir=settings.get("ATLAS_CACHE_DIR"), progress=progress, options=options, scan=scan)


def audit(collection: str, *, store: Store | None = None, checks: Sequence[str] = ("label", "outlier", "duplicate"),
          operating_point: str | float = "balanced", threshold: float | None = None, k: int = 10,
          label_field: str = "label", write_scores: bool = False, **options: Any):
    """Run the audit; returns an AuditReport (`.table`: one row per point with every check's scores;
    `.suspects("label")`; `.results[name].summary`). With write_scores, each point's scores are also stored in its
    payload (label_score, suggested_label, is_label_issue, ..., audit_at, audit_how)."""
    from .audit import run_audit
    from .cache import ArrayCache
    from .formats.export import write_audit_scores

    unknown = [u.strip() for u in settings.get("ATLAS_UNKNOWN_LABELS").split(",")]
    with _using(store) as s:
        report = run_audit(s, collection, label_field=label_field, checks=list(checks), k=k, threshold=threshold,
                           operating_point=operating_point, unknown_labels=unknown,
                           cache=ArrayCache(f"{settings.get('ATLAS_CACHE_DIR')}/results"), **options)
        if write_scores:
            write_audit_scores(s, collection, report)
    return report


def infer_format(out: str | Path) -> str:
    """The export format an output name implies: .csv/.parquet a manifest, .json Label Studio tasks."""
    suffix = Path(out).suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        return "manifest"
    if suffix == ".json":
        return "labelstudio"
    from .formats.export import ExportError

    raise ExportError(f"Say which format to write to {out}: manifest (.csv, .parquet), imagefolder, hf or "
                      "labelstudio (.json).")


def export(collection: str, out: str | Path, format: str | None = None, *, store: Store | None = None,
           labels: Sequence[Any] | None = None, ids: Sequence[Any] | None = None, audit: Any = None,
           suspects_only: bool = False, image_root: str | Path | None = None, mode: str = "symlink",
           overwrite: bool = False, label_field: str = "label", document_root_path: str | None = None):
    """Write the collection (or the points with one of `labels`, or the `ids`; with suspects_only, the audit's
    label suspects among them) as `format`: manifest (.csv/.parquet), imagefolder (mode symlink or copy), hf
    (save_to_disk) or labelstudio (.json tasks + .xml labeling config). `audit`: an AuditReport (from audit())
    whose suggested labels and scores are added. Returns an ExportReport (exported, skipped with reasons, notes)."""
    from .formats import export as ex
    from .formats.labelstudio import export_labelstudio

    format = format or infer_format(out)
    if format not in ex.FORMATS:
        raise ex.ExportError(f"Unknown export format '{format}': choose from {', '.join(ex.FORMATS)}.")
    with _using(store) as s:
        sel = ex.select(s, collection, labels=labels, ids=ids, label_field=label_field, image_root=image_root,
                        audit=audit, suspects_only=suspects_only)
    if format == "manifest":
        return ex.export_manifest(sel, out)
    if format == "imagefolder":
        return ex.export_imagefolder(sel, out, mode=mode, overwrite=overwrite)
    if format == "hf":
        return ex.export_hf_dataset(sel, out, overwrite=overwrite)
    return export_labelstudio(sel, out, document_root_path=document_root_path)


def import_labelstudio(collection: str, export_file: str | Path, *, store: Store | None = None,
                       allow_new_labels: bool = False, label_field: str = "label", default_by: str = "label-studio"):
    """Apply a reviewed Label Studio export (JSON or JSON-MIN) of tasks made by export(..., format="labelstudio"):
    a different label is a relabel, the same label a confirmation, each with `by` = the annotator; one undo batch
    (core.labels.undo(store, result.changes, by)). Returns a LabelStudioImport (counts, skipped tasks, changes)."""
    from .formats.labelstudio import import_labelstudio as run

    with _using(store) as s:
        return run(s, collection, export_file, label_field=label_field, allow_new_labels=allow_new_labels,
                   default_by=default_by)


__all__ = ["audit", "connect", "export", "import_labelstudio", "infer_format", "ingest"]
