"""Label changes written back to Qdrant, with history: the first label is kept in `label_original`, every change
is appended to `label_history`, and a change (or a batch of them) can be undone while nothing else changed the
point since."""
from __future__ import annotations

import getpass
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

from .store import PointId, Store

# Two browser tabs share one app process: serialising read-modify-write of a point's history here means that
# the last write wins for the label, and the history keeps both changes.
_write_lock = threading.Lock()


class LabelError(Exception):
    """A label change refused with a message for the user; nothing was written."""


@dataclass
class Change:
    """One point's change, enough to undo it."""
    collection: str
    id: PointId
    action: str  # relabel, confirm, delete
    old_label: Any
    new_label: Any
    at: str
    by: str
    restore: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None  # a deleted point's vectors and payload
    batch: str = ""  # changes made by one user action share it and are undone together
    entry: str | None = None  # id of this change's entry in the point's label_history
    file_name: str | None = None  # for people: ids are UUIDs
    before: dict[str, Any] = field(default_factory=dict)  # review fields as they were: undo puts them back

    def as_row(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "action": self.action, "old_label": self.old_label,
                "new_label": self.new_label, "at": self.at, "by": self.by, "batch": self.batch,
                "collection": self.collection, "id": self.id}


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def new_batch() -> str:
    """An id for the changes of one user action (pass it to several calls to make them one undo step)."""
    return uuid.uuid4().hex[:12]


def check_label(label: Any) -> Any:
    """The label if it can be one; LabelError otherwise (an empty label would become a class of its own)."""
    if isinstance(label, str):
        if not label.strip():
            raise LabelError("A label cannot be empty or blank: give the new label's name.")
        return label
    if isinstance(label, bool) or not isinstance(label, (int, float)) or \
            (isinstance(label, float) and not math.isfinite(label)):
        raise LabelError(f"A label must be text or a number, not {label!r}.")
    return label


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _entry(old: Any, new: Any, at: str, by: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"old": old, "new": new, "at": at, "by": by, "action": action, "id": uuid.uuid4().hex, **extra}


def _history(payload: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The point's label_history with one more entry (a copy: the payload read from Qdrant stays as it was)."""
    return [*(payload.get("label_history") or []), entry]


def _same(old: Any, new: Any) -> bool:
    """The audit and the UI compare labels as text: 3 -> "3" would be a change that changes nothing."""
    return old == new or (old is not None and str(old) == str(new))


def _review_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload.get(k) for k in ("reviewed", "label_confirmed")}


def _name(payload: dict[str, Any] | None, pid: PointId) -> str:
    name = (payload or {}).get("file_name")
    return f"'{name}' ({pid})" if name else str(pid)


def relabel(store: Store, collection: str, ids: Sequence[PointId], new_label: Any, by: str,
            label_field: str = "label", action: str = "relabel", batch: str | None = None) -> list[Change]:
    """Set the label of each point; returns the changes. Missing points (deleted) and points that already carry
    the label are skipped: no change is written that changes nothing. Raises LabelError for a blank label."""
    check_label(new_label)
    return relabel_each(store, collection, {pid: new_label for pid in ids}, by, label_field, action, batch)


def relabel_each(store: Store, collection: str, new_labels: Mapping[PointId, Any], by: str,
                 label_field: str = "label", action: str = "relabel", batch: str | None = None) -> list[Change]:
    """Give each point its own new label (e.g. accepting suggestions) as one batch: one undo step."""
    for label in new_labels.values():
        check_label(label)  # all or nothing: refuse before writing any
    batch = batch or new_batch()
    changes = []
    with _write_lock:
        current = store.retrieve(collection, list(new_labels))
        for pid, payload in zip(current.ids, current.payloads):
            old, new = payload.get(label_field), new_labels[pid]
            if _same(old, new):
                continue
            at = _now()
            entry = _entry(old, new, at, by, action)
            update: dict[str, Any] = {label_field: new, "reviewed": True, "label_history": _history(payload, entry)}
            if "label_original" not in payload:
                update["label_original"] = old
            store.set_payload(collection, [pid], update)
            changes.append(Change(collection, pid, action, old, new, at, by, batch=batch, entry=entry["id"],
                                  file_name=payload.get("file_name"), before=_review_fields(payload)))
    return changes


def confirm(store: Store, collection: str, ids: Sequence[PointId], by: str, label_field: str = "label",
            batch: str | None = None) -> list[Change]:
    """Mark labels as checked and correct: the audit stops flagging these points while the label stays.
    Points already confirmed with their current label are skipped."""
    batch = batch or new_batch()
    changes = []
    with _write_lock:
        current = store.retrieve(collection, list(ids))
        for pid, payload in zip(current.ids, current.payloads):
            label = payload.get(label_field)
            if payload.get("reviewed") and payload.get("label_confirmed") == label:
                continue
            at = _now()
            entry = _entry(label, label, at, by, "confirm")
            store.set_payload(collection, [pid], {"reviewed": True, "label_confirmed": label,
                                                  "label_history": _history(payload, entry)})
            changes.append(Change(collection, pid, "confirm", label, label, at, by, batch=batch, entry=entry["id"],
                                  file_name=payload.get("file_name"), before=_review_fields(payload)))
    return changes


def delete_points(store: Store, collection: str, ids: Sequence[PointId], by: str,
                  label_field: str = "label", batch: str | None = None) -> list[Change]:
    """Delete points (e.g. duplicates), keeping their vectors and payload in the change so undo restores them."""
    batch = batch or new_batch()
    with _write_lock:
        names = [spec.name for spec in store.collection_info(collection).vectors]
        kept = {name: store.retrieve(collection, list(ids), vector=name, with_vectors=True) for name in names}
        first = kept[names[0]]
        store.delete(collection, first.ids)
        at = _now()
        return [Change(collection, pid, "delete", first.payloads[i].get(label_field), None, at, by,
                       restore=({name: pts.vectors[i:i + 1] for name, pts in kept.items()}, first.payloads[i]),
                       batch=batch, file_name=first.payloads[i].get("file_name"))
                for i, pid in enumerate(first.ids)]


def undo(store: Store, changes: Sequence[Change], by: str, label_field: str = "label") -> int:
    """Revert changes (in the order made; undone newest first), all or none. Labels and review marks go back to
    what they were (history records the undo, label_original stays); deleted points come back with their vectors
    and payload. Raises LabelError, writing nothing, when a point was changed after one of these changes by a
    change not among them, when a change was already undone, or when a point is gone or back. Returns how many
    changes were undone."""
    changes = list(changes)
    groups: dict[tuple[str, PointId], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.collection, change.id), []).append(change)
    with _write_lock:
        plans = [_plan_undo(store, collection, pid, group, by, label_field)
                 for (collection, pid), group in groups.items()]
        for collection, pid, restore_vectors, payload, update in plans:
            if restore_vectors is not None:
                store.upsert(collection, [pid], restore_vectors, [payload])
            elif update:
                store.set_payload(collection, [pid], update)
    return len(changes)


def _plan_undo(store: Store, collection: str, pid: PointId, group: list[Change], by: str, label_field: str):
    """What undoing one point's changes writes: (collection, id, vectors to upsert or None, payload, update)."""
    found = store.retrieve(collection, [pid])
    payload: dict[str, Any] | None = dict(found.payloads[0]) if found.ids else None
    original = dict(payload) if payload is not None else None
    restore_vectors = None
    for change in reversed(group):
        if change.action == "delete":
            if change.restore is None:
                raise LabelError(f"The deletion of point {_name(None, pid)} kept no copy: it cannot be undone.")
            if payload is not None:
                raise LabelError(f"Point {_name(payload, pid)} exists again since it was deleted (ingested "
                                 "again?): undoing the deletion would overwrite it.")
            restore_vectors, payload = change.restore[0], dict(change.restore[1])
            continue
        if payload is None:
            raise LabelError(f"Point {_name({'file_name': change.file_name}, pid)} no longer exists: undo its "
                             "deletion first.")
        _refuse_if_changed_since(payload, change, label_field)
        at = _now()
        entry = _entry(payload.get(label_field), change.old_label, at, by, f"undo {change.action}",
                       undoes=change.entry)
        payload[label_field] = change.old_label
        payload["label_history"] = _history(payload, entry)
        for key, value in change.before.items():
            payload[key] = value
        if change.action == "confirm" and "label_confirmed" not in change.before:
            payload["label_confirmed"] = None  # a change made before review fields were recorded
    if restore_vectors is not None:
        return collection, pid, restore_vectors, payload, None
    # Keys that were absent stay absent where possible; one that a change added comes back as None (the Store
    # API has no payload-key delete), which every reader treats as absent.
    update = {k: v for k, v in payload.items() if (k in original and original[k] != v) or
              (k not in original and v is not None)}
    return collection, pid, None, payload, update


def _refuse_if_changed_since(payload: dict[str, Any], change: Change, label_field: str) -> None:
    """LabelError unless the point is as `change` left it: every history entry after the change's own entry
    has been undone, and the label is still the change's new label."""
    name = _name(payload, change.id)
    history = payload.get("label_history") or []
    undone = {e.get("undoes") for e in history if e.get("undoes")}
    if change.entry is not None:
        if change.entry in undone:
            raise LabelError(f"This change to point {name} was already undone.")
        position = next((i for i, e in enumerate(history) if e.get("id") == change.entry), None)
        if position is not None:
            later = [e for e in history[position + 1:] if not e.get("undoes") and e.get("id") not in undone]
            if later:
                e = later[-1]
                raise LabelError(f"Point {name} was changed again after this change (to '{e.get('new')}' by "
                                 f"{e.get('by')} at {e.get('at')}); undo that change first.")
    current = payload.get(label_field)
    if current != change.new_label:
        raise LabelError(f"Point {name} now has the label '{current}', not '{change.new_label}' as this change "
                         "left it; it was changed elsewhere, so this change cannot be undone.")
