"""Ingest images into a Qdrant collection: a folder of labeled images (one subfolder per label, optionally inside
split folders such as train/ and test/), a flat folder of unlabeled images, a manifest (CSV or Parquet) or a Hugging
Face dataset saved with `save_to_disk` (the last two are read by core/formats.py into the same list of files).

A point is one file: its id comes from the file's path (or from an `id` column of a manifest or of the folder's
`metadata.csv`, so that an exported dataset comes back with the same ids). Ingest owns the image fields (path, sha1,
size, ...);
the audit (core/labels.py) owns `label` once a point exists, and `label_original`, `reviewed`,
`label_confirmed`, `label_history`. Re-ingesting never overwrites what the audit owns:
- a changed file (same path, new content) gets a new vector and new image fields; its label and history stay;
- a moved file (a new path whose content equals a point whose file is gone) keeps its point's history: the
  point is copied to the new path's id with a "move" entry in `label_history`, and the old point is deleted.
  Its label follows the new folder, unless the user relabelled the point (its label differs from its old
  folder): then the user's label wins, and the report lists the move under `kept_labels`;
- a deleted file's point stays (it is removed only with `prune`), so deleting a file never loses an edit by
  accident. A point deleted in the app comes back on the next ingest while its file is still in the folder.
"""
from __future__ import annotations

import csv
import hashlib
import os
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import numpy as np
import torch

from . import images, thumbnails
from .exporting import csv_safe_cell
from .models import Embedder
from .pixels import DIM as PIXEL_DIM
from .pixels import PIXELS, pixel_vector
from .store import PointId, Store

# uuid5 namespace for point ids: the same relative path always gives the same id, on every machine.
ID_NAMESPACE = uuid.UUID("6f1c9a52-8a5e-4d4b-9a53-5d0c2f0e7a11")
# Who label_history says made the changes ingest makes (moves).
INGEST_USER = "ingest"


class IngestError(Exception):
    """The ingest cannot start; nothing was written."""


@dataclass(frozen=True)
class ImageFile:
    rel_path: str  # posix, relative to the ingested folder (for a folder: the label is its first part); or a URL
    label: Any
    id: PointId | None = None  # an explicit point id (manifest or metadata.csv `id` column); default: from rel_path
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # more payload fields (split, ...)
    url: str | None = None  # an image read over HTTP(S) instead of from the folder

    @property
    def pid(self) -> PointId:
        return self.id if self.id is not None else point_id(self.rel_path)


@dataclass
class Scan:
    """What a source holds: the images to ingest (relative to `root`), the ones that cannot be, and notes for the
    user (how the layout was read). `label_of_path` gives the label a file's path implies (folders), or None."""
    root: Path
    files: list[ImageFile]
    skipped: list["Skipped"]
    kind: str  # folder, split-folders, flat, manifest, hf-dataset
    notes: list[str] = field(default_factory=list)
    label_of_path: Callable[[str], Any] | None = None


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class KeptLabel:
    """A moved file whose user-given label was kept over the label of its new folder."""
    path: str
    moved_from: str
    label: str
    folder_label: str


@dataclass
class Progress:
    done: int
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass
class IngestReport:
    collection: str
    folder: str
    model: str
    model_reason: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    fields_updated: int = 0  # unchanged images whose other columns (split, source, ...) changed in the source
    moved: int = 0  # files found at a new path: their points (and label history) moved with them
    kept_labels: list[KeptLabel] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    report_csv: str | None = None
    kind: str = "folder"  # how the source was read: folder, split-folders, flat, manifest, hf-dataset
    notes: list[str] = field(default_factory=list)  # how the source was read, in words

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "folder": self.folder, "model": self.model,
                "model_reason": self.model_reason, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "removed": self.removed, "moved": self.moved,
                "fields_updated": self.fields_updated, "kind": self.kind, "notes": list(self.notes),
                "kept_labels": [{"path": k.path, "moved_from": k.moved_from, "label": k.label,
                                 "folder_label": k.folder_label} for k in self.kept_labels],
                "skipped": len(self.skipped),
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in self.skipped],
                "seconds": round(self.seconds, 2),
                "images_per_second": round(self.embedded / self.seconds, 2) if self.seconds else None,
                "report_csv": self.report_csv}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What an ingest did, in words (CLI and Ingest page): counts first, then each label kept over its folder."""
    counts = (f"{report['collection']}: {report['added']:,} added, {report['updated']:,} updated, "
              f"{report['unchanged']:,} unchanged, {report['skipped']:,} skipped"
              + (f", {report['moved']:,} moved (history kept)" if report.get("moved") else "")
              + (f", {report['removed']:,} removed" if report.get("removed") else "")
              + (f", {report['fields_updated']:,} with changed columns" if report.get("fields_updated") else "")
              + f" in {report['seconds']:.1f} s")
    if report.get("images_per_second") and (report["added"] + report["updated"]):
        counts += f", {report['images_per_second']:.1f} images/s"
    return [counts] + list(report.get("notes", [])) + [
        f"kept the edited label '{k['label']}' of {k['path']} (moved from {k['moved_from']}; its "
        f"new folder says '{k['folder_label']}')" for k in report.get("kept_labels", [])]


def point_id(rel_path: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, rel_path))


def folder_label(rel_path: str) -> str:
    """The label a file's folder gives it: the first part of its path."""
    return rel_path.split("/", 1)[0]


# Top-level folder names that mean a split, as Hugging Face's `imagefolder` reads them (train/cat/1.png).
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "eval": "test",
               "evaluation": "test", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation"}
# Hugging Face `imagefolder` metadata files: a `file_name` column (relative to the file's folder) and more columns.
METADATA_FILES = ("metadata.csv", "metadata.jsonl")


def layouts_help(root: Path | str) -> str:
    """The layouts ingest reads, with examples under `root` (for messages about a folder it cannot use)."""
    return (f"Image Atlas reads: one subfolder per label ({root}/apple/1.jpg, {root}/banana/2.jpg); split folders "
            f"with one subfolder per label inside ({root}/train/apple/1.jpg); a folder of images without subfolders "
            "(ingested as unlabeled); a manifest file (CSV or Parquet with an image path or URL column and a label "
            "column); or a Hugging Face dataset saved with save_to_disk.")


def unlabeled_label() -> str:
    """The label value images without a label get (a flat folder, an empty manifest cell): 'unlabeled' when
    ATLAS_UNKNOWN_LABELS lists it (the default), else its first value, so the app and the audit count them as
    unlabeled."""
    from .catalog import unknown_labels

    values = [u for u in unknown_labels() if u]
    return "unlabeled" if "unlabeled" in values or not values else values[0]


def scan_folder(folder: Path | str) -> tuple[list[ImageFile], list[Skipped]]:
    """Image files under one subfolder per label (or a flat folder, or split folders), and the files that cannot
    be ingested with the reason. See scan_folder_layout."""
    scan = scan_folder_layout(folder)
    return scan.files, scan.skipped


def scan_folder_layout(folder: Path | str) -> Scan:
    """Image files under one subfolder per label; or, when the folder has no subfolders, its images as unlabeled;
    or, when every subfolder is a split (train, test, validation, ...), the label subfolders inside each, with the
    split kept in the payload. A Hugging Face `metadata.csv`/`metadata.jsonl` beside the images adds its columns
    to their payload (and its `id` column, when every value is a point id, gives the point ids).
    Symbolic links that point back into the folder are skipped (their images are ingested where they are),
    so a link such as `all -> .` neither loops nor ingests every image twice."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise IngestError(f"Folder {root} does not exist. Give a folder of images (one subfolder per label, or "
                          "none for unlabeled images), a manifest (.csv, .parquet) or a Hugging Face dataset folder.")
    if not root.is_dir():
        raise IngestError(f"{root} is a file, not a folder. Give the folder that holds one subfolder per label.")
    root = Path(os.path.realpath(root))
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    if not entries:
        raise IngestError(f"Folder {root} is empty. {layouts_help(root)}")
    skipped: list[Skipped] = []
    dirs, loose = _split_entries(root, root, entries, skipped)
    files: list[ImageFile] = []
    notes: list[str] = []
    seen = {str(root)}  # real folders already walked: a link outside the folder that loops back is walked once
    splits = bool(dirs) and all(d.name.lower() in SPLIT_NAMES for d in dirs)
    if not dirs:
        unlabeled = unlabeled_label()
        for p in loose:
            _add_file(root, p, unlabeled, files, skipped)
        kind, label_of_path = "flat", (lambda _rel: unlabeled)
        if files:
            notes.append(f"No subfolders: the {len(files):,} images are ingested as unlabeled (label "
                         f"'{unlabeled}'); the audit suggests labels for them.")
    elif splits:
        kind = "split-folders"
        for split_dir in dirs:
            split = SPLIT_NAMES[split_dir.name.lower()]
            seen.add(os.path.realpath(split_dir))
            inner = sorted(p for p in split_dir.iterdir() if not p.name.startswith("."))
            label_dirs, inner_loose = _split_entries(root, split_dir, inner, skipped)
            for p in inner_loose:  # a split folder without label subfolders holds unlabeled images
                if label_dirs:
                    skipped.append(Skipped(p.relative_to(root).as_posix(), "not inside a label subfolder"))
                else:
                    _add_file(root, p, unlabeled_label(), files, skipped, {"split": split})
            for label_dir in label_dirs:
                seen.add(os.path.realpath(label_dir))
                _walk(root, label_dir, label_dir.name, seen, files, skipped, {"split": split})
        names = ", ".join(d.name for d in dirs)
        notes.append(f"Split folders ({names}): labels come from the subfolders inside them; the split is kept in "
                     "each point's payload as `split`.")

        def label_of_path(rel: str) -> Any:
            parts = rel.split("/")
            return parts[1] if len(parts) > 2 else unlabeled_label()
    else:
        kind, label_of_path = "folder", folder_label
        for p in loose:
            skipped.append(Skipped(p.name, "not inside a label subfolder"))
        for label_dir in dirs:
            seen.add(os.path.realpath(label_dir))
            _walk(root, label_dir, label_dir.name, seen, files, skipped)
    if not files:
        raise IngestError(f"No image files found under {root} (looked for {', '.join(sorted(images.IMAGE_SUFFIXES))})."
                          + (f" Skipped: {skipped[0].path} ({skipped[0].reason})." if skipped else "")
                          + f" {layouts_help(root)}")
    files, note = _apply_metadata(root, files, skipped)
    notes.extend(note)
    return Scan(root, files, skipped, kind, notes, label_of_path)


def _split_entries(root: Path, folder: Path, entries: list[Path],
                   skipped: list[Skipped]) -> tuple[list[Path], list[Path]]:
    """(subfolders, loose files) of one folder level; links back into the root are skipped, metadata files left
    out (they are read, not ingested)."""
    dirs, loose = [], []
    for p in entries:
        if p.is_symlink() and _inside(root, p):
            skipped.append(_link_inside(root, p))
        elif p.is_dir():
            dirs.append(p)
        elif p.name in METADATA_FILES:
            continue
        elif p.is_file() or p.is_symlink():
            loose.append(p)
    return dirs, loose


def _add_file(root: Path, path: Path, label: Any, files: list[ImageFile], skipped: list[Skipped],
              extra: dict[str, Any] | None = None) -> None:
    rel = path.relative_to(root).as_posix()
    if not path.is_file():
        skipped.append(Skipped(rel, "broken symbolic link or not a regular file"))
    elif path.suffix.lower() not in images.IMAGE_SUFFIXES:
        skipped.append(Skipped(rel, f"not an image file (suffix '{path.suffix}')"))
    else:
        files.append(ImageFile(rel, label, extra=dict(extra or {})))


def _apply_metadata(root: Path, files: list[ImageFile], skipped: list[Skipped]) -> tuple[list[ImageFile], list[str]]:
    """Hugging Face imagefolder metadata (metadata.csv / metadata.jsonl at the root or in a split folder): its
    columns join each file's payload by `file_name`; an `id` column whose every value is a point id gives the ids."""
    from .formats import read_metadata  # noqa: PLC0415 (formats imports this module)

    tables = [p for folder in [root, *sorted(q for q in root.iterdir() if q.is_dir())]
              for p in (folder / name for name in METADATA_FILES) if p.is_file()]
    if not tables:
        return files, []
    by_rel: dict[str, dict[str, Any]] = {}
    ids: dict[str, PointId] = {}
    notes = []
    for table in tables:
        rows, table_ids, note = read_metadata(table, root)
        by_rel.update(rows)
        ids.update(table_ids)
        notes.extend(note)
    out = []
    for f in files:
        extra = {**f.extra, **by_rel.get(f.rel_path, {})}
        out.append(ImageFile(f.rel_path, f.label, ids.get(f.rel_path, f.id), extra, f.url))
    taken: dict[PointId, str] = {}
    unique = []
    for f in out:  # two files given one id: the second is skipped, not silently merged
        if f.pid in taken:
            skipped.append(Skipped(f.rel_path, f"its metadata id {f.pid} is already used by {taken[f.pid]}"))
            continue
        taken[f.pid] = f.rel_path
        unique.append(f)
    return unique, notes


def _inside(root: Path, link: Path) -> bool:
    return Path(os.path.realpath(link)).is_relative_to(root)


def _link_inside(root: Path, link: Path) -> Skipped:
    target = Path(os.path.realpath(link)).relative_to(root).as_posix()
    return Skipped(link.relative_to(root).as_posix(),
                   f"symbolic link to '{target}' inside the ingested folder (its images are ingested from there)")


def _walk(root: Path, folder: Path, label: str, seen: set[str], files: list[ImageFile],
          skipped: list[Skipped], extra: dict[str, Any] | None = None) -> None:
    try:
        children = sorted(folder.iterdir())
    except OSError as exc:
        skipped.append(Skipped(folder.relative_to(root).as_posix(), f"cannot read folder ({exc.strerror or exc})"))
        return
    for path in children:
        if path.name.startswith(".") or (path.name in METADATA_FILES and folder.parent == root):
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() and _inside(root, path):
            skipped.append(_link_inside(root, path))
        elif path.is_dir():
            real = os.path.realpath(path)
            if real in seen:
                skipped.append(Skipped(rel, "folder already scanned (a symbolic link loop)"))
                continue
            seen.add(real)
            _walk(root, path, label, seen, files, skipped, extra)
        elif not path.is_file():
            skipped.append(Skipped(rel, "broken symbolic link or not a regular file"))
        elif path.suffix.lower() not in images.IMAGE_SUFFIXES:
            skipped.append(Skipped(rel, f"not an image file (suffix '{path.suffix}')"))
        else:
            files.append(ImageFile(rel, label, extra=dict(extra or {})))


@dataclass
class _Prepared:
    file: ImageFile
    sha1: str = ""
    tensor: torch.Tensor | None = None
    pixels: np.ndarray | None = None  # core.pixels: the audit's model-free view of the image
    width: int = 0
    height: int = 0
    error: str | None = None


def _prepare(root: Path, f: ImageFile, known_sha1: str | None, moved_sha1s: set[str] | frozenset[str],
             model: Embedder, max_pixels: int) -> _Prepared:
    """Worker-thread step: read, hash, and (when the content is new, and not a moved file's) decode and
    preprocess."""
    try:
        data = _read(root, f)
        sha1 = hashlib.sha1(data).hexdigest()
        if known_sha1 == sha1 or (known_sha1 is None and sha1 in moved_sha1s):
            return _Prepared(f, sha1)
        img = images.decode(data, max_pixels, sha1)
        return _Prepared(f, sha1, model.preprocess(img.image), pixel_vector(img.image), img.width, img.height)
    except images.BadImage as exc:
        return _Prepared(f, error=str(exc))
    except Exception as exc:  # a preprocessing failure on one odd image must not end the run
        return _Prepared(f, error=f"cannot preprocess image ({type(exc).__name__}: {exc})")


def _read(root: Path, f: ImageFile) -> bytes:
    """The image's bytes: from the folder, or over HTTP(S) for a manifest's URL (through core.netguard: public
    addresses only, unless an operator allowed the host or private addresses; one deadline; a size cap)."""
    if f.url is None:
        return images.read_file(root / f.rel_path)
    from . import netguard

    try:
        return netguard.fetch(f.url, base_urls=[f.url], max_bytes=URL_MAX_BYTES)
    except netguard.NotAllowed as exc:
        raise images.BadImage(f"not fetched: {exc}") from None
    except OSError as exc:
        raise images.BadImage(f"cannot download ({exc})") from None


URL_MAX_BYTES = 50_000_000


def _ordered_prefetch(pool: ThreadPoolExecutor, items: list, fn: Callable[[Any], _Prepared],
                      window: int) -> Iterator[_Prepared]:
    """Results in input order, keeping at most `window` tasks in flight so memory stays bounded."""
    pending: deque[Future] = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            break
    while pending:
        yield pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One batch from preprocessed images, copied by numpy on this thread. torch.stack spreads the copy over torch's
    intra-op threads, which then wait for cores the decode threads and the model's runtime hold: on 2 cores it took
    4-12 ms per batch of 32 in the pipeline (under 2 ms alone), 5-10% of an OpenVINO ingest; numpy takes 2 ms."""
    return torch.from_numpy(np.stack([t.numpy() for t in tensors]))


def check_collection(store: Store, collection: str, model_name: str, dim: int | None = None) -> bool:
    """True when the collection exists and takes this model's vectors, False when it does not exist yet;
    raises IngestError when ingesting this model into it would mix embedding spaces or erase vectors."""
    if not store.collection_exists(collection):
        return False
    info = store.collection_info(collection)
    names = [v.name for v in info.vectors]
    if model_name not in names:
        held = ", ".join(repr(n) for n in names) or "no vectors"
        raise IngestError(f"Collection '{collection}' holds vectors of {held}, not of model '{model_name}'. "
                          f"Ingest with that model (--model {names[0] if names else '...'}) or into a new "
                          "collection name, so that one collection never mixes embedding spaces.")
    if set(names) - {model_name, PIXELS}:
        raise IngestError(f"Collection '{collection}' has several vectors ({', '.join(names)}); writing only "
                          f"'{model_name}' would erase the others. Ingest into a new collection instead.")
    spec = info.vector(model_name)
    if dim is not None and spec.size != dim:
        raise IngestError(f"Collection '{collection}' stores {spec.size}-d vectors named '{model_name}', but the "
                          f"model gives {dim}-d. Use a new collection name.")
    return True


def ingest(store: Store, folder: Path | str, collection: str, model: Embedder, *, base_url: str = "",
           batch_size: int = 32, workers: int = 2, max_pixels: int = 50_000_000, prune: bool = False,
           report_dir: Path | str | None = None, model_reason: str = "", cache_dir: Path | str | None = None,
           progress: Callable[[Progress], None] | None = None, options: Any = None,
           scan: Scan | None = None) -> IngestReport:
    """Embed every new or changed image and write it in batches, keeping every label edit (see the module
    docstring). Safe to re-run: unchanged files are skipped, and a run that was interrupted (even killed)
    continues where it stopped. With `cache_dir`, the folder is remembered as the collection's image root, so
    that the app can show its images.

    `folder` is any source core.formats.scan_source reads: a folder (label subfolders, split folders or flat), a
    manifest (.csv, .tsv, .parquet) or a Hugging Face dataset folder (save_to_disk); `options` is a
    core.formats.SourceOptions (manifest column names, where a dataset's images are extracted). A scan made
    beforehand (to check the source before a model loads) can be passed as `scan`. Once a point exists, its label
    belongs to the audit: a source that changes an existing image's label does not overwrite it (other columns
    are updated)."""
    if scan is None:
        from .formats import scan_source

        scan = scan_source(folder, options, cache_dir=cache_dir)
    root, files, skipped = scan.root, scan.files, list(scan.skipped)
    source = Path(folder).expanduser().resolve() if scan.kind in ("manifest", "hf-dataset") else root
    report = IngestReport(collection, str(source), model.name,
                          model_reason, skipped=skipped, kind=scan.kind, notes=list(scan.notes))
    started = time.perf_counter()

    if not check_collection(store, collection, model.name, model.dim):
        store.create_collection(collection, {model.name: model.dim, PIXELS: PIXEL_DIM})
    # Collections made before the pixel view existed keep their one vector (Qdrant Edge cannot add one).
    with_pixels = PIXELS in [v.name for v in store.collection_info(collection).vectors]
    if cache_dir is not None:
        thumbnails.remember_root(cache_dir, store.location, collection, root, base_url=base_url)
    extra_keys = sorted({k for f in files for k in f.extra})
    existing = store.scroll(collection, with_vectors=False,
                            payload_keys=["sha1", "path", "label_history", "label", *extra_keys])
    known = {pid: p.get("sha1") for pid, p in zip(existing.ids, existing.payloads)}
    existing_payload = dict(zip(existing.ids, existing.payloads))
    if scan.kind in ("manifest", "hf-dataset"):  # a table's label for an image already in the collection is not applied
        differ = [(f, existing_payload[f.pid].get("label")) for f in files if f.pid in existing_payload
                  and existing_payload[f.pid].get("label") is not None
                  and str(existing_payload[f.pid].get("label")) != str(f.label)]
        if differ:
            shown = ", ".join(f"{f.rel_path} '{old}' (source says '{f.label}')" for f, old in differ[:3])
            one = len(differ) == 1
            report.notes.append(f"{len(differ):,} {'image' if one else 'images'} already in '{collection}' "
                                f"{'keeps its' if one else 'keep their'} current label, which differs from the "
                                f"source's: {shown}{', ...' if len(differ) > 3 else ''}. Labels "
                                "of existing points change through relabels (Audit page, `relabel`, "
                                "`import-labelstudio`), or ingest into a new collection.")
    seen = {f.pid for f in files}
    # Points whose file is gone: a new path with the same content is the same file, moved.
    gone = {pid: p for pid, p in zip(existing.ids, existing.payloads) if pid not in seen and p.get("sha1")}
    _finish_moves(store, collection, gone, existing, seen, report)
    movable: dict[str, list[PointId]] = {}
    for pid, p in sorted(gone.items(), key=lambda kv: str(kv[1].get("path"))):
        movable.setdefault(p["sha1"], []).append(pid)

    base = base_url.rstrip("/")
    batch: list[tuple[_Prepared, bool]] = []  # (file, is_new)
    moves: list[tuple[ImageFile, PointId]] = []  # (new file, old point)
    done = 0

    def flush() -> None:
        if not batch:
            return
        ids = [item.file.pid for item, _ in batch]
        vectors = model.embed_batch(stack([item.tensor for item, _ in batch]))
        if not np.isfinite(vectors).all():
            raise RuntimeError("The model produced non-finite vectors; nothing from this batch was written.")
        # Read the points being updated right before writing, so that an edit made during the run is kept.
        current = dict(zip(*_payloads(store, collection, [pid for pid, (_, new) in zip(ids, batch) if not new])))
        payloads = []
        for pid, (item, _) in zip(ids, batch):
            fields = _image_fields(item.file, item.sha1, item.width, item.height, model.name, base)
            old = current.get(pid)
            payloads.append({**old, **fields} if old is not None and "label" in old
                            else {"label": item.file.label, **(old or {}), **fields})
        written = {model.name: vectors}
        if with_pixels:
            written[PIXELS] = np.stack([item.pixels for item, _ in batch])
        store.upsert(collection, ids, written, payloads)
        report.added += sum(new for _, new in batch)
        report.updated += sum(not new for _, new in batch)
        batch.clear()

    def flush_moves() -> None:
        if moves:
            for item in _move(store, collection, model, moves, base, report, scan.label_of_path):
                batch.append((item, True))  # its old point vanished meanwhile: embed it as a new file
            moves.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="atlas-decode") as pool:
        moved_sha1s = frozenset(movable)
        prepare = lambda f: _prepare(root, f, known.get(f.pid), moved_sha1s, model, max_pixels)  # noqa: E731
        for item in _ordered_prefetch(pool, files, prepare, window=max(4, batch_size * 3)):
            done += 1
            pid = item.file.pid
            if item.error is not None:
                report.skipped.append(Skipped(item.file.rel_path, item.error))
            elif item.tensor is None and pid in known:
                old = existing_payload.get(pid) if extra_keys else None
                if old is not None and any(old.get(k) != v for k, v in item.file.extra.items()):
                    store.set_payload(collection, [pid], item.file.extra)  # the source's other columns changed
                    report.fields_updated += 1
                report.unchanged += 1
            elif item.tensor is None and movable.get(item.sha1):
                moves.append((item.file, movable[item.sha1].pop(0)))
            else:
                if item.tensor is None:  # same content as a moved file, but each old point moves only once
                    item = _prepare(root, item.file, None, frozenset(), model, max_pixels)
                if item.error is not None:
                    report.skipped.append(Skipped(item.file.rel_path, item.error))
                else:
                    batch.append((item, pid not in known))
            if len(moves) >= batch_size:
                flush_moves()
            if len(batch) >= batch_size:
                flush()
            if progress is not None and (done % 8 == 0 or done == len(files)):
                progress(Progress(done, len(files), time.perf_counter() - started))
        flush_moves()
        flush()

    if prune:
        left = [pid for pid in store.retrieve(collection, list(gone)).ids]  # moved points are gone already
        if left:
            store.delete(collection, left)
        report.removed = len(left)
    if report.embedded or report.moved:
        store.optimize(collection)
    report.seconds = time.perf_counter() - started
    if report.skipped and report_dir is not None:
        report.report_csv = str(write_skipped_csv(report, Path(report_dir)))
    return report


def _payloads(store: Store, collection: str, ids: list[PointId]) -> tuple[list[PointId], list[dict[str, Any]]]:
    if not ids:
        return [], []
    pts = store.retrieve(collection, ids)
    return pts.ids, pts.payloads


def _image_fields(f: ImageFile, sha1: str, width: int, height: int, model_name: str, base: str) -> dict[str, Any]:
    """The payload fields that ingest owns: everything it learns from the file, and the source's other columns."""
    name = f.rel_path.rstrip("/").rsplit("/", 1)[-1] if f.url else Path(f.rel_path).name
    fields: dict[str, Any] = {**f.extra, "file_name": name, "width": width, "height": height, "sha1": sha1,
                              "model": model_name,
                              "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if f.url:
        fields["image_url"] = f.url
    else:
        fields["path"] = f.rel_path
        if base:
            fields["image_url"] = f"{base}/{quote(f.rel_path)}"
    return fields


def _move(store: Store, collection: str, model: Embedder, moves: list[tuple[ImageFile, PointId]], base: str,
          report: IngestReport, label_of_path: Callable[[str], Any] | None = folder_label) -> list[_Prepared]:
    """Copy each old point (vector, payload, history) to its file's new path, then delete the old point.
    Returns the files whose old point no longer exists (to be embedded as new files)."""
    old = store.retrieve(collection, [pid for _, pid in moves], vector=model.name, with_vectors=True)
    with_pixels = PIXELS in [v.name for v in store.collection_info(collection).vectors]
    old_pixels = store.retrieve(collection, old.ids, vector=PIXELS, with_vectors=True) if with_pixels else None
    by_id = {pid: i for i, pid in enumerate(old.ids)}
    new_ids, rows, payloads, moved_from = [], [], [], []
    orphans = []
    for f, old_id in moves:
        if old_id not in by_id:
            orphans.append(f)
            continue
        i = by_id[old_id]
        payload = old.payloads[i]
        old_path = str(payload.get("path", ""))
        label = payload.get("label")
        # the user relabelled the point: its label differs from what the source gave it (the folder, for folders)
        given = label_of_path(old_path) if label_of_path is not None else payload.get("label_original", label)
        edited = label is not None and label != given
        new_label = label if edited else f.label
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entry = {"old": label, "new": new_label, "at": at, "by": INGEST_USER, "action": "move",
                 "from": old_path, "to": f.rel_path}
        moved = {**payload, **_image_fields(f, payload["sha1"], payload.get("width", 0), payload.get("height", 0),
                                            model.name, base),
                 "label": new_label, "label_history": [*(payload.get("label_history") or []), entry]}
        moved.setdefault("label_original", label)
        if edited and new_label != f.label:
            report.kept_labels.append(KeptLabel(f.rel_path, old_path, str(new_label), f.label))
        new_ids.append(f.pid), rows.append(i), payloads.append(moved), moved_from.append(old_id)
    if new_ids:
        # Write the new point before deleting the old one: a crash in between leaves both, and the next run
        # deletes the old one (_finish_moves); the other order could lose the point.
        written = {model.name: old.vectors[rows]}
        if old_pixels is not None:
            pixel_row = {pid: i for i, pid in enumerate(old_pixels.ids)}
            written[PIXELS] = old_pixels.vectors[[pixel_row[old.ids[i]] for i in rows]]
        store.upsert(collection, new_ids, written, payloads)
        store.delete(collection, moved_from)
        report.moved += len(new_ids)
    return [_Prepared(f) for f in orphans]


def _finish_moves(store: Store, collection: str, gone: dict[PointId, dict[str, Any]], existing: Any,
                  seen: set[PointId], report: IngestReport) -> None:
    """Delete the old points of moves that a killed run copied but did not delete: the new point holds their
    whole history plus the move. An old point edited since then is left alone (nothing is lost)."""
    if not gone:
        return
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for pid, p in zip(existing.ids, existing.payloads):
        if pid not in seen:
            continue
        history = p.get("label_history") or []
        for k, e in enumerate(history):
            if e.get("action") == "move" and e.get("from"):
                by_origin.setdefault(e["from"], []).append({"sha1": p.get("sha1"), "before": history[:k]})
    done = [pid for pid, p in gone.items()
            if any(c["sha1"] == p["sha1"] and c["before"] == (p.get("label_history") or [])
                   for c in by_origin.get(str(p.get("path")), []))]
    if done:
        store.delete(collection, done)
        for pid in done:
            del gone[pid]
        report.moved += len(done)


def write_skipped_csv(report: IngestReport, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = report_dir / f"ingest-{report.collection}-{stamp}-skipped.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        # file names are user data: a name like "=cmd|..." must not run as a formula in a spreadsheet
        writer.writerows([csv_safe_cell(s.path), csv_safe_cell(s.reason)] for s in report.skipped)
    return out
