"""What ``zsv app`` runs: the Streamlit app behind a ``Host`` check.

``streamlit run`` finds the ``App`` below and serves it with uvicorn, with the usual
``--server.*`` options; every HTTP and websocket request passes
:class:`~zeroshot_vision._host_check.HostCheck` first (DNS rebinding defence).
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from streamlit import config
from streamlit.starlette import App

from zeroshot_vision._host_check import HostCheck

__all__ = ["app"]


def _served() -> tuple[str, int]:
    return str(config.get_option("server.address") or "127.0.0.1"), int(
        config.get_option("server.port")
    )


app = App(
    Path(__file__).with_name("streamlit_app.py"),
    middleware=[Middleware(HostCheck, served=_served)],
)
