"""Embedded engine: Qdrant Edge (Qdrant's Rust engine in-process), one shard folder per collection."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import qdrant_edge as qe

from .base import (CollectionInfo, CollectionNotFound, Filter, Hit, PointId, Points, Store, StoreError,
                   StoreLocked, VectorSpec, filter_terms, parse_point_ids, payload_path)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CONFIG_FILE = "edge_config.json"
_LOCK_FILE = ".atlas.lock"


def _norm_id(pid: Any) -> PointId:  # the engine hands UUID ids back as uuid.UUID
    return str(pid) if isinstance(pid, uuid.UUID) else pid


def _edge_filter(filter: Filter | None, bool_ids: Callable[[str, list[bool]], set] | None = None
                 ) -> qe.Filter | None:
    """bool_ids(key, values): the ids whose payload `key` is one of the booleans. The engine's binding turns
    MatchValue(True) into the integer 1, which matches no stored `true`, so booleans are matched by id."""
    terms = filter_terms(filter)
    if not terms:
        return None
    must: list[Any] = []
    for key, (path, groups) in zip((filter or {}), terms):
        conds = []
        for kind, values in groups.items():
            if kind is bool:
                if bool_ids is None:
                    raise StoreError(f"Cannot filter field {key!r} on true/false here.")
                conds.append(qe.HasIdCondition(set(bool_ids(key, values))))
            elif len(values) == 1:  # MatchAny takes only texts or only integers
                conds += [qe.FieldCondition(key=path, match=qe.MatchValue(v)) for v in values]
            else:
                conds.append(qe.FieldCondition(key=path, match=qe.MatchAny(values)))
        if not conds:  # an empty list of values matches nothing
            conds.append(qe.FieldCondition(key=path, match=qe.MatchAny([])))
        must.append(conds[0] if len(conds) == 1 else qe.Filter(should=conds))
    return qe.Filter(must=must)


def _vector_of(raw: Any, name: str) -> list[float] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return raw.get(name)
    return raw


class _VectorColumn:
    """This process's copy of one vector column: id -> row, and the rows (appended pages kept apart until read,
    so that an ingest of many pages does not copy the whole matrix per page)."""

    def __init__(self, ids: Sequence[PointId], matrix: np.ndarray):
        self.row: dict[PointId, int] = dict(zip(ids, range(len(ids))))
        self.ids: list[PointId] = list(ids)
        self._pages = [matrix]

    def matrix(self) -> np.ndarray:
        if len(self._pages) > 1:
            self._pages = [np.concatenate(self._pages)]
        return self._pages[0]

    def upsert(self, ids: Sequence[PointId], matrix: np.ndarray) -> None:
        last = {pid: i for i, pid in enumerate(ids)}  # an id given twice: the last write wins, as in the engine
        old = [(self.row[pid], i) for pid, i in last.items() if pid in self.row]
        new = [(pid, i) for pid, i in last.items() if pid not in self.row]
        if old:
            # copy on write: a matrix handed out earlier (read-only) keeps what it showed
            replaced = self.matrix().copy()
            replaced[[r for r, _ in old]] = matrix[[i for _, i in old]]
            self._pages = [replaced]
        if new:
            for pid, _ in new:
                self.row[pid] = len(self.ids)
                self.ids.append(pid)
            self._pages.append(np.asarray(matrix[[i for _, i in new]], np.float32))

    def remove(self, ids: Sequence[PointId]) -> None:
        gone = {self.row[pid] for pid in ids if pid in self.row}
        if gone:
            keep = np.array([r not in gone for r in range(len(self.ids))], dtype=bool)
            kept = self.matrix()[keep]
            self.__init__([pid for pid, k in zip(self.ids, keep) if k], kept)


# Writes per (folder, collection) made in this process. The folder's lock makes this process its only writer, so a
# reader that saw the same generation (and count) knows nothing changed: the Explore page reuses a 1M-point read.
_generations: dict[tuple[str, str], int] = {}
_generations_lock = threading.Lock()


class EdgeStore(Store):
    engine = "embedded"

    def __init__(self, root: str | os.PathLike[str]):
        if not str(root).strip():
            # "" would resolve to the working directory and turn it into a store
            raise StoreError("No embedded Qdrant folder given. Type a folder (e.g. data/qdrant), or set "
                             "ATLAS_STORE_PATH.")
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_handle = open(self.root / _LOCK_FILE, "a+")
        except OSError as exc:
            raise StoreError(f"Cannot use the embedded Qdrant folder {self.root}: {exc.strerror or exc}. "
                             "Set ATLAS_STORE_PATH to a writable folder.") from None
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            raise StoreLocked(
                f"The embedded Qdrant folder {self.root} is in use by another process. Stop that process "
                "(another app or ingest), point ATLAS_STORE_PATH at another folder, or use a Qdrant server "
                "(set QDRANT_URL) so that several processes can share the data.") from None
        self._shards: dict[str, qe.EdgeShard] = {}
        self._vector_copies: dict[tuple[str, str], _VectorColumn] = {}
        self._unsaved: set[tuple[str, str]] = set()  # copies changed by writes, saved by optimize() and close()
        # Edge serializes writes itself, but opening shards and our read-modify-write steps must not interleave.
        self._lock = threading.RLock()

    # --- collections -------------------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise StoreError(f"Invalid collection name {name!r}: use letters, digits, '_', '-' or '.', "
                             "starting with a letter or digit.")
        return self.root / name

    def _shard(self, name: str) -> qe.EdgeShard:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                path = self._path(name)
                if not (path / _CONFIG_FILE).is_file():
                    raise CollectionNotFound(f"Collection '{name}' does not exist in {self.root}.")
                try:
                    shard = qe.EdgeShard.load(str(path))
                except Exception as exc:  # the engine raises a bare Exception
                    raise StoreError(f"Cannot open collection '{name}' in {path}: {exc}") from None
                self._shards[name] = shard
            return shard

    def collection_exists(self, name: str) -> bool:
        return (self._path(name) / _CONFIG_FILE).is_file()

    def _vectors(self, name: str) -> list[VectorSpec]:
        config = json.loads((self._path(name) / _CONFIG_FILE).read_text())
        vectors = config.get("vectors") or {}
        return [VectorSpec(vname, int(p["size"]), str(p.get("distance", "Cosine"))) for vname, p in vectors.items()]

    def collection_info(self, name: str) -> CollectionInfo:
        shard = self._shard(name)
        return CollectionInfo(name, shard.info().points_count, self._vectors(name))

    def list_collections(self) -> list[CollectionInfo]:
        names = sorted(p.name for p in self.root.iterdir() if (p / _CONFIG_FILE).is_file())
        return [self.collection_info(n) for n in names]

    def write_generation(self, name: str) -> int:
        """How many writes this process made to the collection (see _generations)."""
        with _generations_lock:
            return _generations.get((self.location, name), 0)

    def _wrote(self, name: str) -> None:
        with _generations_lock:
            key = (self.location, name)
            _generations[key] = _generations.get(key, 0) + 1

    def create_collection(self, name: str, vectors: Mapping[str, int]) -> None:
        self._wrote(name)
        path = self._path(name)
        with self._lock:
            if self.collection_exists(name):
                raise StoreError(f"Collection '{name}' already exists in {self.root}.")
            params = {vname: qe.EdgeVectorParams(size=int(size), distance=qe.Distance.Cosine)
                      for vname, size in vectors.items()}
            config = qe.EdgeConfig(vectors=params[""] if list(params) == [""] else params)
            shard = qe.EdgeShard.create(str(path), config)
            shard.update(qe.UpdateOperation.create_field_index("label", qe.PayloadSchemaType.Keyword))
            self._shards[name] = shard

    def delete_collection(self, name: str) -> None:
        self._wrote(name)
        with self._lock:
            self._vector_copies = {k: v for k, v in self._vector_copies.items() if k[0] != name}
            self._unsaved = {k for k in self._unsaved if k[0] != name}
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            path = self._path(name)
            if path.exists():
                shutil.rmtree(path)

    # --- points ------------------------------------------------------------------------------------------------
    def upsert(self, name: str, ids: Sequence[PointId], vectors: Mapping[str, np.ndarray],
               payloads: Sequence[dict[str, Any]]) -> None:
        ids = parse_point_ids(ids)
        self._wrote(name)
        shard = self._shard(name)
        empty_before = shard.info().points_count == 0
        columns = {vname: np.asarray(mat, dtype=np.float32).tolist() for vname, mat in vectors.items()}
        points = []
        for i, pid in enumerate(ids):
            if list(columns) == [""]:
                vec: Any = columns[""][i]
            else:
                vec = {vname: col[i] for vname, col in columns.items()}
            points.append(qe.Point(pid, vec, payloads[i]))
        with self._lock:
            try:
                shard.update(qe.UpdateOperation.upsert_points(points))
            except Exception as exc:
                self._drop_vector_copies(name)
                raise StoreError(f"Upsert into '{name}' failed: {exc}") from None
            self._write_through(name, ids, vectors, empty_before)

    def _filter(self, name: str, filter: Filter | None) -> qe.Filter | None:
        return _edge_filter(filter, lambda key, values: self._ids_with_bool(name, key, values))

    def _ids_with_bool(self, name: str, key: str, values: list[bool]) -> set:
        found = self._scroll_engine(name, None, None, [key], 5000, None)
        return {pid for pid, p in zip(found.ids, found.payloads) if isinstance(p.get(key), bool) and p[key] in values}

    def _using(self, name: str, vector: str | None) -> str:
        return CollectionInfo(name, 0, self._vectors(name)).vector(vector).name

    def scroll(self, name: str, vector: str | None = None, with_vectors: bool = True,
               filter: Filter | None = None, payload_keys: Sequence[str] | None = None,
               page_size: int = 5000, limit: int | None = None) -> Points:
        if not with_vectors:
            return self._scroll_engine(name, None, filter, payload_keys, page_size, limit)
        using = self._using(name, vector)
        if filter is None and limit is None and payload_keys is not None and not payload_keys:
            # vectors without payloads: the copy alone answers (it holds exactly the points with this vector)
            column = self._vectors_of_all(name, using)
            return Points(list(column.ids), _read_only(column.matrix()), [{} for _ in column.ids])
        points = self._scroll_engine(name, None, filter, payload_keys, page_size, limit)
        column = self._vectors_of_all(name, using)
        index, matrix = column.row, column.matrix()
        keep = [i for i, pid in enumerate(points.ids) if pid in index]  # points without this vector drop out
        rows = np.fromiter((index[points.ids[i]] for i in keep), dtype=np.int64, count=len(keep))
        return Points([points.ids[i] for i in keep], matrix[rows] if len(keep) else _empty(matrix),
                      [points.payloads[i] for i in keep])

    def _scroll_engine(self, name: str, using: str | None, filter: Filter | None,
                       payload_keys: Sequence[str] | None, page_size: int, limit: int | None) -> Points:
        shard = self._shard(name)
        with_payload: Any = [payload_path(k) for k in payload_keys] if payload_keys is not None else True
        ids: list[PointId] = []
        pages: list[np.ndarray] = []
        payloads: list[dict[str, Any]] = []
        offset = None
        flt = self._filter(name, filter)
        while True:
            want = page_size if limit is None else min(page_size, limit - len(ids))
            records, offset = shard.scroll(qe.ScrollRequest(
                offset=offset, limit=want, filter=flt, with_payload=with_payload,
                with_vector=[using] if using else (using is not None)))
            rows = []
            for rec in records:
                vec = _vector_of(rec.vector, using) if using is not None else None
                if using is not None and vec is None:
                    continue  # a point without this named vector has no place in this vector's space
                ids.append(_norm_id(rec.id))
                payloads.append(rec.payload or {})
                if using is not None:
                    rows.append(vec)
            if rows:
                pages.append(np.asarray(rows, dtype=np.float32))  # per page: peak memory stays small
            if offset is None or (limit is not None and len(ids) >= limit):
                break
        if using is None:
            return Points(ids, None, payloads)
        return Points(ids, np.concatenate(pages) if pages else np.zeros((0, 0), np.float32), payloads)

    # --- vector copy --------------------------------------------------------------------------------------------
    # Reading vectors through the engine's Python binding costs ~30 us per point (it builds Python lists), so a
    # full scroll of 70k takes ~2-3 s. This process is the folder's only writer (the lock), so it keeps a numpy
    # copy of each vector column next to the shard. Writes update the copy in memory (the vectors are at hand as
    # numpy) and delete the file, so that a crash can never leave a stale copy; optimize() and close() save it,
    # and a new process loads it (~0.2 s for 70k x 512) instead of scrolling the engine.
    def _vector_file(self, name: str, using: str) -> Path:
        return self._path(name) / f"atlas-vectors-{hashlib.sha1(using.encode()).hexdigest()[:12]}.npz"

    def _drop_vector_copies(self, name: str) -> None:
        with self._lock:
            for key in [k for k in self._vector_copies if k[0] == name]:
                del self._vector_copies[key]
            self._unsaved = {k for k in self._unsaved if k[0] != name}
            for path in self._path(name).glob("atlas-vectors-*.npz"):
                path.unlink(missing_ok=True)

    def _write_through(self, name: str, ids: list[PointId], vectors: Mapping[str, np.ndarray],
                       empty_before: bool) -> None:
        """After an upsert: the points now have exactly the vectors given (an upsert replaces whole points)."""
        for spec in self._vectors(name):
            key = (name, spec.name)
            column = self._vector_copies.get(key)
            if column is None and empty_before:
                column = _VectorColumn([], np.zeros((0, spec.size), np.float32))
            elif column is None and key not in self._unsaved and self._vector_file(name, spec.name).is_file():
                column = self._load_copy(name, spec.name)  # valid: nothing wrote since it was saved
            self._vector_file(name, spec.name).unlink(missing_ok=True)
            if column is None:
                continue  # no copy to keep up to date: the next read scrolls the engine
            if spec.name in vectors:
                column.upsert(ids, np.asarray(vectors[spec.name], np.float32).reshape(len(ids), -1))
            else:
                column.remove(ids)
            self._vector_copies[key] = column
            self._unsaved.add(key)

    def _load_copy(self, name: str, using: str) -> _VectorColumn | None:
        try:
            with np.load(self._vector_file(name, using)) as data:
                ids = [int(i) if is_int else str(i) for i, is_int in zip(data["ids"], data["int_ids"])]
                return _VectorColumn(ids, data["vectors"])
        except (OSError, KeyError, ValueError):
            return None

    def _save_copies(self) -> None:
        with self._lock:
            for name, using in sorted(self._unsaved):
                column = self._vector_copies.get((name, using))
                if column is not None and self._path(name).is_dir():
                    self._save_copy(name, using, column)
            self._unsaved.clear()

    def _save_copy(self, name: str, using: str, column: _VectorColumn) -> None:
        path = self._vector_file(name, using)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.array([str(i) for i in column.ids]),
                 int_ids=np.array([isinstance(i, int) for i in column.ids], dtype=bool), vectors=column.matrix())
        os.replace(tmp, path)

    def _vectors_of_all(self, name: str, using: str) -> _VectorColumn:
        with self._lock:
            column = self._vector_copies.get((name, using))
            if column is not None:
                return column
            column = self._load_copy(name, using) if self._vector_file(name, using).is_file() else None
            if column is None:
                full = self._scroll_engine(name, using, None, [], 5000, None)
                column = _VectorColumn(full.ids, full.vectors)
                self._save_copy(name, using, column)
            self._vector_copies[(name, using)] = column
            return column

    def vector_matrix(self, name: str, ids: Sequence[PointId], vector: str | None = None,
                      page_size: int = 1000) -> np.ndarray:
        column = self._vectors_of_all(name, self._using(name, vector))
        try:
            rows = np.fromiter((column.row[pid] for pid in parse_point_ids(ids)), dtype=np.int64, count=len(ids))
        except KeyError:
            missing = sum(pid not in column.row for pid in parse_point_ids(ids))
            raise LookupError(f"{missing} point(s) changed while loading (e.g. deleted); reload the page.") from None
        return column.matrix()[rows]

    def retrieve(self, name: str, ids: Sequence[PointId], vector: str | None = None,
                 with_vectors: bool = False) -> Points:
        ids = parse_point_ids(ids)
        shard = self._shard(name)
        using = self._using(name, vector) if with_vectors else ""
        records = shard.retrieve(ids, with_payload=True, with_vector=with_vectors)
        by_id = {_norm_id(r.id): r for r in records}
        found = [pid for pid in ids if pid in by_id]
        rows = [_vector_of(by_id[pid].vector, using) for pid in found] if with_vectors else []
        return Points(found, _matrix(rows, len(found)) if with_vectors else None,
                      [by_id[pid].payload or {} for pid in found])

    def query(self, name: str, vector: Sequence[float] | np.ndarray, using: str | None = None, k: int = 10,
              filter: Filter | None = None, hnsw_ef: int | None = None, exact: bool = False,
              score_threshold: float | None = None) -> list[Hit]:
        shard = self._shard(name)
        vname = self._using(name, using)
        query_vec = np.asarray(vector, dtype=np.float32).tolist()
        hits = shard.query(qe.QueryRequest(
            limit=int(k), query=qe.Query.Nearest(query_vec, using=vname or None),
            filter=self._filter(name, filter),
            with_payload=True, score_threshold=score_threshold,
            params=qe.SearchParams(hnsw_ef=hnsw_ef, exact=exact)))
        return [Hit(_norm_id(h.id), float(h.score), h.payload or {}) for h in hits]

    def recommend(self, name: str, positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray] = (),
                  using: str | None = None, k: int = 10, filter: Filter | None = None) -> list[Hit]:
        shard = self._shard(name)
        vname = self._using(name, using)
        query = qe.RecommendQuery([np.asarray(v, np.float32).tolist() for v in positives],
                                  [np.asarray(v, np.float32).tolist() for v in negatives])
        hits = shard.query(qe.QueryRequest(limit=int(k), query=qe.Query.RecommendBestScore(query, using=vname or None),
                                           filter=self._filter(name, filter), with_payload=True))
        return [Hit(_norm_id(h.id), float(h.score), h.payload or {}) for h in hits]

    def set_payload(self, name: str, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        self._wrote(name)
        self._shard(name).update(qe.UpdateOperation.set_payload(parse_point_ids(ids), dict(payload)))

    def count(self, name: str, filter: Filter | None = None) -> int:
        return self._shard(name).count(qe.CountRequest(exact=True, filter=self._filter(name, filter)))

    def count_by(self, name: str, key: str, limit: int = 10_000) -> dict[Any, int]:
        shard = self._shard(name)
        try:
            hits = shard.facet(qe.FacetRequest(key=payload_path(key), limit=limit, exact=True)).hits
            return {h.value: h.count for h in hits}
        except Exception:
            # Facets need a payload index; on a folder we did not create, fall back to counting a scroll.
            return self._count_by_scroll(name, key)

    def delete(self, name: str, ids: Sequence[PointId]) -> None:
        ids = parse_point_ids(ids)
        self._wrote(name)
        with self._lock:
            self._drop_vector_copies(name)
            self._shard(name).update(qe.UpdateOperation.delete_points(ids))

    def optimize(self, name: str) -> None:
        shard = self._shard(name)
        shard.flush()
        shard.optimize()
        for spec in self._vectors(name):
            self._vectors_of_all(name, spec.name)  # the first map or audit after an ingest reads it at once
        self._save_copies()

    def close(self) -> None:
        with self._lock:
            if not self._lock_handle.closed:
                self._save_copies()  # while this process still holds the folder
            for shard in self._shards.values():
                try:
                    shard.flush()
                    shard.close()
                except Exception:
                    pass
            self._shards.clear()
            if not self._lock_handle.closed:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()


def _read_only(matrix: np.ndarray) -> np.ndarray:
    view = matrix.view()
    view.flags.writeable = False
    return view


def _empty(matrix: np.ndarray) -> np.ndarray:
    return np.zeros((0, matrix.shape[1] if matrix.ndim == 2 else 0), dtype=np.float32)


def _matrix(rows: list[list[float] | None], n: int) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if any(r is None for r in rows):
        raise StoreError("Some points have no vector of this name; pick another vector.")
    return np.asarray(rows, dtype=np.float32).reshape(n, -1)
