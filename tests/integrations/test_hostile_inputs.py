"""What a careless or hostile caller hands the integrations (issue 29, items 9, 10, extras).

Deep filters are the project's filter error, never ``RecursionError``; a string is one id,
never iterated; ``None`` where a list belongs is an ``InvalidInputError``; a 10 MB text
is embedded in a bounded time, its vector the one the model gives reading the text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from zeroshot_vision import InvalidInputError, SearchEngine
from zeroshot_vision._errors import InvalidFilterError
from zeroshot_vision.stores._faiss import FaissStore

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from zeroshot_vision.integrations import langchain, llama_index


@pytest.fixture
def chain(tiny_encoder: Any) -> langchain.ZeroshotVisionVectorStore:
    store = langchain.ZeroshotVisionVectorStore(langchain.SiglipEmbeddings(tiny_encoder))
    store.add_texts(["one", "two", "three", "four"], ids=["a", "b", "c", "abc"])
    return store


@pytest.fixture
def llama() -> llama_index.ZeroshotVisionVectorStore:
    store = llama_index.ZeroshotVisionVectorStore()
    nodes = [
        TextNode(id_=item, text=item, embedding=list(vector), metadata={"year": 2020})
        for item, vector in zip(["a", "b", "c", "abc"], np.eye(4))
    ]
    store.add(nodes)
    return store


# -- item 9: deep filters ---------------------------------------------------------------


def test_a_deep_langchain_filter_is_the_filter_error(
    chain: langchain.ZeroshotVisionVectorStore,
) -> None:
    deep: dict[str, Any] = {"year": 2020}
    for _ in range(3_000):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidFilterError, match="nests filters more than 32 deep"):
        chain.similarity_search("one", filter=deep)
    with pytest.raises(InvalidFilterError, match="nests filters more than 32 deep"):
        langchain.check_filter(deep)


def test_a_deep_llama_index_filter_is_the_filter_error(
    llama: llama_index.ZeroshotVisionVectorStore,
) -> None:
    deep = MetadataFilters(filters=[MetadataFilter(key="year", value=2020)])
    for _ in range(1_500):
        deep = MetadataFilters(filters=[deep])
    query = VectorStoreQuery(query_embedding=[1.0, 0, 0, 0], similarity_top_k=2, filters=deep)
    with pytest.raises(InvalidFilterError, match="nest more than 32 deep"):
        llama.query(query)
    with pytest.raises(InvalidFilterError, match="nest more than 32 deep"):
        llama.delete_nodes(filters=deep)


def test_filters_within_the_limit_still_work(llama: llama_index.ZeroshotVisionVectorStore) -> None:
    nested = MetadataFilters(filters=[MetadataFilter(key="year", value=2020)])
    for _ in range(10):
        nested = MetadataFilters(filters=[nested])
    query = VectorStoreQuery(query_embedding=[1.0, 0, 0, 0], similarity_top_k=4, filters=nested)
    assert len(llama.query(query).ids or []) == 4


# -- item 10: a string is one id --------------------------------------------------------


def test_langchain_delete_of_a_string_deletes_that_one_id(
    chain: langchain.ZeroshotVisionVectorStore,
) -> None:
    chain.delete("abc")
    assert chain.store is not None and sorted(chain.store.ids()) == ["a", "b", "c"]
    assert [doc.id for doc in chain.get_by_ids("a")] == ["a"]


def test_llama_index_node_ids_of_a_string_is_one_id(
    llama: llama_index.ZeroshotVisionVectorStore,
) -> None:
    assert [node.node_id for node in llama.get_nodes("abc")] == ["abc"]
    llama.delete_nodes("abc")
    assert [node.node_id for node in llama.get_nodes(["a", "b", "c", "abc"])] == ["a", "b", "c"]


def test_a_lone_text_is_one_text(chain: langchain.ZeroshotVisionVectorStore) -> None:
    assert len(chain.embeddings.embed_documents("abc")) == 1  # type: ignore[arg-type]


# -- extras: None is a project error, long texts are bounded ------------------------------


def test_none_is_an_invalid_input_error_everywhere(
    tiny_encoder: Any,
    chain: langchain.ZeroshotVisionVectorStore,
    llama: llama_index.ZeroshotVisionVectorStore,
) -> None:
    engine = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    calls = {
        "encode_texts": lambda: tiny_encoder.encode_texts(None),
        "encode_images": lambda: tiny_encoder.encode_images(None),
        "index_images": lambda: engine.index_images(None),
        "classify images": lambda: engine.classify(None, ["a cat"]),
        "classify labels": lambda: engine.classify([], None),
        "store upsert": lambda: engine.store.upsert(None, np.ones((1, tiny_encoder.dim))),
        "store fetch": lambda: engine.store.fetch(None),
        "store delete": lambda: engine.store.delete(None),
        "embed_documents": lambda: chain.embeddings.embed_documents(None),
        "embed_image": lambda: chain.embeddings.embed_image(None),
        "embed_image item": lambda: chain.embeddings.embed_image([None]),
        "add_texts": lambda: chain.add_texts(None),
        "add_images": lambda: chain.add_images(None),
        "get_by_ids": lambda: chain.get_by_ids(None),
        "llama query": lambda: llama.query(None),
        "llama add item": lambda: llama.add([None]),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidInputError):
            call()
        try:
            call()
        except InvalidInputError as exc:
            assert "NoneType" in str(exc), (name, str(exc))


def test_a_long_text_is_tokenized_only_as_far_as_the_model_reads(tiny_encoder: Any) -> None:
    text = "a photo of a red bicycle leaning on a wall " * 250_000  # 10.8 MB
    seen: list[int] = []
    tokenize = tiny_encoder.tokenize

    def spy(texts: list[str]) -> Any:
        seen.extend(len(item) for item in texts)
        return tokenize(texts)

    tiny_encoder.clear_text_cache()
    tiny_encoder.tokenize = spy
    try:
        vector = tiny_encoder.encode_texts([text])
    finally:
        del tiny_encoder.tokenize
    assert seen and max(seen) <= tiny_encoder.max_text_chars < 100_000
    # The vector is the model's reading of the whole text: its first tokens are the same.
    head = text[: 10 * tiny_encoder.max_text_chars].strip().lower()
    reference = tiny_encoder._encode_text_batch([head])
    np.testing.assert_allclose(vector, reference, atol=1e-6)
