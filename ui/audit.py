"""Audit page helpers: running the audit with a status box, and the actions that write labels back."""
from __future__ import annotations

import streamlit as st

from core import labels as label_ops
from core import settings
from core.audit import AuditReport, run_audit
from ui.maps import array_cache


def user() -> str:
    return settings.get("ATLAS_USER") or label_ops.default_user()


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
