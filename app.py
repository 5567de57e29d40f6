"""Image Atlas: the frame around the pages. Run with `streamlit run app.py`."""
import streamlit as st

from ui.common import sidebar

st.set_page_config(page_title="Image Atlas", page_icon=":material/scatter_plot:", layout="wide")

pages = [
    st.Page("app_pages/collections.py", title="Collections", icon=":material/database:", default=True),
    st.Page("app_pages/ingest.py", title="Ingest", icon=":material/upload:"),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page("app_pages/audit.py", title="Audit", icon=":material/fact_check:"),
    st.Page("app_pages/search.py", title="Search", icon=":material/image_search:"),
    st.Page("app_pages/graph.py", title="Graph", icon=":material/hub:"),
]
page = st.navigation(pages)
st.sidebar.title("Image Atlas")
st.session_state["ctx"] = sidebar()
page.run()
