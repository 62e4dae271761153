"""The store contract against a real Pinecone index (opt-in: ``pytest -m live``).

Needs ``PINECONE_API_KEY`` and ``PINECONE_INDEX_HOST`` (or ``PINECONE_INDEX``, the index
name). The index must be a cosine (or dotproduct) index of dimension
``PINECONE_INDEX_DIM`` (default 8); every store gets a fresh namespace, deleted afterwards.
Pinecone is eventually consistent, so each check waits for its writes to be visible.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from zeroshot_vision.testing._contract import VectorStoreContract

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("PINECONE_API_KEY")
        or not (os.environ.get("PINECONE_INDEX_HOST") or os.environ.get("PINECONE_INDEX")),
        reason="live Pinecone tests need PINECONE_API_KEY and PINECONE_INDEX_HOST "
        "(or PINECONE_INDEX)",
    ),
]

FRESHNESS_TIMEOUT_S = 30.0


def _settle(store: Any) -> None:
    """Wait until the namespace's stats stop changing (writes become visible)."""
    deadline = time.monotonic() + FRESHNESS_TIMEOUT_S
    last = -1
    while time.monotonic() < deadline:
        count = len(store)
        if count == last:
            return
        last = count
        time.sleep(2.0)


class _SettlingStore:
    """Wraps a PineconeStore so every read first waits for earlier writes to land."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._dirty = False

    @property
    def dim(self) -> int:
        return int(self._store.dim)

    def upsert(self, *args: Any, **kwargs: Any) -> None:
        self._dirty = True
        self._store.upsert(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> None:
        self._dirty = True
        self._store.delete(*args, **kwargs)

    def _read(self) -> Any:
        if self._dirty:
            _settle(self._store)
            self._dirty = False
        return self._store

    def query(self, *args: Any, **kwargs: Any) -> Any:
        return self._read().query(*args, **kwargs)

    def fetch(self, *args: Any, **kwargs: Any) -> Any:
        return self._read().fetch(*args, **kwargs)

    def ids(self) -> Any:
        return self._read().ids()

    def __len__(self) -> int:
        return len(self._read())

    def commit(self) -> None:
        self._store.commit()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> _SettlingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TestLivePineconeContract(VectorStoreContract):
    """The contract suite against the real service (slow: seconds per write)."""

    DIM = int(os.environ.get("PINECONE_INDEX_DIM", "8"))
    state_machine_settings = settings(
        max_examples=3,
        stateful_step_count=5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

    @pytest.fixture
    def make_store(self) -> Iterator[Callable[[int], Any]]:
        from zeroshot_vision.stores._pinecone import PineconeStore

        opened: list[Any] = []

        def make(dim: int) -> Any:
            store = PineconeStore.connect(namespace=f"zsv-test-{uuid.uuid4().hex[:12]}")
            if store.dim != dim:
                store.close()
                pytest.skip(f"the live index has dimension {store.dim}, the suite needs {dim}")
            opened.append(store)
            return _SettlingStore(store)

        yield make
        for store in opened:
            try:
                ids = list(store.ids())
                if ids:
                    store.delete(ids)
            finally:
                store.close()


def test_live_round_trip() -> None:
    from zeroshot_vision.stores._pinecone import PineconeStore

    with PineconeStore.connect(namespace=f"zsv-smoke-{uuid.uuid4().hex[:12]}") as store:
        vectors = np.random.default_rng(0).standard_normal((3, store.dim)).astype(np.float32)
        store.upsert(["a", "b", "c"], vectors, [{"n": 1}, {"n": 2}, {"n": 3}])
        try:
            _settle(store)
            assert len(store) == 3
            assert store.query(vectors[1], k=1)[0].id == "b"
        finally:
            store.delete(["a", "b", "c"])
