"""Many queries at once, for any store: its own batched query, else a bounded pool.

The :class:`~zeroshot_vision.stores.VectorStore` protocol has one query per call. A store
may also offer ``query_many(vectors, k=..., filter=...)`` returning one hit list per
vector (a FAISS index answers a whole matrix in one call); :func:`query_many` uses it
when present. Otherwise it runs the single queries on a bounded pool of threads, which
for a remote store (Pinecone) overlaps the network round trips.

``FaissStore.query_many`` answers a whole batch with one FAISS search on a flat store
(and query by query on an HNSW one, each already fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._checks import positive_int
from zeroshot_vision._errors import InvalidInputError, InvalidVectorError

if TYPE_CHECKING:
    import numpy.typing as npt

    from zeroshot_vision._types import Hit
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["DEFAULT_QUERY_WORKERS", "query_many"]

DEFAULT_QUERY_WORKERS = 8
"""Concurrent single queries for a remote store without a batched query."""


def query_many(
    store: VectorStore,
    vectors: npt.ArrayLike,
    k: int = 10,
    filter: Mapping[str, Any] | None = None,
    *,
    workers: int | None = None,
) -> list[list[Hit]]:
    """One hit list per row of ``vectors``, in row order (see ``VectorStore.query``).

    Args:
        store: Any vector store.
        vectors: A ``(n, dim)`` array, ``n >= 1``.
        k: Hits per query at most.
        filter: A metadata filter applied to every query.
        workers: Queries in flight at once when the store has no batched query. Default:
            :data:`DEFAULT_QUERY_WORKERS` for a store that declares itself remote
            (``store.remote`` true), else 1, since an in-process store gains nothing from
            threads and need not be thread-safe.

    Raises:
        InvalidInputError: No vectors, a matrix of the wrong shape, or a bad ``k`` or
            filter (the store's own checks).
    """
    matrix = np.asarray(vectors)
    if matrix.ndim != 2:
        raise InvalidVectorError(f"query_many takes a 2-D array, got shape {matrix.shape}")
    if len(matrix) == 0:
        raise InvalidInputError("the batch of queries is empty")
    batched = getattr(store, "query_many", None)
    if callable(batched):
        results: list[list[Hit]] = batched(matrix, k=k, filter=filter)
        return results
    if workers is None:
        workers = DEFAULT_QUERY_WORKERS if getattr(store, "remote", False) else 1
    workers = positive_int(workers, "workers")
    if workers == 1 or len(matrix) == 1:
        return [store.query(row, k=k, filter=filter) for row in matrix]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(matrix)), thread_name_prefix="zsv-query"
    ) as pool:
        return list(pool.map(lambda row: store.query(row, k=k, filter=filter), matrix))
