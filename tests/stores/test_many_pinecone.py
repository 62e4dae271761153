"""Batched queries, near-duplicates and Parquet export/import through Pinecone's protocol.

The in-process Pinecone server speaks the real HTTP API to the real SDK, so these check
that the store-agnostic helpers work for a remote store (concurrent, bounded queries).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pinecone = pytest.importorskip("pinecone")

from zeroshot_vision._near_duplicates import find_duplicates  # noqa: E402
from zeroshot_vision.stores import FaissStore, export_store, import_store  # noqa: E402
from zeroshot_vision.stores._batch import query_many  # noqa: E402
from zeroshot_vision.stores._pinecone import PineconeStore  # noqa: E402
from zeroshot_vision.testing._pinecone_server import PineconeTestServer  # noqa: E402

API_KEY = "pcsk_test_many"


@pytest.fixture
def store() -> Iterator[PineconeStore]:
    server = PineconeTestServer(dimension=8)
    index: Any = pinecone.Index(host=server.start(), api_key=API_KEY)
    try:
        yield PineconeStore(index, dim=8, namespace="many")
    finally:
        index.close()
        server.stop()


def _filled(store: PineconeStore) -> FaissStore:
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 8))
    vectors = np.array([centres[i % 3] + rng.normal(scale=0.02, size=8) for i in range(9)])
    vectors = np.vstack([vectors, rng.normal(size=(6, 8))])
    ids = [f"v{i:02d}" for i in range(len(vectors))]
    metadata = [{"n": i} for i in range(len(vectors))]
    store.upsert(ids, vectors, metadata)
    reference = FaissStore(8)
    reference.upsert(ids, vectors, metadata)
    return reference


def test_query_many_answers_like_single_queries(store: PineconeStore) -> None:
    _filled(store)
    vectors = np.eye(8)[:5]
    batch = query_many(store, vectors, k=3)
    assert [[h.id for h in hits] for hits in batch] == [
        [h.id for h in store.query(v, k=3)] for v in vectors
    ]


def test_duplicates_and_export_import_match_faiss(store: PineconeStore, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    reference = _filled(store)
    groups = find_duplicates(store, threshold=0.98, neighbours=2)
    expected = find_duplicates(reference, threshold=0.98, neighbours=2)
    assert [g.ids for g in groups] == [g.ids for g in expected]
    assert len(groups) == 3 and all(len(g.ids) == 3 for g in groups)
    path = tmp_path / "vectors.parquet"
    assert export_store(store, path) == 15
    copy = FaissStore(8)
    assert import_store(path, copy) == 15
    ids = sorted(copy.ids())
    ours, theirs = copy.fetch(ids), store.fetch(ids)
    for item in ids:
        assert ours[item].vector.tobytes() == theirs[item].vector.tobytes()
        assert ours[item].metadata == theirs[item].metadata
