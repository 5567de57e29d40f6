"""Engine-neutral types of the store adapter. Engines live next to this file; nothing else imports Qdrant."""
from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..pixels import is_auxiliary

PointId = int | str
# A payload filter: {key: value} must match exactly, {key: [v1, v2]} matches any of the values.
Filter = Mapping[str, Any]


class StoreError(Exception):
    """Anything the store cannot do, with a message meant for the user."""


class StoreLocked(StoreError):
    """The embedded folder is held by another process."""


class CollectionNotFound(StoreError):
    pass


class InvalidPointId(StoreError, ValueError):
    """Text or a number that cannot be a Qdrant point id."""


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
MAX_POINT_ID = 2**64 - 1  # Qdrant's numeric ids are unsigned 64-bit
ID_HELP = (f"a point id is a whole number from 0 to {MAX_POINT_ID} or a UUID such as "
           "123e4567-e89b-12d3-a456-426614174000 (copy it from a results table; a file name is not an id)")


def parse_point_id(value: Any) -> PointId:
    """The one place ids are checked, for every engine and page: an unsigned 64-bit int (or its digits), or a
    UUID in any case, with or without hyphens, as canonical lowercase text. Anything else: InvalidPointId."""
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            value = int(text)  # "-1" is out of range, not "not an id"
        else:
            try:
                return str(uuid.UUID(text))
            except ValueError:
                raise InvalidPointId(f"{shown} is not a point id: {ID_HELP}.") from None
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # True is an int to Python, not an id
        raise InvalidPointId(f"{shown} is not a point id: {ID_HELP}.")
    number = int(value.__index__())
    if not 0 <= number <= MAX_POINT_ID:
        raise InvalidPointId(f"{shown} is out of range: {ID_HELP}.")
    return number


def parse_point_ids(values: Iterable[Any]) -> list[PointId]:
    return [parse_point_id(v) for v in values]


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def payload_path(key: str) -> str:
    """A top-level payload key as a Qdrant JSON path: keys with spaces, dots, brackets or non-ASCII letters are
    quoted ("class name"), so that they name the key itself instead of failing or reaching into nested fields."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"Payload field {key!r} cannot be used: pick a field with a non-empty text name.")
    if _PLAIN_KEY.fullmatch(key):
        return key
    if '"' in key or "\\" in key:
        raise StoreError(f"Payload field {key!r} contains a quote or backslash, which Qdrant cannot filter or "
                         "count on: pick another field, or rename the key in the data.")
    return f'"{key}"'


def filter_terms(filter: "Filter | None") -> list[tuple[str, dict[type, list[Any]]]]:
    """A filter as (JSON path, values grouped by type) pairs, shared by the engines. Qdrant matches text, whole
    numbers and booleans, one type per condition; a whole-number float (3.0) counts as the int."""
    terms = []
    for key, wanted in (filter or {}).items():
        values = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
        groups: dict[type, list[Any]] = {}
        for v in values:
            if isinstance(v, (bool, np.bool_)):
                kind, v = bool, bool(v)
            elif isinstance(v, str):
                kind, v = str, str(v)
            elif hasattr(v, "__index__"):
                kind, v = int, int(v.__index__())
            elif isinstance(v, float) and math.isfinite(v) and v.is_integer():
                kind, v = int, int(v)
            else:
                raise StoreError(f"Cannot filter field {key!r} on {v!r}: Qdrant matches text, whole numbers and "
                                 "true/false only.")
            groups.setdefault(kind, []).append(v)
        terms.append((payload_path(key), groups or {str: []}))  # an empty list matches nothing
    return terms


@dataclass(frozen=True)
class VectorSpec:
    name: str  # "" for a collection's single unnamed vector
    size: int
    distance: str = "Cosine"


@dataclass
class CollectionInfo:
    name: str
    points: int
    vectors: list[VectorSpec]

    def __post_init__(self) -> None:
        # Stores may list named vectors in any order (the embedded one differs run to run): embeddings first, by
        # name, so the default vector and every listing are the same each time.
        self.vectors = sorted(self.vectors, key=lambda v: (is_auxiliary(v.name), v.name))

    @property
    def embeddings(self) -> list[VectorSpec]:
        """The vectors a search or a map can use: all but the audit's auxiliary ones (core.pixels)."""
        return [v for v in self.vectors if not is_auxiliary(v.name)]

    def vector(self, name: str | None = None) -> VectorSpec:
        """The vector called `name`, or the first embedding when name is None."""
        if not self.vectors:
            raise StoreError(f"Collection '{self.name}' has no dense vectors.")
        if name is None:
            return self.embeddings[0] if self.embeddings else self.vectors[0]
        for spec in self.vectors:
            if spec.name == name:
                return spec
        names = ", ".join(repr(v.name) for v in self.vectors)
        raise StoreError(f"Collection '{self.name}' has no vector named '{name}'; it has {names}.")


@dataclass
class Points:
    """A batch of points in column form: ids, a float32 matrix (or None) and payloads, in the same order."""
    ids: list[PointId]
    vectors: np.ndarray | None
    payloads: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Hit:
    id: PointId
    score: float
    payload: dict[str, Any]


class Store(ABC):
    """What every engine offers. Methods take the collection name first."""

    engine: str  # "embedded" or "server"
    location: str  # folder or URL, for messages

    @abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    def collection_exists(self, name: str) -> bool: ...

    @abstractmethod
    def collection_info(self, name: str) -> CollectionInfo: ...

    @abstractmethod
    def create_collection(self, name: str, vectors: Mapping[str, int]) -> None:
        """Create a cosine collection with one named vector per entry ({"": size} for one unnamed vector)."""

    @abstractmethod
    def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    def upsert(self, name: str, ids: Sequence[PointId], vectors: Mapping[str, np.ndarray],
               payloads: Sequence[dict[str, Any]]) -> None: ...

    @abstractmethod
    def scroll(self, name: str, vector: str | None = None, with_vectors: bool = True,
               filter: Filter | None = None, payload_keys: Sequence[str] | None = None,
               page_size: int = 5000, limit: int | None = None) -> Points:
        """Every point (matching the filter, at most `limit`): ids, vectors of `vector` (default: the first)
        and payloads."""

    @abstractmethod
    def retrieve(self, name: str, ids: Sequence[PointId], vector: str | None = None,
                 with_vectors: bool = False) -> Points:
        """The points that exist among `ids`, in the order given; missing ids are left out."""

    @abstractmethod
    def query(self, name: str, vector: Sequence[float] | np.ndarray, using: str | None = None, k: int = 10,
              filter: Filter | None = None, hnsw_ef: int | None = None, exact: bool = False,
              score_threshold: float | None = None) -> list[Hit]: ...

    @abstractmethod
    def recommend(self, name: str, positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray] = (),
                  using: str | None = None, k: int = 10, filter: Filter | None = None) -> list[Hit]:
        """Qdrant's recommendation (best-score strategy): near the positive examples, away from the negative."""

    @abstractmethod
    def set_payload(self, name: str, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def count(self, name: str, filter: Filter | None = None) -> int: ...

    @abstractmethod
    def count_by(self, name: str, key: str, limit: int = 10_000) -> dict[Any, int]:
        """How many points carry each value of payload field `key`."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[PointId]) -> None: ...

    def _count_by_scroll(self, name: str, key: str) -> dict[Any, int]:
        """count_by where facets cannot: no payload index, or a key Qdrant cannot name (read whole payloads)."""
        try:
            keys: list[str] | None = [key] if payload_path(key) else None
        except StoreError:
            keys = None
        counts: dict[Any, int] = {}
        for payload in self.scroll(name, with_vectors=False, payload_keys=keys).payloads:
            value = payload.get(key)
            if value is not None and not isinstance(value, (list, dict)):
                counts[value] = counts.get(value, 0) + 1
        return counts

    def vector_matrix(self, name: str, ids: Sequence[PointId], vector: str | None = None,
                      page_size: int = 1000) -> np.ndarray:
        """The vectors of `ids` as one float32 matrix in the order given. Default: retrieve in pages; engines that
        hold a copy of the vectors answer from it. LookupError when an id has no such vector (deleted meanwhile)."""
        ids = list(ids)
        size = self.collection_info(name).vector(vector).size
        out = np.empty((len(ids), size), np.float32)
        for start in range(0, len(ids), page_size):
            page = ids[start:start + page_size]
            got = self.retrieve(name, page, vector=vector, with_vectors=True)
            if len(got) != len(page):
                raise LookupError(f"{len(page) - len(got)} point(s) changed while loading (e.g. deleted); "
                                  "reload the page.")
            out[start:start + len(page)] = got.vectors
        return out

    def neighbours(self, name: str, ids: Sequence[PointId], k: int, vector: str | None = None,
                   filter: Filter | None = None, exact: bool = False) -> list[list[Hit]]:
        """For each stored point of `ids`: its k nearest points among those matching `filter`, itself excluded,
        nearest first (payloads left empty). The engine searches with its stored vectors and index; this default
        fetches the vectors and runs one query per point."""
        ids = parse_point_ids(ids)
        vecs = self.vector_matrix(name, ids, vector)
        out = []
        for pid, vec in zip(ids, vecs):
            hits = self.query(name, vec, using=vector, k=k + 1, filter=filter, exact=exact)
            out.append([h for h in hits if h.id != pid][:k])
        return out

    def optimize(self, name: str) -> None:
        """Build indexes after a bulk load; a no-op where the engine does it by itself."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.engine} Qdrant at {self.location}"


def as_matrix(rows: Iterable[Sequence[float]] | None, n: int) -> np.ndarray | None:
    if rows is None:
        return None
    rows = list(rows)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(n, -1)


def pick_vector(info: CollectionInfo, vector: str | None) -> str:
    return info.vector(vector).name
