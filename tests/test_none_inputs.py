"""``None`` where the engine, the encoder or a store expects a collection or a path is
refused with the project's error (issue 29), never Python's raw ``TypeError``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroshot_vision._errors import InvalidInputError

CALLS: dict[str, Callable[[Any, Any, Path], object]] = {
    "index_images(None)": lambda engine, encoder, photo: engine.index_images(None),
    "classify(None, labels)": lambda engine, encoder, photo: engine.classify(None, ["a cat"]),
    "classify(images, None)": lambda engine, encoder, photo: engine.classify([photo], None),
    "classify_indexed(None)": lambda engine, encoder, photo: engine.classify_indexed(None),
    "encode_texts(None)": lambda engine, encoder, photo: encoder.encode_texts(None),
    "encode_images(None)": lambda engine, encoder, photo: encoder.encode_images(None),
    "store.upsert(None, None)": lambda engine, encoder, photo: engine.store.upsert(None, None),
    "store.fetch(None)": lambda engine, encoder, photo: engine.store.fetch(None),
    "store.delete(None)": lambda engine, encoder, photo: engine.store.delete(None),
    "SearchEngine.open(None)": lambda engine, encoder, photo: type(engine).open(
        None, encoder=encoder
    ),
    "SearchEngine.create(None)": lambda engine, encoder, photo: type(engine).create(
        None, encoder=encoder
    ),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_none_is_refused_with_the_project_error(
    call: str, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.stores._faiss import FaissStore

    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    engine.index_images(photo_paths[:1])
    with pytest.raises(InvalidInputError, match="None"):
        CALLS[call](engine, tiny_encoder, photo_paths[0])
    assert len(engine.store) == 1  # nothing was lost
