"""Label changes written back to Qdrant, with history: the first label is kept in `label_original`, every change
is appended to `label_history`, and a change can be undone."""
from __future__ import annotations

import getpass
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from .store import PointId, Store

# Two browser tabs share one app process: serialising read-modify-write of a point's history here means that
# the last write wins for the label, and the history keeps both changes.
_write_lock = threading.Lock()


class LabelError(Exception):
    pass


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

    def as_row(self) -> dict[str, Any]:
        return {"collection": self.collection, "id": self.id, "action": self.action, "old_label": self.old_label,
                "new_label": self.new_label, "at": self.at, "by": self.by}


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _history(payload: dict[str, Any], old: Any, new: Any, at: str, by: str, action: str) -> list[dict[str, Any]]:
    """The point's label_history with one more entry (a copy: the payload read from Qdrant stays as it was)."""
    return [*(payload.get("label_history") or []), {"old": old, "new": new, "at": at, "by": by, "action": action}]


def relabel(store: Store, collection: str, ids: Sequence[PointId], new_label: Any, by: str,
            label_field: str = "label", action: str = "relabel") -> list[Change]:
    """Set the label of each point; returns the changes (missing points are skipped: they were deleted)."""
    changes = []
    with _write_lock:
        current = store.retrieve(collection, list(ids))
        for pid, payload in zip(current.ids, current.payloads):
            old = payload.get(label_field)
            at = _now()
            update: dict[str, Any] = {label_field: new_label, "reviewed": True,
                                      "label_history": _history(payload, old, new_label, at, by, action)}
            if "label_original" not in payload:
                update["label_original"] = old
            store.set_payload(collection, [pid], update)
            changes.append(Change(collection, pid, action, old, new_label, at, by))
    return changes


def confirm(store: Store, collection: str, ids: Sequence[PointId], by: str, label_field: str = "label") -> list[Change]:
    """Mark labels as checked and correct: the audit stops flagging these points while the label stays."""
    changes = []
    with _write_lock:
        current = store.retrieve(collection, list(ids))
        for pid, payload in zip(current.ids, current.payloads):
            label = payload.get(label_field)
            at = _now()
            store.set_payload(collection, [pid], {"reviewed": True, "label_confirmed": label,
                                                  "label_history": _history(payload, label, label, at, by, "confirm")})
            changes.append(Change(collection, pid, "confirm", label, label, at, by))
    return changes


def delete_points(store: Store, collection: str, ids: Sequence[PointId], by: str,
                  label_field: str = "label") -> list[Change]:
    """Delete points (e.g. duplicates), keeping their vectors and payload in the change so undo restores them."""
    with _write_lock:
        names = [spec.name for spec in store.collection_info(collection).vectors]
        kept = {name: store.retrieve(collection, list(ids), vector=name, with_vectors=True) for name in names}
        first = kept[names[0]]
        store.delete(collection, first.ids)
        at = _now()
        return [Change(collection, pid, "delete", first.payloads[i].get(label_field), None, at, by,
                       restore=({name: pts.vectors[i:i + 1] for name, pts in kept.items()}, first.payloads[i]))
                for i, pid in enumerate(first.ids)]


def undo(store: Store, changes: Sequence[Change], by: str, label_field: str = "label") -> int:
    """Revert changes, newest first. Labels go back to their old value (history records the undo); deleted
    points are restored with their vectors and payload. Returns how many were undone."""
    done = 0
    with _write_lock:
        for change in reversed(list(changes)):
            if change.action == "delete" and change.restore is not None:
                vectors, payload = change.restore
                store.upsert(change.collection, [change.id], vectors, [payload])
                done += 1
                continue
            current = store.retrieve(change.collection, [change.id])
            if not current.ids:
                continue  # deleted meanwhile: nothing to revert
            payload = current.payloads[0]
            history = _history(payload, payload.get(label_field), change.old_label, _now(), by, f"undo {change.action}")
            update: dict[str, Any] = {label_field: change.old_label, "label_history": history}
            if change.action == "confirm":
                update["label_confirmed"] = None
            store.set_payload(change.collection, [change.id], update)
            done += 1
    return done
