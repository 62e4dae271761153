"""The app's search by words: the mode option, snippets with the match in bold, places."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zeroshot_vision._app import SCRIPT
from zeroshot_vision._app.logic import result_cards, snippet_markdown
from zeroshot_vision._types import SearchResult

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from tests.helpers import build_index


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir, photo_paths) -> Path:
    return build_index(tmp_path_factory.mktemp("index") / "idx", tiny_model_dir, photo_paths)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_words_only_search_shows_snippets_in_bold(monkeypatch, index_dir) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--index", str(index_dir)])
    at = AppTest.from_file(str(SCRIPT), default_timeout=120).run()
    at.radio(key="mode").set_value("text")
    at.text_input(key="query").input("Italy").run()
    assert not at.exception and not at.error
    ids = [b.key.removeprefix("more-") for b in at.button if str(b.key).startswith("more-")]
    assert sorted(ids) == ["coffee", "motorcycle_left"]
    shown = "\n".join(str(m.value) for m in [*at.markdown, *at.caption])
    assert "**Italy**" in shown and "words only" in shown
    at.radio(key="mode").set_value("vector").run()
    ids = [b.key.removeprefix("more-") for b in at.button if str(b.key).startswith("more-")]
    assert len(ids) == 6  # looks only: every photo, ranked


def test_snippet_markdown_escapes_the_text_and_bolds_the_match() -> None:
    assert snippet_markdown("total [12.50] EUR") == r"total **12\.50** EUR"
    rendered = snippet_markdown("![x](http://evil) [STOP]")
    assert "](" not in re.sub(r"\\.", "", rendered) and rendered.endswith("**STOP**")


def test_cards_carry_the_place_and_say_when_only_words_found_a_photo() -> None:
    results = [
        SearchResult(id="a", score=0.1, probability=None, found_by=("text",),
                     snippet="[Lisbon]", metadata={"city": "Lisbon", "country": "Portugal"}),
        SearchResult(id="b", score=0.2, probability=0.5, found_by=("vector", "text"),
                     snippet="CAFE [CENTRAL]"),
    ]  # fmt: skip
    first, second = result_cards(results)
    assert "words only" in first.heading and first.details == ("Lisbon, Portugal",)
    assert first.snippet == "**Lisbon**"
    assert "p 0.500" in second.heading and second.snippet == "CAFE **CENTRAL**"
