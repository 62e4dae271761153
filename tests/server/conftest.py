"""Fixtures for the server's tests: a tiny-model index of real photos and a live server.

The server is real: uvicorn on an ephemeral loopback port, in a thread of the test
process (so a test can look at its batcher), talked to over HTTP.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

import uvicorn

from zeroshot_vision.server.app import ServerSettings, create_app
from zeroshot_vision.server.batching import Batcher
from zeroshot_vision.server.inputs import DEFAULT_LIMITS, Limits
from zeroshot_vision.server.metrics import ServerMetrics
from zeroshot_vision.server.run import bind
from zeroshot_vision.server.security import ApiKey
from zeroshot_vision.server.service import BatchOptions, IndexSpec, Service


@pytest.fixture(scope="session")
def photo_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Any, photo_paths: list[Path]
) -> Path:
    """An index folder of the six scikit-image photos, built with the tiny SigLIP."""
    from zeroshot_vision.engine import SearchEngine

    root = tmp_path_factory.mktemp("server-index")
    photos = root / "photos"
    photos.mkdir()
    for path in photo_paths:
        shutil.copy(path, photos / path.name)
    with SearchEngine.create(root / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(photos)
    return root / "index"


@dataclass
class LiveServer:
    """A running server: its URL, its service and its settings."""

    url: str
    port: int
    service: Service
    settings: ServerSettings
    metrics: ServerMetrics

    @property
    def batcher(self) -> Batcher:
        return self.service.models[0].batcher


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket


def start_server(
    service: Service,
    *,
    api_key: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    metrics: ServerMetrics | None = None,
) -> tuple[LiveServer, _Running]:
    """Serve ``service`` on 127.0.0.1 with uvicorn in a thread; wait until it listens."""
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    settings = ServerSettings(
        host="127.0.0.1",
        port=port,
        api_key=ApiKey(api_key) if api_key else None,
        limits=limits,
    )
    metrics = metrics or ServerMetrics()
    app = create_app(service, settings=settings, metrics=metrics)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    live = LiveServer(f"http://127.0.0.1:{port}", port, service, settings, metrics)
    return live, _Running(server, thread, sock)


def stop_server(running: _Running) -> None:
    running.server.should_exit = True
    running.thread.join(20)
    running.sock.close()
    assert not running.thread.is_alive()


def open_service(
    index: Path | None,
    encoder: Any,
    *,
    writes: bool = False,
    batching: BatchOptions | None = None,
    metrics: ServerMetrics | None = None,
) -> Service:
    """A service over ``index`` that reuses the session's tiny encoder."""
    from zeroshot_vision.index import IndexFolder

    indexes = [IndexSpec(name="photos", path=index)] if index is not None else []
    name = IndexFolder.open(index).manifest.model if index is not None else encoder.model_name
    return Service.load(
        indexes,
        model=None if index is not None else name,
        allow_writes=writes,
        batching=batching,
        observer=metrics,
        encoders={name: encoder},
    )


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
