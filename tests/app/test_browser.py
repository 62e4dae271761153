"""The app in a real browser: ``launch`` serves it, headless Chromium opens ``/?q=...``.

Chromium is driven through the DevTools protocol over a websocket (the ``websockets``
package comes with Streamlit). The test waits, with bounded polls, until the result grid
holds decoded images, saves screenshots to ``test-artifacts/`` and records the time from
launch to first results in ``test-artifacts/app-timing.json``.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import build_index

from zeroshot_vision.app import launch

CHROMIUM = Path(os.environ.get("ZSV_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
QUERY = "an astronaut in a white space suit"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM}; install it with: apt-get install -y chromium",
    ),
]
websockets_client = pytest.importorskip("websockets.sync.client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    attempts = max(1, int(timeout / every) + 1)
    for _ in range(attempts):
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class DevTools:
    """A minimal DevTools protocol client for one page."""

    def __init__(self, websocket_url: str) -> None:
        self._socket = websockets_client.connect(websocket_url, max_size=64 * 2**20)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._socket.close()

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send a command and return its result, skipping the events that arrive first."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            reply = json.loads(self._socket.recv(timeout=remaining))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
        raise TimeoutError(f"no reply to {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1100) -> Iterator[DevTools]:
    """Headless Chromium on a fresh profile, and a DevTools client for its page."""
    profile = Path(tempfile.mkdtemp(prefix="zsv-chromium-"))
    process = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    devtools: DevTools | None = None
    try:
        active = profile / "DevToolsActivePort"
        wait_for(
            "Chromium's DevTools port", lambda: active.is_file() and active.read_text(), timeout=60
        )
        port = int(active.read_text().split()[0])

        def page_socket() -> str | None:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        devtools = DevTools(wait_for("a Chromium page", page_socket, timeout=30))
        devtools.call("Page.enable")
        devtools.call("Runtime.enable")
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, photo_paths: list[Path]
) -> Path:
    return build_index(tmp_path_factory.mktemp("index") / "idx", tiny_model_dir, photo_paths)


@contextlib.contextmanager
def served_app(index_dir: Path) -> Iterator[str]:
    """The app served by ``launch`` on a free loopback port; yields its base URL."""
    port = free_port()
    process = launch(index_dir, host="127.0.0.1", port=port, wait=False)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the app exited with code {process.returncode}")
            try:
                return httpx.get(f"{base}/_stcore/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the app's health check", healthy, timeout=90)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


RENDERED_RESULTS = """(() => {
  const imgs = [...document.querySelectorAll('.st-key-results img')];
  const done = imgs.filter(i => i.complete && i.naturalWidth > 0);
  return {total: imgs.length, rendered: done.length,
          sources: done.map(i => i.getAttribute('src'))};
})()"""

CLASSIFIED = """(() => {
  const drawn = sel => [...document.querySelectorAll(sel)].some(
      c => c.getBoundingClientRect().height > 20);
  return [...document.querySelectorAll('img')].some(i => i.naturalWidth > 0)
    && drawn('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
    && drawn('[data-testid="stDataFrame"] canvas');
})()"""


def test_a_url_query_shows_photos_in_chromium(browser_index: Path, photo_paths: list[Path]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with served_app(browser_index) as base, chromium() as page:
        server_ready = time.monotonic() - started
        page.call("Page.navigate", url=f"{base}/?q={urllib.parse.quote(QUERY)}")

        def results_rendered() -> dict[str, Any] | None:
            state = page.evaluate(RENDERED_RESULTS)
            ok = (
                state and state["total"] == len(photo_paths) and state["rendered"] == state["total"]
            )
            return state if ok else None

        state = wait_for("rendered result images", results_rendered, timeout=180)
        first_results = time.monotonic() - started
        page.screenshot(ARTIFACTS / "app-search.png")

        body = page.evaluate("document.body.innerText")
        assert "#1 · p " in body and "More like this" in body and "Open" in body
        heights = page.evaluate(
            "[...document.querySelectorAll('[class*=\"st-key-card-\"]')]"
            ".map(c => Math.round(c.getBoundingClientRect().height))"
        )
        assert len(heights) == len(photo_paths) and len(set(heights)) == 1, heights
        query_box = "document.querySelector('input[aria-label=\"What are you looking for?\"]')"
        assert page.evaluate(f"{query_box}.value") == QUERY
        # Images come from Streamlit's media endpoint, never from a path in a URL.
        paths = [urllib.parse.urlsplit(urllib.parse.urljoin(base, s)) for s in state["sources"]]
        assert all(p.netloc == base.removeprefix("http://") for p in paths), state["sources"]
        assert all(p.path.startswith("/media/") for p in paths), state["sources"]
        for probe in ("/media/..%2F..%2F..%2Fetc%2Fpasswd", "/app/static/../../etc/passwd"):
            response = httpx.get(base + probe, timeout=5)
            assert "root:" not in response.text

        # Classify an upload through the real file input.
        page.call("Page.navigate", url=f"{base}/?page=classify")
        wait_for(
            "the upload box",
            lambda: page.evaluate("!!document.querySelector('input[type=file]')"),
            timeout=60,
        )
        document = page.call("DOM.getDocument")
        node = page.call(
            "DOM.querySelector", nodeId=document["root"]["nodeId"], selector="input[type=file]"
        )
        photo = next(p for p in photo_paths if p.stem == "chelsea")
        page.call("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(photo)])
        wait_for(
            "the classification chart",
            lambda: "Independent probabilities" in (page.evaluate("document.body.innerText") or ""),
            timeout=90,
        )
        wait_for(
            "the uploaded image, the chart and the table",
            lambda: page.evaluate(CLASSIFIED),
            timeout=60,
        )
        page.screenshot(ARTIFACTS / "app-classify.png")

    timing = {
        "launch_to_healthy_s": round(server_ready, 2),
        "launch_to_first_results_s": round(first_results, 2),
        "results_rendered": state["rendered"],
        "query": QUERY,
        "screenshot": "test-artifacts/app-search.png",
        "note": "tiny random SigLIP, skimage photos, includes Chromium start-up",
    }
    (ARTIFACTS / "app-timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    print(f"launch to first results: {first_results:.2f} s ({timing})")
