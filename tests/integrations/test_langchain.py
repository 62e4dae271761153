"""The LangChain adapter on real photos with the tiny SigLIP: what the standard suites
do not cover (images, probabilities, filters, MMR, index folders, bad input)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")

from tests.factories import memory_engine

from zeroshot_vision import (
    FaissStore,
    ImageDecodeError,
    ImageNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    SearchEngine,
    UnsupportedFilterError,
)
from zeroshot_vision._index import file_id
from zeroshot_vision.integrations.langchain import (
    SiglipEmbeddings,
    ZeroshotVisionVectorStore,
    check_filter,
)
from zeroshot_vision.testing._pinecone_server import PineconeTestServer


@pytest.fixture
def embeddings(tiny_encoder: Any) -> SiglipEmbeddings:
    return SiglipEmbeddings(tiny_encoder)


@pytest.fixture
def photos_store(
    embeddings: SiglipEmbeddings, photo_paths: list[Path], photo_metadata: list[dict[str, Any]]
) -> ZeroshotVisionVectorStore:
    store = ZeroshotVisionVectorStore(embeddings)
    ids = store.add_images([str(p) for p in photo_paths], photo_metadata)
    assert ids == [file_id(p) for p in photo_paths]
    return store


def test_each_photo_finds_itself_first(
    photos_store: ZeroshotVisionVectorStore, embeddings: SiglipEmbeddings, photo_paths: list[Path]
) -> None:
    vectors = embeddings.embed_image([str(p) for p in photo_paths])
    for path, vector in zip(photo_paths, vectors):
        best = photos_store.similarity_search_by_vector(vector, k=2)[0]
        assert best.metadata["path"] == str(path)
        assert best.id == best.metadata["id"] == file_id(path)
        assert best.page_content == str(path)
        assert "probability" not in best.metadata  # an image query has no calibration


def test_text_search_matches_the_engine_with_calibrated_probabilities(
    tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    engine = memory_engine(tiny_encoder)
    engine.index_images(photo_paths)
    store = ZeroshotVisionVectorStore(engine=engine)
    expected = engine.search("an astronaut in a space suit", k=4)
    scored = store.similarity_search_with_relevance_scores("an astronaut in a space suit", k=4)
    assert [doc.id for doc, _ in scored] == [r.id for r in expected]
    for (doc, relevance), result in zip(scored, expected):
        assert result.probability is not None
        assert relevance == pytest.approx(result.probability)
        assert doc.metadata["probability"] == pytest.approx(result.probability)
    cosines = store.similarity_search_with_score("an astronaut in a space suit", k=4)
    assert [score for _, score in cosines] == pytest.approx([r.score for r in expected])


def test_base64_content_is_the_file(embeddings: SiglipEmbeddings, photo_paths: list[Path]) -> None:
    store = ZeroshotVisionVectorStore(embeddings, image_content="base64")
    store.add_images([str(photo_paths[1])], ids=["coffee"])
    [doc] = store.get_by_ids(["coffee"])
    assert base64.b64decode(doc.page_content) == photo_paths[1].read_bytes()
    assert doc.metadata == {"path": str(photo_paths[1]), "id": "coffee"}


def test_filters_in_the_project_language(photos_store: ZeroshotVisionVectorStore) -> None:
    italian = photos_store.similarity_search("a photo", k=6, filter={"country": "Italy"})
    assert sorted(Path(d.metadata["path"]).stem for d in italian) == ["coffee", "motorcycle_left"]
    recent = photos_store.similarity_search(
        "a photo", k=6, filter={"$and": [{"country": "USA"}, {"year": {"$gte": 2005}}]}
    )
    assert [Path(d.metadata["path"]).stem for d in recent] == ["rocket"]
    retriever = photos_store.as_retriever(search_kwargs={"k": 6, "filter": {"year": {"$lt": 2000}}})
    assert [Path(d.metadata["path"]).stem for d in retriever.invoke("a photo")] == ["astronaut"]


@pytest.mark.parametrize(
    "bad",
    [
        lambda doc: True,
        {"photographer": {"$like": "NASA%"}},
        {"$not": {"country": "USA"}},
        {"year": {"$between": [2000, 2010]}},
        [("country", "USA")],
    ],
)
def test_filters_it_cannot_express_raise_unsupported(
    photos_store: ZeroshotVisionVectorStore, bad: object
) -> None:
    with pytest.raises(UnsupportedFilterError):
        photos_store.similarity_search("a photo", k=2, filter=bad)  # type: ignore[arg-type]


def test_malformed_filter_is_an_invalid_filter(photos_store: ZeroshotVisionVectorStore) -> None:
    with pytest.raises(InvalidFilterError, match="unknown operator"):
        photos_store.similarity_search("a photo", filter={"year": {"$bigger": 3}})
    with pytest.raises(InvalidFilterError):
        check_filter({"year": {"$in": "2012"}})
    assert check_filter(None) is None


def test_mmr_prefers_variety(
    photos_store: ZeroshotVisionVectorStore, embeddings: SiglipEmbeddings, photo_paths: list[Path]
) -> None:
    query = embeddings.embed_image([str(photo_paths[2])])[0]
    plain = photos_store.similarity_search_by_vector(query, k=3)
    diverse = photos_store.max_marginal_relevance_search_by_vector(
        query, k=3, fetch_k=6, lambda_mult=0.0
    )
    assert diverse[0].id == plain[0].id == file_id(photo_paths[2])
    assert len({d.id for d in diverse}) == 3
    # With lambda 0, the second pick is the candidate least like the first.
    store = photos_store.store
    assert store is not None
    vectors = {r.id: r.vector for r in store.fetch(list(store.ids())).values()}
    first = vectors[diverse[0].id]
    others = [item for item in vectors if item != diverse[0].id]
    assert diverse[1].id == min(others, key=lambda item: float(vectors[item] @ first))
    by_text = photos_store.max_marginal_relevance_search("a cat", k=2, fetch_k=4)
    assert len(by_text) == 2


def test_texts_and_images_side_by_side(
    photos_store: ZeroshotVisionVectorStore, embeddings: SiglipEmbeddings
) -> None:
    [text_id] = photos_store.add_texts(["a ginger cat on a sofa"], [{"source": "caption"}])
    [doc] = photos_store.get_by_ids([text_id])
    assert doc.page_content == "a ginger cat on a sofa"
    assert doc.metadata == {"source": "caption"}
    found = photos_store.similarity_search("a ginger cat on a sofa", k=1)
    assert found[0].id == text_id and "probability" not in found[0].metadata
    photos_store.delete([text_id, "not-stored"])
    assert photos_store.get_by_ids([text_id]) == []


def test_missing_or_broken_images_are_specific_errors(
    embeddings: SiglipEmbeddings, photo_paths: list[Path], tmp_path: Path
) -> None:
    store = ZeroshotVisionVectorStore(embeddings)
    with pytest.raises(ImageNotFoundError, match="no such file"):
        store.add_images([str(photo_paths[0]), str(tmp_path / "gone.jpg")])
    assert store.store is None  # nothing was written
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageDecodeError):
        store.add_images([str(photo_paths[0]), str(broken)])
    assert store.get_by_ids([file_id(photo_paths[0])]) == []
    with pytest.raises(InvalidInputError, match="not one path"):
        embeddings.embed_image(str(photo_paths[0]))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cannot embed images"):
        ZeroshotVisionVectorStore(_TextOnly(embeddings)).add_images([str(photo_paths[0])])
    with pytest.raises(InvalidInputError, match="2 ids"):
        store.add_images([str(photo_paths[0])], ids=["a", "b"])


class _TextOnly:
    """Embeddings without embed_image, as most LangChain embeddings are."""

    def __init__(self, inner: SiglipEmbeddings) -> None:
        self.embed_documents = inner.embed_documents
        self.embed_query = inner.embed_query


def test_index_folder_round_trip(
    tiny_encoder: Any,
    photo_paths: list[Path],
    photo_metadata: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        ZeroshotVisionVectorStore(engine=engine).add_images(
            [str(p) for p in photo_paths[:4]], photo_metadata[:4]
        )
    with ZeroshotVisionVectorStore.open(index, encoder=tiny_encoder) as store:
        assert len(store.get_by_ids([file_id(p) for p in photo_paths])) == 4
        [caption] = store.add_texts(["the caption of a photo"], ids=["caption"])
        store.delete([file_id(photo_paths[0])])
    # A new process would see the same: reopen from disk.
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        assert sorted(engine.store.ids()) == sorted(
            [caption, *(file_id(p) for p in photo_paths[1:4])]
        )
        assert engine.folder is not None
        assert engine.folder.counts() == {"indexed": 4, "failed": 0, "pending": 0}


def test_async_writes_to_an_index_folder(tiny_encoder: Any, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        store = ZeroshotVisionVectorStore(engine=engine)
        ids = asyncio.run(store.aadd_texts(["one", "two"], ids=["1", "2"]))
        asyncio.run(store.adelete(["1"]))
        assert ids == ["1", "2"] and list(engine.store.ids()) == ["2"]


def test_pinecone_store_over_loopback(
    embeddings: SiglipEmbeddings, photo_paths: list[Path], photo_metadata: list[dict[str, Any]]
) -> None:
    pinecone = pytest.importorskip("pinecone")
    from zeroshot_vision import PineconeStore

    server = PineconeTestServer(dimension=embeddings.encoder.dim)
    index = pinecone.Index(host=server.start(), api_key="test-key", timeout=10.0)
    try:
        store = ZeroshotVisionVectorStore(
            embeddings, PineconeStore(index, dim=embeddings.encoder.dim)
        )
        store.add_images([str(p) for p in photo_paths], photo_metadata)
        vector = embeddings.embed_image([str(photo_paths[3])])[0]
        [best] = store.similarity_search_by_vector(vector, k=1, filter={"country": "USA"})
        assert best.metadata["path"] == str(photo_paths[3])
        store.delete([best.id])
        assert store.get_by_ids([best.id]) == []
    finally:
        index.close()
        server.stop()


def test_construction_errors(embeddings: SiglipEmbeddings, tiny_encoder: Any) -> None:
    engine = memory_engine(tiny_encoder)
    with pytest.raises(InvalidInputError, match="not both"):
        ZeroshotVisionVectorStore(embeddings, FaissStore(4), engine=engine)
    with pytest.raises(InvalidInputError, match="give the embeddings"):
        ZeroshotVisionVectorStore()
    with pytest.raises(InvalidInputError, match="image_content"):
        ZeroshotVisionVectorStore(embeddings, image_content="url")  # type: ignore[arg-type]
    texts = ZeroshotVisionVectorStore.from_texts(["a", "b"], embeddings, ids=["x", "y"])
    assert [d.page_content for d in texts.get_by_ids(["y", "x"])] == ["b", "a"]


def test_uncalibrated_clip_relevance_is_the_cosine_on_a_unit_scale(
    tiny_clip_encoder: Any, photo_paths: list[Path]
) -> None:
    store = ZeroshotVisionVectorStore(SiglipEmbeddings(tiny_clip_encoder))
    store.add_images([str(p) for p in photo_paths[:3]])
    scored = store.similarity_search_with_score("a photo of a cat", k=3)
    relevant = store.similarity_search_with_relevance_scores("a photo of a cat", k=3)
    assert [d.id for d, _ in relevant] == [d.id for d, _ in scored]
    for (doc, relevance), (_, cosine) in zip(relevant, scored):
        assert relevance == pytest.approx((1 + cosine) / 2)
        assert "probability" not in doc.metadata  # CLIP has no calibrated probability
