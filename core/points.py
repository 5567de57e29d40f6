"""The points a view works on: a collection's points matching a filter, sampled to a cap, with a fingerprint that
changes whenever their set or content changes (so computed maps and graphs can be cached safely)."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Sequence

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


def point_keys(points: PointSet) -> np.ndarray:
    """One uint64 per point from its id and content hash (CONTENT_FIELDS): the same key means the same point with
    the same vector, so a cached map can tell unchanged, new and deleted points apart without storing the ids."""
    keys = np.empty(len(points.ids), np.uint64)
    for i, (pid, payload) in enumerate(zip(points.ids, points.payloads)):
        text = "\0".join([str(pid)] + [str(payload.get(k, "")) for k in CONTENT_FIELDS])
        keys[i] = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    return keys


# --- process-level cache of point sets ------------------------------------------------------------------------
# Reading 1M points' payloads from the embedded engine takes 6-9 s (its scroll builds Python dicts); a cached map
# must reopen in a fraction of that. A point set is reused while the collection's count and the store's write
# generation (Store.write_generation: writes made through this store object) are unchanged. What this cannot see:
# writes by another process or client to the same collection that keep the count (e.g. a relabel through another
# app on a shared server) -- those show after RECENT_MAX newer point sets, a restart, or clear_recent().
RECENT_MAX = 2  # a 1M-point set holds ~0.5 GB of Python objects
_recent: OrderedDict[tuple, tuple[tuple, PointSet]] = OrderedDict()
_recent_lock = threading.Lock()


def write_stamp(store: Store, collection: str, filter: Filter | None) -> tuple | None:
    """(matching points, write generation), or None when the store keeps no write generation (never cached)."""
    generation = getattr(store, "write_generation", None)
    if generation is None:
        return None
    return store.count(collection, filter), generation(collection)


def clear_recent() -> None:
    with _recent_lock:
        _recent.clear()


def _recent_key(store: Store, collection: str, vector: str | None, filter: Filter | None, max_points: int | None,
                seed: int, payload_keys: Sequence[str] | None) -> tuple:
    flt = repr(sorted((k, sorted(map(repr, v)) if isinstance(v, (list, tuple, set)) else repr(v))
                      for k, v in (filter or {}).items()))
    keys = tuple(payload_keys) if payload_keys is not None else None
    return id(store), store.location, collection, vector, flt, max_points, seed, keys


def load_points(store: Store, collection: str, vector: str | None = None, filter: Filter | None = None,
                max_points: int | None = None, seed: int = 0, payload_keys: Sequence[str] | None = None,
                reuse: bool = True) -> PointSet:
    """Ids and payloads (no vectors: cheap) of the matching points; a seeded sample when there are more than
    max_points. The same data and arguments always give the same sample. payload_keys: read only these payload
    fields (and CONTENT_FIELDS), None for whole payloads. reuse: return this process's last read of the same
    points when the store says nothing was written since (see write_stamp)."""
    stamp = write_stamp(store, collection, filter) if reuse else None
    key = _recent_key(store, collection, vector, filter, max_points, seed, payload_keys)
    if stamp is not None:
        with _recent_lock:
            held = _recent.get(key)
        if held is not None and held[0] == stamp:
            # a copy of the lists: pages may reorder or trim what they get (the payload dicts are shared)
            return replace(held[1], ids=list(held[1].ids), payloads=list(held[1].payloads))
    pts = _read_points(store, collection, vector, filter, max_points, seed, payload_keys)
    if stamp is not None:
        with _recent_lock:
            _recent[key] = (stamp, replace(pts, ids=list(pts.ids), payloads=list(pts.payloads)))
            _recent.move_to_end(key)
            while len(_recent) > RECENT_MAX:
                _recent.popitem(last=False)
    return pts


def _read_points(store: Store, collection: str, vector: str | None, filter: Filter | None,
                 max_points: int | None, seed: int, payload_keys: Sequence[str] | None) -> PointSet:
    info = store.collection_info(collection)
    vname = info.vector(vector).name
    keys = None if payload_keys is None else list(dict.fromkeys([*payload_keys, *CONTENT_FIELDS]))
    pts = store.scroll(collection, with_vectors=False, filter=filter, payload_keys=keys)
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
    if store.engine == "embedded" and (filter is not None or len(points) < points.total):
        # its in-memory copy answers any ids at memory speed; a filtered scroll would go through the engine
        return store.vector_matrix(points.collection, points.ids, points.vector)
    if len(points) * 4 >= points.total:  # a scroll beats fetching most points one id at a time
        full = store.scroll(points.collection, vector=points.vector, filter=filter, payload_keys=[])
    else:
        full = store.retrieve(points.collection, points.ids, vector=points.vector, with_vectors=True)
    if full.ids == points.ids:
        return full.vectors  # the usual case (no sample): already in order, no second copy of a 2 GB matrix
    row = {pid: i for i, pid in enumerate(full.ids)}
    missing = [pid for pid in points.ids if pid not in row]
    if missing:
        raise LookupError(f"{len(missing)} point(s) changed while loading (e.g. deleted); reload the page.")
    return full.vectors[[row[pid] for pid in points.ids]]
