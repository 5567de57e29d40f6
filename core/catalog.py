"""What a collection holds: points, vectors, model, label field and counts, payload keys, samples per label."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from . import models, settings
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
    labels: dict[str, int] = field(default_factory=dict)  # label -> count, largest first (never 0, never "unknown")
    unlabeled: int = 0  # no value, or a value that means "no label" (ATLAS_UNKNOWN_LABELS), as the audit counts them
    unlabeled_values: list[Any] = field(default_factory=list)  # the stored values counted as unlabeled ("unlabeled")

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


def unknown_labels() -> list[str]:
    """Label values that mean "no label" (ATLAS_UNKNOWN_LABELS), lower-case; the audit reads the same setting."""
    return [u.strip().lower() for u in str(settings.get("ATLAS_UNKNOWN_LABELS")).split(",")]


def is_unknown(value: Any, unknown: Sequence[str]) -> bool:
    """Whether a stored label value means "no label", compared as the audit does (trimmed, any case)."""
    return value is None or str(value).strip().lower() in unknown


def summarize(store: Store, name: str, label_field: str | None = None,
              unknown: Sequence[str] | None = None) -> CollectionSummary:
    """label_field None: guess it ('label', 'class', ...); no guess leaves the summary without labels. Points whose
    label is missing or one of `unknown` (default: ATLAS_UNKNOWN_LABELS) count as unlabeled, as in the audit; a
    label with no points is not listed."""
    info = store.collection_info(name)
    keys = payload_keys(store, name) if info.points else []
    field_name = label_field if label_field is not None else guess_label_field(keys)
    summary = CollectionSummary(name, info.points, info.vectors, keys, field_name)
    if field_name and info.points:
        unknown = [u.strip().lower() for u in unknown] if unknown is not None else unknown_labels()
        counts = {k: v for k, v in store.count_by(name, field_name).items() if v > 0}
        known = {k: v for k, v in counts.items() if not is_unknown(k, unknown)}
        summary.labels = {str(k): v for k, v in sorted(known.items(), key=lambda kv: (-kv[1], str(kv[0])))}
        summary.unlabeled_values = [k for k in counts if k not in known]
        summary.unlabeled = max(0, info.points - sum(known.values()))
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
