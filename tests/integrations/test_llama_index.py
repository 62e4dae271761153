"""The LlamaIndex vector store end to end with the tiny SigLIP and real photos: under
VectorStoreIndex and as the image store of MultiModalVectorStoreIndex (LlamaIndex ships
no standard suite for vector stores)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs the llama-index extra")

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageDocument, ImageNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from tests.factories import memory_engine
from tests.helpers import build_index

from zeroshot_vision import (
    ImageNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    SearchEngine,
    UnsupportedFilterError,
)
from zeroshot_vision.integrations.llama_index import (
    SiglipEmbedding,
    ZeroshotVisionVectorStore,
    to_filter,
)


@pytest.fixture
def embedding(tiny_encoder: Any) -> SiglipEmbedding:
    return SiglipEmbedding(tiny_encoder)


@pytest.fixture
def llama_photo_index(
    embedding: SiglipEmbedding, photo_paths: list[Path], photo_metadata: list[dict[str, Any]]
) -> MultiModalVectorStoreIndex:
    documents = [
        ImageDocument(image_path=str(path), metadata=meta, doc_id=path.stem)
        for path, meta in zip(photo_paths, photo_metadata)
    ]
    documents.append(Document(text="a note about the photos", doc_id="note"))
    context = StorageContext.from_defaults(
        vector_store=ZeroshotVisionVectorStore(), image_store=ZeroshotVisionVectorStore()
    )
    return MultiModalVectorStoreIndex.from_documents(
        documents, storage_context=context, embed_model=embedding, image_embed_model=embedding
    )


def test_each_photo_retrieves_itself_first(
    llama_photo_index: MultiModalVectorStoreIndex, photo_paths: list[Path]
) -> None:
    retriever = llama_photo_index.as_retriever(image_similarity_top_k=3)
    for path in photo_paths:
        found = retriever.image_to_image_retrieve(str(path))
        assert isinstance(found[0].node, ImageNode)
        assert found[0].node.image_path == str(path)
        assert found[0].node.ref_doc_id == path.stem
        assert found[0].score == pytest.approx(1.0, abs=1e-4)


def test_text_to_image_scores_are_the_engines_cosines(
    llama_photo_index: MultiModalVectorStoreIndex, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    engine = memory_engine(tiny_encoder)
    engine.index_images(photo_paths, ids=[p.stem for p in photo_paths])
    expected = engine.search("a rocket on the launch pad", k=3)
    retriever = llama_photo_index.as_retriever(image_similarity_top_k=3, similarity_top_k=1)
    found = retriever.text_to_image_retrieve("a rocket on the launch pad")
    assert [n.node.ref_doc_id for n in found] == [r.id for r in expected]
    assert [n.score for n in found] == pytest.approx([r.score for r in expected], abs=1e-5)
    # The text store answers the text side of retrieve().
    texts = [
        n for n in retriever.retrieve("a note about the photos") if n.node.ref_doc_id == "note"
    ]
    assert texts and texts[0].node.get_content() == "a note about the photos"


def test_metadata_filters_are_translated(llama_photo_index: MultiModalVectorStoreIndex) -> None:
    italy = MetadataFilters(filters=[MetadataFilter(key="country", value="Italy")])
    retriever = llama_photo_index.as_retriever(image_similarity_top_k=6, filters=italy)
    found = retriever.text_to_image_retrieve("a photo")
    assert sorted(n.node.ref_doc_id for n in found) == ["coffee", "motorcycle_left"]
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="year", operator=FilterOperator.LT, value=2000),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="country", value="UK"),
                    MetadataFilter(key="photographer", operator=FilterOperator.NE, value="x"),
                ]
            ),
        ],
        condition=FilterCondition.OR,
    )
    retriever = llama_photo_index.as_retriever(image_similarity_top_k=6, filters=either)
    assert sorted(n.node.ref_doc_id for n in retriever.text_to_image_retrieve("a photo")) == [
        "astronaut",
        "chelsea",
    ]


def test_delete_by_ref_doc(
    llama_photo_index: MultiModalVectorStoreIndex, photo_paths: list[Path]
) -> None:
    llama_photo_index.delete_ref_doc("chelsea")
    llama_photo_index.delete_ref_doc("never-added")
    retriever = llama_photo_index.as_retriever(image_similarity_top_k=6)
    found = retriever.image_to_image_retrieve(str(photo_paths[2]))
    assert "chelsea" not in {n.node.ref_doc_id for n in found}
    assert len(found) == 5


def test_vector_store_index_of_text_nodes(embedding: SiglipEmbedding) -> None:
    store = ZeroshotVisionVectorStore()
    captions = ["a red bicycle", "a cup of coffee", "a sleeping cat", "a rocket", "the sea"]
    nodes = [
        TextNode(text=caption, id_=f"n{i}", metadata={"n": i, "tags": ["a", f"t{i}"]})
        for i, caption in enumerate(captions)
    ]
    index = VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embedding,
    )
    # An index embeds a node's text with its metadata: query with exactly that.
    embedded = nodes[3].get_content(metadata_mode=MetadataMode.EMBED)
    best = index.as_retriever(similarity_top_k=1).retrieve(embedded)
    assert best[0].score == pytest.approx(1.0, abs=1e-4)
    assert best[0].node.node_id == "n3" and best[0].node.get_content() == "a rocket"
    some = MetadataFilters(
        filters=[MetadataFilter(key="tags", operator=FilterOperator.ANY, value=["t1", "t4"])]
    )
    found = index.as_retriever(similarity_top_k=5, filters=some).retrieve("caption")
    assert sorted(n.node.node_id for n in found) == ["n1", "n4"]
    both = MetadataFilters(
        filters=[MetadataFilter(key="tags", operator=FilterOperator.ALL, value=["a", "t2"])]
    )
    assert [n.node_id for n in store.get_nodes(filters=both)] == ["n2"]
    assert [n.node_id for n in store.get_nodes(node_ids=["n4", "gone", "n0"])] == ["n4", "n0"]
    store.delete_nodes(node_ids=["n0"])
    query = VectorStoreQuery(
        query_embedding=embedding.get_query_embedding("caption"),
        similarity_top_k=3,
        node_ids=["n0", "n1", "n2"],
    )
    assert sorted(store.query(query).ids or []) == ["n1", "n2"]
    store.clear()
    assert store.get_nodes(filters=MetadataFilters(filters=[])) == []


@pytest.mark.parametrize(
    "operator",
    [FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE, FilterOperator.IS_EMPTY],
)
def test_unsupported_operators_raise(operator: FilterOperator) -> None:
    filters = MetadataFilters(
        filters=[MetadataFilter(key="photographer", operator=operator, value="NASA")]
    )
    with pytest.raises(UnsupportedFilterError, match=operator.value):
        to_filter(filters)


def test_not_condition_and_bad_values_raise(embedding: SiglipEmbedding) -> None:
    negated = MetadataFilters(
        filters=[MetadataFilter(key="country", value="USA")], condition=FilterCondition.NOT
    )
    with pytest.raises(UnsupportedFilterError, match="negation"):
        to_filter(negated)
    with pytest.raises(InvalidFilterError):
        to_filter(
            MetadataFilters(
                filters=[MetadataFilter(key="year", operator=FilterOperator.GT, value="2000")]
            )
        )
    store = ZeroshotVisionVectorStore()
    with pytest.raises(InvalidInputError, match="no embedding"):
        store.add([TextNode(text="x")])
    store.add([TextNode(text="x", embedding=embedding.get_text_embedding("x"))])
    with pytest.raises(InvalidInputError, match="not supported"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * 32, mode=VectorStoreQueryMode.SPARSE))
    with pytest.raises(UnsupportedFilterError):
        store.query(VectorStoreQuery(query_embedding=[0.1] * 32, filters=negated))


def test_embedding_reads_paths_and_bytes(
    embedding: SiglipEmbedding, photo_paths: list[Path], tmp_path: Path
) -> None:
    from_path, from_bytes = embedding.get_image_embedding_batch(
        [str(photo_paths[1]), io.BytesIO(photo_paths[1].read_bytes())]
    )
    assert from_path == pytest.approx(from_bytes, abs=1e-6)
    with pytest.raises(ImageNotFoundError):
        embedding.get_image_embedding(str(tmp_path / "missing.jpg"))


def test_store_over_a_zsv_index_folder(
    tiny_model_dir: Path, tiny_encoder: Any, photo_paths: list[Path], tmp_path: Path
) -> None:
    folder = build_index(tmp_path / "index", tiny_model_dir, photo_paths)
    with SearchEngine.open(folder, encoder=tiny_encoder) as engine:
        store = ZeroshotVisionVectorStore(engine=engine)
        embedding = SiglipEmbedding(tiny_encoder)
        query = VectorStoreQuery(
            query_embedding=embedding.get_image_embedding(str(photo_paths[4])),
            similarity_top_k=2,
            filters=MetadataFilters(filters=[MetadataFilter(key="country", value="USA")]),
        )
        result = store.query(query)
        assert result.ids is not None and result.ids[0] == photo_paths[4].stem
        first = result.nodes[0] if result.nodes else None
        assert isinstance(first, ImageNode) and first.image_path == str(photo_paths[4])
        # A node added through LlamaIndex lands in the folder, recorded in its state.
        store.add(
            [
                ImageNode(
                    image_path=str(photo_paths[0]), id_="again", embedding=query.query_embedding
                )
            ]
        )
    with SearchEngine.open(folder, encoder=tiny_encoder) as engine:
        assert "again" in set(engine.store.ids())
        assert engine.folder is not None and engine.folder.counts()["indexed"] == 7
