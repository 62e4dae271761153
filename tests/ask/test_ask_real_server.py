"""engine.ask against a real OpenAI-compatible server: ``transformers serve`` running a tiny
random LLaVA on 127.0.0.1 (the session-scoped ``vlm_server`` fixture).

The answers are random text, so these tests check the plumbing: the request we sent (read
back from the wire), what the server says it received (its request log and its prompt
token count, which grows by a fixed number of tokens per image), streaming, citations
parsed or the fallback, and the real server's own errors.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import httpx
import pytest
from PIL import Image

from zeroshot_vision._ask import Answer, parse_citations
from zeroshot_vision._errors import LLMModelNotFoundError
from zeroshot_vision._llm import LLMEndpoint
from zeroshot_vision.testing import TINY_VLM_IMAGE_TOKENS

pytestmark = pytest.mark.slow

_LOGGED = re.compile(
    r"Request (\S+): model (\S+), (\d+) prompt tokens, generate, stream (True|False), (\{.*\})"
)


class Recorder:
    """The JSON bodies of the requests an ``openai`` client sends, read off the wire."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.client = httpx.Client(event_hooks={"request": [self._record]})

    def endpoint(self, base_url: str, model: str | None = None, **options: Any) -> LLMEndpoint:
        return LLMEndpoint(base_url, model, http_client=self.client, **options)

    def _record(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.bodies.append(json.loads(request.read()))


def server_requests(server) -> list[tuple[str, int, bool, str]]:
    """(model, prompt tokens, streamed, generation settings) per request the server logged."""
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return [
        (m.group(2), int(m.group(3)), m.group(4) == "True", m.group(5))
        for m in _LOGGED.finditer(text)
    ]


def expected_prompt_tokens(model_dir, messages: list[dict[str, Any]]) -> int:
    """The prompt tokens the tiny VLM should count for ``messages``: the chat template's
    text tokens, each ``<image>`` placeholder expanded to the image's tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = prompt.count("<image>")
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return len(ids) + images * (TINY_VLM_IMAGE_TOKENS - 1)


def image_parts(body: dict[str, Any]) -> list[str]:
    return [
        part["image_url"]["url"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]


def test_ask_sends_photos_as_data_urls_that_the_server_receives(
    photo_engine, vlm_server, tiny_vlm_dir
):
    recorder = Recorder()
    before = len(server_requests(vlm_server))
    with recorder.endpoint(vlm_server.base_url, max_tokens=8) as llm:
        answer = photo_engine.ask("Is there a cat?", k=4, llm=llm, max_images=3, image_side=64)

    assert answer.status == "answered"
    assert answer.model == str(tiny_vlm_dir)  # resolved from /v1/models: the served id
    assert len(answer.hits) == 4 and all(h.probability is not None for h in answer.hits)
    assert answer.shown == tuple(h.id for h in answer.hits[:3])

    (body,) = recorder.bodies
    assert body["model"] == str(tiny_vlm_dir) and body["max_tokens"] == 8
    urls = image_parts(body)
    assert len(urls) == 3
    for url in urls:
        assert url.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and max(image.size) <= 64
    text = body["messages"][0]["content"][0]["text"]
    assert "Question: Is there a cat?" in text
    for number, photo_id in enumerate(answer.shown, 1):
        assert f"[{number}] id={photo_id}" in text

    # The server saw one request with three images: its prompt token count is the text's
    # tokens plus the images' tokens, and it reports the same count back.
    (logged,) = server_requests(vlm_server)[before:]
    model, prompt_tokens, streamed, settings = logged
    assert model == str(tiny_vlm_dir) and not streamed and "'max_new_tokens': 8" in settings
    assert prompt_tokens == expected_prompt_tokens(tiny_vlm_dir, body["messages"])
    assert answer.usage is not None and answer.usage.prompt_tokens == prompt_tokens
    assert 1 <= answer.usage.completion_tokens <= 8

    # Random text: citations are whatever markers it holds, else the fallback.
    assert (answer.citations, answer.invalid_citations) == parse_citations(
        answer.text, answer.shown
    )
    assert answer.sources == (answer.citations or answer.shown)
    assert answer.timings.retrieve > 0 and answer.timings.encode_images > 0
    assert answer.timings.model > 0


def test_fewer_images_mean_fewer_prompt_tokens_at_the_server(
    photo_engine, vlm_server, tiny_vlm_dir
):
    recorder = Recorder()
    counts = {}
    with recorder.endpoint(vlm_server.base_url, str(tiny_vlm_dir), max_tokens=2) as llm:
        for n in (1, 2):
            answer = photo_engine.ask("a rocket", k=4, llm=llm, max_images=n)
            counts[n] = answer.usage.prompt_tokens
            assert len(image_parts(recorder.bodies[-1])) == n
            messages = recorder.bodies[-1]["messages"]
            assert counts[n] == expected_prompt_tokens(tiny_vlm_dir, messages)
        described = photo_engine.ask("a rocket", k=4, llm=llm, max_images=0)
    assert image_parts(recorder.bodies[-1]) == [] and described.status == "answered"
    assert len(described.shown) == 4 and described.unreadable == ()
    assert counts[2] - counts[1] > TINY_VLM_IMAGE_TOKENS


def test_ask_stream_yields_text_then_the_answer(photo_engine, vlm_server, tiny_vlm_dir):
    before = len(server_requests(vlm_server))
    with LLMEndpoint(vlm_server.base_url, str(tiny_vlm_dir), max_tokens=12) as llm:
        parts = list(photo_engine.ask_stream("a cat on a chair", k=3, llm=llm))

    *pieces, answer = parts
    assert isinstance(answer, Answer) and all(isinstance(p, str) for p in pieces)
    assert len(pieces) >= 2  # it came in pieces, not at once
    assert "".join(pieces) == answer.text
    assert answer.usage is not None and answer.usage.completion_tokens <= 12
    assert answer.timings.first_token is not None
    assert 0 < answer.timings.first_token <= answer.timings.model
    assert (answer.citations, answer.invalid_citations) == parse_citations(
        answer.text, answer.shown
    )
    (logged,) = server_requests(vlm_server)[before:]
    assert logged[2] is True  # the server streamed it


def test_the_real_servers_unknown_model_error(vlm_server, tiny_vlm_dir):
    with (
        LLMEndpoint(vlm_server.base_url, "no-such-vlm", max_retries=0) as llm,
        pytest.raises(LLMModelNotFoundError) as caught,
    ):
        llm.complete([{"role": "user", "content": "hello"}])
    # transformers serve answers 400 ("pinned to ...") where OpenAI answers 404.
    assert caught.value.status == 400 and caught.value.model == "no-such-vlm"
    assert caught.value.available == [str(tiny_vlm_dir)]
    assert str(tiny_vlm_dir) in str(caught.value)
