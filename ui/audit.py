"""Audit page helpers: running the audit with a status box, and the actions that write labels back.

Every action runs in a widget callback (on_click): once per click, before the rerun draws the page. A value read
from a widget on every rerun and acted on would write again on every rerun."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from core import labels as label_ops
from core import settings
from core.audit import AuditReport, run_audit
from core.store import PointId, Store, StoreError
from ui.auth import actor, can
from ui.maps import array_cache
from ui.text import md_escape


def audit_with_status(store, collection: str, label_field: str | None, checks: list[str], k: int,
                      threshold: float, similarity: float) -> AuditReport:
    with st.status("Auditing…", expanded=False) as status:
        bar = st.progress(0.0)
        report = run_audit(store, collection, label_field=label_field, checks=checks, k=k, threshold=threshold,
                           duplicate_similarity=similarity,
                           unknown_labels=[u.strip() for u in settings.get("ATLAS_UNKNOWN_LABELS").split(",")],
                           max_points=settings.get("ATLAS_MAP_MAX_POINTS"), cache=array_cache(),
                           progress=lambda what, f: bar.progress(min(1.0, f), text=what))
        status.update(label=f"Audited {len(report.points):,} points "
                            f"({'from cache' if report.cached else f'in {report.seconds:.1f} s'})", state="complete")
    return report


def record(changes: list[label_ops.Change]) -> None:
    st.session_state.setdefault("audit_changes", []).extend(changes)


def changed_ids() -> set:
    return {c.id for c in st.session_state.get("audit_changes", [])}


def handled_ids() -> set:
    """Points to drop from the lists: changed in this session, or kept as they are."""
    return changed_ids() | st.session_state.get("audit_kept", set())


def version() -> int:
    """Bumped by every action: tables keyed by it start with no selection (row positions shift after a change)."""
    return st.session_state.get("audit_version", 0)


def _say(kind: str, text: str) -> None:
    st.session_state["audit_message"] = (kind, text)


def show_message() -> None:
    """The last action's outcome, once."""
    message = st.session_state.pop("audit_message", None)
    if message:
        getattr(st, message[0])(md_escape(message[1]))


def allowed(op: Callable[..., Any]) -> bool:
    """Whether the current user may run a label operation: deleting points is for admins, the rest for editors.
    Checked in every callback, not only by hiding buttons."""
    if can("admin" if op is label_ops.delete_points else "edit"):
        return True
    _say("error", "Not allowed: deleting points needs the admin role." if op is label_ops.delete_points else
         "Not allowed: changing labels needs the editor role. Nothing was written.")
    return False


def _run(op: Callable[..., list[label_ops.Change]], store: Store, collection: str, target: Any, label_field: str,
         *args: Any) -> list[label_ops.Change] | None:
    if not allowed(op):
        return None
    st.session_state["audit_version"] = version() + 1
    try:
        changes = op(store, collection, target, *args, by=actor(), label_field=label_field)
    except (label_ops.LabelError, StoreError) as e:
        _say("error", str(e))
        return None
    record(changes)
    return changes


def act(op: Callable[..., list[label_ops.Change]], store: Store, collection: str, target: Any,
        label_field: str, *args: Any) -> None:
    """Callback: run a label operation (relabel, relabel_each, confirm, delete_points) and record its changes."""
    if _run(op, store, collection, target, label_field, *args) == []:
        _say("info", "Nothing changed: the points already had that label, or were deleted meanwhile.")


def relabel_chosen(store: Store, collection: str, pid: PointId, label_field: str, key: str) -> None:
    """Callback of a card's Relabel button: the label chosen in the selectbox `key`."""
    choice = st.session_state.get(key)
    if choice is None:
        _say("warning", "Choose a label first.")
        return
    act(label_ops.relabel, store, collection, [pid], label_field, choice)


def keep(store: Store, collection: str, pid: PointId, label_field: str) -> None:
    """Callback: the point stays as it is; its label is confirmed (already confirmed: nothing to write)."""
    if _run(label_ops.confirm, store, collection, [pid], label_field) is not None:
        st.session_state.setdefault("audit_kept", set()).add(pid)


def undo_last(store: Store, label_field: str) -> None:
    """Callback: undo the last action (all changes of its batch), or say why it cannot be undone."""
    changes = st.session_state.get("audit_changes", [])
    if not changes or not allowed(label_ops.undo):
        return
    batch = changes[-1].batch
    step = [c for c in changes if c.batch == batch] if batch else changes[-1:]
    try:
        label_ops.undo(store, step, actor(), label_field)
    except (label_ops.LabelError, StoreError) as e:
        _say("error", str(e))
        return
    st.session_state["audit_changes"] = [c for c in changes if not any(c is s for s in step)]
    st.session_state["audit_kept"] = st.session_state.get("audit_kept", set()) - {c.id for c in step}
    st.session_state["audit_version"] = version() + 1
    _say("success", f"Undid {len(step)} change{'s' if len(step) != 1 else ''}.")
