"""``zsv serve``: the model loaded once, behind an HTTP API (the ``server`` extra).

* :func:`create_app` builds the FastAPI app (one router per resource: health, the
  OpenAI-compatible routes, search/classify/tag, indexes, images, ask) from a
  :class:`Service` (the loaded models and open indexes, :class:`IndexSpec` each) and
  :class:`ServerSettings` (API key, ``Host`` check, :class:`Limits`, CORS).
* :func:`serve` binds, loads, serves and stops on SIGTERM: what ``zsv serve`` runs.
* :class:`ServerClient` is a small client, what ``zsv ... --server`` uses; it imports
  neither torch nor FastAPI.

Importing this package imports nothing heavy; FastAPI loads with the app.
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
