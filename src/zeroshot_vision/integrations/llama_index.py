"""LlamaIndex: a vector store for image and text nodes, and a multi-modal SigLIP embedding.

* :class:`ZeroshotVisionVectorStore` is a LlamaIndex ``BasePydanticVectorStore`` over any
  :class:`~zeroshot_vision.stores.VectorStore` or a
  :class:`~zeroshot_vision._engine.SearchEngine` (and so an index folder). It stores
  image nodes and text nodes (the node itself, as LlamaIndex's own stores keep
  it, in the record's metadata beside the node's metadata, and an image node's file as
  ``path``), deletes by ref doc, and answers queries with top-k and ``MetadataFilters``.
  It serves under ``VectorStoreIndex`` and as the image store (and the text store) of
  ``MultiModalVectorStoreIndex``. Records it did not write (a folder indexed by
  ``zsv index``) come back as image nodes of their ``path``.
* :class:`SiglipEmbedding` is a ``MultiModalEmbedding``: texts and images from one
  :class:`~zeroshot_vision._encoder.Encoder`, in one space.

``MetadataFilters`` are translated into the project's filter language
(:mod:`zeroshot_vision.stores._filters`): ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``,
``in``, ``nin``, ``any`` (a list field holding any of the values), ``all`` (holding all
of them), ``contains`` (a list field holding the value), combined with ``and`` and
``or``. ``text_match``, ``text_match_insensitive``, ``is_empty`` and the ``not``
condition have no counterpart and raise
:class:`~zeroshot_vision._errors.UnsupportedFilterError`.

Similarities are cosines (higher is more similar).

Needs the ``llama-index`` extra: ``pip install "zeroshot-vision[llama-index]"``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._optional import require

require("llama_index.core", extra="llama-index", purpose="zeroshot_vision.integrations.llama_index")

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageNode, ImageType
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from zeroshot_vision._checks import item_list
from zeroshot_vision._errors import InvalidFilterError, InvalidInputError, UnsupportedFilterError
from zeroshot_vision.integrations._target import Target, existing_images, given_or_loaded
from zeroshot_vision.stores._base import check_ids, check_k
from zeroshot_vision.stores._filters import MAX_FILTER_DEPTH, compile_filter, validate_filter

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import Hit, Record
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["SiglipEmbedding", "ZeroshotVisionVectorStore", "to_filter"]

_NODE_CONTENT = "_node_content"  # where LlamaIndex's stores keep the serialized node


class SiglipEmbedding(MultiModalEmbedding):
    """Texts and images embedded by a SigLIP (or CLIP) encoder, for LlamaIndex.

    Args:
        encoder: An already loaded encoder; if ``None``, ``model`` is loaded.
        model: Checkpoint name or local folder (default ``$ZSV_MODEL``, else the
            library's default model).
        device: Torch device for a loaded model.
        dtype: Torch dtype for a loaded model.
        kwargs: LlamaIndex's embedding options (``embed_batch_size``, ...).
    """

    _encoder: Any = PrivateAttr()

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        encoder = given_or_loaded(encoder, model=model, device=device, dtype=dtype)
        kwargs.setdefault("embed_batch_size", encoder.batch_size)
        super().__init__(model_name=encoder.model_name, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "SiglipEmbedding"

    @property
    def encoder(self) -> Encoder:
        """The encoder that embeds."""
        encoder: Encoder = self._encoder
        return encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.encoder.encode_texts(texts).tolist()
        return vectors

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return self._get_image_embedding(img_file_path)

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        """Embed image files or in-memory images (``BytesIO``) in one batch.

        Raises:
            ImageNotFoundError: A path names no file.
            ImageLoadError: An image cannot be decoded.
        """
        sources: list[str | bytes] = []
        for item in img_file_paths:
            if isinstance(item, io.BytesIO):
                sources.append(item.getvalue())
            else:
                sources.extend(existing_images([item]))
        vectors: list[list[float]] = self.encoder.encode_images(sources).tolist()
        return vectors


_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    # The language's $in and $eq match a list field when any element matches.
    FilterOperator.ANY: "$in",
    FilterOperator.CONTAINS: "$eq",
}


def to_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Translate LlamaIndex ``MetadataFilters`` into the project's filter language.

    Raises:
        UnsupportedFilterError: An operator or condition the language cannot express
            (``text_match``, ``text_match_insensitive``, ``is_empty``, ``not``).
        InvalidFilterError: A value the operator cannot take (``in`` without a list...).
    """
    if filters is None or not filters.filters:
        return None
    translated = _translate(filters, depth=1)
    validate_filter(translated)
    return translated


def _translate(filters: MetadataFilters, *, depth: int) -> dict[str, Any]:
    if depth > MAX_FILTER_DEPTH:  # the filter language's limit, before Python's recursion
        raise InvalidFilterError(
            f"the filters nest more than {MAX_FILTER_DEPTH} deep; flatten the nested "
            "MetadataFilters"
        )
    parts = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            parts.append(_translate(item, depth=depth + 1))
        elif isinstance(item, MetadataFilter):
            parts.append(_condition(item.key, item.operator, item.value))
        elif isinstance(item, ExactMatchFilter):
            parts.append(_condition(item.key, FilterOperator.EQ, item.value))
        else:
            raise UnsupportedFilterError(f"unknown kind of metadata filter: {item!r}")
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        raise UnsupportedFilterError(
            "the filter language has no negation of a whole condition ('not'); negate each "
            "filter instead (== becomes !=, in becomes nin)"
        )
    if len(parts) == 1:
        return parts[0]
    return {"$and" if condition == FilterCondition.AND else "$or": parts}


def _condition(key: str, operator: FilterOperator, value: Any) -> dict[str, Any]:
    if operator == FilterOperator.ALL:
        if not isinstance(value, list) or not value:
            raise UnsupportedFilterError(f"'all' on {key!r} takes a non-empty list of values")
        return {"$and": [{key: {"$eq": item}} for item in value]}
    op = _OPERATORS.get(operator)
    if op is None:
        raise UnsupportedFilterError(
            f"the filter operator {operator.value!r} (on {key!r}) has no counterpart in the "
            f"filter language; use one of {', '.join(repr(o.value) for o in _OPERATORS)} or 'all'"
        )
    return {key: {op: value}}


class ZeroshotVisionVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over a zeroshot-vision store or search engine.

    Args:
        store: Any :class:`~zeroshot_vision.stores.VectorStore`. Default: an exact
            in-memory :class:`~zeroshot_vision.stores.FaissStore`, made on the first
            ``add`` with the nodes' embedding dimension.
        engine: A :class:`~zeroshot_vision._engine.SearchEngine` whose store (and index
            folder) to use instead; every write is committed at once.

    Example:
        >>> from llama_index.core import StorageContext  # doctest: +SKIP
        >>> from llama_index.core.indices import MultiModalVectorStoreIndex  # doctest: +SKIP
        >>> embedding = SiglipEmbedding(model="google/siglip-base-patch16-224")  # doctest: +SKIP
        >>> context = StorageContext.from_defaults(  # doctest: +SKIP
        ...     vector_store=ZeroshotVisionVectorStore(), image_store=ZeroshotVisionVectorStore()
        ... )
        >>> index = MultiModalVectorStoreIndex.from_documents(  # doctest: +SKIP
        ...     documents, storage_context=context, embed_model=embedding,
        ...     image_embed_model=embedding,
        ... )
    """

    stores_text: bool = True
    flat_metadata: bool = False

    _target: Target = PrivateAttr()

    def __init__(
        self,
        store: VectorStore | None = None,
        *,
        engine: SearchEngine | None = None,
        **kwargs: Any,
    ) -> None:
        if store is not None and engine is not None:
            raise InvalidInputError("give a store or an engine, not both")
        super().__init__(**kwargs)
        self._target = Target(store, engine)

    @classmethod
    def class_name(cls) -> str:
        return "ZeroshotVisionVectorStore"

    @property
    def client(self) -> VectorStore | None:
        """The zeroshot-vision store (``None`` until the first ``add`` to a default one)."""
        return self._target.store

    # -- writing -----------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings; a node id that is stored is overwritten.

        Raises:
            InvalidInputError: A node has no embedding.
        """
        if not nodes:
            return []
        ids, vectors, metadata = [], [], []
        for i, node in enumerate(item_list(nodes, "nodes")):
            if not isinstance(node, BaseNode):
                raise InvalidInputError(f"nodes[{i}] must be a node, got {type(node).__name__}")
            if node.embedding is None:
                raise InvalidInputError(
                    f"node {node.node_id} has no embedding; embed it first (an index does)"
                )
            ids.append(node.node_id)
            vectors.append(node.embedding)
            metadata.append(_record_metadata(node))
        self._target.upsert(ids, np.asarray(vectors, dtype=np.float32), metadata)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id`` (none stored: no error).

        The store protocol has no query by metadata alone, so this reads every record's
        metadata (in batches): a cost that grows with the store.
        """
        self._target.delete(
            [
                record.id
                for record in self._target.records()
                if record.metadata.get("ref_doc_id") == ref_doc_id
            ]
        )

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, and/or those that pass ``filters``."""
        self._target.delete([r.id for r in self._matching(node_ids, filters)])

    def clear(self) -> None:
        """Delete every node."""
        self._target.delete([record.id for record in self._target.records()])

    # -- reading -----------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The stored nodes of ``node_ids`` (in that order) and/or passing ``filters``."""
        return [_node(record) for record in self._matching(node_ids, filters)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest ``query_embedding`` that pass the filters.

        ``doc_ids`` and ``node_ids`` narrow the search to those documents or nodes.

        Raises:
            InvalidInputError: No query embedding, or a mode other than the default
                (dense) one.
            UnsupportedFilterError: See :func:`to_filter`.
        """
        if not isinstance(query, VectorStoreQuery):
            raise InvalidInputError(f"query must be a VectorStoreQuery, got {type(query).__name__}")
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidInputError(
                f"query mode {query.mode.value!r} is not supported; only dense vector "
                "search ('default')"
            )
        if query.query_embedding is None:
            raise InvalidInputError("the query has no embedding")
        k = check_k(query.similarity_top_k)
        condition = to_filter(query.filters)
        if query.doc_ids:
            documents = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            condition = {"$and": [condition, documents]} if condition else documents
        store = self._target.store
        if store is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        vector = np.asarray(query.query_embedding, dtype=np.float32)
        if query.node_ids:
            # Few named nodes: score them directly rather than search the whole store.
            passes = compile_filter(condition)
            records = [r for r in self._target.fetch(query.node_ids).values() if passes(r.metadata)]
            unit = vector / np.linalg.norm(vector)
            scored = sorted(
                ((float(r.vector @ unit), r) for r in records), key=lambda pair: -pair[0]
            )[:k]
            found: list[tuple[Hit | Record, float]] = [(r, score) for score, r in scored]
        else:
            found = [(hit, hit.score) for hit in store.query(vector, k=k, filter=condition)]
        return VectorStoreQueryResult(
            nodes=[_node(item) for item, _ in found],
            similarities=[score for _, score in found],
            ids=[item.id for item, _ in found],
        )

    def _matching(
        self, node_ids: Sequence[str] | None, filters: MetadataFilters | None
    ) -> list[Record]:
        passes = compile_filter(to_filter(filters))
        if node_ids is not None:
            # One string is one id, never its characters.
            node_ids = check_ids([node_ids] if isinstance(node_ids, str) else node_ids)
            records = self._target.fetch(node_ids)
            candidates = [records[item] for item in node_ids if item in records]
        elif filters is None:
            raise InvalidInputError("give node_ids or filters (clear() removes every node)")
        else:
            candidates = list(self._target.records())
        return [record for record in candidates if passes(record.metadata)]


def _record_metadata(node: BaseNode) -> dict[str, Any]:
    """What a record keeps of a node: its metadata, the node itself, an image's path."""
    stored = node
    if isinstance(node, ImageNode) and node.image_path and node.image:
        # The file is at its path: do not keep a second copy of it in every record.
        stored = node.model_copy(update={"image": None})
    metadata = node_to_metadata_dict(stored, remove_text=False, flat_metadata=False)
    if isinstance(node, ImageNode) and node.image_path:
        metadata.setdefault("path", str(node.image_path))
    return metadata


def _node(record: Any) -> BaseNode:
    """The node a record holds; a record written elsewhere is an image node of its path."""
    metadata: Mapping[str, Any] = record.metadata
    if _NODE_CONTENT in metadata:
        node = metadata_dict_to_node(dict(metadata))
        node.embedding = None
        return node
    path = metadata.get("path")
    return ImageNode(
        id_=record.id,
        image_path=path if isinstance(path, str) else None,
        metadata=dict(metadata),
    )
