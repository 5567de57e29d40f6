"""Similarity search on a collection: by image, by text, by an existing point, by positive/negative examples.
Queries are always embedded with the model the collection was built with (its vector name)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import images, models
from .store import Filter, Hit, PointId, Store


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
    except models.ModelError as exc:
        raise SearchError(f"This collection was built with '{vector_name}', whose weights are not available "
                          f"here: {exc}") from None


def image_query_vector(model: models.Embedder, data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    if len(data) > max_bytes:
        raise SearchError(f"The upload is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB "
                          "(ATLAS_MAX_UPLOAD_MB). Use a smaller image.")
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


def point_vector(store: Store, collection: str, point: PointId, vector: str | None = None) -> np.ndarray:
    got = store.retrieve(collection, [point], vector=vector, with_vectors=True)
    if not got.ids:
        raise SearchError(f"No point with id {point} in '{collection}' (deleted, or a typo).")
    return got.vectors[0]


def parse_point_id(text: str) -> PointId:
    text = text.strip()
    return int(text) if text.isdigit() else text


def search(store: Store, collection: str, vector: np.ndarray, using: str | None = None, k: int = 10,
           filter: Filter | None = None, hnsw_ef: int | None = None, exact: bool = False,
           min_score: float | None = None, started: float | None = None) -> SearchResult:
    t = time.perf_counter()
    hits = store.query(collection, vector, using=using, k=k, filter=filter, hnsw_ef=hnsw_ef, exact=exact,
                       score_threshold=min_score)
    now = time.perf_counter()
    return SearchResult(hits, (now - t) * 1000, (now - (started or t)) * 1000, np.asarray(vector))


def recommend(store: Store, collection: str, positive_ids: Sequence[PointId] = (),
              negative_ids: Sequence[PointId] = (), positive_vectors: Sequence[np.ndarray] = (),
              negative_vectors: Sequence[np.ndarray] = (), using: str | None = None, k: int = 10,
              filter: Filter | None = None) -> SearchResult:
    """Near the positive examples and away from the negative ones; the example points are left out."""
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
