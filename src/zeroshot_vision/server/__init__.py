"""``zsv serve``: the model loaded once, behind an HTTP API (the ``server`` extra).

* :mod:`~zeroshot_vision.server.app`: the FastAPI app (:func:`create_app`): it assembles
  one router per resource (``health_routes``, ``openai_routes``, ``search_routes``,
  ``index_routes``, ``image_routes``, ``ask_routes``), the error handlers and the guards.
* :mod:`~zeroshot_vision.server.context`: what the routes share: the error envelope
  (``APIError``) and the app's ``ServerContext`` (service, settings, metrics).
* :mod:`~zeroshot_vision.server.batching`: dynamic batching on one model thread, with a
  bounded queue.
* :mod:`~zeroshot_vision.server.service`: the loaded models and open indexes.
* :mod:`~zeroshot_vision.server.security`: API key, ``Host`` check, body limit.
* :mod:`~zeroshot_vision.server.metrics`: Prometheus metrics.
* :mod:`~zeroshot_vision.server.run`: bind, load, serve, stop on SIGTERM.
* :mod:`~zeroshot_vision.server.client`: a small client, what ``zsv ... --server`` uses;
  it imports neither torch nor FastAPI.

Importing this package imports nothing heavy; the modules above import FastAPI.
"""

from __future__ import annotations

__all__: list[str] = []
