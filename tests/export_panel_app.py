"""A page that renders only the export panel (ui/export.py) for AppTest: the sidebar's collection, the ids in
session_state["export_test_ids"] (None: the whole collection) and the audit report in "export_test_audit"."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from ui.auth import login_required, login_page  # noqa: E402
from ui.common import sidebar  # noqa: E402
from ui.export import export_panel  # noqa: E402

if login_required():
    login_page()
    st.stop()
st.title("Export panel")
ctx = sidebar()
export_panel(ctx, ids=st.session_state.get("export_test_ids"), audit_report=st.session_state.get("export_test_audit"),
             key="exp")
