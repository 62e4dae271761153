"""The app in a real browser: ``launch`` serves it, headless Chromium drives it.

Chromium is driven through the DevTools protocol over a websocket (the ``websockets``
package comes with Streamlit), with real mouse clicks, key presses and file choices.
Every wait is a bounded poll. The first test opens ``/?q=...``, waits until the result
grid holds decoded images and records the time from launch to first results in
``test-artifacts/app-timing.json``. The others check issue 21's features against the same
searches made from Python, on a library bigger than one page (:func:`library`), sharing
one served app and one Chromium; screenshots go to ``test-artifacts/``.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.helpers import build_index

from zeroshot_vision._app import launch

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._results import SearchResults

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

    def click(self, selector: str, timeout: float = 30) -> None:
        """Click the middle of the first element matching ``selector``, as a mouse would.

        Streamlit renders a page element by element, so the element may not be there yet:
        wait for it (as a person waits for a button to appear) up to ``timeout`` seconds.
        """
        locate = f"""(() => {{
              const element = document.querySelector({json.dumps(selector)});
              if (!element) return null;
              element.scrollIntoView({{block: 'center'}});
              const r = element.getBoundingClientRect();
              if (r.width === 0 || r.height === 0) return null;
              return {{x: r.x + r.width / 2, y: r.y + r.height / 2}};
            }})()"""
        deadline = time.monotonic() + timeout
        box = self.evaluate(locate)
        while not box and time.monotonic() < deadline:
            time.sleep(0.2)
            box = self.evaluate(locate)
        assert box, f"nothing to click at {selector} within {timeout} s"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    def click_button(self, label: str, timeout: float = 30) -> None:
        """Click the button that reads ``label``, once it is there (see ``click``)."""
        mark = f"""(() => {{
              const buttons = [...document.querySelectorAll('button')];
              buttons.forEach(b => b.removeAttribute('data-zsv-click'));
              const button = buttons.find(b => b.innerText.trim() === {json.dumps(label)});
              if (button) button.setAttribute('data-zsv-click', '');
              return !!button;
            }})()"""
        wait_for(f"a button that reads {label!r}", lambda: self.evaluate(mark), timeout=timeout)
        self.click("button[data-zsv-click]")

    def press(self, key: str, times: int = 1) -> None:
        """Press a named key (``ArrowRight``, ``End``) on the focused element."""
        code = {"ArrowRight": 39, "ArrowLeft": 37, "End": 35, "Home": 36}[key]
        for _ in range(times):
            for kind in ("keyDown", "keyUp"):
                self.call(
                    "Input.dispatchKeyEvent",
                    type=kind,
                    key=key,
                    code=key,
                    windowsVirtualKeyCode=code,
                )

    def set_files(self, selector: str, files: list[Path]) -> None:
        """Choose ``files`` in a file input, as the file picker would."""
        document = self.call("DOM.getDocument")
        node = self.call("DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector)
        assert node.get("nodeId"), f"no file input at {selector}"
        self.call("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(f) for f in files])

    def open(self, url: str, *, ready: str, timeout: float = 90) -> None:
        """Navigate to ``url`` and wait until the JavaScript ``ready`` is truthy."""
        self.call("Page.navigate", url=url)
        wait_for(f"{url} to show {ready}", lambda: self.evaluate(ready), timeout=timeout)


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


# -- issue 21 in the browser: loading, photo search, more like this, paging, open, p ---

# Records every text and value the model-loading bar shows, from before the page's own
# scripts run: the tiny model loads in well under a second, too fast to poll for.
WATCH_PROGRESS = """(() => {
  window.zsvProgress = [];
  const record = () => {
    for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
      const value = bar.querySelector('[role="progressbar"]')?.getAttribute('aria-valuenow');
      const seen = {text: bar.innerText.trim(), value: value === undefined ? null : value};
      const last = window.zsvProgress[window.zsvProgress.length - 1];
      if (!last || last.text !== seen.text || last.value !== seen.value) {
        window.zsvProgress.push(seen);
      }
    }
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true});
})()"""

# The result grid as a reader sees it: each card's id (its code span), heading and photo.
CARDS = """(() => [...document.querySelectorAll('.st-key-results [class*="st-key-card-"]')]
  .map(card => {
    const key = [...card.classList].find(c => c.startsWith('st-key-card-'));
    const img = card.querySelector('img');
    return {n: Number(key.slice('st-key-card-'.length)),
            id: card.querySelector('code')?.innerText ?? null,
            heading: card.querySelector('strong')?.innerText ?? '',
            loaded: !!img && img.complete && img.naturalWidth > 0};
  }).sort((a, b) => a.n - b.n))()"""

CROPS = (
    (0.0, 0.0, 0.6, 0.6),
    (0.4, 0.0, 1.0, 0.6),
    (0.0, 0.4, 0.6, 1.0),
    (0.4, 0.4, 1.0, 1.0),
    (0.2, 0.2, 0.8, 0.8),
    (0.1, 0.0, 0.9, 0.7),
    (0.0, 0.1, 0.7, 1.0),
)
SOURCES = 8  # photos the library is made from, at most: 9 files each keeps it bounded
LIBRARY_BIAS = -5.0  # puts the tiny model's probabilities between 0.001 and 0.05


@dataclass(frozen=True)
class Library:
    """A photo library bigger than one page of results, and where it came from.

    Every photo is there three ways: the original file, a byte-identical copy
    (``ID-copy``), whose vector is the same, and crops (``ID-crop0`` ...).
    """

    index: Path
    model: Path
    files: dict[str, Path]
    outside: Path  # a photo in the same folder that the index does not hold


@pytest.fixture(scope="module")
def app_library(
    tmp_path_factory: pytest.TempPathFactory,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> Library:
    from PIL import Image

    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.testing import build_tiny_siglip

    root = tmp_path_factory.mktemp("library")
    folder = root / "photos"
    folder.mkdir()
    files: dict[str, Path] = {}
    for source in [*photo_paths, *extra_photo_paths][:SOURCES]:
        for name in (source.name, f"{source.stem}-copy{source.suffix}"):
            files[Path(name).stem] = folder / name
            (folder / name).write_bytes(source.read_bytes())
        with Image.open(source) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        for n, (left, top, right, bottom) in enumerate(CROPS):
            box = (int(left * width), int(top * height), int(right * width), int(bottom * height))
            crop = folder / f"{source.stem}-crop{n}.jpg"
            image.crop(box).save(crop, quality=90)
            files[crop.stem] = crop
    outside = folder / "not-indexed.png"
    outside.write_bytes(photo_paths[0].read_bytes() + b"not in the index")

    model = build_tiny_siglip(root / "model", logit_scale=2.0, logit_bias=LIBRARY_BIAS)
    encoder = Encoder.from_pretrained(str(model), device="cpu")
    with SearchEngine.create(root / "idx", encoder=encoder) as engine:
        report = engine.index_images(list(files.values()), ids=list(files))
        assert report.ok, report.failed
    return Library(index=root / "idx", model=model, files=files, outside=outside)


@pytest.fixture(scope="module")
def library_engine(app_library: Library) -> Iterator[SearchEngine]:
    """The library searched from Python, as the app searches it: the expected answers."""
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine

    encoder = Encoder.from_pretrained(str(app_library.model), device="cpu")
    with SearchEngine.open(app_library.index, encoder=encoder) as engine:
        yield engine


@pytest.fixture(scope="module")
def library_app(app_library: Library) -> Iterator[str]:
    with served_app(app_library.index) as base:
        yield base


@pytest.fixture(scope="module")
def page() -> Iterator[DevTools]:
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as devtools:
        yield devtools


def cards(page: DevTools) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(CARDS) or []
    return found


def wait_for_cards(
    page: DevTools, what: str, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 120
) -> list[dict[str, Any]]:
    """The grid once every photo has decoded and ``check`` accepts it."""

    def ready() -> list[dict[str, Any]] | None:
        shown = cards(page)
        ok = shown and all(c["loaded"] and c["id"] for c in shown) and check(shown)
        return shown if ok else None

    found: list[dict[str, Any]] = wait_for(what, ready, timeout=timeout)
    return found


def ids(shown: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in shown]


def number_after(label: str, heading: str) -> float:
    match = re.search(rf"\b{label} (-?\d+\.\d+)", heading)
    assert match, f"no {label!r} in {heading!r}"
    return float(match.group(1))


def assert_ranked_like(shown: list[dict[str, Any]], expected: SearchResults) -> None:
    """The grid is the library's ranking: same scores, best first, nothing better missed.

    Scores are compared to the three decimals the cards print; near-ties may swap, since
    the app's process and this one compute the query vector separately.
    """
    scores = {r.id: r.score for r in expected}
    shown_scores = [number_after("cos", c["heading"]) for c in shown]
    for card, score in zip(shown, shown_scores, strict=True):
        assert card["id"] in scores, card
        assert abs(score - scores[card["id"]]) <= 2e-3, (card, scores[card["id"]])
    assert shown_scores == sorted(shown_scores, reverse=True), shown_scores
    left_out = [r.id for r in expected if r.id not in ids(shown)]
    better = [i for i in left_out if scores[i] > min(shown_scores) + 2e-3]
    assert not better, f"better matches missing from the grid: {better}"


def test_the_first_visit_shows_the_model_loading(browser_index: Path, tiny_model_dir: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with served_app(browser_index) as base, chromium() as page:
        page.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH_PROGRESS)
        url = f"{base}/?q={urllib.parse.quote(QUERY)}"
        page.call("Page.navigate", url=url)
        wait_for_cards(page, "the first results", lambda shown: len(shown) > 0)
        seen: list[dict[str, Any]] = page.evaluate("window.zsvProgress")
        texts = [s["text"] for s in seen]
        assert texts, "no progress bar was ever shown"
        assert all(s["value"] is not None for s in seen), f"a bar without a fill: {seen}"
        assert all(tiny_model_dir.name in t and "Loading the model" in t for t in texts), texts
        # Each fill names the step under way: after two of the loader's three steps it
        # is warming up, not ready. The fill only grows, and it did move.
        step_at = {0: "reading the weights", 33: "placing them on the device", 66: "warming up"}
        for shown in seen:
            value = int(shown["value"])
            if "once per server start" not in shown["text"]:
                assert shown["text"].endswith(f": {step_at.get(value, 'ready')}"), seen
        values = [int(shown["value"]) for shown in seen]
        assert values == sorted(values) and len(set(values)) >= 2, seen
        # Gone once the model is loaded; a second visit finds it loaded and shows none.
        assert (
            page.evaluate("document.querySelectorAll('[data-testid=\"stProgress\"]').length") == 0
        )
        page.call("Page.navigate", url=url)
        wait_for_cards(page, "the results of a second visit", lambda shown: len(shown) > 0)
        assert page.evaluate("window.zsvProgress") == []
    (ARTIFACTS / "app-loading.json").write_text(json.dumps(seen, indent=2) + "\n")


def test_search_by_an_uploaded_photo(
    app_library: Library, library_app: str, page: DevTools, library_engine: SearchEngine
) -> None:
    from zeroshot_vision._images import load_image

    upload = "input[type=file]"
    page.open(f"{library_app}/", ready=f"!!document.querySelector({json.dumps(upload)})")
    photo = app_library.files["astronaut"]
    page.set_files(upload, [photo])
    shown = wait_for_cards(page, "photos like the upload", lambda shown: len(shown) == 12)
    assert "Photos like astronaut.png" in page.evaluate("document.body.innerText")
    # The photo's own file and its byte-identical copy come first: the same vector.
    assert set(ids(shown)[:2]) == {"astronaut", "astronaut-copy"}, ids(shown)
    assert [number_after("cos", c["heading"]) for c in shown[:2]] == [1.0, 1.0]
    assert " p " not in shown[0]["heading"]  # image-to-image has no calibrated probability
    expected = library_engine.search_by_image(load_image(photo), k=len(app_library.files))
    assert_ranked_like(shown, expected)
    page.screenshot(ARTIFACTS / "app-search-by-photo.png")


def test_more_like_this_shows_that_photos_neighbours(
    app_library: Library, library_app: str, page: DevTools, library_engine: SearchEngine
) -> None:
    upload = "input[type=file]"
    page.open(f"{library_app}/", ready=f"!!document.querySelector({json.dumps(upload)})")
    page.set_files(upload, [app_library.files["chelsea"]])
    wait_for_cards(page, "photos like the upload", lambda shown: "chelsea-copy" in ids(shown))
    page.click(".st-key-more-chelsea-copy button")
    shown = wait_for_cards(
        page, "more like chelsea-copy", lambda shown: "chelsea-copy" not in ids(shown)
    )
    assert "More like chelsea-copy" in page.evaluate("document.body.innerText")
    # Its byte-identical original is its nearest neighbour; the photo itself is left out.
    assert shown[0]["id"] == "chelsea" and number_after("cos", shown[0]["heading"]) == 1.0
    assert_ranked_like(shown, library_engine.search_by_id("chelsea-copy", k=len(app_library.files)))
    page.screenshot(ARTIFACTS / "app-more-like-this.png")

    page.click_button("Back to the text search")
    wait_for_cards(page, "the upload's results again", lambda shown: "chelsea-copy" in ids(shown))
    assert "Photos like chelsea.png" in page.evaluate("document.body.innerText")


def test_show_more_goes_beyond_fifty(
    app_library: Library, library_app: str, page: DevTools, library_engine: SearchEngine
) -> None:
    from zeroshot_vision._app.logic import more_results

    assert len(app_library.files) > 50, "the library must be bigger than the largest page"
    page.open(f"{library_app}/?q={urllib.parse.quote(QUERY)}", ready="true")
    wait_for_cards(page, "the first page", lambda shown: len(shown) == 12)
    page.evaluate("document.querySelector('.st-key-k input[type=range]').focus()")
    page.press("End")  # the k slider's largest value
    first = wait_for_cards(page, "fifty results", lambda shown: len(shown) == 50)
    assert page.evaluate("document.querySelector('.st-key-k input[type=range]').value") == "50"

    page.click(".st-key-show-more button")
    expected = min(more_results(50), len(app_library.files))
    shown = wait_for_cards(page, f"{expected} results", lambda shown: len(shown) == expected)
    assert ids(shown)[:50] == ids(first), "the first page must stay as it was"
    assert len(set(ids(shown))) == expected
    assert_ranked_like(shown, library_engine.search(QUERY, k=len(app_library.files)))
    more_left = expected < len(app_library.files)
    assert bool(page.evaluate("!!document.querySelector('.st-key-show-more')")) is more_left
    page.screenshot(ARTIFACTS / "app-show-more.png")


def test_the_fine_probability_control_filters_the_results(
    app_library: Library, library_app: str, page: DevTools, library_engine: SearchEngine
) -> None:
    from zeroshot_vision._app.logic import PROBABILITY_STEPS

    everything = library_engine.search(QUERY, k=len(app_library.files))
    probabilities = [r.probability for r in everything if r.probability is not None]
    assert len(probabilities) == len(everything)
    assert min(probabilities[:12]) >= 0.001, "0.001 should keep the first page whole"
    # The finest cut that leaves part of a page, clear of any photo's probability.
    cut = next(
        step
        for step in PROBABILITY_STEPS
        if 0 < step <= 0.05
        and 0 < sum(p >= step for p in probabilities) < 12
        and all(abs(p - step) > 1e-3 for p in probabilities)
    )
    kept = {r.id for r in everything if r.probability is not None and r.probability >= cut}

    page.open(f"{library_app}/?q={urllib.parse.quote(QUERY)}", ready="true")
    wait_for_cards(page, "the first page", lambda shown: len(shown) == 12)
    control = ".st-key-min_probability"
    page.evaluate(f"document.querySelector('{control} input[type=range]').focus()")
    page.press("ArrowRight")
    wait_for(
        "the control to read 0.001",
        lambda: "0.001" in page.evaluate(f"document.querySelector('{control}').innerText"),
        timeout=30,
    )
    wait_for_cards(page, "the page at p >= 0.001", lambda shown: len(shown) == 12)

    page.press("ArrowRight", times=PROBABILITY_STEPS.index(cut) - 1)
    shown = wait_for_cards(page, f"the photos with p >= {cut:g}", lambda s: set(ids(s)) == kept)
    assert f"{cut:g}" in page.evaluate(f"document.querySelector('{control}').innerText")
    assert all(number_after("p", c["heading"]) >= cut - 5e-4 for c in shown), shown
    page.screenshot(ARTIFACTS / "app-min-probability.png")


def test_open_serves_the_original_file_and_nothing_else(
    app_library: Library,
    library_app: str,
    page: DevTools,
    tmp_path: Path,
) -> None:
    from PIL import Image

    page.open(f"{library_app}/?q={urllib.parse.quote(QUERY)}", ready="true")
    first = wait_for_cards(page, "the first page", lambda shown: len(shown) == 12)[0]["id"]
    original = app_library.files[first]
    with Image.open(original) as opened:
        size = list(opened.size)
    page.click(f".st-key-open-{first} button")
    # Full size, not the card's thumbnail. (While the page re-renders, the panel can
    # briefly hold the grid's old images, so wait for the photo rather than any image.)
    wait_for(
        f"the photo at full size, {size}",
        lambda: (
            size
            in page.evaluate(
                """[...document.querySelectorAll('.st-key-original img')]
              .filter(i => i.complete).map(i => [i.naturalWidth, i.naturalHeight])"""
            )
        ),
        timeout=60,
    )
    page.screenshot(ARTIFACTS / "app-open.png")

    # "Download the original" hands over the file itself, byte for byte.
    page.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path))
    page.click(".st-key-download-original button")
    saved = tmp_path / original.name
    wait_for("the downloaded original", saved.is_file, timeout=60)
    assert saved.read_bytes() == original.read_bytes()

    # A photo next to the indexed ones, but not in the index, is served by no route.
    secret = app_library.outside.read_bytes()
    for route in (
        f"/media/{urllib.parse.quote(str(app_library.outside))}",
        f"/media/{app_library.outside.name}",
        f"/app/static/{app_library.outside.name}",
        f"/app/static/{urllib.parse.quote(str(app_library.outside))}",
        f"/?original={urllib.parse.quote(str(app_library.outside))}",
    ):
        response = httpx.get(library_app + route, timeout=5)
        assert secret not in response.content, route

    # An indexed photo whose file is gone: Open says so and offers nothing to download.
    page.click_button("Close")
    wait_for(
        "the photo to close",
        lambda: not page.evaluate("!!document.querySelector('.st-key-original')"),
        timeout=30,
    )
    kept = original.read_bytes()
    original.unlink()
    try:
        page.click(f".st-key-open-{first} button")
        wait_for(
            "the missing file's message",
            lambda: (
                "no image file"
                in (page.evaluate("document.querySelector('.st-key-original')?.innerText") or "")
            ),
            timeout=30,
        )
        # Streamlit drops the previous run's elements once the new run ends.
        wait_for(
            "no download for a missing file",
            lambda: not page.evaluate("!!document.querySelector('.st-key-download-original')"),
            timeout=30,
        )
    finally:
        original.write_bytes(kept)


# -- issue 32 in the browser: a video hit plays from its moment -------------------------

# The open moment's player, as the browser has it: where it loads from, where it stands.
PLAYER = """(() => {
  const video = document.querySelector('.st-key-original video');
  if (!video) return null;
  return {src: video.currentSrc || video.src, currentTime: video.currentTime,
          readyState: video.readyState, duration: video.duration,
          error: video.error ? video.error.code : null,
          caption: document.querySelector('.st-key-original')?.innerText ?? ''};
})()"""

# Marks the "Open" button of the card whose id reads ``frame`` (ids hold '#' and '.').
MARK_OPEN = """((frame) => {
  document.querySelectorAll('[data-zsv-click]').forEach(b => b.removeAttribute('data-zsv-click'));
  const card = [...document.querySelectorAll('.st-key-results [class*="st-key-card-"]')]
    .find(c => c.querySelector('code')?.innerText === frame);
  const button = card && [...card.querySelectorAll('button')]
    .find(b => b.innerText.trim() === 'Open');
  if (button) button.setAttribute('data-zsv-click', '');
  return !!button;
})"""


def test_a_video_hit_plays_from_its_moment_in_chromium(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, page: DevTools
) -> None:
    pytest.importorskip("av")
    import skimage.data

    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._images.video import VideoOptions
    from zeroshot_vision.testing import write_clip

    root = tmp_path_factory.mktemp("video-app")
    media = root / "media"
    media.mkdir()
    video = media / "trip.mp4"
    fps = 10
    scenes = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    write_clip(video, scenes, seconds=1.0, fps=fps, size=(160, 120))
    encoder = Encoder.from_pretrained(str(tiny_model_dir), device="cpu")
    with SearchEngine.create(root / "index", encoder=encoder) as engine:
        report = engine.index_folder(media, video=VideoOptions(max_interval=5.0))
        assert not report.failed, report.failed
        moments = {r.id: r.timestamp for r in engine.search("a cup of coffee", k=3)}
    # One frame per 1 s scene, at its middle: none on a whole second, which Streamlit's
    # own player (start times rounded down) could not start at.
    assert sorted(moments.values()) == [0.5, 1.5, 2.5], moments

    with served_app(root / "index") as base:
        page.open(f"{base}/?q={urllib.parse.quote('a cup of coffee')}", ready="true")
        shown = wait_for_cards(page, "the video's frames", lambda s: len(s) == 3)
        assert {c["id"] for c in shown} == set(moments), shown
        frame = next(c["id"] for c in shown if moments[c["id"]] == 2.5)  # the cat's scene
        # The card's picture can arrive before its buttons: wait for "Open" itself.
        wait_for(
            f"the Open button of {frame}",
            lambda: page.evaluate(f"{MARK_OPEN}({json.dumps(frame)})"),
            timeout=60,
        )
        page.click("button[data-zsv-click]")

        def loaded() -> dict[str, Any] | None:
            state = page.evaluate(PLAYER)
            ok = state and (state["error"] is not None or state["readyState"] >= 1)
            return state if ok else None

        state = wait_for("the video player's metadata", loaded, timeout=60)
        page.screenshot(ARTIFACTS / "app-video-moment.png")
        assert state["error"] is None, state
        # The media element plays the app's copy of the video, from the frame's moment.
        source = urllib.parse.urlsplit(state["src"])
        assert f"{source.scheme}://{source.netloc}" == base, state
        assert source.path.startswith("/media/") and source.fragment == "t=2.500", state
        assert abs(state["currentTime"] - moments[frame]) <= 1 / fps, state
        assert state["duration"] == pytest.approx(3.0, abs=1 / fps), state
        assert "trip.mp4 @ 00:02" in state["caption"], state
        served = httpx.get(f"{base}{source.path}", timeout=10)
        assert served.status_code == 200 and served.content == video.read_bytes()
