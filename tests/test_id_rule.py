"""One id rule at every entry (issue 29, item 8).

Ids are non-empty UTF-8 of at most 4,096 bytes, checked by one function
(``zeroshot_vision._checks.check_id``) that every way in calls: ``index_images`` (before
an image is read or a state row written), the stores' upsert, the server, LangChain,
LlamaIndex and datasets. So whatever ``zsv export`` writes, ``zsv import`` reads back.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zeroshot_vision import InvalidInputError, SearchEngine
from zeroshot_vision.stores._faiss import FaissStore

MAX_ID_BYTES = 4_096  # zeroshot_vision._checks.MAX_ID_BYTES, which the first test compares
TOO_LONG = "é" * (MAX_ID_BYTES // 2) + "x"  # 4,097 bytes in UTF-8, 2,049 characters
LONGEST = "é" * (MAX_ID_BYTES // 2)  # exactly 4,096 bytes


def test_the_limit_counts_utf8_bytes() -> None:
    from zeroshot_vision._checks import MAX_ID_BYTES as RULE

    assert RULE == MAX_ID_BYTES
    assert len(LONGEST.encode()) == MAX_ID_BYTES == len(TOO_LONG.encode()) - 1
    store = FaissStore(4)
    with pytest.raises(InvalidInputError, match="longer than 4,096 bytes"):
        store.upsert([TOO_LONG], np.eye(4, dtype=np.float32)[:1])
    store.upsert([LONGEST], np.eye(4, dtype=np.float32)[:1])
    assert list(store.ids()) == [LONGEST]


def test_index_images_refuses_before_reading_or_recording(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        with pytest.raises(InvalidInputError, match=r"ids\[1\] is longer than 4,096 bytes"):
            engine.index_images(photo_paths[:2], ids=["fine", TOO_LONG])
        assert len(engine.store) == 0
        assert engine.folder is not None and engine.folder.entries() == {}


def test_langchain_and_llama_index_refuse_it(tiny_encoder: Any) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode

    from zeroshot_vision.integrations import langchain, llama_index

    chain = langchain.ZeroshotVisionVectorStore(langchain.SiglipEmbeddings(tiny_encoder))
    with pytest.raises(InvalidInputError, match="longer than 4,096 bytes"):
        chain.add_texts(["a cat"], ids=[TOO_LONG])
    llama = llama_index.ZeroshotVisionVectorStore()
    node = TextNode(id_=TOO_LONG, text="a cat", embedding=[1.0, 0.0, 0.0, 0.0])
    with pytest.raises(InvalidInputError, match="longer than 4,096 bytes"):
        llama.add([node])


def test_datasets_refuse_it(tiny_encoder: Any) -> None:
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from zeroshot_vision.integrations.hf_datasets import index_dataset

    rows = {"image": [Image.new("RGB", (16, 16), (200, 0, 0))], "id": [TOO_LONG]}
    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    with pytest.raises(InvalidInputError, match="longer than 4,096 bytes"):
        index_dataset(engine, datasets.Dataset.from_dict(rows), id_column="id")
    assert len(engine.store) == 0


def test_the_server_answers_400(tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]) -> None:
    httpx = pytest.importorskip("httpx")
    from tests.helpers import open_service, start_server, stop_server

    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:1], ids=["first"])
    service = open_service(folder, tiny_encoder, writes=True)
    server, running = start_server(service)
    try:
        image = base64.b64encode(photo_paths[1].read_bytes()).decode()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            answer = http.post("/v1/indexes/photos/records", json={"id": TOO_LONG, "image": image})
            assert answer.status_code == 400, answer.text
            assert "4,096 bytes" in answer.json()["error"]["message"]
            assert http.get("/v1/indexes/photos").json()["count"] == 1
    finally:
        stop_server(running)
        service.close()


def test_the_longest_id_survives_export_and_import(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from zeroshot_vision.stores._parquet import export_store, import_store

    store = FaissStore(4)
    store.upsert([LONGEST, "short"], np.eye(4, dtype=np.float32)[:2])
    assert export_store(store, tmp_path / "v.parquet") == 2
    again = FaissStore(4)
    assert import_store(tmp_path / "v.parquet", again) == 2
    assert sorted(again.ids()) == sorted([LONGEST, "short"])
