"""What one hostile client must not do to ``zsv serve`` (issue 29): freeze the event loop,
exhaust memory or connections, get a 500 or an undocumented error code, or read files
the index does not own. Each test sends the attack over real HTTP on loopback."""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.helpers import LiveServer, open_service, start_server, stop_server


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as made:
        yield made


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# -- item 16: deeply nested JSON --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"query": "a cat", "filter": ' + '{"$and": [' * 3000 + "{}" + "]}" * 3000 + "}",
    ],
    ids=["bare-arrays", "deep-filter"],
)
def test_deeply_nested_json_is_invalid_json(http: httpx.Client, body: str) -> None:
    response = http.post(
        "/v1/search", content=body.encode(), headers={"content-type": "application/json"}
    )
    error = error_of(response, 400)
    assert error["code"] == "invalid_json", error
    assert "nested" in error["message"]
    # The server stays up and answers the next request.
    assert http.post("/v1/search", json={"query": "a cat", "k": 1}).status_code == 200


def test_a_body_that_is_not_utf8_is_invalid_json(http: httpx.Client) -> None:
    response = http.post(
        "/v1/search", content=b'{"query": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "invalid_json"


# -- item 11: lone surrogate id ---------------------------------------------------------------


def test_upsert_with_a_lone_surrogate_id_is_400(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine

    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:1], root=photo_paths[0].parent)
    service = open_service(folder, tiny_encoder, writes=True)
    server, running = start_server(service)
    image = base64.b64encode(photo_paths[1].read_bytes()).decode()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            # JSON escapes can carry a lone surrogate that no UTF-8 body could.
            body = '{"id": "\\ud800cat", "image": "' + image + '"}'
            response = http.post(
                "/v1/indexes/photos/records",
                content=body.encode(),
                headers={"content-type": "application/json"},
            )
            error = error_of(response, 400)
            assert error["param"] == "id"
            assert http.get("/v1/indexes/photos").json()["count"] == 1
    finally:
        stop_server(running)
        service.close()


def test_engine_refuses_a_lone_surrogate_id_with_the_project_error(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._errors import InvalidInputError

    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        with pytest.raises(InvalidInputError, match="UTF-8"):
            engine.index_images([photo_paths[0]], ids=["\udcffbad"])
        assert len(engine.store) == 0


# -- item 2: labels -----------------------------------------------------------------------------


def test_too_many_labels_are_refused_and_healthz_stays_prompt(
    http: httpx.Client, live: LiveServer
) -> None:
    many = [f"label number {i}" for i in range(40_000)]
    answers: dict[str, httpx.Response] = {}

    image = png_b64(Image.new("RGB", (32, 32), (200, 30, 30)))

    def send(route: str, labels: object) -> None:
        body = {"labels": labels, **({"images": [image]} if route == "/v1/classify" else {})}
        with httpx.Client(base_url=live.url, timeout=120) as other:
            answers[route] = other.post(route, json=body)

    senders = [
        threading.Thread(target=send, args=("/v1/tag", many)),
        threading.Thread(target=send, args=("/v1/classify", ",".join(many))),
    ]
    for sender in senders:
        sender.start()
    try:
        time.sleep(0.3)  # the big bodies are being parsed and checked
        for _ in range(5):
            started = time.monotonic()
            alive = http.get("/healthz", timeout=2)
            assert alive.status_code == 200
            assert time.monotonic() - started < 2
    finally:
        for sender in senders:
            sender.join(timeout=120)
    limit = live.settings.limits.max_labels
    for route in ("/v1/tag", "/v1/classify"):
        error = error_of(answers[route], 413)
        assert error["code"] == "too_many_labels"
        assert f"{limit:,}" in error["message"]


def test_labels_up_to_the_limit_are_answered(http: httpx.Client, live: LiveServer) -> None:
    limit = live.settings.limits.max_labels
    # Repeats count towards the limit but are answered once.
    labels = [f"label {i % (limit // 2)}" for i in range(limit)]
    response = http.post("/v1/tag", json={"labels": labels})
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert len(first["labels"]) == limit // 2


# -- item 13: files a record's metadata names ----------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]) -> dict[str, Any]:
    """An index of a photo folder, plus records whose stored ``path`` (as a crafted import
    or a caller's metadata would set it) names files that must not be handed out."""
    from zeroshot_vision._engine import SearchEngine

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(photo_paths[2].read_bytes())
    secrets = tmp_path / "private"
    secrets.mkdir()
    (secrets / "token.txt").write_text("SECRET-TOKEN-123\n")
    (secrets / "token.png").write_text("SECRET-TOKEN-123\n")  # a text file named .png
    Image.new("RGB", (8, 8), (9, 9, 9)).save(secrets / "private.png")  # an image, outside
    (photos / "notes.png").write_text("SECRET-TOKEN-123\n")  # inside, but not an image
    planted = {
        "text": secrets / "token.txt",
        "renamed": secrets / "token.png",
        "outside": secrets / "private.png",
        "escape": photos / ".." / "private" / "private.png",
        "inside-text": photos / "notes.png",
    }
    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_folder(photos)
        engine.index_images(
            [photo_paths[0]] * len(planted),
            ids=list(planted),
            metadata=[{"path": str(path)} for path in planted.values()],
        )
    return {"folder": folder, "planted": planted, "photo": photos / "cat.png"}


def test_images_route_serves_only_images_under_the_source_folders(
    planted: dict[str, Any], tiny_encoder: Any
) -> None:
    service = open_service(planted["folder"], tiny_encoder)
    server, running = start_server(service)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            good = http.get("/v1/images/cat.png")
            assert good.status_code == 200
            assert good.content == planted["photo"].read_bytes()
            for record_id in planted["planted"]:
                response = http.get(f"/v1/images/{record_id}")
                assert b"SECRET" not in response.content
                assert error_of(response, 404)["code"] == "image_not_found", record_id
    finally:
        stop_server(running)
        service.close()


def test_app_and_langchain_use_the_same_rule(planted: dict[str, Any], tiny_encoder: Any) -> None:
    pytest.importorskip("langchain_core")
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._errors import ImageNotFoundError
    from zeroshot_vision._photos import image_path_for_id
    from zeroshot_vision.integrations.langchain import ZeroshotVisionVectorStore

    with SearchEngine.open(planted["folder"], encoder=tiny_encoder) as engine:
        store = ZeroshotVisionVectorStore(engine=engine, image_content="base64")
        [document] = store.get_by_ids(["cat.png"])
        assert base64.b64decode(document.page_content) == planted["photo"].read_bytes()
        for record_id in planted["planted"]:
            with pytest.raises(ImageNotFoundError):
                store.get_by_ids([record_id])
        assert image_path_for_id(engine.store, "cat.png", folder=engine.folder) == planted["photo"]
        for record_id in planted["planted"]:
            assert image_path_for_id(engine.store, record_id, folder=engine.folder) is None


def test_a_store_without_source_folders_still_serves_only_images(tmp_path: Path) -> None:
    from zeroshot_vision._index.serving import servable_image

    text = tmp_path / "id_ed25519"
    text.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    renamed = tmp_path / "key.jpg"
    renamed.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    photo = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(photo)
    assert servable_image(str(photo), None) == photo
    for bad in (str(text), str(renamed), str(tmp_path), "/dev/zero", "", None, 3, "a\x00b"):
        assert servable_image(bad, None) is None, bad


# -- item 1: decoded bytes -----------------------------------------------------------------------


def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _png(image: Image.Image) -> str:
    return "data:image/png;base64," + png_b64(image)


def _sixteen_bit(side: int) -> Image.Image:
    import numpy as np

    ramp = np.arange(side, dtype=np.uint16)[None, :].repeat(side, 0) * 10
    return Image.fromarray(ramp)  # mode I;16


def test_small_png_files_cannot_take_gigabytes(http: httpx.Client) -> None:
    if not _peak_rss_reset():
        pytest.skip("needs Linux /proc/self/clear_refs to measure peak memory")
    side = 6000  # 36 Mpx: under the pixel limit
    bilevel = _png(Image.new("1", (side, side), 0))  # a few KB each
    sixteen = _png(_sixteen_bit(side))  # about 100 KB
    assert len(bilevel) < 10_000 and len(sixteen) < 150_000
    base = _peak_rss()
    # Eight bilevel PNGs at once took ~1.4 GB; one 16-bit PNG ~0.8 GB. Decoded one at a
    # time, each shrunk to the model's input before the next, they take one image's worth.
    name = http.get("/v1/models").json()["data"][0]["id"]
    many = http.post("/v1/embeddings", json={"model": name, "input": [bilevel] * 8})
    assert many.status_code == 200, many.text
    assert len(many.json()["data"]) == 8
    deep = http.post("/v1/classify", json={"images": [sixteen], "labels": "a ramp,a cat"})
    assert deep.status_code == 200, deep.text
    assert deep.json()["results"][0]["labels"]
    grown = _peak_rss() - base
    assert grown < 450 * 2**20, f"peak memory grew {grown / 2**20:.0f} MiB"


def test_images_past_the_request_budget_are_refused_before_decoding(
    http: httpx.Client, live: LiveServer
) -> None:
    # 36 Mpx of RGBA: compositing it on white to make RGB takes ~690 MiB at its peak.
    rgba = _png(Image.new("RGBA", (6000, 6000), (1, 2, 3, 100)))
    if not _peak_rss_reset():
        pytest.skip("needs Linux /proc/self/clear_refs to measure peak memory")
    base = _peak_rss()
    for route, body in [
        ("/v1/classify", {"images": [rgba], "labels": "a cat"}),
        ("/v1/search", {"images": [rgba]}),
    ]:
        error = error_of(http.post(route, json=body), 413)
        assert error["code"] == "decoded_bytes_too_large", error
        limit = live.settings.limits.max_request_decoded_bytes
        assert f"{limit / 2**20:,.0f} MiB" in error["message"]
    assert _peak_rss() - base < 200 * 2**20
    # A request that fits is answered as before.
    small = _png(Image.new("RGBA", (64, 48), (200, 10, 10, 128)))
    assert http.post("/v1/classify", json={"images": [small], "labels": "red"}).status_code == 200


def test_server_budget_is_shared_by_requests_and_gives_503_when_held() -> None:
    from zeroshot_vision._errors import ServerBusyError
    from zeroshot_vision.server._inputs import DecodeBudget, RequestTooLargeError

    budget = DecodeBudget(100, wait_seconds=0.2)
    with pytest.raises(RequestTooLargeError), budget.hold(101):
        pass
    released = threading.Event()

    def hold_a_while() -> None:
        with budget.hold(70):
            released.wait(5)

    holder = threading.Thread(target=hold_a_while)
    holder.start()
    try:
        deadline = time.monotonic() + 5
        while budget.in_use != 70 and time.monotonic() < deadline:
            time.sleep(0.01)
        with budget.hold(30):  # fits beside it
            assert budget.in_use == 100
        with pytest.raises(ServerBusyError), budget.hold(31):
            pass
        waiter_got_it = threading.Event()

        def wait_for_it() -> None:
            budget.wait_seconds = 5
            with budget.hold(80):
                waiter_got_it.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        released.set()  # the holder finishes: the waiter gets its share
        waiter.join(10)
        assert waiter_got_it.is_set()
    finally:
        released.set()
        holder.join(10)
    assert budget.in_use == 0


def test_resized_images_give_the_same_vectors_as_the_originals(
    http: httpx.Client, photo_paths: list[Path], tiny_encoder: Any
) -> None:
    import numpy as np

    name = http.get("/v1/models").json()["data"][0]["id"]
    items = [
        "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
        for p in photo_paths[:3]
    ]
    answer = http.post("/v1/embeddings", json={"model": name, "input": items})
    assert answer.status_code == 200, answer.text
    served = np.array([d["embedding"] for d in answer.json()["data"]], dtype=np.float32)
    local = tiny_encoder.encode_images(photo_paths[:3])
    np.testing.assert_allclose(served, local, atol=1e-5)


# -- item 3: slow and idle connections -----------------------------------------------------------


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200 "ok" (the protocol is under test, not the routes)."""
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def guarded() -> Iterator[tuple[int, Any]]:
    """uvicorn with zsv serve's connection limits, tightened to make tests quick."""
    import uvicorn

    from zeroshot_vision.server._connections import (
        ConnectionLimits,
        RateLimitedLog,
        uvicorn_config,
    )
    from zeroshot_vision.server._run import bind

    sock = bind("127.0.0.1", 0)
    limits = ConnectionLimits(header_timeout=0.5, keep_alive_timeout=5, max_connections=20)
    server = uvicorn.Server(uvicorn_config(_hello, limits=limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield int(sock.getsockname()[1]), server
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        for name in ("uvicorn.error", "asyncio", "zeroshot_vision.server._connections"):
            flooded = logging.getLogger(name)
            for added in [f for f in flooded.filters if isinstance(f, RateLimitedLog)]:
                flooded.removeFilter(added)


def _half_sent(port: int) -> Any:
    import socket

    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return conn


def _closed_within(conn: Any, seconds: float) -> bool:
    """Whether the server closes ``conn`` (or resets it) within ``seconds``."""
    conn.settimeout(seconds)
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_half_sent_request_head_is_closed_after_the_header_timeout(
    guarded: tuple[int, Any],
) -> None:
    import socket

    port, _ = guarded
    conn = _half_sent(port)
    try:
        assert _closed_within(conn, 5)
    finally:
        conn.close()
    # Also the second request of a keep-alive connection.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b"\r\n\r\nok"):
            answer += conn.recv(1024)
        assert answer.startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _closed_within(conn, 3)  # keep-alive timeout is 5 s: the head deadline closed it


def test_past_the_connection_cap_the_slowest_connection_makes_room(
    guarded: tuple[int, Any],
) -> None:
    port, _ = guarded
    slow = [_half_sent(port) for _ in range(40)]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(3):
                assert client.get("/").text == "ok"
        # The first ones opened were closed to make room; the last ones still wait.
        assert _closed_within(slow[0], 2)
        assert not _closed_within(slow[-1], 0.1)
    finally:
        for conn in slow:
            conn.close()


def test_log_lines_of_one_cause_are_rate_limited() -> None:
    from zeroshot_vision.server._connections import RateLimitedLog

    records = []
    limiter = RateLimitedLog(burst=3, period=60)
    log = logging.getLogger("tests.flood")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log.addHandler(handler)
    log.addFilter(limiter)
    log.propagate = False
    try:
        for i in range(1000):
            log.warning("connection %d refused", i)
        log.warning("another cause")
    finally:
        log.removeHandler(handler)
        log.removeFilter(limiter)
    assert [r.getMessage() for r in records] == [
        "connection 0 refused",
        "connection 1 refused",
        "connection 2 refused",
        "another cause",
    ]
    limiter.period = 0  # a new window: the next line says how many were left out
    record = logging.LogRecord(
        "tests.flood", logging.WARNING, "", 0, "connection %d refused", (1,), None
    )
    assert limiter.filter(record)
    assert "997 more like this left out" in record.getMessage()


_SERVE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from zeroshot_vision.server._run import serve
serve(model=sys.argv[1], port=0, on_listening=lambda host, port: print(port, flush=True))
"""


def test_normal_requests_are_served_while_a_thousand_slow_connections_are_open(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """``zsv serve`` in its own process, its open-files limit at the common 1024, and
    1,100 connections that never finish their request head."""
    import resource
    import subprocess
    import sys

    wanted = 1100
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + 100:
        pytest.skip(f"this test opens {wanted} sockets; the open-files limit is {soft}")

    def server_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    log = tmp_path / "server.log"
    with log.open("wb") as errors:
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(tiny_model_dir)],
            stdout=subprocess.PIPE,
            stderr=errors,
            preexec_fn=server_limit,
        )
        slow: list[Any] = []
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the server did not get ready"
                time.sleep(0.2)
            slow = [_half_sent(port) for _ in range(wanted)]
            started = time.monotonic()
            with httpx.Client(base_url=url, timeout=10) as client:
                for _ in range(5):
                    assert client.get("/healthz").json() == {"status": "ok"}
                name = client.get("/v1/models").json()["data"][0]["id"]
                embedded = client.post("/v1/embeddings", json={"model": name, "input": "a cat"})
                assert embedded.status_code == 200, embedded.text
            assert time.monotonic() - started < 30
        finally:
            for conn in slow:
                conn.close()
            server.terminate()
            server.wait(30)
            if server.stdout is not None:
                server.stdout.close()
    # A flood of connections writes a few log lines, not megabytes.
    assert log.stat().st_size < 200_000, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
