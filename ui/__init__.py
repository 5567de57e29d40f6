"""Streamlit helpers shared by the pages (the only UI code besides app.py and pages/)."""
