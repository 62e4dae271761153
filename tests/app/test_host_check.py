"""The app refuses requests whose ``Host`` does not name it (DNS rebinding defence).

A page on ``evil.example`` that rebinds its name to 127.0.0.1 reaches a loopback server
with ``Host: evil.example``; the server must refuse it, over HTTP and websocket alike.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from zeroshot_vision._app import ENTRY, launch, streamlit_command
from zeroshot_vision._host_check import host_allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8501", True),
        ("localhost:8501", True),
        ("LOCALHOST:8501", True),
        ("[::1]:8501", True),
        ("192.168.1.20:8501", True),  # an address cannot be rebound; a name can
        ("evil.example:8501", False),
        ("evil.example", False),
        ("localhost.evil.example:8501", False),
        ("127.0.0.1.nip.io:8501", False),
        ("127.0.0.1:8502", False),  # another port: another origin
        ("127.0.0.1", False),  # port 80
        ("127.0.0.1:8501:1", False),
        ("[::1", False),
        ("[::1]x", False),
        ("127.0.0.1:８５０１", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowed_on_loopback(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, address="127.0.0.1", port=8501) is allowed


def test_host_option_names_the_one_extra_name() -> None:
    assert host_allowed("photos.lan:9000", address="photos.lan", port=9000)
    assert host_allowed("Photos.LAN.:9000", address="photos.lan", port=9000)
    assert not host_allowed("evil.example:9000", address="photos.lan", port=9000)
    assert host_allowed("10.0.0.5:9000", address="0.0.0.0", port=9000)
    assert not host_allowed("evil.example:9000", address="0.0.0.0", port=9000)
    assert host_allowed("[::1]:9000", address="::", port=9000)


def test_launch_serves_the_entry_with_the_host_check(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path)
    assert command[4] == str(ENTRY)
    assert "HostCheck" in ENTRY.read_text(encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path) -> Iterator[int]:
    port = _free_port()
    process = launch(None, port=port, model=str(tiny_model_dir), wait=False)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the app did not start within 90 s")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _get(port: int, path: str, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/", "/_stcore/health", "/_stcore/host-config", "/media/x.jpg"])
def test_a_foreign_host_is_refused_over_http(served: int, path: str) -> None:
    for host in (f"evil.example:{served}", "evil.example", f"localhost.evil.example:{served}"):
        response = _get(served, path, host)
        assert response.status_code == 403, (host, path, response.status_code)
        assert "Host" in response.text


@pytest.mark.slow
def test_the_apps_own_addresses_are_served(served: int) -> None:
    for host in (f"127.0.0.1:{served}", f"localhost:{served}"):
        assert _get(served, "/_stcore/health", host).status_code == 200
        page = _get(served, "/", host)
        assert page.status_code == 200 and "<html" in page.text.lower()


def _handshake(port: int, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n"
            ).encode()
        )
        return sock.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.slow
def test_a_foreign_host_cannot_open_the_websocket(served: int) -> None:
    assert b" 403 " in _handshake(served, f"evil.example:{served}")
    assert b" 101 " in _handshake(served, f"127.0.0.1:{served}")
