"""Hugging Face `datasets`: an image-classification dataset saved with `save_to_disk` in, and out.

In: the images are extracted once to files (under the cache, or a folder you choose), so that ingest reads them like
any folder (same ids on every run, resume, skip reports) and the app can show them; the ClassLabel names become the
labels, the split and the other columns go into the payload. Out: core.formats.export.export_hf_dataset.
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

from .. import settings
from ..ingest import ImageFile, IngestError, Scan, Skipped, point_id, unlabeled_label
from ..store import InvalidPointId, PointId, parse_point_id
from .manifest import LABEL_COLUMNS, RESERVED, _cell, _check_label_kinds, _label_text

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def load(source: str | Path):
    """(datasets module, {split or None: Dataset}) of a dataset folder saved with save_to_disk."""
    try:
        import datasets
    except ImportError:
        raise IngestError("Reading a Hugging Face dataset needs the `datasets` package: pip install "
                          "datasets.") from None
    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_from_disk(str(source))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise IngestError(f"Cannot read the Hugging Face dataset in {source}: {exc}. Give a folder written by "
                          "Dataset.save_to_disk or DatasetDict.save_to_disk.") from None
    if isinstance(loaded, datasets.DatasetDict):
        return datasets, dict(loaded.items())
    return datasets, {loaded.split and str(loaded.split) or None: loaded}


def _suffix(data: bytes, name: str | None) -> str:
    if name and Path(name).suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}:
        return Path(name).suffix.lower()
    try:
        from PIL import Image

        fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
    except Exception:  # not an image: ingest skips it with the reason
        fmt = "bin"
    return "." + {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)


def default_images_dir(source: Path, cache_dir: str | Path | None) -> Path:
    cache = Path(cache_dir if cache_dir is not None else settings.get("ATLAS_CACHE_DIR"))
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    return (cache / "datasets" / f"{_SAFE.sub('_', source.name)[:40]}-{digest}").resolve()


def scan_hf_dataset(source: str | Path, images_dir: str | Path | None = None, label_column: str | None = None,
                    cache_dir: str | Path | None = None, id_column: str | None = "auto") -> Scan:
    source = Path(source).expanduser().resolve()
    datasets, splits = load(source)
    first = next(iter(splits.values()))
    features = first.features
    columns = list(features)
    image_col = next((c for c in columns if isinstance(features[c], datasets.Image)), None)
    if image_col is None:
        raise IngestError(f"The dataset in {source} has no Image column (columns: {', '.join(columns)}). Image Atlas "
                          "reads image-classification datasets: an Image feature and a label.")
    if label_column == "":
        label_col = None
    elif label_column:
        if label_column not in columns:
            raise IngestError(f"The dataset in {source} has no column '{label_column}'; its columns are "
                              f"{', '.join(columns)}. Name one with --label-column.")
        label_col = label_column
    else:
        label_col = next((c for c in columns if isinstance(features[c], datasets.ClassLabel)), None) or next(
            (c for c in columns if c.lower() in LABEL_COLUMNS), None)
        if label_col is None:
            raise IngestError(f"The dataset in {source} has no ClassLabel or label column (columns: "
                              f"{', '.join(columns)}). Name it with --label-column, or pass --label-column '' to "
                              "ingest the images as unlabeled.")
    names = features[label_col].names if label_col and isinstance(features[label_col], datasets.ClassLabel) else None
    id_col = None
    if id_column:
        wanted = id_column if id_column != "auto" else "id"
        if wanted in columns:
            id_col = wanted
        elif id_column != "auto":
            raise IngestError(f"The dataset in {source} has no column '{id_column}' (point ids).")
    other = [c for c in columns if c not in (image_col, label_col, id_col)
             and isinstance(features[c], (datasets.Value, datasets.ClassLabel))]
    class_names = {c: features[c].names for c in other if isinstance(features[c], datasets.ClassLabel)}
    out = Path(images_dir).expanduser().resolve() if images_dir else default_images_dir(source, cache_dir)
    if out == source or out.is_relative_to(source):
        raise IngestError(f"The images folder {out} lies inside the dataset folder {source}: choose another one.")
    out.mkdir(parents=True, exist_ok=True)
    unlabeled = unlabeled_label()
    rows: list[tuple[str, Any, Any, dict[str, Any]]] = []  # (rel, label, raw id, extra)
    skipped: list[Skipped] = []
    written = 0
    for split, ds in splits.items():
        if list(ds.features) != columns:
            raise IngestError(f"The splits of {source} have different columns; ingest them one at a time.")
        raw = ds.cast_column(image_col, datasets.Image(decode=False))
        folder = _SAFE.sub("_", split) if split else "data"
        i = 0
        for batch in raw.iter(batch_size=256):
            for k in range(len(batch[image_col])):
                image = batch[image_col][k] or {}
                where = f"{split or 'data'} row {i}"
                data, name = image.get("bytes"), image.get("path")
                if data is None and name:
                    try:
                        data = Path(name).read_bytes()
                    except OSError as exc:
                        skipped.append(Skipped(where, f"{where}: image file {name} cannot be read ({exc.strerror})"))
                        i += 1
                        continue
                if not data:
                    skipped.append(Skipped(where, f"{where}: no image"))
                    i += 1
                    continue
                stem = _SAFE.sub("_", Path(name).stem)[:60] if name else ""
                rel = f"{folder}/{i:06d}{'_' + stem if stem else ''}{_suffix(data, name)}"
                target = out / rel
                if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    written += 1
                value = batch[label_col][k] if label_col else None
                if names is not None:
                    label = names[value] if isinstance(value, int) and 0 <= value < len(names) else None
                else:
                    label = _cell(value)
                extra: dict[str, Any] = {"split": split} if split else {}
                for c in other:
                    v = batch[c][k]
                    v = class_names[c][v] if c in class_names and isinstance(v, int) and 0 <= v < len(
                        class_names[c]) else _cell(v)
                    if v is not None:
                        extra[f"source_{c}" if c in RESERVED else c] = v
                rows.append((rel, label, batch[id_col][k] if id_col else None, extra))
                i += 1
    if names is None and label_col:
        _check_label_kinds([label for _, label, _, _ in rows], label_col, source.name)
    ids = _dataset_ids([raw_id for _, _, raw_id, _ in rows], id_col, id_column)
    files = [ImageFile(rel, unlabeled if label is None else label if isinstance(label, str) else _label_text(label),
                       ids[n] if ids is not None else point_id(rel), extra)
             for n, (rel, label, _, extra) in enumerate(rows)]
    if not files:
        raise IngestError(f"The dataset in {source} has no images that can be read ({len(skipped):,} rows skipped).")
    notes = [f"Hugging Face dataset {source.name} ({', '.join(str(s) for s in splits if s) or 'one split'}): images "
             f"from '{image_col}', labels from '{label_col}'" + (" (ClassLabel names)" if names else "")
             + f"; images extracted to {out} ({written:,} written now) so that the app can show them."]
    if ids is not None:
        notes.append(f"Point ids from column '{id_col}'.")
    unlabeled_rows = sum(label is None for _, label, _, _ in rows)
    if label_col and unlabeled_rows:
        notes.append(f"{unlabeled_rows:,} images without a label are ingested as unlabeled ('{unlabeled}').")
    return Scan(out, _unique(files, skipped), skipped, "hf-dataset", notes, None)


def _dataset_ids(values: list[Any], id_col: str | None, id_column: str | None) -> list[PointId] | None:
    if id_col is None:
        return None
    ids = []
    for v in values:
        try:
            ids.append(parse_point_id(v))
        except InvalidPointId as exc:
            if id_column != "auto":
                raise IngestError(f"Column '{id_col}': {exc}") from None
            return None
    return ids


def _unique(files: list[ImageFile], skipped: list[Skipped]) -> list[ImageFile]:
    taken: dict[PointId, str] = {}
    out = []
    for f in files:
        if f.pid in taken:
            skipped.append(Skipped(f.rel_path, f"id {f.pid} is already used by {taken[f.pid]}"))
            continue
        taken[f.pid] = f.rel_path
        out.append(f)
    return out
