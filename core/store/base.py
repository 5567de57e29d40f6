"""Engine-neutral types of the store adapter. Engines live next to this file; nothing else imports Qdrant."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

PointId = int | str
# A payload filter: {key: value} must match exactly, {key: [v1, v2]} matches any of the values.
Filter = Mapping[str, Any]


class StoreError(Exception):
    """Anything the store cannot do, with a message meant for the user."""


class StoreLocked(StoreError):
    """The embedded folder is held by another process."""


class CollectionNotFound(StoreError):
    pass


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

    def vector(self, name: str | None = None) -> VectorSpec:
        """The vector called `name`, or the only/first one when name is None."""
        if not self.vectors:
            raise StoreError(f"Collection '{self.name}' has no dense vectors.")
        if name is None:
            return self.vectors[0]
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
