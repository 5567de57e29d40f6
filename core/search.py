"""Similarity search on a collection: by image, by text, by an existing point, by positive/negative examples.
Queries are always embedded with the model the collection was built with (its vector name)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import images, models
from .store import Filter, Hit, PointId, Store
from .store.base import parse_point_id as _parse_id

MAX_K = 10_000  # results per query; more is never a similarity search a person reads


class SearchError(Exception):
    """A query that cannot run; the message says why and what to do."""


@dataclass
class SearchResult:
    hits: list[Hit]
    milliseconds: float  # the Qdrant query alone
    total_milliseconds: float  # including decoding and embedding the query
    query_vector: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def model_for(vector_name: str, weights_file: str = "", device: str = "auto", cpu_bf16: str = "auto") -> models.Embedder:
    """The model that made a collection's vectors, or a SearchError naming what is missing."""
    if not models.is_model_name(vector_name):
        raise SearchError(f"The vectors '{vector_name or '(unnamed)'}' were not made by a model this tool knows, "
                          "so new images or texts cannot be embedded into their space. Search from an existing "
                          "point instead.")
    try:
        return models.load(models.choose(vector_name, weights_file), device, cpu_bf16)
    except models.SettingError as exc:
        raise SearchError(str(exc)) from None
    except models.ModelError as exc:
        raise SearchError(f"This collection was built with '{vector_name}', whose weights are not available "
                          f"here: {exc}") from None


def _too_big(size: int, max_bytes: int) -> SearchError:
    return SearchError(f"The image is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB "
                       "(ATLAS_MAX_UPLOAD_MB). Use a smaller image.")


def read_image_file(path: str | Path, max_bytes: int) -> bytes:
    """A query image file's bytes; its size is checked on the file system first, so a huge file is never read."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SearchError(f"{path} is a folder; give one image file (e.g. {path / 'photo.jpg'}).")
    if not path.is_file():
        raise SearchError(f"Image file {path} does not exist.")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_big(size, max_bytes)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as exc:
        raise SearchError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    return data


def image_query_vector(model: models.Embedder, data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    try:
        img = images.decode(data, max_pixels)
    except images.BadImage as exc:
        raise SearchError(f"The upload cannot be used as an image: {exc}.") from None
    return model.embed_images([img.image])[0]


def text_query_vector(model: models.Embedder, text: str) -> np.ndarray:
    if not text.strip():
        raise SearchError("The text query is empty: describe the images you want, e.g. 'a red apple on a table'.")
    try:
        return model.embed_texts([text])[0]
    except models.TextNotSupported as exc:
        raise SearchError(str(exc)) from None


def point_vector(store: Store, collection: str, point: PointId | str, vector: str | None = None) -> np.ndarray:
    point = parse_point_id(point)
    got = store.retrieve(collection, [point], vector=vector, with_vectors=True)
    if not got.ids:
        raise SearchError(f"No point with id {point} in '{collection}' (deleted, or a typo).")
    return got.vectors[0]


def parse_point_id(text: str | int) -> PointId:
    """A point id typed by a user; a SearchError that says what an id looks like otherwise."""
    try:
        return _parse_id(text)
    except ValueError as exc:
        raise SearchError(str(exc)) from None


def check_options(k: int, hnsw_ef: int | None = None, min_score: float | None = None) -> None:
    """Query options from a user (page or command line), checked before they reach the engine."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise SearchError(f"The number of results must be a whole number from 1 to {MAX_K:,}, not {k!r}.")
    if hnsw_ef is not None and (isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, (int, np.integer))
                                or not 1 <= hnsw_ef <= 100_000):
        raise SearchError(f"hnsw_ef must be a whole number from 1 to 100,000 (or left unset), not {hnsw_ef!r}.")
    number = isinstance(min_score, (int, float, np.floating)) and not isinstance(min_score, bool)
    if min_score is not None and not (number and math.isfinite(min_score) and -1.0 <= min_score <= 1.0):
        raise SearchError(f"The minimum score is a cosine similarity from -1 to 1, not {min_score!r}.")


def search(store: Store, collection: str, vector: np.ndarray, using: str | None = None, k: int = 10,
           filter: Filter | None = None, hnsw_ef: int | None = None, exact: bool = False,
           min_score: float | None = None, started: float | None = None,
           exclude: Sequence[PointId] = ()) -> SearchResult:
    """The k points nearest to `vector`, leaving out the points `exclude` (a point query's own point: it would
    come back first, with score 1)."""
    check_options(k, hnsw_ef, min_score)
    left_out = {parse_point_id(p) for p in exclude}
    t = time.perf_counter()
    hits = store.query(collection, vector, using=using, k=k + len(left_out), filter=filter, hnsw_ef=hnsw_ef,
                       exact=exact, score_threshold=min_score)
    hits = [h for h in hits if h.id not in left_out][:k]
    now = time.perf_counter()
    return SearchResult(hits, (now - t) * 1000, (now - (started or t)) * 1000, np.asarray(vector))


def recommend(store: Store, collection: str, positive_ids: Sequence[PointId] = (),
              negative_ids: Sequence[PointId] = (), positive_vectors: Sequence[np.ndarray] = (),
              negative_vectors: Sequence[np.ndarray] = (), using: str | None = None, k: int = 10,
              filter: Filter | None = None) -> SearchResult:
    """Near the positive examples and away from the negative ones; the example points are left out."""
    check_options(k)
    positive_ids = [parse_point_id(p) for p in positive_ids]
    negative_ids = [parse_point_id(p) for p in negative_ids]
    pos = [point_vector(store, collection, p, using) for p in positive_ids] + list(positive_vectors)
    neg = [point_vector(store, collection, p, using) for p in negative_ids] + list(negative_vectors)
    if not pos:
        raise SearchError("Give at least one positive example (a point id or an uploaded image).")
    examples = set(positive_ids) | set(negative_ids)
    t = time.perf_counter()
    hits = store.recommend(collection, pos, neg, using=using, k=k + len(examples), filter=filter)
    ms = (time.perf_counter() - t) * 1000
    return SearchResult([h for h in hits if h.id not in examples][:k], ms, ms)


def hits_table(hits: Sequence[Hit], label_field: str | None) -> list[dict[str, Any]]:
    return [{"rank": i + 1, "id": h.id, "score": round(h.score, 4),
             "label": h.payload.get(label_field) if label_field else None, "file_name": h.payload.get("file_name"),
             "path": h.payload.get("path"), "image_url": h.payload.get("image_url")} for i, h in enumerate(hits)]
