"""``zsv serve`` in the background for the docs' examples, on a free loopback port."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

DOCS_PORT = "127.0.0.1:8000"
"""Where the docs say a server listens; examples are pointed at the real port instead."""

READY_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """One ``zsv serve`` process: started with ``--port``, ready once ``/readyz`` says so."""

    def __init__(self, words: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.log = cwd / "zsv-serve.log"  # a file: a pipe nobody reads could fill and stall it
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*words, "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def point(self, text: str) -> str:
        """``text`` with the docs' ``127.0.0.1:8000`` naming this server."""
        return text.replace(DOCS_PORT, f"127.0.0.1:{self.port}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(READY_TIMEOUT * 4):
            if self.process.poll() is not None:
                said = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"zsv serve exited {self.process.returncode}: {said}")
            with contextlib.suppress(httpx.TransportError):
                url = f"http://127.0.0.1:{self.port}/readyz"
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        raise AssertionError(f"zsv serve was not ready within {READY_TIMEOUT} s")

    def stop(self) -> None:
        """Stop it as Ctrl-C would; kill it if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
