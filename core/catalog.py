"""What a collection holds: points, vectors, model, label field and counts, payload keys, samples per label."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import models
from .pixels import is_auxiliary
from .store import Points, Store, VectorSpec

LABEL_FIELD_GUESSES = ("label", "labels", "class", "class_name", "category", "target", "tag")
NO_LABEL = "(none)"


@dataclass
class CollectionSummary:
    name: str
    points: int
    vectors: list[VectorSpec]
    payload_keys: list[str]
    label_field: str | None
    labels: dict[str, int] = field(default_factory=dict)  # label -> count, largest first
    unlabeled: int = 0

    @property
    def embeddings(self) -> list[VectorSpec]:
        """The vectors to search or map by (not the audit's auxiliary pixel vector)."""
        return [v for v in self.vectors if not is_auxiliary(v.name)]

    @property
    def models(self) -> list[str]:
        """Vector names that are models this tool knows (so it can embed queries for them)."""
        return [v.name for v in self.vectors if models.is_model_name(v.name)]


def payload_keys(store: Store, name: str, sample: int = 200) -> list[str]:
    keys: dict[str, None] = {}
    for payload in store.scroll(name, with_vectors=False, limit=sample).payloads:
        for key, value in payload.items():
            if not isinstance(value, (dict, list)):
                keys.setdefault(key, None)
    return list(keys)


def guess_label_field(keys: list[str]) -> str | None:
    for guess in LABEL_FIELD_GUESSES:
        if guess in keys:
            return guess
    return None


def summarize(store: Store, name: str, label_field: str | None = None) -> CollectionSummary:
    """label_field None: guess it ('label', 'class', ...); no guess leaves the summary without labels."""
    info = store.collection_info(name)
    keys = payload_keys(store, name) if info.points else []
    field_name = label_field if label_field is not None else guess_label_field(keys)
    summary = CollectionSummary(name, info.points, info.vectors, keys, field_name)
    if field_name and info.points:
        counts = store.count_by(name, field_name)
        summary.labels = {str(k): v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}
        summary.unlabeled = max(0, info.points - sum(counts.values()))
    return summary


def samples_by_label(store: Store, name: str, label_field: str, labels: list[str], per_label: int = 4) -> dict[str, Points]:
    out = {}
    for label in labels:
        out[label] = store.scroll(name, with_vectors=False, filter={label_field: label}, limit=per_label)
    return out


def payload_text(value: Any, limit: int = 200) -> str:
    """A payload value as plain text for display (user data: never rendered as HTML or Markdown)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
