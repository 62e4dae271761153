"""The app's Ask page, driven by Streamlit's AppTest: the answer streamed in, the cited
photos beside it (or the photos shown when it cites none), warnings, and errors as
messages; plus the page logic (ask_view) on its own."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from tests.helpers import build_index

from zeroshot_vision._app import SCRIPT
from zeroshot_vision._app.logic import ask_view
from zeroshot_vision._ask import Answer, AskTimings
from zeroshot_vision._llm import TokenUsage
from zeroshot_vision._types import SearchResult


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir, photo_paths):
    return build_index(tmp_path_factory.mktemp("app-index"), tiny_model_dir, photo_paths[:4])


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def ask_page(monkeypatch, index_dir, url: str, model: str = "good") -> AppTest:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--index", str(index_dir)])
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("ZSV_LLM_MODEL", model)
    at = AppTest.from_file(str(SCRIPT), default_timeout=120).run()
    at.sidebar.radio(key="page").set_value("Ask").run()
    assert not at.exception
    return at


def shown_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def test_the_ask_page_shows_the_answer_and_the_cited_photos(monkeypatch, index_dir, fake_llm):
    fake_llm.reply = "A cat sits there [2], next to [9]."
    at = ask_page(monkeypatch, index_dir, fake_llm.url)
    assert "Type a question" in at.info[0].value
    at.text_input(key="question").input("Is there a cat?").run()
    assert not at.exception and not at.error
    text = shown_text(at)
    assert "A cat sits there [2], next to [9]." in text
    assert [s.value for s in at.subheader] == ["Cited photos"]
    assert len(at.image) == 1  # the one photo cited, beside the answer
    assert "[2] · p " in text and re.search(r"good, 11 \+ \d+ tokens · retrieve", text)
    assert any("[9]" in w.value.replace("\\", "") for w in at.warning)
    assert fake_llm.requests[-1]["body"]["stream"] is True


def test_the_ask_page_without_citations_and_when_the_endpoint_fails(
    monkeypatch, index_dir, fake_llm
):
    fake_llm.reply = "Hard to say."
    at = ask_page(monkeypatch, index_dir, fake_llm.url)
    at.slider(key="ask-k").set_value(3).run()
    at.text_input(key="question").input("Is there a cat?").run()
    assert [s.value for s in at.subheader] == ["Photos shown"] and len(at.image) == 3
    assert any("cites no photo" in w.value.replace("\\", "") for w in at.warning)
    at.sidebar.text_input(key="llm-model").input("gpt-9").run()
    assert not at.exception
    assert "does not serve the model 'gpt-9'" in at.error[0].value.replace("\\", "")


def test_ask_view_numbers_photos_as_the_prompt_did():
    hits = tuple(
        SearchResult(id=i, score=0.1 * n, probability=0.5, metadata={"description": f"d {i}"})
        for n, i in enumerate(["a", "b", "c"])
    )
    answer = Answer(
        question="q", text="t [3]", citations=("c",), invalid_citations=("5",), hits=hits,
        shown=("a", "b", "c"), unreadable=("b",), model="m",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=4),
        timings=AskTimings(retrieve=0.5, encode_images=0.25, model=1.0),
    )  # fmt: skip
    view = ask_view(answer)
    assert [c.id for c in view.photos] == ["c"] and view.photos[0].heading.startswith("[3] · p")
    assert view.cited and "d c" in view.photos[0].details
    assert any("[5]" in n for n in view.notes) and any("b" in n for n in view.notes)
    assert view.footer == "m, 3 + 4 tokens · retrieve 0.50 s, images 0.25 s, model 1.00 s"
    early = ask_view(Answer(question="q", text="No photo", status="nothing-retrieved"))
    assert early.photos == () and early.footer is None and early.notes == ()
