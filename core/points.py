"""The points a view works on: a collection's points matching a filter, sampled to a cap, with a fingerprint that
changes whenever their set or content changes (so computed maps and graphs can be cached safely)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .store import Filter, PointId, Store

# Payload fields that change when a point's image (and so its vector) changes.
CONTENT_FIELDS = ("sha1",)


@dataclass
class PointSet:
    collection: str
    vector: str
    ids: list[PointId]
    payloads: list[dict[str, Any]]
    total: int  # points matching the filter, before sampling
    fingerprint: str

    def __len__(self) -> int:
        return len(self.ids)


def _fingerprint(location: str, collection: str, vector: str, ids: list[PointId],
                 payloads: list[dict[str, Any]]) -> str:
    h = hashlib.sha1(f"{location}\0{collection}\0{vector}".encode())
    order = sorted(range(len(ids)), key=lambda i: str(ids[i]))
    for i in order:
        h.update(str(ids[i]).encode())
        for key in CONTENT_FIELDS:
            h.update(str(payloads[i].get(key, "")).encode())
    return h.hexdigest()


def load_points(store: Store, collection: str, vector: str | None = None, filter: Filter | None = None,
                max_points: int | None = None, seed: int = 0) -> PointSet:
    """Ids and payloads (no vectors: cheap) of the matching points; a seeded sample when there are more than
    max_points. The same data and arguments always give the same sample."""
    info = store.collection_info(collection)
    vname = info.vector(vector).name
    pts = store.scroll(collection, with_vectors=False, filter=filter)
    ids, payloads = pts.ids, pts.payloads
    total = len(ids)
    if max_points is not None and total > max_points:
        order = sorted(range(total), key=lambda i: str(ids[i]))  # sample independent of scroll order
        pick = sorted(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        ids = [ids[order[i]] for i in pick]
        payloads = [payloads[order[i]] for i in pick]
    return PointSet(collection, vname, ids, payloads, total,
                    _fingerprint(store.location, collection, vname, ids, payloads))


def load_vectors(store: Store, points: PointSet, filter: Filter | None = None) -> np.ndarray:
    """The vectors of `points`, in their order (float32, n x dim)."""
    if not points.ids:
        return np.zeros((0, store.collection_info(points.collection).vector(points.vector).size), np.float32)
    if len(points) * 4 >= points.total:  # a scroll beats fetching most points one id at a time
        full = store.scroll(points.collection, vector=points.vector, filter=filter, payload_keys=[])
    else:
        full = store.retrieve(points.collection, points.ids, vector=points.vector, with_vectors=True)
    row = {pid: i for i, pid in enumerate(full.ids)}
    missing = [pid for pid in points.ids if pid not in row]
    if missing:
        raise LookupError(f"{len(missing)} point(s) changed while loading (e.g. deleted); reload the page.")
    return full.vectors[[row[pid] for pid in points.ids]]
