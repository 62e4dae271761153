"""LangChain: SigLIP embeddings and a vector store over zeroshot-vision's stores.

* :class:`SiglipEmbeddings` is a LangChain ``Embeddings`` over an
  :class:`~zeroshot_vision._encoder.Encoder`: ``embed_documents`` and ``embed_query`` for
  texts, ``embed_image(uris)`` for image files, as LangChain's other multimodal
  embeddings name it.
* :class:`ZeroshotVisionVectorStore` is a LangChain ``VectorStore`` over any
  :class:`~zeroshot_vision.stores.VectorStore` (FAISS in memory, an index folder,
  Pinecone) or a :class:`~zeroshot_vision._engine.SearchEngine`. It holds images
  (:meth:`~ZeroshotVisionVectorStore.add_images`) and texts (``add_texts``,
  ``add_documents``) side by side.

Documents that come back:

* an **image** is a ``Document`` whose ``id`` and ``metadata["id"]`` are the stored id,
  whose ``metadata["path"]`` is its file (when it was indexed from one), and whose
  ``page_content`` is that path, or, with ``image_content="base64"``, the file's bytes
  in base64 (what a multimodal chat message's ``data:`` URL needs). Search results also
  carry ``metadata["probability"]``: SigLIP's calibrated probability that the image
  matches the query text, when the embeddings are a calibrated SigLIP;
* a **text** is a ``Document`` with the ``page_content`` and ``metadata`` it was added
  with (the text is kept in the record's metadata under ``text_key``, ``"text"``).

Scores: ``similarity_search_with_score`` gives the cosine similarity (higher is more
similar); ``similarity_search_with_relevance_scores`` gives SigLIP's calibrated
probability where the embeddings have one (:attr:`Encoder.calibrated`), else the cosine
mapped onto [0, 1].

Filters are written in the project's filter language
(:mod:`zeroshot_vision.stores._filters`: ``{"year": {"$gte": 2020}}``). A filter LangChain
allows elsewhere but this language cannot express (a callable, ``$like``, ``$contains``,
``$not``, ...) raises :class:`~zeroshot_vision._errors.UnsupportedFilterError`.

Needs the ``langchain`` extra: ``pip install "zeroshot-vision[langchain]"``.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from zeroshot_vision._optional import require

require("langchain_core", extra="langchain", purpose="zeroshot_vision.integrations.langchain")

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore as LangChainVectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from zeroshot_vision._checks import item_list, positive_int
from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageNotFoundError,
    InvalidInputError,
    UnsupportedFilterError,
)
from zeroshot_vision._index.serving import servable_image
from zeroshot_vision.integrations._target import Target, existing_images, given_or_loaded
from zeroshot_vision.stores._base import check_ids, check_k
from zeroshot_vision.stores._filters import (
    FIELD_OPERATORS,
    LOGICAL_OPERATORS,
    MAX_FILTER_DEPTH,
    validate_filter,
)

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import Hit, Record
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["SiglipEmbeddings", "ZeroshotVisionVectorStore", "check_filter"]

ImageContent = Literal["path", "base64"]


class SiglipEmbeddings(Embeddings):
    """LangChain embeddings from a SigLIP (or CLIP) :class:`~zeroshot_vision._encoder.Encoder`.

    Texts and images land in one vector space, so a text query finds images.

    Args:
        encoder: An already loaded encoder; if ``None``, ``model`` is loaded.
        model: Checkpoint name or local folder for
            :meth:`~zeroshot_vision._encoder.Encoder.from_pretrained`; default
            ``$ZSV_MODEL``, else the library's default model.
        device: Torch device for a loaded model.
        dtype: Torch dtype for a loaded model.

    Example:
        >>> embeddings = SiglipEmbeddings(model="google/siglip-base-patch16-224")  # doctest: +SKIP
        >>> embeddings.embed_image(["cat.jpg"])  # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        encoder = given_or_loaded(encoder, model=model, device=device, dtype=dtype)
        self.encoder = encoder
        self.model_name = encoder.model_name

    def __repr__(self) -> str:
        return f"SiglipEmbeddings(model_name={self.model_name!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as unit vectors (see :meth:`Encoder.encode_texts`)."""
        vectors: list[list[float]] = self.encoder.encode_texts(_texts(texts)).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text as a unit vector."""
        return self.embed_documents([text])[0]

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image files as unit vectors, one per path.

        Raises:
            ImageNotFoundError: A path names no file (nothing is embedded).
            ImageLoadError: A file cannot be decoded.
        """
        paths = existing_images(uris)
        vectors: list[list[float]] = self.encoder.encode_images(paths).tolist()
        return vectors


# Operators of other LangChain stores' filter dialects (PGVector, Chroma, Elasticsearch,
# Qdrant...) that the project's language has no counterpart for: named in the error.
_FOREIGN_OPERATORS = {
    "$like": "substring matching",
    "$ilike": "substring matching",
    "$contains": "substring matching",
    "$not_contains": "substring matching",
    "$text": "full-text matching",
    "$regex": "regular expressions",
    "$between": "ranges (use $gte and $lte)",
    "$not": "negation (use $ne or $nin)",
    "$nor": "negation (use $ne or $nin)",
    "$all": "all-of matching (use $and of $eq)",
    "$size": "list sizes",
    "$elemMatch": "matching inside lists of objects",
}


def check_filter(filter: object) -> Mapping[str, Any] | None:
    """Check that ``filter`` is in the project's filter language, and return it.

    Raises:
        UnsupportedFilterError: A callable, or an operator of another store's dialect
            that the language cannot express.
        InvalidFilterError: Otherwise malformed (see
            :func:`~zeroshot_vision.stores._filters.validate_filter`).
    """
    if filter is None:
        return None
    if callable(filter):
        raise UnsupportedFilterError(
            "a callable filter cannot run inside a vector store here; write it in the "
            "filter language, e.g. {'year': {'$gte': 2020}} (see zeroshot_vision.stores._filters)"
        )
    if not isinstance(filter, Mapping):
        raise UnsupportedFilterError(
            f"a filter is a mapping in the filter language, got {type(filter).__name__}"
        )
    _refuse_foreign(filter, "filter", depth=1)
    validate_filter(filter)
    return filter


# Each level of $and/$or is an object and a list: beyond twice the filter language's depth
# limit (and a field level), validate_filter refuses the filter, with its own message.
_FOREIGN_SEARCH_DEPTH = 2 * MAX_FILTER_DEPTH + 4


def _refuse_foreign(node: object, path: str, *, depth: int) -> None:
    if depth > _FOREIGN_SEARCH_DEPTH:
        return  # too deep for the language: validate_filter says so (not RecursionError)
    if isinstance(node, list):
        for i, item in enumerate(node):
            _refuse_foreign(item, f"{path}[{i}]", depth=depth + 1)
        return
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if isinstance(key, str) and key in _FOREIGN_OPERATORS:
            raise UnsupportedFilterError(
                f"{path} uses {key}: the filter language has no {_FOREIGN_OPERATORS[key]}; "
                f"it knows {', '.join(sorted(FIELD_OPERATORS | LOGICAL_OPERATORS))}"
            )
        _refuse_foreign(value, f"{path}.{key}", depth=depth + 1)


class ZeroshotVisionVectorStore(LangChainVectorStore):
    """A LangChain vector store over a zeroshot-vision store or search engine.

    Args:
        embedding: What embeds texts (and, for :meth:`add_images` without an engine,
            images: :class:`SiglipEmbeddings`). Default: the engine's encoder.
        store: Any :class:`~zeroshot_vision.stores.VectorStore` of the embeddings'
            dimension. Default: an exact in-memory
            :class:`~zeroshot_vision.stores.FaissStore`, made on the first write with
            the dimension of the vectors the embeddings give.
        engine: A :class:`~zeroshot_vision._engine.SearchEngine` to use instead of
            ``store``: its store, its encoder, and (when it owns an index folder) its
            folder, every write committed at once.
        image_content: ``page_content`` of image documents: ``"path"`` (default) or
            ``"base64"`` (the file's bytes, base64-encoded).
        text_key: The metadata key under which a text document's content is stored.

    Raises:
        InvalidInputError: Neither ``embedding`` nor ``engine``, or both ``store`` and
            ``engine``, or an unknown ``image_content``.

    Example:
        >>> engine = SearchEngine.open("my-index")  # doctest: +SKIP
        >>> store = ZeroshotVisionVectorStore(engine=engine)  # doctest: +SKIP
        >>> store.as_retriever(search_kwargs={"k": 3}).invoke("a red bicycle")  # doctest: +SKIP
    """

    def __init__(
        self,
        embedding: Embeddings | None = None,
        store: VectorStore | None = None,
        *,
        engine: SearchEngine | None = None,
        image_content: ImageContent = "path",
        text_key: str = "text",
    ) -> None:
        if store is not None and engine is not None:
            raise InvalidInputError("give a store or an engine, not both")
        if embedding is None:
            if engine is None:
                raise InvalidInputError("give the embeddings, or an engine whose encoder to use")
            embedding = SiglipEmbeddings(engine.encoder)
        if image_content not in ("path", "base64"):
            raise InvalidInputError(
                f"image_content must be 'path' or 'base64', got {image_content!r}"
            )
        if not isinstance(text_key, str) or not text_key:
            raise InvalidInputError(f"text_key must be a non-empty string, got {text_key!r}")
        self._embedding = embedding
        self._target = Target(store, engine)
        self.image_content: ImageContent = image_content
        self.text_key = text_key

    def __repr__(self) -> str:
        return f"ZeroshotVisionVectorStore(store={self.store!r}, embedding={self._embedding!r})"

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        image_content: ImageContent = "path",
        **engine_options: Any,
    ) -> ZeroshotVisionVectorStore:
        """A vector store over an index folder (``zsv index``'s), with its recorded model.

        Args:
            path: The index folder.
            image_content: As for the constructor.
            engine_options: Passed to :meth:`SearchEngine.open` (``device``, ``encoder``...).

        Call :meth:`close` when done (or use the store as a context manager).
        """
        from zeroshot_vision._engine import SearchEngine

        return cls(engine=SearchEngine.open(path, **engine_options), image_content=image_content)

    def close(self) -> None:
        """Close the engine this store was opened with (committing its writes)."""
        if self._target.engine is not None:
            self._target.engine.close()

    def __enter__(self) -> ZeroshotVisionVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings that embed texts (and queries)."""
        return self._embedding

    @property
    def store(self) -> VectorStore | None:
        """The zeroshot-vision store (``None`` until the first write to a default one)."""
        return self._target.store

    @property
    def _encoder(self) -> Encoder | None:
        if self._target.encoder is not None:
            return self._target.encoder
        return getattr(self._embedding, "encoder", None)

    # -- writing -----------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed texts and store them; ids default to new UUIDs. Same id: overwritten.

        Raises:
            InvalidInputError: Lengths differ, or metadata is not JSON-like.
        """
        items = _texts(texts)
        metas = _per_item(metadatas, len(items), "metadatas")
        keys = _ids_for(ids, len(items))
        if not items:
            return []
        vectors = self._embedding.embed_documents(items)
        records = []
        for text, meta in zip(items, metas):
            record = dict(meta or {})
            record[self.text_key] = text
            records.append(record)
        self._target.upsert(keys, vectors, records)
        return keys

    def add_images(
        self,
        uris: list[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed image files and store them, with their ``path`` in the metadata.

        Ids default to the library's id for a file (:func:`~zeroshot_vision.file_id`),
        so adding a file twice overwrites it.

        Raises:
            ImageNotFoundError: A path names no file (nothing is added).
            ImageLoadError: A file cannot be decoded (with an engine, the readable
                images are added first; without one, nothing is).
            InvalidInputError: Lengths differ, or the embeddings cannot embed images.
        """
        from zeroshot_vision._index import file_id

        paths = existing_images(uris)
        metas = [dict(m or {}) for m in _per_item(metadatas, len(paths), "metadatas")]
        if ids is not None and len(ids) != len(paths):
            raise InvalidInputError(f"got {len(paths)} images but {len(ids)} ids")
        if not paths:
            return []
        engine = self._target.engine
        if engine is not None:
            report = engine.index_images(paths, ids=ids, metadata=metas)
            self._target.commit()
            if report.failed:
                first = report.failed[0]
                raise ImageDecodeError(first.source, first.reason)
            return list(report.indexed)
        embed_image = getattr(self._embedding, "embed_image", None)
        if embed_image is None:
            raise InvalidInputError(
                f"{type(self._embedding).__name__} cannot embed images; use SiglipEmbeddings"
            )
        vectors = embed_image(paths)
        keys = list(ids) if ids is not None else [file_id(path) for path in paths]
        for path, meta in zip(paths, metas):
            meta.setdefault("path", str(Path(path).absolute()))
        self._target.upsert(keys, vectors, metas)
        return keys

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete records by id (missing ids are ignored); ``None`` deletes every one.

        One string is one id: ``delete("abc")`` deletes ``abc``, never ``a``, ``b``, ``c``.
        """
        if ids is None:
            store = self._target.store
            ids = list(store.ids()) if store is not None else []
        self._target.delete(_id_list(ids))
        return True

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """:meth:`add_texts` for async code."""
        if self._target.engine is not None:
            # An index folder's state is an SQLite connection bound to the thread that
            # opened it: an engine is written from the caller's thread, not a pool's.
            return self.add_texts(texts, metadatas, ids=ids, **kwargs)
        return await run_in_executor(None, self.add_texts, texts, metadatas, ids=ids, **kwargs)

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """:meth:`delete` for async code."""
        if self._target.engine is not None:  # see aadd_texts
            return self.delete(ids, **kwargs)
        return await run_in_executor(None, self.delete, ids, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ZeroshotVisionVectorStore:
        """A new store (in memory unless ``store=`` is given) holding ``texts``."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=list(ids) if ids is not None else None)
        return store

    # -- reading -----------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents of ``ids``, in that order; missing ids left out.

        One string is one id.
        """
        ids = _id_list(ids)
        records = self._target.fetch(ids)
        return [self._document(records[item]) for item in ids if item in records]

    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents most similar to ``query`` that pass ``filter``."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents and their cosine similarity to ``query``, most similar first."""
        check_filter(filter)
        vector = self._embedding.embed_query(query)
        return self._search(vector, k, filter, text_query=True)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents most similar to a vector (no probability: not a text)."""
        check_filter(filter)
        return [doc for doc, _ in self._search(embedding, k, filter, text_query=False)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        encoder = self._encoder
        if encoder is not None and encoder.calibrated:
            return encoder.probability
        return _cosine_to_unit

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Documents similar to ``query`` and unlike each other (maximal marginal relevance)."""
        check_filter(filter)
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter=filter
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """As :meth:`max_marginal_relevance_search`, for a query vector."""
        check_filter(filter)
        k = check_k(k)
        fetch_k = max(positive_int(fetch_k, "fetch_k"), k)
        store = self._target.store
        if store is None:
            return []
        hits = store.query(np.asarray(embedding, dtype=np.float32), k=fetch_k, filter=filter)
        records = store.fetch([hit.id for hit in hits])
        candidates = [records[hit.id] for hit in hits if hit.id in records]
        if not candidates:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32),
            [record.vector.tolist() for record in candidates],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [self._document(candidates[i]) for i in chosen]

    # -- helpers -----------------------------------------------------------------------

    def _search(
        self, vector: Sequence[float], k: int, filter: Mapping[str, Any] | None, *, text_query: bool
    ) -> list[tuple[Document, float]]:
        k = check_k(k)
        store = self._target.store
        if store is None:
            return []
        hits = store.query(np.asarray(vector, dtype=np.float32), k=k, filter=filter)
        encoder = self._encoder
        calibrated = text_query and encoder is not None and encoder.calibrated
        out = []
        for hit in hits:
            document = self._document(hit)
            if calibrated and self.text_key not in hit.metadata:
                assert encoder is not None
                document.metadata["probability"] = encoder.probability(hit.score)
            out.append((document, hit.score))
        return out

    def _document(self, record: Hit | Record) -> Document:
        metadata = dict(record.metadata)
        if self.text_key in metadata:
            text = metadata.pop(self.text_key)
            return Document(id=record.id, page_content=str(text), metadata=metadata)
        metadata["id"] = record.id
        path = metadata.get("path")
        if self.image_content == "base64" and isinstance(path, str):
            engine = self._target.engine
            servable = servable_image(path, engine.folder if engine is not None else None)
            if servable is None:
                raise ImageNotFoundError(
                    path, "no image file there that this index may hand out (see index.serving)"
                )
            try:
                content = base64.b64encode(servable.read_bytes()).decode("ascii")
            except OSError as exc:
                raise ImageNotFoundError(path, exc.strerror or str(exc)) from exc
        else:
            content = path if isinstance(path, str) else record.id
        return Document(id=record.id, page_content=content, metadata=metadata)


def _cosine_to_unit(cosine: float) -> float:
    """A cosine in [-1, 1] as a relevance in [0, 1]."""
    return (1.0 + float(cosine)) / 2.0


def _texts(texts: object) -> list[str]:
    """Texts to embed as a list: one string is one text, never its characters."""
    return [texts] if isinstance(texts, str) else item_list(texts, "texts")


def _id_list(ids: object) -> list[str]:
    """Ids as a list: one string is one id, never its characters; each checked."""
    return check_ids([ids] if isinstance(ids, str) else item_list(ids, "ids"))


def _per_item(
    values: Sequence[dict[str, Any] | None] | None, count: int, name: str
) -> list[dict[str, Any] | None]:
    if values is None:
        return [None] * count
    listed = item_list(values, name)
    if len(listed) != count:
        raise InvalidInputError(f"got {count} items but {len(listed)} {name}")
    return listed


def _ids_for(ids: Sequence[str | None] | None, count: int) -> list[str]:
    if ids is None:
        return [str(uuid.uuid4()) for _ in range(count)]
    listed = [ids] if isinstance(ids, str) else item_list(ids, "ids")
    if len(listed) != count:
        raise InvalidInputError(f"got {count} items but {len(listed)} ids")
    return [item if item else str(uuid.uuid4()) for item in listed]
