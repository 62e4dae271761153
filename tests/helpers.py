"""The one helpers module of the test suite (fixtures live in ``conftest.py``).

* ``TINY_LOGIT_SCALE`` / ``TINY_LOGIT_BIAS``: the calibration the tiny test model is built with.
* :class:`PhotoServer`: a real HTTP server on 127.0.0.1 (stdlib ``ThreadingHTTPServer``)
  serving generated JPEGs at ``/photo-<id>``, with per-photo faults.
* :func:`write_dataset`: a synthetic Unsplash dataset folder (``photos`` and ``keywords``
  tables) in any of the three file-name variants, with the real column names.
* :func:`make_jpeg`: a small, distinct JPEG.
* ``RAW_CONTROL``: what a terminal could act on, to check that nothing printed holds it.
* :func:`start_server` / :func:`stop_server` / :func:`open_service`: ``zsv serve``'s app
  on uvicorn in a thread, on an ephemeral loopback port.
* :func:`child_pids` / :func:`alive_after`: a process's children, and which of some
  processes are still alive after a while (Linux ``/proc``), for orphan checks.

Nothing here touches the network beyond loopback.
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

# Anything a terminal could act on: C0 but newline (output is made of lines), DEL, C1,
# bidi controls, line/paragraph separators, lone surrogates.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
TINY_LOGIT_SCALE = 2.0
TINY_LOGIT_BIAS = -1.0

PHOTO_COLUMNS = [
    "photo_id",
    "photo_url",
    "photo_image_url",
    "photo_submitted_at",
    "photo_featured",
    "photo_width",
    "photo_height",
    "photo_aspect_ratio",
    "photo_description",
    "photographer_username",
    "photographer_first_name",
    "photographer_last_name",
    "exif_camera_make",
    "exif_camera_model",
    "exif_iso",
    "exif_aperture_value",
    "exif_focal_length",
    "exif_exposure_time",
    "photo_location_name",
    "photo_location_latitude",
    "photo_location_longitude",
    "photo_location_country",
    "photo_location_city",
    "stats_views",
    "stats_downloads",
    "ai_description",
    "ai_primary_landmark_name",
    "ai_primary_landmark_latitude",
    "ai_primary_landmark_longitude",
    "ai_primary_landmark_confidence",
    "blur_hash",
]
KEYWORD_COLUMNS = [
    "photo_id",
    "keyword",
    "ai_service_1_confidence",
    "ai_service_2_confidence",
    "suggested_by_user",
    "user_suggestion_source",
    "suggested_by_ai_service_3",
    "confirmed_by_ai_service_3",
]
# photos.tsv (1.4.1+), photos.tsv000 (<= 1.2.x), photos.csv000 (1.3.x, still tabs)
VARIANTS = ("tsv", "tsv000", "csv000")


def make_jpeg(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """A small JPEG whose colours depend on ``seed``."""
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    for x in range(0, size[0], 4):
        image.putpixel((x, (x + seed) % size[1]), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def photo_row(photo_id: str, base_url: str, **fields: str) -> dict[str, str]:
    """A ``photos`` row with every real column; ``fields`` override the defaults."""
    row = dict.fromkeys(PHOTO_COLUMNS, "")
    row.update(
        photo_id=photo_id,
        photo_url=f"https://unsplash.com/photos/{photo_id}",
        photo_image_url=f"{base_url}/photo-{photo_id}",
        photo_submitted_at="2019-05-04 10:11:12.345",
        photo_featured="t",
        photo_width="4000",
        photo_height="3000",
        photo_aspect_ratio="1.33",
        photo_description=f"description of {photo_id}",
        photographer_username=f"user_{photo_id}",
        photographer_first_name="Ada",
        photographer_last_name="Lovelace",
        photo_location_name="Reykjavik, Iceland",
        photo_location_country="Iceland",
        photo_location_city="Reykjavik",
        ai_description=f"a photo numbered {photo_id}",
    )
    row.update(fields)
    return row


def _write_table(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def write_dataset(
    folder: Path,
    rows: Sequence[Mapping[str, str]],
    *,
    variant: str = "tsv",
    keywords: Sequence[Mapping[str, str]] = (),
    shards: int = 1,
) -> Path:
    """Write a synthetic Unsplash dataset into ``folder`` and return it.

    Args:
        folder: Where to write (created).
        rows: ``photos`` rows (see :func:`photo_row`).
        variant: ``"tsv"``, ``"tsv000"`` or ``"csv000"``: the file-name scheme.
        keywords: ``keywords`` rows (missing columns are left empty).
        shards: For the ``000`` variants, split each table over this many files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple[Sequence[str], list[Mapping[str, str]]]] = {
        "photos": (PHOTO_COLUMNS, list(rows)),
        "keywords": (
            KEYWORD_COLUMNS,
            [{**dict.fromkeys(KEYWORD_COLUMNS, ""), **k} for k in keywords],
        ),
    }
    for table, (columns, table_rows) in tables.items():
        if variant == "tsv":
            _write_table(folder / f"{table}.tsv", columns, table_rows)
            continue
        suffix = variant[:3]
        per_shard = max(1, -(-len(table_rows) // shards))
        for shard in range(shards):
            chunk = table_rows[shard * per_shard : (shard + 1) * per_shard]
            _write_table(folder / f"{table}.{suffix}{shard:03d}", columns, chunk)
    return folder


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up (a timeout test, a killed downloader) is expected here;
        # the default prints a traceback to stderr for each.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class PhotoServer:
    """A loopback HTTP server for photos, with scripted faults.

    ``GET /photo-<id>`` serves a JPEG made from ``<id>``. ``faults[id]`` changes that:

    * ``"404"``: always 404.
    * ``"500-then-200"``: 500 on the first request, the photo after.
    * ``"500"``: always 500.
    * ``"429"``: 429 with ``Retry-After: 1`` on the first request, the photo after.
    * ``"truncated"``: 200 with half a JPEG (and a matching Content-Length).
    * ``"short-read"``: 200 announcing the full length but closing after half of it.
    * ``"html"``: 200 with an HTML error page.
    * ``"slow"``: the photo, after ``slow_seconds``.
    * ``"trickle"``: 200 with the photo's length announced, then a few bytes every 50 ms.
    * ``"redirect"``: 302 to the absolute URL of the photo ``moved-<id>``.
    * ``"redirect-loop"``: 302 to itself, forever.
    * ``"bad-gzip"``: 200 with ``Content-Encoding: gzip`` and a body that is not gzip.
    * ``"retry-after"``: 429 with ``Retry-After: <retry_after>`` (written as UTF-8) on the
      first request, the photo after.
    * ``"body"``: 200 ``image/jpeg`` with ``bodies[id]`` as the body.
    * ``"header-trickle"``: the status line and headers one byte every 20 ms (for up to
      ``slow_seconds`` beyond their natural length, with padding), then the photo.

    ``delay`` adds a pause before every response (to slow a run down for kill tests).
    ``requests`` counts requests per photo id; ``times`` keeps each request's monotonic
    time.
    """

    def __init__(self, *, slow_seconds: float = 2.0, delay: float = 0.0) -> None:
        self.faults: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.queries: dict[str, str] = {}
        self.slow_seconds = slow_seconds
        self.delay = delay
        self.retry_after = "1"
        self.bodies: dict[str, bytes] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if not parts.path.startswith("/photo-"):
                    self._send(404, b"not found", "text/plain")
                    return
                photo_id = parts.path[len("/photo-") :]
                with server._lock:
                    server.requests[photo_id] += 1
                    server.times.setdefault(photo_id, []).append(time.monotonic())
                    server.queries[photo_id] = parts.query
                    count = server.requests[photo_id]
                if server.delay:
                    time.sleep(server.delay)
                body = make_jpeg(sum(map(ord, photo_id)))
                fault = server.faults.get(photo_id)
                if fault == "404":
                    self._send(404, b"<html>gone</html>", "text/html")
                elif fault == "500" or (fault == "500-then-200" and count == 1):
                    self._send(500, b"oops", "text/plain")
                elif fault == "429" and count == 1:
                    self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                elif fault == "retry-after" and count == 1:
                    value = server.retry_after.encode("utf-8")
                    self._send(429, b"slow down", "text/plain", {"Retry-After": value})
                elif fault == "body":
                    self._send(200, server.bodies[photo_id], "image/jpeg")
                elif fault == "header-trickle":
                    self._trickle_headers(body)
                elif fault == "truncated":
                    self._send(200, body[: len(body) // 2], "image/jpeg")
                elif fault == "short-read":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif fault == "trickle":
                    self._trickle(body)
                elif fault == "redirect":
                    target = f"{server.url}/photo-moved-{photo_id}"
                    self._send(302, b"", "text/plain", {"Location": target})
                elif fault == "redirect-loop":
                    self._send(302, b"", "text/plain", {"Location": self.path})
                elif fault == "bad-gzip":
                    self._send(200, body, "image/jpeg", {"Content-Encoding": "gzip"})
                elif fault == "html":
                    page = b"<!doctype html><html><body>Rate limit exceeded</body></html>"
                    self._send(200, page, "text/html; charset=utf-8")
                else:
                    if fault == "slow":
                        time.sleep(server.slow_seconds)
                    self._send(200, body, "image/jpeg")

            def _trickle(self, body: bytes) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for start in range(0, len(body), 16):
                        self.wfile.write(body[start : start + 16])
                        self.wfile.flush()
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def _trickle_headers(self, body: bytes) -> None:
                padding = "x" * int(server.slow_seconds / 0.02)
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                    f"X-Padding: {padding}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                try:
                    for byte in head:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.02)
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should
                self.close_connection = True

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: Mapping[str, str | bytes] | None = None,
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in (headers or {}).items():
                        if isinstance(value, bytes):  # as is: send_header allows only latin-1
                            self._headers_buffer.append(key.encode() + b": " + value + b"\r\n")
                        else:
                            self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> PhotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PhotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_photos(**options: float) -> Iterator[PhotoServer]:
    """Run a :class:`PhotoServer` for the length of a fixture."""
    with PhotoServer(**options) as server:
        yield server


# Unsplash-like metadata for the conftest's photos, so filters and captions have data.
PLACES = {
    "astronaut": ("USA", 1984, "Bruce McCandless"),
    "chelsea": ("UK", 2012, "Stefan van der Walt"),
    "coffee": ("Italy", 2013, "Rachel Michetti"),
    "rocket": ("USA", 2011, "NASA"),
    "motorcycle_left": ("Italy", 2014, "Middlebury"),
    "hubble_deep_field": ("USA", 2004, "NASA"),
}


def build_index(folder: Path, model_dir: Path, photos: list[Path]) -> Path:
    """An index folder made through the Python API, with Unsplash-like metadata.

    Ids are the photos' stems, passed explicitly (explicit ids are kept as given).
    """
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine

    encoder = Encoder.from_pretrained(str(model_dir), device="cpu")
    metadata = []
    for path in photos:
        country, year, photographer = PLACES[path.stem]
        metadata.append(
            {
                "country": country,
                "year": year,
                "photographer": photographer,
                "description": f"sample photo {path.stem}",
            }
        )
    with SearchEngine.create(folder, encoder=encoder) as engine:
        report = engine.index_images(photos, ids=[p.stem for p in photos], metadata=metadata)
        assert report.ok, report.failed
    return folder


class StandInEncoder:
    """An encoder stand-in that maps texts and images to chosen vectors (for exact metrics).

    Texts are looked up in ``texts``; an image's vector is ``colours[its top-left pixel]``,
    so tests write solid-colour PNGs. ``logits`` is ``exp(logit_scale) * cos + logit_bias``.
    """

    def __init__(
        self,
        texts: Mapping[str, Sequence[float]],
        colours: Mapping[tuple[int, int, int], Sequence[float]],
        *,
        calibrated: bool = True,
        logit_scale: float = 0.0,
        logit_bias: float = 0.0,
    ) -> None:
        import numpy as np

        self._np = np
        self.texts = {key: self._unit(value) for key, value in texts.items()}
        self.colours = {key: self._unit(value) for key, value in colours.items()}
        self.model_name = "stand-in"
        self.calibrated = calibrated
        self.logit_scale = logit_scale
        self.logit_bias = logit_bias
        self.batch_size = 2
        self.text_calls: list[list[str]] = []

    def _unit(self, value: Sequence[float]):
        vector = self._np.asarray(value, dtype=self._np.float32)
        return vector / self._np.linalg.norm(vector)

    def encode_texts(self, texts, *, batch_size=None):
        items = [texts] if isinstance(texts, str) else list(texts)
        self.text_calls.append(items)
        return self._np.stack([self.texts[text] for text in items])

    def encode_batches(self, images, *, keys=None, batch_size=None):
        """Encoder.encode_batches' contract: (key, vector or ImageLoadError) per image."""
        from zeroshot_vision._checks import batched
        from zeroshot_vision._errors import ImageLoadError
        from zeroshot_vision._images import load_image

        def one(source):
            try:
                return self.colours[load_image(source).getpixel((0, 0))]
            except ImageLoadError as error:
                return error

        pairs = zip(keys, images) if keys is not None else ((s, s) for s in images)
        for chunk in batched(pairs, batch_size or self.batch_size):
            yield [(key, one(source)) for key, source in chunk]

    def logits(self, cosine):
        cos = self._np.asarray(cosine, dtype=self._np.float64)
        return self._np.exp(self.logit_scale) * cos + self.logit_bias


def write_solid_png(
    path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (8, 8)
) -> Path:
    """A solid-colour PNG (lossless, so the colour reads back exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def make_copies(photo: Path, folder: Path) -> list[Path]:
    """The original as PNG, plus a resized, a JPEG-re-encoded and a slightly cropped copy."""
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    stem = photo.stem
    variants = {
        f"{stem}-original.png": image,
        f"{stem}-half.png": image.resize((width // 2, height // 2)),
        f"{stem}-cropped.png": image.crop(
            (width // 20, height // 20, width - width // 20, height - height // 20)
        ),
    }
    paths = []
    for name, variant in variants.items():
        variant.save(folder / name)
        paths.append(folder / name)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    (folder / f"{stem}-q40.jpg").write_bytes(buffer.getvalue())
    paths.append(folder / f"{stem}-q40.jpg")
    return paths


@dataclass
class LiveServer:
    """A server of :func:`start_server`: its URL, its service, settings and metrics."""

    url: str
    port: int
    service: Any
    settings: Any
    metrics: Any

    @property
    def batcher(self) -> Any:
        return self.service.models[0].batcher


@dataclass
class RunningServer:
    server: Any
    thread: threading.Thread
    sock: socket.socket


def start_server(
    service: Any, *, api_key: str | None = None, limits: Any = None, metrics: Any = None
) -> tuple[LiveServer, RunningServer]:
    """Serve ``service`` on 127.0.0.1 with uvicorn in a thread; wait until it listens."""
    import uvicorn

    from zeroshot_vision.server._app import ServerSettings, create_app
    from zeroshot_vision.server._inputs import DEFAULT_LIMITS
    from zeroshot_vision.server._metrics import ServerMetrics
    from zeroshot_vision.server._run import bind
    from zeroshot_vision.server._security import ApiKey

    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    settings = ServerSettings(
        host="127.0.0.1",
        port=port,
        api_key=ApiKey(api_key) if api_key else None,
        limits=limits or DEFAULT_LIMITS,
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
    return live, RunningServer(server, thread, sock)


def stop_server(running: RunningServer) -> None:
    """Stop a server of :func:`start_server` and wait for its thread."""
    running.server.should_exit = True
    running.thread.join(20)
    running.sock.close()
    assert not running.thread.is_alive()


def open_service(
    index: Path | None,
    encoder: Any,
    *,
    writes: bool = False,
    batching: Any = None,
    metrics: Any = None,
) -> Any:
    """A server's service over ``index``, reusing an already loaded encoder."""
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision.server._service import IndexSpec, Service

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


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (read from Linux's ``/proc``)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command's closing parenthesis: the state, then the parent's id.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while it was read
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except OSError:  # gone between the two looks
        return False


def alive_after(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Which of ``pids`` are still running (not zombies) after up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (alive := {pid for pid in pids if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def save_with_exif(
    source: Path,
    target: Path,
    *,
    taken: str | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    gps: tuple[float, float] | None = None,
    orientation: int | None = None,
    modified: str | None = None,
    details_tags: Mapping[int, str | bytes] | None = None,
) -> Path:
    """A real photo re-saved as JPEG with the EXIF fields given (as a camera writes them).

    ``modified`` is ``DateTime`` (main block); ``details_tags`` go to the EXIF block as
    given (``DateTimeDigitized``, the offset tags).
    """
    exif = Image.Exif()
    if modified:
        exif[0x0132] = modified  # DateTime
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if orientation:
        exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    if taken:
        details[0x9003] = taken
    if lens:
        details[0xA434] = lens
    details.update(details_tags or {})
    if gps:
        block = exif.get_ifd(0x8825)
        lat, lon = gps
        block[1], block[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        for tag, value in ((2, abs(lat)), (4, abs(lon))):
            degrees = int(value)
            minutes = int((value - degrees) * 60)
            seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
            block[tag] = (float(degrees), float(minutes), seconds)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").save(target, format="JPEG", exif=exif)
    return target


@contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"3m"``) at ``mount`` for a full-disk test.

    Skips the test where mounting is not allowed (not root, or no tmpfs), and unmounts
    afterwards.
    """
    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP threads spin while they wait: on a busy shared machine, training a
    small PQ with them takes minutes instead of a fraction of a second. Imported into a
    test module, this runs every test of it on one FAISS thread."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
