"""Dynamic batching: requests share forward passes, the queue is bounded, a full queue is
a 503 with ``Retry-After``, and many concurrent clients all get the right answers."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.helpers import LiveServer, open_service, start_server, stop_server

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.server._batching import Batcher, BatchObserver, ServerBusyError
from zeroshot_vision.server._service import BatchOptions


class Recorder(BatchObserver):
    def __init__(self) -> None:
        self.sizes: list[tuple[str, int]] = []

    def batch(self, kind: str, size: int, seconds: float) -> None:
        self.sizes.append((kind, size))


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_waiting_jobs_share_one_forward_pass(tiny_encoder: Any) -> None:
    recorder = Recorder()
    batcher = Batcher(tiny_encoder, max_batch_size=8, max_wait_ms=50, observer=recorder)
    release = threading.Event()
    try:
        # Hold the model thread so that the next jobs are all waiting when it is free.
        blocker = threading.Thread(target=batcher.call, args=(release.wait,))
        blocker.start()
        texts = [f"batched text number {i}" for i in range(6)]
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(batcher.encode_texts, [text]) for text in texts]
            wait_for(lambda: batcher._queue.qsize() == 6)
            release.set()
            got = np.concatenate([future.result() for future in futures])
        blocker.join()
        assert recorder.sizes == [("text", 6)]
        np.testing.assert_allclose(got, tiny_encoder.encode_texts(texts), atol=1e-6)
    finally:
        release.set()
        batcher.close()


def test_a_lone_admitted_request_does_not_wait_for_company(tiny_encoder: Any) -> None:
    recorder = Recorder()
    # A wait far longer than a forward pass: a lone request that waited would take 5 s.
    batcher = Batcher(tiny_encoder, max_batch_size=8, max_wait_ms=5000, observer=recorder)
    try:
        tiny_encoder.encode_texts(["warm the tokenizer and the model up"])
        with batcher.admit():
            start = time.monotonic()
            batcher.encode_texts(["only me"])
            elapsed = time.monotonic() - start
        assert elapsed < 4.0 and recorder.sizes == [("text", 1)]
    finally:
        batcher.close()


def test_an_admitted_request_still_gets_waited_for(tiny_encoder: Any) -> None:
    recorder = Recorder()
    batcher = Batcher(tiny_encoder, max_batch_size=8, max_wait_ms=5000, observer=recorder)
    first_sent = threading.Event()

    def request(text: str, before: threading.Event | None) -> Any:
        with batcher.admit():
            if before is not None:
                assert before.wait(10)
                time.sleep(0.2)  # well after the first job reached the model thread
            else:
                first_sent.set()
            return batcher.encode_texts([text])

    try:
        # The outer admission keeps the batch waiting for the late request.
        with batcher.admit(), ThreadPoolExecutor(2) as pool:
            early = pool.submit(request, "the first text", None)
            late = pool.submit(request, "the second text", first_sent)
            early.result(), late.result()
        assert recorder.sizes == [("text", 2)]  # the second joined the first's batch
    finally:
        batcher.close()


def test_a_backlogged_odd_text_batch_waits_to_fill_its_pass(tiny_encoder: Any) -> None:
    """A text queued while the model was busy leaves a row of its 2-row pass empty: the
    batcher waits for one more text (other clients are likely on their way) instead of
    computing the row as filler, even though every admitted request is already in the
    batch. A full pass from a backlog, and an odd one from an idle model, go at once."""
    assert tiny_encoder.text_pass_rows == 2
    recorder = Recorder()
    batcher = Batcher(tiny_encoder, max_batch_size=8, max_wait_ms=5000, observer=recorder)
    release = threading.Event()

    def request(texts: list[str]) -> Any:
        with batcher.admit():
            return batcher.encode_texts(texts)

    try:
        tiny_encoder.encode_texts(["warm the tokenizer and the model up"])
        with ThreadPoolExecutor(2) as pool:
            # Busy model, one text waiting: the backlog.
            blocker = threading.Thread(target=batcher.call, args=(release.wait,))
            blocker.start()
            wait_for(lambda: batcher._queue.qsize() == 0)
            early = pool.submit(request, ["the first text"])
            wait_for(lambda: batcher._queue.qsize() == 1)
            release.set()
            wait_for(lambda: batcher._queue.qsize() == 0)  # the model thread holds it
            time.sleep(0.2)  # well after it: the batch is already gathering
            late = pool.submit(request, ["the second text"])
            got = np.concatenate([early.result(10), late.result(10)])
            blocker.join()
        assert recorder.sizes == [("text", 2)]  # one full pass, not two half-empty ones
        np.testing.assert_array_equal(
            got, tiny_encoder.encode_texts(["the first text", "the second text"])
        )

        # Two texts from a backlog fill their pass: no wait.
        release.clear()
        blocker = threading.Thread(target=batcher.call, args=(release.wait,))
        blocker.start()
        wait_for(lambda: batcher._queue.qsize() == 0)
        with ThreadPoolExecutor(1) as pool:
            pair = pool.submit(request, ["a third text", "a fourth text"])
            wait_for(lambda: batcher._queue.qsize() == 1)
            start = time.monotonic()
            release.set()
            pair.result(10)
            assert time.monotonic() - start < 4.0
        blocker.join()

        # One text at an idle model (nothing queued behind anything): no wait either.
        start = time.monotonic()
        request(["a lone text"])
        assert time.monotonic() - start < 4.0
        assert recorder.sizes[1:] == [("text", 2), ("text", 1)]
    finally:
        release.set()
        batcher.close()


def test_batches_respect_the_size_limit_and_bad_input_fails_alone(tiny_encoder: Any) -> None:
    recorder = Recorder()
    batcher = Batcher(tiny_encoder, max_batch_size=3, max_wait_ms=50, observer=recorder)
    release = threading.Event()
    try:
        blocker = threading.Thread(target=batcher.call, args=(release.wait,))
        blocker.start()
        items = [["a"], ["b", "c"], ["\ud800"], ["d"], ["e"]]
        with ThreadPoolExecutor(5) as pool:
            futures = []
            for item in items:  # in order, so the batches are predictable
                futures.append(pool.submit(batcher.encode_texts, item))
                queued = len(futures)
                wait_for(lambda: batcher._queue.qsize() == queued)  # noqa: B023
            release.set()
            with pytest.raises(InvalidInputError, match="UTF-8"):
                futures[2].result()
            answers = [f.result() for i, f in enumerate(futures) if i != 2]
        blocker.join()
        assert all(size <= 3 for _, size in recorder.sizes)
        for item, answer in zip([i for n, i in enumerate(items) if n != 2], answers):
            np.testing.assert_allclose(answer, tiny_encoder.encode_texts(item), atol=1e-6)
    finally:
        release.set()
        batcher.close()


def test_a_full_queue_refuses_at_once(tiny_encoder: Any) -> None:
    batcher = Batcher(tiny_encoder, queue_size=2)
    try:
        with (
            batcher.admit(),
            batcher.admit(),
            pytest.raises(ServerBusyError, match="2 requests waiting"),
            batcher.admit(),
        ):
            pass
        with batcher.admit():  # places come back
            assert batcher.waiting == 1
    finally:
        batcher.close()
    with pytest.raises(ServerBusyError, match="shutting down"):
        batcher.encode_texts(["late"])


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"queue_size": -1}, "queue_size"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"max_wait_ms": "5"}, "max_wait_ms"),
    ],
)
def test_bad_batching_options(tiny_encoder: Any, options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        Batcher(tiny_encoder, **options)


def test_full_queue_is_a_503_with_retry_after(photo_index: Path, tiny_encoder: Any) -> None:
    service = open_service(photo_index, tiny_encoder, batching=BatchOptions(queue_size=2))
    server, running = start_server(service)
    release = threading.Event()
    batcher = service.models[0].batcher
    try:
        blocker = threading.Thread(target=batcher.call, args=(release.wait,))
        blocker.start()
        with httpx.Client(base_url=server.url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
            waiting = [
                pool.submit(http.post, "/v1/search", json={"query": f"queued {i}"})
                for i in range(2)
            ]
            wait_for(lambda: batcher.waiting == 2)
            refused = http.post("/v1/search", json={"query": "one too many"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "queue_full"
            assert http.get("/healthz").status_code == 200  # no model needed: answered
            release.set()
            assert [f.result().status_code for f in waiting] == [200, 200]
        blocker.join()
    finally:
        release.set()
        stop_server(running)
        service.close()


def test_eight_clients_fifty_mixed_requests_each(
    live: LiveServer, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    """8 threads x 50 requests (texts, images, searches): no error, every answer right."""
    from zeroshot_vision._images import load_image

    model = live.service.models[0].name
    texts = [f"a photo number {i} of something" for i in range(40)]
    text_vectors = tiny_encoder.encode_texts(texts)
    images = [base64.b64encode(p.read_bytes()).decode() for p in photo_paths]
    image_vectors = tiny_encoder.encode_loaded(
        [load_image(p, draft_size=tiny_encoder.draft_size) for p in photo_paths]
    )
    names = [p.name for p in photo_paths]

    def client(worker: int) -> int:
        checked = 0
        with httpx.Client(base_url=live.url, timeout=60) as http:
            for n in range(50):
                pick = (worker * 50 + n) % len(texts)
                kind = n % 3
                if kind == 0:
                    answer = http.post(
                        "/v1/embeddings", json={"model": model, "input": texts[pick]}
                    )
                    assert answer.status_code == 200, answer.text
                    got = answer.json()["data"][0]["embedding"]
                    np.testing.assert_allclose(got, text_vectors[pick], atol=1e-5)
                elif kind == 1:
                    i = pick % len(images)
                    answer = http.post(
                        "/v1/embeddings", json={"model": model, "input": [{"image": images[i]}]}
                    )
                    assert answer.status_code == 200, answer.text
                    got = answer.json()["data"][0]["embedding"]
                    np.testing.assert_allclose(got, image_vectors[i], atol=1e-5)
                else:
                    i = pick % len(images)
                    answer = http.post("/v1/search", json={"images": [images[i]], "k": 1})
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["results"][0]["id"] == names[i]
                checked += 1
        return checked

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(client, range(8))) == 400
    assert live.service.ready


def test_submit_queues_without_blocking_and_its_future_holds_the_vectors(
    tiny_encoder: Any,
) -> None:
    """What the event loop awaits (``/v1/embeddings`` of texts): the same vectors as the
    blocking call, a finished future for nothing, and the encoder's error for bad input."""
    batcher = Batcher(tiny_encoder, max_batch_size=8, max_wait_ms=5)
    release = threading.Event()
    try:
        blocker = threading.Thread(target=batcher.call, args=(release.wait,))
        blocker.start()
        wait_for(lambda: batcher._queue.qsize() == 0 and blocker.is_alive())
        future = batcher.submit("text", ["a cat", "a rocket"])
        assert not future.done()  # queued behind the blocker: submit did not wait
        release.set()
        np.testing.assert_array_equal(
            future.result(10), batcher.encode_texts(["a cat", "a rocket"])
        )
        empty = batcher.submit("text", [])
        assert empty.done() and empty.result().shape == (0, tiny_encoder.dim)
        with pytest.raises(InvalidInputError):
            batcher.submit("text", ["   "]).result(10)
        blocker.join()
    finally:
        release.set()
        batcher.close()
    with pytest.raises(ServerBusyError):
        batcher.submit("text", ["after close"])
