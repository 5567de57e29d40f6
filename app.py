"""Image Atlas: the frame around the pages. Run with `streamlit run app.py`."""
import streamlit as st

from core.auth import AuthConfigError
from ui import auth, warm
from ui.common import sidebar

st.set_page_config(page_title="Image Atlas", page_icon=":material/scatter_plot:", layout="wide")

try:
    must_log_in = auth.login_required()
    auth.current_role()  # a role misspelt in secrets.toml stops here, not halfway through a page
except AuthConfigError as exc:
    st.error(f"Log-in is misconfigured, so nothing is shown: {exc}")  # fail closed
    st.stop()
pages = [
    st.Page("app_pages/collections.py", title="Collections", icon=":material/database:", default=True),
    st.Page("app_pages/ingest.py", title="Ingest", icon=":material/upload:"),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page("app_pages/audit.py", title="Audit", icon=":material/fact_check:"),
    st.Page("app_pages/search.py", title="Search", icon=":material/image_search:"),
    st.Page("app_pages/graph.py", title="Graph", icon=":material/hub:"),
]
if must_log_in:
    # Only the log-in form until someone logs in: no sidebar, no connection, no page. The pages are registered
    # (hidden, never run) so that a link to one is not "page not found", and opens it once logged in.
    st.navigation(pages, position="hidden")
    auth.login_page()
    st.stop()
page = st.navigation(pages)
st.sidebar.title("Image Atlas")
auth.sidebar_user()
st.session_state["ctx"] = sidebar()
try:
    page.run()
finally:
    # once per server process, after the first page is out: the other pages' heavy imports, off the click path
    warm.start()
