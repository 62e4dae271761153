"""``zsv serve``: the model loaded once, behind an HTTP API (the ``server`` extra).

* :mod:`~zeroshot_vision.server._app`: the FastAPI app (:func:`create_app`), its routes
  and error envelope.
* :mod:`~zeroshot_vision.server._batching`: dynamic batching on one model thread, with a
  bounded queue.
* :mod:`~zeroshot_vision.server._service`: the loaded models and open indexes.
* :mod:`~zeroshot_vision.server._security`: API key, ``Host`` check, body limit.
* :mod:`~zeroshot_vision.server._metrics`: Prometheus metrics.
* :mod:`~zeroshot_vision.server._run`: bind, load, serve, stop on SIGTERM.
* :mod:`~zeroshot_vision.server._client`: a small client, what ``zsv ... --server`` uses;
  it imports neither torch nor FastAPI.

Importing this package imports nothing heavy; the modules above import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zeroshot_vision.server._app import ServerSettings, create_app
    from zeroshot_vision.server._client import ServerClient
    from zeroshot_vision.server._inputs import Limits
    from zeroshot_vision.server._run import serve
    from zeroshot_vision.server._service import IndexSpec, Service

_LAZY = {
    "IndexSpec": "zeroshot_vision.server._service",
    "Limits": "zeroshot_vision.server._inputs",
    "ServerClient": "zeroshot_vision.server._client",
    "ServerSettings": "zeroshot_vision.server._app",
    "Service": "zeroshot_vision.server._service",
    "create_app": "zeroshot_vision.server._app",
    "serve": "zeroshot_vision.server._run",
}

__all__ = [
    "IndexSpec",
    "Limits",
    "ServerClient",
    "ServerSettings",
    "Service",
    "create_app",
    "serve",
]


def __getattr__(name: str) -> object:
    # FastAPI loads with the app, not with the client: import each name when first used.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
