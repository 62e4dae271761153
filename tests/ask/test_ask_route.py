"""``POST /v1/ask`` on a real ``zsv serve`` app (uvicorn on loopback), asking the real
``transformers serve`` and the scripted endpoint: JSON, server-sent events, the key,
and upstream failures as 4xx/5xx envelopes or an in-band error event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
from tests.helpers import build_index, open_service, start_server, stop_server

from zeroshot_vision._llm import LLMEndpoint

KEY = "server-key-123"


@pytest.fixture(scope="module")
def ask_server(tmp_path_factory, tiny_model_dir, tiny_encoder, photo_paths) -> Iterator[Any]:
    index = build_index(tmp_path_factory.mktemp("route-index"), tiny_model_dir, photo_paths[:4])
    service = open_service(index, tiny_encoder)
    live, running = start_server(service, api_key=KEY)
    live.app = running.server.config.app
    try:
        yield live
    finally:
        stop_server(running)
        service.close()
        llm = getattr(live.app.state, "ask_llm", None)
        if llm is not None:
            llm.close()


def use(server, llm: LLMEndpoint) -> None:
    old = getattr(server.app.state, "ask_llm", None)
    if old is not None:
        old.close()
    server.app.state.ask_llm = llm


def post(server, body: dict[str, Any], key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server.url}/v1/ask", json=body, headers=headers, timeout=120)


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.slow
def test_ask_route_against_the_real_server_json_and_stream(ask_server, vlm_server, tiny_vlm_dir):
    use(ask_server, LLMEndpoint(vlm_server.base_url, max_tokens=6))
    assert post(ask_server, {"question": "a cat"}, key=None).status_code == 401
    reply = post(ask_server, {"question": "Is there a cat?", "k": 3, "max_images": 2})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["status"] == "answered" and answer["model"] == str(tiny_vlm_dir)
    assert len(answer["hits"]) == 3 and len(answer["shown"]) == 2
    assert answer["usage"]["completion_tokens"] <= 6

    streamed = post(ask_server, {"question": "Is there a cat?", "k": 2, "stream": True})
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = sse(streamed.text)
    *deltas, (last, final) = events
    assert deltas and all(name == "delta" for name, _ in deltas)
    assert last == "answer" and "".join(d["text"] for _, d in deltas) == final["text"]


def test_ask_route_errors(ask_server):
    from tests.ask.fake_llm import start_fake_llm

    state, fake = start_fake_llm(reply="A cat [1] and [5].")
    try:
        use(ask_server, LLMEndpoint(state.url, "good", max_retries=0))
        answer = post(ask_server, {"question": "a cat", "k": 2}).json()
        assert answer["citations"] == answer["shown"][:1] and answer["invalid_citations"] == ["5"]

        reply = post(ask_server, {"question": "a cat", "model": "gpt-9"})
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "llm_model_not_found"
        reply = post(ask_server, {"question": "a cat", "model": "broken"})
        assert reply.status_code == 502 and reply.json()["error"]["code"] == "llm_error"
        reply = post(ask_server, {"question": "a cat", "model": "text-only"})
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "llm_rejects_images"
        reply = post(ask_server, {"question": "x" * 20_000})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "question"
        reply = post(ask_server, {"question": "a cat", "index": "nope"})
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "index_not_found"
        reply = post(ask_server, {"question": "a cat", "min_probability": 0.9999})
        assert reply.json()["status"] == "nothing-retrieved"

        # A stream cut short: the 200 is out, so the failure comes as an error event.
        state.reply = "one two three four"
        streamed = post(ask_server, {"question": "a cat", "model": "cut", "stream": True})
        *deltas, (last, error) = sse(streamed.text)
        assert streamed.status_code == 200 and last == "error"
        assert error["error"]["code"] == "llm_error"
        assert error["error"]["partial_text"] == "".join(d["text"] for _, d in deltas)
        # Bad input of a streamed request still gets its status code.
        assert post(ask_server, {"question": " ", "stream": True}).status_code == 400
    finally:
        fake.shutdown()
        fake.server_close()
    use(ask_server, LLMEndpoint(state.url, "good", max_retries=0))
    reply = post(ask_server, {"question": "a cat"})  # the endpoint is down now
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "llm_unreachable"
    assert httpx.get(f"{ask_server.url}/healthz", timeout=5).status_code == 200
