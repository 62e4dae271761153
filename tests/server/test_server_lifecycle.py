"""Start and stop: the bind check before the model loads, exposure needs a key, the key is
never shown, and SIGTERM during a request finishes it, commits, and exits 0."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.server._run import serve
from zeroshot_vision.server._security import ApiKey, check_exposure, load_api_key
from zeroshot_vision.server._service import IndexSpec, parse_index_spec


def test_a_port_in_use_is_reported_before_anything_loads(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        # The folder does not exist: reaching the model or the index would say so instead.
        with pytest.raises(InvalidInputError, match=f"port {port} on 127.0.0.1 is already in use"):
            serve([IndexSpec(name="x", path=tmp_path / "missing")], port=port)
        assert time.monotonic() - started < 5


def test_listening_beyond_loopback_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="API key"):
        serve([IndexSpec(name="x", path=tmp_path / "missing")], host="0.0.0.0", port=0)
    check_exposure("0.0.0.0", ApiKey("k"))  # with a key: allowed
    check_exposure("::1", None)
    check_exposure("localhost", None)


def test_api_key_sources_and_secrecy(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("  from-the-file\n")
    key = load_api_key(key_file, environ={"ZSV_API_KEY": "from-env"})
    assert key is not None and key.matches("Bearer from-the-file")
    assert "from-the-file" not in repr(key) and "from-the-file" not in str(key)
    env_key = load_api_key(environ={"ZSV_API_KEY": "from-env"})
    assert env_key is not None and env_key.matches("bearer from-env")
    assert not env_key.matches("Bearer from-env2") and not env_key.matches("from-env")
    assert not env_key.matches(None) and not env_key.matches("Basic from-env")
    assert load_api_key(environ={}) is None
    with pytest.raises(InvalidInputError, match="cannot read the API key file"):
        load_api_key(tmp_path / "nope")
    for bad in ("", "   ", "two words", "caf\u00e9"):
        with pytest.raises(InvalidInputError, match="API key"):
            ApiKey(bad)


def test_index_specs() -> None:
    assert parse_index_spec("photos=/data/idx") == IndexSpec(name="photos", path=Path("/data/idx"))
    assert parse_index_spec("/data/my-idx").name == "my-idx"
    for bad in ("bad name=/x", "x="):
        with pytest.raises(InvalidInputError):
            parse_index_spec(bad)


@pytest.fixture
def writable_index(tmp_path: Path, photo_index: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(photo_index, copy)
    return copy


def wait_ready(url: str, process: subprocess.Popen[str], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(url + "/readyz", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


@pytest.fixture
def server_process(writable_index: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``zsv serve`` in a subprocess, with a key, writes and the access log."""
    env = {**os.environ, "ZSV_API_KEY": "k3y-that-must-not-leak"}
    command = [sys.executable, "-m", "zeroshot_vision._cli", "serve", "-v",
               "--index", f"photos={writable_index}", "--port", "0", "--allow-writes",
               "--access-log"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        found = None
        for _ in range(50):  # the address comes first, before the model loads
            seen.append(process.stderr.readline())
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)", seen[-1])
            if found or not seen[-1]:
                break
        assert found, seen
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


@pytest.mark.slow
def test_sigterm_during_a_request_finishes_it_commits_and_exits_0(
    server_process: tuple[subprocess.Popen[str], str], writable_index: Path, photo_paths: list[Path]
) -> None:
    process, url = server_process
    headers = {"authorization": "Bearer k3y-that-must-not-leak"}
    wait_ready(url, process, headers)
    wrong = httpx.get(url + "/v1/models", headers={"authorization": "Bearer guess"})
    assert wrong.status_code == 401

    image = base64.b64encode(photo_paths[2].read_bytes()).decode()
    body = f'{{"id": "sent-during-shutdown", "image": "{image}"}}'.encode()
    first_half_sent, go_on = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        first_half_sent.set()
        assert go_on.wait(30)
        yield body[len(body) // 2 :]

    answers: list[Any] = []

    def upload() -> None:
        answers.append(
            httpx.post(
                url + "/v1/indexes/photos/records",
                content=slow_body(),
                headers={**headers, "content-type": "application/json"},
                timeout=60,
            )
        )

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert first_half_sent.wait(30)
    time.sleep(0.3)  # the request is in flight: headers and half the body received
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while True:  # new connections are refused while the request in flight goes on
        try:
            httpx.get(url + "/healthz", timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the server still accepts connections"
        time.sleep(0.05)
    go_on.set()
    uploader.join(60)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["count"] == 7
    assert process.wait(60) == 0
    out, err = process.communicate()
    assert "zsv: stopped" in err
    assert "k3y-that-must-not-leak" not in out + err
    assert "POST /v1/indexes/photos/records" in err  # the access log ran, without the key

    from zeroshot_vision._index import IndexFolder

    store = IndexFolder.open(writable_index).open_store()
    try:
        assert "sent-during-shutdown" in set(store.ids())
    finally:
        store.close()
