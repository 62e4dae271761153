"""engine.ask's faults and documented behaviours: each a specific error of the LLMError tree
(or a documented answer), against a scripted endpoint on 127.0.0.1 (tests/ask/fake_llm.py)
and a port nothing listens on. The real server's own cases are in test_ask_real_server.py.
"""

from __future__ import annotations

import logging
import socket

import pytest

from zeroshot_vision._ask import (
    DEFAULT_PROMPT,
    MAX_QUESTION_CHARS,
    build_messages,
    check_prompt,
    parse_citations,
)
from zeroshot_vision._errors import (
    InvalidInputError,
    LLMAuthError,
    LLMImagesRejectedError,
    LLMModelNotFoundError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnreachableError,
)
from zeroshot_vision._llm import LLMEndpoint

SECRET = "sk-test-0123456789-secret"


def endpoint(fake, model="good", **options) -> LLMEndpoint:
    options.setdefault("max_retries", 0)
    return LLMEndpoint(fake.url, model, **options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_citations_are_parsed_and_ids_not_shown_are_dropped_and_flagged(
    photo_engine, fake_llm, caplog
):
    fake_llm.reply = "The cat [2] sits by a mug [1][2]; a dog is in [9] and [2, 7]."
    with endpoint(fake_llm) as llm, caplog.at_level(logging.WARNING):
        answer = photo_engine.ask("Is there a cat?", k=3, llm=llm)
    assert answer.citations == (answer.shown[1], answer.shown[0])
    assert answer.invalid_citations == ("9", "7")
    assert answer.cited and answer.sources == answer.citations
    assert "[9], [7]" in caplog.text
    assert answer.usage is not None and answer.usage.total_tokens == 18
    assert answer.model == "good"


def test_no_marker_falls_back_to_every_photo_shown(photo_engine, fake_llm):
    fake_llm.reply = "I see a cat."
    with endpoint(fake_llm) as llm:
        answer = photo_engine.ask("Is there a cat?", k=3, llm=llm)
    assert answer.citations == () and not answer.cited
    assert answer.sources == answer.shown and len(answer.shown) == 3


def test_streamed_citations_come_with_the_final_answer(photo_engine, fake_llm):
    fake_llm.reply = "A rocket [1] on a pad [3]."
    with endpoint(fake_llm) as llm:
        *pieces, answer = photo_engine.ask_stream("a rocket", k=3, llm=llm)
    assert "".join(pieces) == fake_llm.reply == answer.text
    assert answer.citations == (answer.shown[0], answer.shown[2])
    assert fake_llm.requests[-1]["body"]["stream"] is True


def test_endpoint_down_is_unreachable(photo_engine):
    llm = LLMEndpoint(f"http://127.0.0.1:{closed_port()}/v1", "good", max_retries=0)
    with llm, pytest.raises(LLMUnreachableError) as caught:
        photo_engine.ask("a cat", llm=llm)
    assert isinstance(caught.value, ConnectionError)
    assert "is the server running" in str(caught.value)


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(photo_engine, fake_llm, caplog):
    fake_llm.key = "the-right-key"
    llm = endpoint(fake_llm, api_key=SECRET)
    with llm, caplog.at_level(logging.DEBUG), pytest.raises(LLMAuthError) as caught:
        photo_engine.ask("a cat", llm=llm)
    assert caught.value.status == 401 and isinstance(caught.value, PermissionError)
    assert fake_llm.requests[-1]["authorization"] == f"Bearer {SECRET}"  # it was sent
    for text in (str(caught.value), repr(llm), caplog.text):
        assert SECRET not in text
    assert "api_key=set" in repr(llm)


def test_no_key_says_how_to_set_one(photo_engine, fake_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake_llm.key = "needed"
    with endpoint(fake_llm) as llm, pytest.raises(LLMAuthError, match="set OPENAI_API_KEY"):
        photo_engine.ask("a cat", llm=llm)


def test_base_url_key_and_model_come_from_the_environment(photo_engine, fake_llm, monkeypatch):
    fake_llm.key = SECRET
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ZSV_LLM_MODEL", "good")
    answer = photo_engine.ask("a cat", k=2)  # llm=None: LLMEndpoint() from the environment
    assert answer.model == "good" and answer.status == "answered"
    assert fake_llm.requests[-1]["body"]["model"] == "good"


def test_unknown_model_lists_what_the_endpoint_serves(photo_engine, fake_llm):
    with endpoint(fake_llm, "gpt-9") as llm, pytest.raises(LLMModelNotFoundError) as caught:
        photo_engine.ask("a cat", llm=llm)
    assert caught.value.status == 404 and caught.value.model == "gpt-9"
    assert "good" in caught.value.available and "good" in str(caught.value)


def test_no_model_and_several_served_asks_to_name_one(photo_engine, fake_llm, monkeypatch):
    monkeypatch.delenv("ZSV_LLM_MODEL", raising=False)
    llm = LLMEndpoint(fake_llm.url, max_retries=0)
    with llm, pytest.raises(LLMModelNotFoundError, match="name one"):
        photo_engine.ask("a cat", llm=llm)


def test_a_model_that_rejects_images_and_the_text_only_way_round(photo_engine, fake_llm):
    with endpoint(fake_llm, "text-only") as llm:
        with pytest.raises(LLMImagesRejectedError) as caught:
            photo_engine.ask("a cat", llm=llm)
        assert caught.value.status == 400 and isinstance(caught.value, ValueError)
        assert "max_images=0" in str(caught.value)
        answer = photo_engine.ask("a cat", k=2, llm=llm, max_images=0)
    assert answer.status == "answered" and len(answer.shown) == 2


def test_timeouts(photo_engine, fake_llm):
    fake_llm.delay = 2.0
    with endpoint(fake_llm, "slow", timeout=0.3) as llm:
        with pytest.raises(LLMTimeoutError) as caught:
            photo_engine.ask("a cat", llm=llm)
        assert isinstance(caught.value, TimeoutError) and "0.3 s" in str(caught.value)
        with pytest.raises(LLMTimeoutError):
            list(photo_engine.ask_stream("a cat", llm=llm))


def test_a_5xx_is_a_response_error(photo_engine, fake_llm):
    with endpoint(fake_llm, "broken") as llm, pytest.raises(LLMResponseError) as caught:
        photo_engine.ask("a cat", llm=llm)
    assert caught.value.status == 500 and "processing your request" in (caught.value.detail or "")


@pytest.mark.parametrize("model", ["cut", "error-event"])
def test_a_stream_that_breaks_mid_answer_keeps_what_came(photo_engine, fake_llm, model):
    fake_llm.reply = "one two three four"
    pieces = []
    with endpoint(fake_llm, model) as llm, pytest.raises(LLMResponseError) as caught:
        for part in photo_engine.ask_stream("a cat", llm=llm):
            pieces.append(part)
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert caught.value.partial_text == "".join(pieces)
    if model == "error-event":
        assert "upstream worker crashed" in str(caught.value)


def test_empty_index_answers_without_calling_the_model(tiny_encoder, fake_llm):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision.stores import FaissStore

    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    with endpoint(fake_llm) as llm:
        answer = engine.ask("a cat", llm=llm)
        (streamed,) = engine.ask_stream("a cat", llm=llm)
    assert answer.status == streamed.status == "empty-index"
    assert answer.model is None and answer.hits == () and "no photos" in answer.text
    assert fake_llm.requests == []


def test_nothing_above_the_threshold_answers_without_the_model_unless_asked(photo_engine, fake_llm):
    with endpoint(fake_llm) as llm:
        answer = photo_engine.ask("a cat", k=3, llm=llm, min_probability=0.999)
        assert answer.status == "nothing-retrieved" and answer.model is None
        assert len(answer.hits) == 3 and answer.shown == ()  # the hits are still there
        assert "0.999" in answer.text and fake_llm.requests == []

        asked = photo_engine.ask(
            "a cat", k=3, llm=llm, min_probability=0.999, answer_without_photos=True
        )
    assert asked.status == "answered" and asked.shown == ()
    (request,) = fake_llm.requests
    assert isinstance(request["body"]["messages"][0]["content"], str)  # no image part
    assert "No photo" in request["body"]["messages"][0]["content"]


def test_huge_empty_and_bad_questions_are_refused_before_anything_is_sent(photo_engine, fake_llm):
    with endpoint(fake_llm) as llm:
        with pytest.raises(InvalidInputError, match="characters long"):
            photo_engine.ask("why " * MAX_QUESTION_CHARS, llm=llm)
        with pytest.raises(InvalidInputError, match="empty"):
            photo_engine.ask("   ", llm=llm)
        with pytest.raises(InvalidInputError, match="k must"):
            photo_engine.ask("a cat", k=0, llm=llm)
        with pytest.raises(InvalidInputError, match="unknown placeholders"):
            photo_engine.ask("a cat", llm=llm, prompt="{question} {secret}")
        with pytest.raises(InvalidInputError, match="empty"):
            next(photo_engine.ask_stream("", llm=llm))
    assert fake_llm.requests == []


def test_an_unreadable_photo_is_listed_without_its_image(
    tiny_encoder, photo_paths, tmp_path, fake_llm
):
    import shutil

    from zeroshot_vision import SearchEngine
    from zeroshot_vision.stores import FaissStore

    copies = [shutil.copy(p, tmp_path / p.name) for p in photo_paths[:2]]
    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    engine.index_images(copies, ids=["a", "b"])
    (tmp_path / photo_paths[0].name).unlink()
    with endpoint(fake_llm) as llm:
        answer = engine.ask("a cat", k=2, llm=llm)
    assert answer.unreadable == ("a",) and set(answer.shown) == {"a", "b"}
    content = fake_llm.requests[-1]["body"]["messages"][0]["content"]
    assert sum(part["type"] == "image_url" for part in content) == 1
    assert "id=a" in content[0]["text"] and "(image unavailable)" in content[0]["text"]


def test_a_custom_prompt_template(photo_engine, fake_llm):
    prompt = "Photos:\n{photos}\nQ: {question}\nCite like [1]. {{literal braces}}"
    with endpoint(fake_llm) as llm:
        photo_engine.ask("a cat", k=2, llm=llm, prompt=prompt)
    text = fake_llm.requests[-1]["body"]["messages"][0]["content"][0]["text"]
    assert text.startswith("Photos:\n[1] id=") and "Q: a cat" in text
    assert "{literal braces}" in text


def test_parse_citations_and_check_prompt():
    shown = ["x", "y", "z"]
    assert parse_citations("[3] then [1; 2] and [3]", shown) == (("z", "x", "y"), ())
    assert parse_citations("[0] [4] [ 2 ]", shown) == (("y",), ("0", "4"))
    assert parse_citations("no markers, [a] [1.5]", shown) == ((), ())
    assert check_prompt(DEFAULT_PROMPT) == DEFAULT_PROMPT
    with pytest.raises(InvalidInputError, match="must contain"):
        check_prompt("{photos} only")
    with pytest.raises(InvalidInputError, match="malformed"):
        check_prompt("{question")
    assert build_messages("q?", [])[0]["content"].endswith("Question: q?")
