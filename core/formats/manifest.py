"""Manifests: a table (CSV, TSV or Parquet) with one row per image: its path (relative to the manifest's folder, or
absolute) or URL, its label, and any other columns, which are kept in the point's payload.

Rows that cannot be ingested (no path, a missing file, a second row for the same image or id) are skipped with the
reason and their row number; problems with the whole table (a missing column, labels that mix numbers and names) are
refused before anything is written, with what to do.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .. import paths
from ..ingest import ImageFile, IngestError, Scan, Skipped, point_id, unlabeled_label
from ..store import InvalidPointId, PointId, parse_point_id

MANIFEST_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl"}
PATH_COLUMNS = ("path", "image_path", "filepath", "file_path", "file_name", "filename", "file", "image", "img",
                "image_file", "image_url", "url", "uri", "location")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target", "tag", "annotation")
# Payload fields Image Atlas owns (ingest: the file; the audit: the label and its history). A manifest column with one
# of these names is kept as `source_<name>` so that it cannot overwrite them.
RESERVED = {"label", "label_original", "label_history", "label_confirmed", "reviewed", "file_name", "path", "width",
            "height", "sha1", "model", "ingested_at"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what core.exporting.csv_safe_cell prefixes with an apostrophe
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_table(path: Path) -> pd.DataFrame:
    """The manifest as a table of objects: CSV/TSV cells as text (nothing guessed), Parquet values as stored."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq", ".jsonl"):
            table = pd.read_parquet(path) if suffix != ".jsonl" else pd.read_json(path, lines=True, dtype=False)
            table = table.astype(object)
            return table.where(pd.notna(table), None)
        sep = "\t" if suffix == ".tsv" else _separator(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, encoding="utf-8-sig")
    except (OSError, ValueError, ImportError) as exc:  # pandas' parser errors are ValueErrors
        raise IngestError(f"Cannot read the manifest {path}: {exc}. Give a CSV (comma-, semicolon- or tab-separated, "
                          "UTF-8, a header row), a Parquet file or JSON lines (one object per line).") from None


def _separator(path: Path) -> str:
    """The header line's most frequent of , ; tab | (a comma when it has none: a one-column file)."""
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _pick(columns: Sequence[str], wanted: str | None, guesses: Sequence[str], what: str, option: str,
          path: Path) -> str | None:
    listed = ", ".join(repr(c) for c in columns) or "none"
    if wanted:
        if wanted in columns:
            return wanted
        folded = {c.lower(): c for c in columns}
        if wanted.lower() in folded:
            return folded[wanted.lower()]
        raise IngestError(f"The manifest {path.name} has no column '{wanted}' ({what}); its columns are {listed}. "
                          f"Name one of them with {option}.")
    folded = {c.strip().lower(): c for c in columns}
    for guess in guesses:
        if guess in folded:
            return folded[guess]
    return None


def _cell(value: Any) -> Any:
    """A cell as a payload value: None for empty, text stripped, numpy scalars as Python ones."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, str):
        value = value.strip()
        if value[:1] == "'" and value[1:2] in _FORMULA_START:  # as core.exporting.to_csv wrote it: "'=x" was "=x"
            value = value[1:]
        return value or None
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)


def _resolve(text: str, base: Path) -> Path:
    """A manifest path as an absolute, normalised path (relative ones under `base`); a Windows path written with
    backslashes (apple\\1.jpg) is read with slashes when only that form exists."""
    def absolute(t: str) -> Path:
        file = Path(t).expanduser()
        return Path(os.path.normpath(file if file.is_absolute() else base / file))

    file = absolute(text)
    if "\\" in text and not file.exists() and absolute(text.replace("\\", "/")).exists():
        return absolute(text.replace("\\", "/"))
    return file


def _label_text(label: Any) -> str:
    """A label from a typed column (Parquet) as text, the way folder labels are: 3.0 -> "3"."""
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def scan_manifest(manifest: str | Path, path_column: str | None = None, label_column: str | None = None,
                  id_column: str | None = "auto") -> Scan:
    """The images a manifest lists. Paths are relative to the manifest's folder (absolute ones work too); the
    collection's image folder is the manifest's folder, or the folder that holds it and every image. Ids come
    from the `id` column when every value is a point id (an exported manifest), else from each image's path."""
    path = Path(manifest).expanduser().resolve()
    if not path.is_file():
        raise IngestError(f"Manifest {path} does not exist.")
    table = read_table(path)
    columns = [str(c) for c in table.columns]
    table.columns = columns
    if table.empty:
        raise IngestError(f"The manifest {path.name} has no rows (columns: {', '.join(columns) or 'none'}). "
                          "Give one row per image, with its path or URL and its label.")
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise IngestError(f"The manifest {path.name} has the column {', '.join(map(repr, dupes))} more than once; "
                          "rename one of them.")
    path_col = _pick(columns, path_column, PATH_COLUMNS, "the image path or URL", "--path-column", path)
    if path_col is None:
        raise IngestError(f"The manifest {path.name} has no column of image paths or URLs that Image Atlas "
                          f"recognises (looked for {', '.join(PATH_COLUMNS[:8])}, ...); its columns are "
                          f"{', '.join(map(repr, columns))}. Name it with --path-column (path_column=...).")
    if label_column == "":
        label_col = None
    else:
        label_col = _pick(columns, label_column, LABEL_COLUMNS, "the label", "--label-column", path)
        if label_col is None:
            raise IngestError(f"The manifest {path.name} has no label column that Image Atlas recognises (looked "
                              f"for {', '.join(LABEL_COLUMNS)}); its columns are {', '.join(map(repr, columns))}. "
                              "Name it with --label-column, or pass --label-column '' to ingest the images as "
                              "unlabeled.")
    notes = [f"Manifest {path.name}: images from column '{path_col}'"
             + (f", labels from column '{label_col}'" if label_col else ", no label column (all unlabeled)")]
    ids, id_col, id_note = _ids(table, id_column, path)
    if id_note:
        notes.append(id_note)
    other = [c for c in columns if c not in (path_col, label_col, id_col)]
    renamed = [c for c in other if c in RESERVED]
    if renamed:
        notes.append("Columns kept under another name (Image Atlas owns the original): "
                     + ", ".join(f"'{c}' as 'source_{c}'" for c in renamed))
    labels = [_cell(v) for v in table[label_col]] if label_col else [None] * len(table)
    _check_label_kinds(labels, label_col, path.name)
    unlabeled = unlabeled_label()
    base = path.parent
    allowed = paths.allowed_roots()
    skipped: list[Skipped] = []
    rows: list[tuple[int, str | None, Path | None, Any, PointId | None, dict[str, Any]]] = []
    first_row: dict[str, int] = {}
    first_label: dict[str, Any] = {}
    id_row: dict[PointId, int] = {}
    for i, (raw_path, label) in enumerate(zip(table[path_col], labels)):
        n = i + 2  # as a spreadsheet numbers it: the header is row 1
        where = f"row {n}"
        text = _cell(raw_path)
        if text is None:
            skipped.append(Skipped(where, f"{where}: no image path in column '{path_col}'"))
            continue
        text = str(text)
        url, file = None, None
        if _is_url(text):
            url, key = text, text
        else:
            file = _resolve(text, base)
            key = str(file)
            if allowed and not any(file.is_relative_to(r) for r in allowed):
                skipped.append(Skipped(text, f"{where}: outside the allowed folders (ATLAS_ALLOWED_ROOTS)"))
                continue
            if not file.is_file():
                skipped.append(Skipped(text, f"{where}: file not found ({file})" if not file.exists() else
                                       f"{where}: not a file ({file})"))
                continue
        if key in first_row:
            other_label = first_label[key]
            skipped.append(Skipped(text, f"{where}: the same image as row {first_row[key]}"
                                   + (f", with another label ('{label}' there '{other_label}'); fix one of the rows"
                                      if str(label) != str(other_label) else " (a duplicate row)")))
            continue
        pid = ids[i] if ids is not None else None
        if pid is not None and pid in id_row:
            skipped.append(Skipped(text, f"{where}: id {pid} is already used by row {id_row[pid]}"))
            continue
        first_row[key], first_label[key] = n, label
        if pid is not None:
            id_row[pid] = n
        extra = {}
        for c in other:
            value = _cell(table.at[i, c])
            if value is not None:
                extra[f"source_{c}" if c in RESERVED else c] = value
        rows.append((n, url, file, label, pid, extra))
    if not rows:
        first = f" The first problem: {skipped[0].reason}." if skipped else ""
        raise IngestError(f"No image in the manifest {path.name} can be ingested ({len(skipped):,} "
                          f"{'row' if len(skipped) == 1 else 'rows'} skipped).{first} Paths are read relative to "
                          f"the manifest's folder ({base}).")
    local = [f for _, _, f, *_ in rows if f is not None]
    root = Path(os.path.commonpath([str(base), *(str(f.parent) for f in local)])) if local else base
    files = []
    for n, url, file, label, pid, extra in rows:
        rel = url if url is not None else file.relative_to(root).as_posix()
        value = unlabeled if label is None else label if isinstance(label, str) else _label_text(label)
        files.append(ImageFile(rel, value, pid if pid is not None else point_id(rel), extra, url))
    missing_labels = sum(label is None for *_, label, _pid, _extra in rows)
    if label_col and missing_labels:
        notes.append(f"{missing_labels:,} rows without a label are ingested as unlabeled ('{unlabeled}').")
    if root != base:
        notes.append(f"Some images lie outside the manifest's folder: paths are stored relative to {root}.")
    return Scan(root, files, skipped, "manifest", notes, None)


def _ids(table: pd.DataFrame, id_column: str | None, path: Path) -> tuple[list[PointId | None] | None, str | None,
                                                                              str | None]:
    """(point id per row or None, the id column used, a note). "auto": the `id` column when every filled value
    is a point id; an explicitly named column must hold point ids."""
    if not id_column:
        return None, None, None
    explicit = id_column != "auto"
    columns = list(table.columns)
    col = _pick(columns, id_column if explicit else None, ("id", "point_id", "atlas_id"), "point ids",
                "--id-column", path)
    if col is None:
        return None, None, None
    ids: list[PointId | None] = []
    for i, value in enumerate(table[col]):
        value = _cell(value)
        if value is None:
            ids.append(None)
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            ids.append(parse_point_id(value))
        except InvalidPointId as exc:
            if explicit:
                raise IngestError(f"Column '{col}' of {path.name}, row {i + 2}: {exc}") from None
            return None, None, (f"Column '{col}' holds values that are not point ids (e.g. {value!r}): it is kept in "
                                "the payload, and ids come from the image paths.")
    return ids, col, f"Point ids from column '{col}'."


def _check_label_kinds(labels: list[Any], column: str | None, name: str) -> None:
    """Refuse labels that mix numbers and names ('3' and 'cat'): usually class numbers and class names from two
    sources, which would become separate classes. Values that mean "no label" do not count."""
    if column is None:
        return
    from ..catalog import is_unknown, unknown_labels

    unknown = unknown_labels()
    numbers, names = [], []
    for i, label in enumerate(labels):
        if label is None or is_unknown(label, unknown):
            continue
        is_number = isinstance(label, (int, float)) and not isinstance(label, bool) or (
            isinstance(label, str) and _NUMBER.fullmatch(label) is not None)
        (numbers if is_number else names).append((i + 2, label))
    if numbers and names:
        raise IngestError(
            f"Column '{column}' of {name} mixes numbers ({len(numbers):,} rows, e.g. {numbers[0][1]!r} on row "
            f"{numbers[0][0]}) and names ({len(names):,} rows, e.g. {names[0][1]!r} on row {names[0][0]}): they "
            "would become separate classes. Use one kind for every row (e.g. replace class numbers by their names), "
            "or leave the cell empty for an unlabeled image. Nothing was written.")


def read_metadata(table_path: Path, root: Path) -> tuple[dict[str, dict[str, Any]], dict[str, PointId], list[str]]:
    """A Hugging Face imagefolder metadata file (metadata.csv or metadata.jsonl, a `file_name` column relative to its
    folder): ({path relative to root: other columns}, {path: point id} from an `id` column, notes)."""
    try:
        if table_path.suffix == ".jsonl":
            table = pd.read_json(table_path, lines=True, dtype=False).astype(object)
            table = table.where(pd.notna(table), None)
        else:
            table = pd.read_csv(table_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        return {}, {}, [f"{table_path.relative_to(root).as_posix()} was not used: it cannot be read ({exc})."]
    table.columns = [str(c) for c in table.columns]
    where = table_path.relative_to(root).as_posix()
    if "file_name" not in table.columns:
        return {}, {}, [f"{where} was not used: it has no 'file_name' column (its columns: "
                        f"{', '.join(table.columns)}). A Hugging Face metadata file names each image in 'file_name', "
                        "relative to its folder."]
    folder = table_path.parent.relative_to(root).as_posix()
    prefix = "" if folder == "." else folder + "/"
    ids, id_col, note = _ids(table, "auto", table_path)
    other = [c for c in table.columns if c not in ("file_name", id_col)]
    rows: dict[str, dict[str, Any]] = {}
    by_path: dict[str, PointId] = {}
    for i, name in enumerate(table["file_name"]):
        rel = prefix + str(_cell(name) or "").removeprefix("./")
        fields = {}
        for c in other:
            value = _cell(table.at[i, c])
            if value is not None:
                fields[f"source_{c}" if c in RESERVED else c] = value
        rows[rel] = fields
        if ids is not None and ids[i] is not None:
            by_path[rel] = ids[i]
    notes = [f"Metadata from {where} ({len(rows):,} rows)" + (f"; {note[0].lower()}{note[1:]}" if note else ".")]
    return rows, by_path, notes
