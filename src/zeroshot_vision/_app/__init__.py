"""The Streamlit app: search, browse and classify photos in a browser.

Start it with ``zsv app --index DIR`` or from Python::

    from zeroshot_vision._app import launch
    launch("my-index", port=8501)

The page logic lives in :mod:`zeroshot_vision._app.logic` (no Streamlit needed); the
Streamlit script is :mod:`zeroshot_vision._app.streamlit_app`, served behind a ``Host``
check (:mod:`zeroshot_vision._host_check`) by :mod:`zeroshot_vision._app.asgi`.
Importing this package does not import Streamlit, torch or faiss.
"""

from zeroshot_vision._app.launcher import ENTRY, SCRIPT, launch, streamlit_command

__all__ = ["ENTRY", "SCRIPT", "launch", "streamlit_command"]
