"""Fixtures of the ask tests: an engine over real photos, and the scripted endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.ask.fake_llm import FakeLLM, start_fake_llm


@pytest.fixture(scope="module")
def photo_engine(tiny_encoder, photo_paths):
    """An in-memory engine over four real photos, ids their stems."""
    from zeroshot_vision import SearchEngine
    from zeroshot_vision.stores import FaissStore

    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    photos = photo_paths[:4]
    report = engine.index_images(photos, ids=[p.stem for p in photos])
    assert report.ok, report.failed
    return engine


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    state, server = start_fake_llm()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
