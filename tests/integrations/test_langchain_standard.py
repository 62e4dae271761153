"""LangChain's own standard suites (langchain-tests), run against our adapters.

``VectorStoreIntegrationTests`` brings its own deterministic fake embeddings: the store
is the default one (an exact FAISS store made with the embeddings' dimension), and also
a store inside a real index folder, through a search engine. The embeddings suites run
against the tiny SigLIP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_tests", reason="needs the dev extra (langchain-tests)")

from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from zeroshot_vision import FaissStore, SearchEngine
from zeroshot_vision.integrations.langchain import SiglipEmbeddings, ZeroshotVisionVectorStore


class TestInMemoryStore(VectorStoreIntegrationTests):
    """The default store: FAISS in memory, of the fake embeddings' dimension."""

    @pytest.fixture()
    def vectorstore(self) -> Iterator[VectorStore]:
        store = ZeroshotVisionVectorStore(self.get_embeddings())
        yield store
        # Nothing to clean: each test gets a new in-memory store.
        assert store.store is None or store.store.dim == 6


class TestExplicitFaissStore(VectorStoreIntegrationTests):
    """A store handed in, sized from the embeddings (as a user sizes one)."""

    @pytest.fixture()
    def vectorstore(self) -> Iterator[VectorStore]:
        embeddings = self.get_embeddings()
        dim = len(embeddings.embed_query("how many dimensions"))
        yield ZeroshotVisionVectorStore(embeddings, FaissStore(dim))


class TestIndexFolderStore(VectorStoreIntegrationTests):
    """A store in an index folder, written through a search engine and committed."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path, tiny_encoder: Any) -> Iterator[VectorStore]:
        # The suite's fake embeddings are 6-d; the engine's encoder must match its store,
        # so the folder is made for a 6-d encoder stand-in that only reports its size.
        engine = SearchEngine.create(tmp_path / "index", encoder=_SixDimensions(tiny_encoder))
        store = ZeroshotVisionVectorStore(self.get_embeddings(), engine=engine)
        try:
            yield store
            written = sorted(engine.store.ids())
        finally:
            store.close()
        # What the test wrote was committed: the folder opens with the same records, and
        # its state knows each of them as indexed.
        reopened = SearchEngine.open(tmp_path / "index", encoder=_SixDimensions(tiny_encoder))
        try:
            assert sorted(reopened.store.ids()) == written
            assert reopened.folder is not None
            assert reopened.folder.counts() == {
                "indexed": len(written),
                "failed": 0,
                "pending": 0,
            }
        finally:
            reopened.close()


class _SixDimensions:
    """The tiny encoder's identity with the fake embeddings' dimension (6)."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self.dim = 6
        self.model_name = encoder.model_name
        self.calibrated = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


class _TinyModel:
    """Hands the session's tiny SigLIP to the suites' property-based set-up."""

    encoder: Any = None
    model_dir: Path | None = None

    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_encoder: Any, tiny_model_dir: Path) -> None:
        type(self).encoder = tiny_encoder
        type(self).model_dir = tiny_model_dir


class TestSiglipEmbeddingsUnit(_TinyModel, EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[SiglipEmbeddings]:
        return SiglipEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"encoder": self.encoder}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # The model comes from $ZSV_MODEL when none is named, as everywhere in the library.
        return (
            {"ZSV_MODEL": str(self.model_dir)},
            {"device": "cpu"},
            {"model_name": str(self.model_dir)},
        )


class TestSiglipEmbeddingsIntegration(_TinyModel, EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[SiglipEmbeddings]:
        return SiglipEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": str(self.model_dir), "device": "cpu", "dtype": "float32"}
