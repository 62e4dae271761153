"""Fixtures for the server's tests: a tiny-model index of real photos and a live server.

The server is real (see ``tests.helpers.start_server``): uvicorn on an ephemeral loopback
port, in a thread of the test process, talked to over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from tests.factories import indexed_folder
from tests.helpers import LiveServer, open_service, start_server, stop_server

from zeroshot_vision.server._metrics import ServerMetrics


@pytest.fixture(scope="session")
def photo_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Any, photo_paths: list[Path]
) -> Path:
    """An index folder of the six scikit-image photos, built with the tiny SigLIP."""
    root = tmp_path_factory.mktemp("server-index")
    return indexed_folder(root, tiny_encoder, photo_paths).index


@pytest.fixture(scope="module")
def live(photo_index: Path, tiny_encoder: Any) -> Iterator[LiveServer]:
    """A server over the photo index, no key, default limits (shared by a module)."""
    metrics = ServerMetrics()
    service = open_service(photo_index, tiny_encoder, metrics=metrics)
    server, running = start_server(service, metrics=metrics)
    try:
        yield server
    finally:
        stop_server(running)
        service.close()
