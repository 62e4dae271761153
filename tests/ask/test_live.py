r"""An opt-in run against a real vision-language model endpoint.

Set ``ZSV_ASK_LIVE_URL`` (the base URL, up to ``/v1``), and ``ZSV_ASK_LIVE_MODEL`` and
``OPENAI_API_KEY`` where the endpoint needs them::

    ZSV_ASK_LIVE_URL=http://127.0.0.1:11434/v1 ZSV_ASK_LIVE_MODEL=llava \
        pytest tests/ask/test_live.py

A real model reads the photos, so this checks what the tiny random one cannot: that the
answer cites a photo it was shown and that a cat question cites the cat.
"""

from __future__ import annotations

import os

import pytest

from zeroshot_vision._llm import LLMEndpoint

LIVE_URL = os.environ.get("ZSV_ASK_LIVE_URL")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_URL, reason="set ZSV_ASK_LIVE_URL to ask a real VLM endpoint"),
]


def test_a_real_vlm_answers_and_cites_the_photo_it_was_shown(photo_engine):
    with LLMEndpoint(LIVE_URL, os.environ.get("ZSV_ASK_LIVE_MODEL"), max_retries=2) as llm:
        answer = photo_engine.ask(
            "Which photo shows a cat? Cite it.", k=4, llm=llm, min_probability=None
        )
        streamed = list(photo_engine.ask_stream("Is there a rocket?", k=4, llm=llm))
    assert answer.status == "answered" and answer.text.strip()
    assert answer.usage is None or answer.usage.prompt_tokens > 0
    assert answer.cited, f"a real VLM should cite a photo: {answer.text!r}"
    assert "chelsea" in answer.citations, answer.text
    assert streamed[-1].text == "".join(p for p in streamed[:-1] if isinstance(p, str))
