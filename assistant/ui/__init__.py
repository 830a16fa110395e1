"""The Streamlit UI: ``app.py`` (layout), ``logic.py`` (everything else), ``feedback.py``.

Launch with ``assistant ui``.  Importing this package does not import Streamlit.
"""
