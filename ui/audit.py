"""Audit page helpers: running the audit with a status box, and the actions that write labels back.

Every action runs in a widget callback (on_click): once per click, before the rerun draws the page. A value read
from a widget on every rerun and acted on would write again on every rerun."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st

from core import labels as label_ops
from core import settings
from core.audit import AuditReport
from core.audit.jobs import BACKGROUND_NICE, AuditJob, start_audit
from core.audit.calibration import PRECISION_FIRST, RECALL_FIRST
from core.store import PointId, Store, StoreError
from ui.auth import actor, can
from ui.maps import array_cache
from ui.text import md_escape, plural


# The operating-point control: what each choice asks of the label check (see core/audit/calibration.py).
OPERATING_POINTS = {
    "Precision-first": ("precision", f"Flag only as many as keep the expected precision at {PRECISION_FIRST:.0%} "
                                     "or more: few false alarms, some errors missed."),
    "Balanced": ("balanced", "The threshold with the best expected balance of precision and recall (F1)."),
    "Recall-first": ("recall", f"Flag enough to find about {RECALL_FIRST:.0%} of the wrong labels: more to review, "
                               "more of them false alarms."),
    "Target precision": (None, "You choose the expected precision; the threshold follows."),
    "Fixed threshold": (None, "Flag labels whose out-of-sample probability is below a number you choose: no "
                              "calibration, so no estimate of how many flags are real errors."),
}
ADAPTIVE = "Adaptive (recommended)"
FIXED_COSINE = "Fixed cosine"
# Re-rank after every decision while an audit is quick; above this many points the user re-ranks when ready.
AUTO_RERANK_MAX_POINTS = 20_000
# A re-rank begins this long after the last decision: a run of quick decisions makes one re-rank.
RERANK_DELAY_S = 1.0


def audit_request(collection: str, label_field: str | None, checks: list[str], k: int, choice: str,
                  target: float | None, threshold: float | None, duplicate_rule: str,
                  similarity: float | None) -> dict[str, Any]:
    """What the page's controls ask run_audit for: a fixed threshold, or None and an operating point (a name or a
    target precision); a fixed near-duplicate cosine, or None for the adaptive rule."""
    fixed = choice == "Fixed threshold"
    point = OPERATING_POINTS.get(choice, ("balanced", ""))[0]
    if choice == "Target precision":
        point = float(target if target is not None else PRECISION_FIRST)
    return {"collection": collection, "label_field": label_field, "checks": list(checks), "k": int(k),
            "threshold": float(threshold if threshold is not None else 0.05) if fixed else None,
            "operating_point": "balanced" if fixed else point,
            "similarity": float(similarity if similarity is not None else 0.98) if duplicate_rule == FIXED_COSINE
            else None}


def current_request(collection: str, label_field: str | None) -> dict[str, Any]:
    """The request the page's controls make now, read from the session."""
    get = st.session_state.get
    return audit_request(
        collection, label_field, get("audit_checks", ["label", "outlier", "duplicate"]), get("audit_k", 10),
        get("audit_operating_point", "Balanced"), get("audit_target_precision"), get("audit_threshold"),
        get("audit_duplicate_rule", ADAPTIVE), get("audit_similarity"))


def request_audit(collection: str, label_field: str | None) -> None:
    """Callback of Run audit: run it on the next draw (even when nothing changed) with the controls' values as they
    are at the click; read from the session, not passed at draw time, since a value changed together with the
    click (typed, then clicked) reaches the callback only there."""
    st.session_state["audit_request"] = current_request(collection, label_field)
    st.session_state["audit_force"] = True


def audit_options(request: dict[str, Any]) -> dict[str, Any]:
    """run_audit's arguments for a request (audit_request), with the settings that apply to every audit."""
    return dict(label_field=request["label_field"], checks=request["checks"], k=request["k"],
                threshold=request["threshold"], operating_point=request["operating_point"],
                duplicate_similarity=request["similarity"],
                unknown_labels=[u.strip() for u in settings.get("ATLAS_UNKNOWN_LABELS").split(",")],
                max_points=settings.get("ATLAS_MAP_MAX_POINTS"), cache=array_cache())


def start_job(store: Store, request: dict[str, Any], delay: float = 0.0, nice: int = 0) -> AuditJob:
    return start_audit(store, request["collection"], delay=delay, nice=nice, **audit_options(request))


def prefetch(store: Store, request: dict[str, Any], points: int) -> None:
    """Start the audit the controls ask for when the page opens, once per session and collection, so that Run audit
    usually finds it done (run_audit shares an audit under way and keeps finished ones in memory). Only where an
    audit is quick: on a large collection it would take the cores before anyone asked."""
    done = st.session_state.get("audit_prefetch")
    if points > AUTO_RERANK_MAX_POINTS or (done is not None and done["collection"] == request["collection"]):
        return
    # begins after the page is drawn; at full priority, since a click may soon wait for it
    st.session_state["audit_prefetch"] = {"collection": request["collection"],
                                          "job": start_job(store, request, delay=RERANK_DELAY_S)}


def wait_with_status(job: AuditJob) -> AuditReport:
    """Wait for a job on the script's thread, showing its progress. A click meanwhile interrupts only the waiting
    (Streamlit stops the script at the next progress update); the audit goes on, and the next draw waits again."""
    if not job.wait(0.3):  # a cached or shared audit is back at once: no status box to flash
        with st.status("Auditing…", expanded=False) as status:
            bar = st.progress(0.0)
            while not job.wait(0.25):
                what, fraction = job.progress
                bar.progress(min(1.0, max(0.0, fraction)), text=what)
            status.update(label="Audited", state="complete")
    return job.result()


def audit_now(store: Store, request: dict[str, Any]) -> AuditReport:
    """Run audit: the report for the labels as they are now (from memory when nothing changed). A re-rank under way
    is no longer wanted: this audit reads the same labels, at full priority."""
    pending = st.session_state.pop("audit_rerank", None)
    if pending is not None:
        pending["job"].cancel()
    return wait_with_status(start_job(store, request))


# --- re-ranking after decisions, off the click's path -------------------------------------------------------------
def start_rerank(store: Store, force: bool = False) -> None:
    """After a decision: refit the audit with the labels as they are now, in the background; the click does not wait.
    One re-rank at a time per session: decisions made while one runs are picked up by the next (collect_rerank)."""
    held = st.session_state.get("audit_report")
    if held is None or not (force or st.session_state.get("audit_auto_rerank", True)):
        return
    pending = st.session_state.get("audit_rerank")
    if pending is not None and not pending["job"].done():
        if not pending["job"].postpone(RERANK_DELAY_S):  # not begun yet: it will read this decision too
            pending["again"] = True
        return
    # begins a moment later (the click's redraw reaches the browser first; quick decisions make one re-rank) and at
    # a lower priority: nobody waits for it
    job = start_job(store, held[0], delay=RERANK_DELAY_S, nice=BACKGROUND_NICE)
    st.session_state["audit_rerank"] = {"job": job, "request": held[0], "version": version(), "again": False}


def rerank(store: Store) -> None:
    """Callback of the Changes tab's re-run button: re-rank now, whatever the auto re-rank toggle says."""
    start_rerank(store, force=True)


def collect_rerank(store: Store) -> bool:
    """Swap in a finished re-rank's report (the page draws it); start the next one when decisions came meanwhile.
    Whether a report was swapped in."""
    pending = st.session_state.get("audit_rerank")
    if pending is None or not pending["job"].done():
        return False
    del st.session_state["audit_rerank"]
    held = st.session_state.get("audit_report")
    if held is None or held[0] != pending["request"]:  # another audit was asked for meanwhile
        return False
    if pending["job"].error is not None:
        _say("error", f"Re-ranking failed: {pending['job'].error}")
        return False
    st.session_state["audit_report"] = (held[0], pending["job"].result())
    if pending["again"]:  # decisions came after it had read the labels
        start_rerank(store, force=True)
    return True


def reranking() -> dict[str, Any] | None:
    return st.session_state.get("audit_rerank")


@st.fragment(run_every=1.0)
def rerank_progress() -> None:
    """While a re-rank runs: say so, and when it is done rerun the page, whose first step swaps the new ranking in.
    Polls once a second, and only while drawn (only while a re-rank is pending)."""
    pending = reranking()
    if pending is None:
        return
    if pending["job"].done():
        st.rerun()
    decisions = len(st.session_state.get("audit_changes", []))
    what, fraction = pending["job"].progress
    st.caption(f"Re-ranking with your {plural(decisions, 'decision')}… ({what}, {fraction:.0%}). The list below "
               "already leaves out what you decided; the new ranking replaces it when ready.")


def calibration_table(calibration: dict[str, Any]) -> pd.DataFrame:
    """Per-class figures of a calibrated label check, one row per class with enough planted flips."""
    rows = [{"label": name, "flagged": c.get("flagged"), "expected precision": c.get("precision"),
             "expected recall": c.get("recall"), "estimated wrong labels": c.get("error_rate"),
             "planted flips": c.get("planted")} for name, c in (calibration.get("per_class") or {}).items()]
    return pd.DataFrame(rows, columns=["label", "flagged", "expected precision", "expected recall",
                                       "estimated wrong labels", "planted flips"])


def calibration_figure(curve: list[dict[str, float]], threshold: float):
    """Expected precision and recall against the threshold, the chosen one marked; small."""
    import plotly.graph_objects as go

    fig = go.Figure()
    # thresholds worth choosing sit near 0.01-0.1 of a 0-1 score: a log axis spreads them out (0 has no place on it)
    curve = [c for c in curve if c["threshold"] > 0]
    xs = [c["threshold"] for c in curve]
    for name in ("precision", "recall"):
        fig.add_trace(go.Scatter(x=xs, y=[c[name] for c in curve], mode="lines", name=f"expected {name}"))
    if threshold > 0:
        fig.add_vline(x=threshold, line_dash="dot", line_color="grey")
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(type="log", title="threshold (label score, log scale)"),
                      yaxis=dict(range=[0, 1.02], tickformat=".0%"), legend=dict(orientation="h", y=1.15))
    return fig


def duplicate_caption(summary: dict[str, Any]) -> str:
    """What the near-duplicate check found and by which rule (no user data: numbers only)."""
    found = (f"{plural(summary.get('groups', 0), 'group')} ({plural(summary.get('points_in_groups', 0), 'point')}, "
             f"{summary.get('mixed_label_groups', 0):,} with mixed labels, "
             f"{plural(summary.get('exact_copies', 0), 'exact copy', 'exact copies')} by content)")
    if summary.get("rule") == "adaptive":
        how = ("adaptive rule: a pair counts when the two are much closer to each other than to their usual "
               "neighbours" + (f" (distance ratio ≤ {summary['ratio']:.2f}, and cosine ≥ "
                               f"{summary['similarity']:.4f} on this collection)" if summary.get("ratio") is not None
                               and summary.get("similarity") is not None else ""))
    else:
        how = f"fixed rule: cosine ≥ {summary.get('similarity', 0):.3f}"
    return f"{found}; {how}. Groups whose members carry different labels come first."


def open_issues(report: AuditReport, check: str, done: set) -> pd.DataFrame:
    """A check's flagged points that nobody decided on in this session, worst first."""
    suspects = report.suspects(check)
    return suspects[~suspects["id"].isin(done)] if done else suspects


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
    if changes:
        start_rerank(store)  # the decisions are trusted labels now: refit and re-rank the rest, in the background
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
    start_rerank(store)
    _say("success", f"Undid {plural(len(step), 'change')}.")


# --- deleting takes two clicks: Delete asks, then "Yes, delete" deletes (undo in the Changes tab brings it back) --
def ask_delete(key: str) -> None:
    """Callback of a Delete button: ask for a confirmation; nothing is deleted yet."""
    if allowed(label_ops.delete_points):
        st.session_state["audit_delete_pending"] = key


def cancel_delete() -> None:
    st.session_state.pop("audit_delete_pending", None)


def delete_confirmed(store: Store, collection: str, pid: PointId, label_field: str) -> None:
    """Callback of "Yes, delete": the one write."""
    st.session_state.pop("audit_delete_pending", None)
    act(label_ops.delete_points, store, collection, [pid], label_field)


def delete_button(key: str, store: Store, collection: str, pid: PointId, label_field: str) -> None:
    """Delete, then "Yes, delete" / "Cancel" in its place; keys: `key`, `key`_sure, `key`_cancel."""
    if st.session_state.get("audit_delete_pending") != key:
        st.button("Delete", key=key, on_click=ask_delete, args=(key,),
                  help="Remove the point from the collection; asks once more before deleting (undo in the Changes "
                       "tab brings it back).")
        return
    st.button("Yes, delete", key=f"{key}_sure", type="primary", on_click=delete_confirmed,
              args=(store, collection, pid, label_field))
    st.button("Cancel", key=f"{key}_cancel", on_click=cancel_delete)


def default_min_confidence(confidences: pd.Series, floor: float = 0.6) -> float:
    """The Unlabeled tab's starting confidence: 0.6 (a suggestion that wins well over half the evidence), lowered to
    the most confident suggestion when none reaches it, so that the button accepts something from the start; never
    below 0.5."""
    values = pd.to_numeric(confidences, errors="coerce").dropna()
    if values.empty:
        return floor
    return float(max(0.5, min(floor, np.floor(values.max() * 100) / 100)))


_figures: OrderedDict[int, tuple[Any, Any]] = OrderedDict()


def figure_of(owner: Any, build: Callable[[], Any]) -> Any:
    """A figure built once per report result (`owner`), not on every draw: building the confusion heatmap took a
    tenth of a draw. Kept for the last few results; identity-checked, since an id can be reused."""
    hit = _figures.get(id(owner))
    if hit is not None and hit[0] is owner:
        return hit[1]
    fig = build()
    _figures[id(owner)] = (owner, fig)
    while len(_figures) > 4:  # as many as run_audit keeps reports (the owners stay alive while here)
        _figures.popitem(last=False)
    return fig


def confusion_figure(confusion: pd.DataFrame):
    """Given × suggested label counts of the flagged points; a cell without points stays blank (no printed 0)."""
    import plotly.graph_objects as go

    z = confusion.to_numpy(dtype=float)
    text = [[f"{int(v):,}" if v else "" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=np.where(z > 0, z, np.nan), x=list(confusion.columns), y=list(confusion.index),
                               text=text, texttemplate="%{text}", colorscale="Blues", hoverongaps=False,
                               colorbar=dict(title="suspects"),
                               hovertemplate="given %{y}<br>suggested %{x}<br>%{z} suspects<extra></extra>"))
    fig.update_layout(height=max(420, min(1100, 160 + 38 * len(confusion.index))),
                      margin=dict(l=10, r=10, t=10, b=10), xaxis_title="suggested label", yaxis_title="given label",
                      yaxis=dict(autorange="reversed"), plot_bgcolor="white")
    fig.update_xaxes(type="category", tickangle=-45 if len(confusion.columns) > 6 else 0)
    fig.update_yaxes(type="category")
    return fig
