"""The Streamlit UI.  ``app.py`` is layout only; the rest has no Streamlit import:
``logic.py`` (answers, citations, chat state), ``documents.py`` (uploads, index
browser), ``evals_view.py`` (eval dashboard), ``feedback.py`` (👍/👎 store, gold export).

Launch with ``assistant ui``.
"""
