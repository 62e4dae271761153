"""``ServerClient``: the library's result types and errors back from a real server, and an
import that stays light (no torch, transformers or FastAPI)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import LiveServer

from zeroshot_vision._errors import (
    ImageDecodeError,
    IndexNotFoundError,
    InvalidFilterError,
    InvalidInputError,
)
from zeroshot_vision.server._client import (
    ServerClient,
    ServerResponseError,
    ServerUnreachableError,
    server_url,
)


def test_search_classify_tag_give_the_librarys_types(
    live: LiveServer, photo_index: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine

    with (
        ServerClient(live.url) as client,
        SearchEngine.open(photo_index, encoder=tiny_encoder) as engine,
    ):
        assert client.search(index="photos", query="a red rocket", k=3) == list(
            engine.search("a red rocket", k=3)
        )
        report = engine.classify_indexed(["a cat", "a rocket"])
        assert client.tag(index=None, labels=["a cat", "a rocket"]) == list(report.results)
        scored = client.classify([photo_paths[2].read_bytes(), b"not an image"], ["a cat", "a dog"])
        assert [s.label for s in scored[0]] == [
            s.label for s in tiny_encoder.classify(photo_paths[2], ["a cat", "a dog"])
        ]
        assert isinstance(scored[1], str) and "not an image" in scored[1]
        assert client.indexes()[0]["name"] == "photos"
        by_folder = client.search(index=str(photo_index.resolve()), query="a red rocket", k=3)
        assert by_folder == client.search(index="photos", query="a red rocket", k=3)


def test_server_errors_become_the_librarys_errors(live: LiveServer) -> None:
    with ServerClient(live.url) as client:
        with pytest.raises(InvalidFilterError, match=r"\$near"):
            client.search(index=None, query="x", filter={"a": {"$near": 1}})
        with pytest.raises(IndexNotFoundError, match="nope"):
            client.search(index="nope", query="x")
        with pytest.raises(ImageDecodeError) as info:
            client.search(index=None, images=[b"garbage"])
        assert info.value.source == "images[0]" and "not an image" in info.value.reason
        with pytest.raises(InvalidInputError, match="empty"):
            client.search(index=None, query="  ")
    with ServerClient(live.url, api_key="x") as client:
        client.indexes()  # a key the server does not ask for is harmless


def test_unreachable_server_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with (
        ServerClient(f"http://127.0.0.1:{port}") as client,
        pytest.raises(ServerUnreachableError, match="no zsv server answers"),
    ):
        client.indexes()
    assert server_url(None, {}) is None
    assert server_url(None, {"ZSV_SERVER": "http://h:1/"}) == "http://h:1"
    assert server_url("https://x", {"ZSV_SERVER": "http://h:1"}) == "https://x"
    with pytest.raises(InvalidInputError, match="http"):
        server_url("127.0.0.1:8000", {})


def test_wrong_key_is_a_server_response_error(photo_index: Path, tiny_encoder: Any) -> None:
    from tests.helpers import open_service, start_server, stop_server

    service = open_service(photo_index, tiny_encoder)
    server, running = start_server(service, api_key="right")
    try:
        with ServerClient(server.url, api_key="wrong") as client:
            with pytest.raises(ServerResponseError, match="ZSV_API_KEY") as info:
                client.indexes()
            assert info.value.status == 401
    finally:
        stop_server(running)
        service.close()


def test_the_client_imports_nothing_heavy() -> None:
    code = (
        "import sys, zeroshot_vision.server._client;"
        "print(','.join(m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'faiss')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
