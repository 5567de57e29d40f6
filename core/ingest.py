"""Ingest a folder of labeled images (one subfolder per label) into a Qdrant collection."""
from __future__ import annotations

import csv
import hashlib
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
from .models import Embedder
from .store import Store

# uuid5 namespace for point ids: the same relative path always gives the same id, on every machine.
ID_NAMESPACE = uuid.UUID("6f1c9a52-8a5e-4d4b-9a53-5d0c2f0e7a11")


class IngestError(Exception):
    """The ingest cannot start; nothing was written."""


@dataclass(frozen=True)
class ImageFile:
    rel_path: str  # posix, relative to the ingested folder; the label is its first part
    label: str


@dataclass
class Skipped:
    path: str
    reason: str


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
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    report_csv: str | None = None

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "folder": self.folder, "model": self.model,
                "model_reason": self.model_reason, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "removed": self.removed, "skipped": len(self.skipped),
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in self.skipped],
                "seconds": round(self.seconds, 2),
                "images_per_second": round(self.embedded / self.seconds, 2) if self.seconds else None,
                "report_csv": self.report_csv}


def point_id(rel_path: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, rel_path))


def scan_folder(folder: Path | str) -> tuple[list[ImageFile], list[Skipped]]:
    """Image files under one subfolder per label, and the files that cannot be ingested with the reason."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise IngestError(f"Folder {root} does not exist. Give the folder that holds one subfolder per label.")
    if not root.is_dir():
        raise IngestError(f"{root} is a file, not a folder. Give the folder that holds one subfolder per label.")
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise IngestError(f"Folder {root} is empty. Put images in one subfolder per label, "
                          f"e.g. {root}/apple/1.jpg.")
    label_dirs = sorted(p for p in entries if p.is_dir())
    if not label_dirs:
        raise IngestError(f"Folder {root} has no subfolders. Put images in one subfolder per label, "
                          f"e.g. {root}/apple/1.jpg, {root}/banana/2.jpg.")
    skipped = [Skipped(p.name, "not inside a label subfolder") for p in sorted(entries) if p.is_file()]
    files: list[ImageFile] = []
    for label_dir in label_dirs:
        for path in sorted(label_dir.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or path.is_dir():
                continue
            if path.suffix.lower() not in images.IMAGE_SUFFIXES:
                skipped.append(Skipped(rel.as_posix(), f"not an image file (suffix '{path.suffix}')"))
                continue
            files.append(ImageFile(rel.as_posix(), label_dir.name))
    if not files:
        raise IngestError(f"No image files found under {root} (looked for {', '.join(sorted(images.IMAGE_SUFFIXES))}).")
    return files, skipped


@dataclass
class _Prepared:
    file: ImageFile
    sha1: str = ""
    tensor: torch.Tensor | None = None
    width: int = 0
    height: int = 0
    error: str | None = None


def _prepare(root: Path, f: ImageFile, known_sha1: str | None, model: Embedder, max_pixels: int) -> _Prepared:
    """Worker-thread step: read, hash, and (when the content is new) decode and preprocess."""
    try:
        data = images.read_file(root / f.rel_path)
        sha1 = hashlib.sha1(data).hexdigest()
        if known_sha1 == sha1:
            return _Prepared(f, sha1)
        img = images.decode(data, max_pixels, sha1)
        return _Prepared(f, sha1, model.preprocess(img.image), img.width, img.height)
    except images.BadImage as exc:
        return _Prepared(f, error=str(exc))
    except Exception as exc:  # a preprocessing failure on one odd image must not end the run
        return _Prepared(f, error=f"cannot preprocess image ({type(exc).__name__}: {exc})")


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
    if len(names) > 1:
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
           progress: Callable[[Progress], None] | None = None) -> IngestReport:
    """Embed every new or changed image and upsert it in batches. Safe to re-run: unchanged files are skipped,
    and a run that was interrupted continues where it stopped. With `cache_dir`, the folder is remembered as the
    collection's image root, so that the app can show its images."""
    root = Path(folder).expanduser().resolve()
    files, skipped = scan_folder(root)
    report = IngestReport(collection, str(root), model.name, model_reason, skipped=skipped)
    started = time.perf_counter()

    if not check_collection(store, collection, model.name, model.dim):
        store.create_collection(collection, {model.name: model.dim})
    if cache_dir is not None:
        thumbnails.remember_root(cache_dir, store.location, collection, root)
    existing = store.scroll(collection, with_vectors=False, payload_keys=["sha1"])
    known = {pid: p.get("sha1") for pid, p in zip(existing.ids, existing.payloads)}

    ids: list[str] = []
    tensors: list[torch.Tensor] = []
    payloads: list[dict[str, Any]] = []
    is_new: list[bool] = []
    done = 0

    def flush() -> None:
        if not tensors:
            return
        vectors = model.embed_batch(torch.stack(tensors))
        if not np.isfinite(vectors).all():
            raise RuntimeError("The model produced non-finite vectors; nothing from this batch was written.")
        store.upsert(collection, ids, {model.name: vectors}, payloads)
        report.added += sum(is_new)
        report.updated += len(is_new) - sum(is_new)
        ids.clear(), tensors.clear(), payloads.clear(), is_new.clear()

    base = base_url.rstrip("/")
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="atlas-decode") as pool:
        prepare = lambda f: _prepare(root, f, known.get(point_id(f.rel_path)), model, max_pixels)  # noqa: E731
        for item in _ordered_prefetch(pool, files, prepare, window=max(4, batch_size * 3)):
            done += 1
            if item.error is not None:
                report.skipped.append(Skipped(item.file.rel_path, item.error))
            elif item.tensor is None:
                report.unchanged += 1
            else:
                pid = point_id(item.file.rel_path)
                payload: dict[str, Any] = {
                    "label": item.file.label, "file_name": Path(item.file.rel_path).name,
                    "path": item.file.rel_path, "width": item.width, "height": item.height, "sha1": item.sha1,
                    "model": model.name, "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                if base:
                    payload["image_url"] = f"{base}/{quote(item.file.rel_path)}"
                ids.append(pid), tensors.append(item.tensor), payloads.append(payload), is_new.append(pid not in known)
                if len(tensors) >= batch_size:
                    flush()
            if progress is not None and (done % 8 == 0 or done == len(files)):
                progress(Progress(done, len(files), time.perf_counter() - started))
        flush()

    if prune:
        seen = {point_id(f.rel_path) for f in files}
        gone = [pid for pid, p in zip(existing.ids, existing.payloads) if pid not in seen and "sha1" in p]
        if gone:
            store.delete(collection, gone)
        report.removed = len(gone)
    if report.embedded:
        store.optimize(collection)
    report.seconds = time.perf_counter() - started
    if report.skipped and report_dir is not None:
        report.report_csv = str(write_skipped_csv(report, Path(report_dir)))
    return report


def write_skipped_csv(report: IngestReport, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = report_dir / f"ingest-{report.collection}-{stamp}-skipped.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows([s.path, s.reason] for s in report.skipped)
    return out
