"""``FaissStore``: cosine search in memory with FAISS, exact or approximate, saved to a folder.

Vectors are unit-normalized, so inner product is cosine. The default index,
``IndexIDMap2(IndexFlatIP)``, searches exactly by brute force: exact and fast at tens of
thousands of vectors (about 7.5 ms per query over 25k x 1152 on two CPU cores), 368 ms at
a million. For large collections, ``index="hnsw"`` (``IndexHNSWFlat``) and
``index="hnsw-sq8"`` (``IndexHNSWSQ``, 8 bits per dimension) search a graph instead (see
:class:`FaissStore`). String ids map to FAISS int64 ids ("keys"); metadata lives beside
the index in plain dicts. Filters are evaluated against the metadata and handed to FAISS
as an ID selector, so a filtered query returns the top k among matching records.

On disk a store is a folder of generations and deltas under a manifest, ``store.json``
(the format, its files and its writing and reading live in
:mod:`zeroshot_vision.stores._faiss_files`).
``save`` writes new files beside the old ones and then swaps ``store.json`` with an
atomic rename, so a crash at any point leaves the previous version loadable. The files of
the generation before the live one are kept until the next generation is written, so a
process that read the manifest just before a swap can still read what it names; ``load``
re-reads the manifest when a file vanished anyway. Saving again to the folder a store was
loaded from (or last saved to) writes only a delta of what changed since, so committing
after every small batch stays cheap as the store grows; after :data:`MAX_DELTAS` deltas,
or when a delta would hold more than a quarter of the store, the whole store is rewritten
as a new generation. An HNSW index is saved with its tombstones; loading finds them as
the keys in the index that no record names. No pickle is used anywhere.

One writer per folder: ``save`` removes the temp files that killed saves left behind,
which would break a save running at the same moment in another process. An index folder
holds a lock for this; threads of one process sharing a store are serialized by it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import positive_int
from zeroshot_vision._errors import (
    DimensionMismatchError,
    IndexDamagedError,
    InvalidInputError,
    StoreError,
)
from zeroshot_vision._files import folder_size, remove_temp_files
from zeroshot_vision._optional import require
from zeroshot_vision._types import Hit, Metadata, Record
from zeroshot_vision.stores import _faiss_disk as disk
from zeroshot_vision.stores import _faiss_files as files
from zeroshot_vision.stores import _faiss_records as records_module
from zeroshot_vision.stores._base import check_ids, prepare_query, prepare_upsert
from zeroshot_vision.stores._faiss_disk import IvfPqSettings
from zeroshot_vision.stores._faiss_files import FORMAT as FORMAT  # re-exported, as before
from zeroshot_vision.stores._faiss_files import FORMAT_VERSION as FORMAT_VERSION
from zeroshot_vision.stores._faiss_files import MANIFEST as MANIFEST
from zeroshot_vision.stores._faiss_files import MAX_DELTAS as MAX_DELTAS
from zeroshot_vision.stores._faiss_files import StoreShape
from zeroshot_vision.stores._faiss_records import RecordFilter, RecordTable

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["FaissStore", "IdSnapshot"]

logger = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "hnsw-sq8", "ivfpq")
"""The ``index`` a :class:`FaissStore` can be built with."""
DEFAULT_EF_SEARCH = 128
"""Search breadth of HNSW queries unless a store or query sets another. In
``benchmarks/bench_ann.py`` at 1M x 1152 it finds 0.998 (hnsw) and 0.971 (hnsw-sq8) of
the true top 10 in under a millisecond; 64 is faster but left sq8 at 0.895 on the
isolated-clusters data at 50k, where 128 reached 0.956."""
HNSW_M = 32
"""Graph neighbours per vector in ``"hnsw"`` stores."""
HNSW_SQ8_M = 16
"""Graph neighbours per vector in ``"hnsw-sq8"`` stores: fewer, to keep the graph small
beside vectors of one byte per dimension (its base layer takes 2 x M links of 4 bytes per
vector: 128 bytes, against 1,152 for the vector itself at so400m's dimension)."""
EF_CONSTRUCTION = 64
"""Search breadth while inserting into an HNSW graph: its quality against build time."""
SQ8_TRAIN_SIZE = 1000
"""Vectors an ``"hnsw-sq8"`` store holds (exact, flat) before it learns its quantizer's
range from them and builds its graph."""
REBUILD_FRACTION = 0.25
"""Share of an HNSW graph that may be tombstones before the graph is rebuilt."""
EXACT_SEARCH_LIMIT = 1000
"""HNSW stores search exactly when no more records than this can match: it is cheap."""
_MAX_EF_SEARCH = 1 << 16
_CHUNK = 1 << 14  # vectors decoded at a time by exact searches and rebuilds
_FEW_TO_LEARN_FROM = 256


def _faiss() -> ModuleType:
    return require("faiss", purpose="FaissStore")


class _ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer holds new readers back.

    Not reentrant: a thread holding it must not take it again (a writer waiting between
    the two would deadlock them both).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            while self._writing or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._condition.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


class FaissStore:
    """An in-memory vector store on FAISS, exact by default; the embedded default.

    ``index`` picks how vectors are held and searched (see :data:`INDEX_TYPES`):

    * ``"flat"``: every query compares against every vector. Exact; about 7.5 ms per
      query over 25k x 1152 on two CPU cores, growing linearly with the count.
    * ``"hnsw"``: an HNSW graph over float32 vectors. Approximate, far faster on large
      collections, about 1.1x the memory of ``"flat"``.
    * ``"hnsw-sq8"``: an HNSW graph over vectors quantized to 8 bits per dimension, about
      0.28x the memory of ``"flat"``. Scores and fetched vectors are those of the
      quantized vectors: off by up to about 0.01.
      The quantizer learns each dimension's range from the first :data:`SQ8_TRAIN_SIZE`
      vectors; until then the store is flat and exact.
    * ``"ivfpq"``: for collections larger than RAM. Compressed codes in RAM (an inverted
      file of product-quantized codes, ``code_bytes`` per vector), every vector as
      float16 in a memory-mapped file on disk; the candidates the codes find are
      re-scored exactly from that file, so scores are true cosines (to float16
      rounding, about 5e-4). Trains on its first ``ivfpq.train_size`` vectors and is
      flat and exact until then (see :class:`~zeroshot_vision.stores.IvfPqSettings`).
      A store that is to hold many vectors should be opened on its folder
      (:meth:`open`), so vectors stream to disk instead of waiting in RAM.

    Approximate stores keep the whole contract: a filter is exact (never a record that
    fails it, and as many hits as match, up to ``k``); overwritten and deleted vectors
    are hidden at once (FAISS's HNSW cannot remove them: they stay in the graph as
    tombstones until more than :data:`REBUILD_FRACTION` of it is dead, and then the
    graph is rebuilt from the live vectors). Stores of up to :data:`EXACT_SEARCH_LIMIT`
    candidates are searched exactly.

    Thread-safe: any number of threads may call any methods at once. Queries, fetches,
    ``ids()``, ``len()`` and saves run side by side (FAISS releases the GIL while it
    searches); ``upsert`` and ``delete`` wait for them and run alone. A query sees the
    store before a write or after it, never half of it. Saves to a folder are one at a
    time. Across processes, one process writes a folder while any number load it.

    Args:
        dim: Vector dimension (``encoder.dim``).
        index: ``"flat"``, ``"hnsw"``, ``"hnsw-sq8"`` or ``"ivfpq"``.
        ef_search: How broadly an HNSW search looks (FAISS's ``efSearch``): higher finds
            more of the true neighbours, slower. Also settable per query and later as
            ``store.ef_search``; ignored by ``"flat"``.
        ivfpq: How an ``"ivfpq"`` store trains and searches (default
            :class:`~zeroshot_vision.stores.IvfPqSettings()`).
        memory_budget: RAM the index may take (``"4GB"``, ``"512MiB"`` or bytes): picks
            the most accurate kind (and its settings) that holds ``capacity`` vectors in
            it, instead of ``index`` (see :func:`~zeroshot_vision.stores.plan_index`).
        capacity: Vectors to plan the memory budget for (default one million).

    Example:
        >>> store = FaissStore(4)
        >>> store.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], [{"n": 1}, {"n": 2}])
        >>> store.query([1, 0.1, 0, 0], k=1)[0].id
        'a'
    """

    def __init__(
        self,
        dim: int,
        *,
        index: str = "flat",
        ef_search: int = DEFAULT_EF_SEARCH,
        ivfpq: IvfPqSettings | None = None,
        memory_budget: str | int | None = None,
        capacity: int | None = None,
    ) -> None:
        dim = positive_int(dim, "dim")
        if memory_budget is not None:
            from zeroshot_vision.stores._faiss_budget import plan_index

            plan = plan_index(dim, memory_budget, capacity=capacity)
            logger.info("memory budget: %s", plan.summary())
            index, ivfpq = plan.index, plan.ivfpq or ivfpq
        elif capacity is not None:
            raise InvalidInputError("capacity plans a memory_budget: give one too")
        if index not in INDEX_TYPES:
            raise InvalidInputError(f"index must be one of {', '.join(INDEX_TYPES)}, got {index!r}")
        self._dim = dim
        self._type = index
        self.ef_search = ef_search
        # A flat index until the type's graph is built: at once for "hnsw", once the
        # quantizer has vectors to learn from for "hnsw-sq8". "ivfpq" has its own.
        self._index: Any
        if index == "ivfpq":
            self._index = disk.IvfPqIndex(dim, ivfpq or IvfPqSettings())
        else:
            self._index = self._new_graph(None) if index == "hnsw" else self._new_flat()
        # Ids, keys and metadata: in RAM, and for "ivfpq" stores once saved in an SQLite
        # file under an overlay of what changed since (see _faiss_records).
        self._records = RecordTable()
        self._next_key = 0
        # Keys still in an HNSW graph whose records were overwritten or deleted; searches
        # skip them through _dead_selector (rebuilt on each change; readers share it).
        self._tombstones: set[int] = set()
        self._dead_selector: tuple[Any, Any] | None = None
        # For incremental saves: where this store was last saved to or loaded from
        # (folder, generation, number of deltas), and what changed since (id -> present).
        self._saved: tuple[Path, int, int] | None = None
        self._changed: dict[str, bool] = {}
        # Set when the index was rebuilt in a way a delta cannot describe (the flat
        # index turned into a quantized graph): the next save writes a generation.
        self._rewrite = False
        # Where commit() saves to: the folder given to open() or load().
        self._home: Path | None = None
        # Readers (query, fetch, ids, save) share the lock; upsert and delete take it
        # alone. FAISS indexes are not safe to search while they change.
        self._lock = _ReadWriteLock()
        # Saves also exclude each other: they share the files and the delta bookkeeping.
        self._save_lock = threading.Lock()

    @property
    def dim(self) -> int:
        """The dimension of every stored vector."""
        return self._dim

    @property
    def index_type(self) -> str:
        """``"flat"``, ``"hnsw"`` or ``"hnsw-sq8"``: how vectors are held and searched."""
        return self._type

    @property
    def ef_search(self) -> int:
        """The default search breadth of HNSW queries (FAISS's ``efSearch``)."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = _check_ef_search(value)

    def __len__(self) -> int:
        with self._lock.reading():
            return len(self._records)

    def __repr__(self) -> str:
        kind = "" if self._type == "flat" else f", index={self._type!r}"
        if self._type == "ivfpq":
            kind += f" ({self._index.describe()})"
        return f"FaissStore(dim={self._dim}{kind}, count={len(self)})"

    # -- the FAISS index -----------------------------------------------------------------

    def _new_flat(self) -> Any:
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))

    def _new_graph(self, quantizer_range: npt.NDArray[np.float32] | None) -> Any:
        """An empty HNSW index of this store's type; ``"hnsw-sq8"`` needs its range."""
        faiss = _faiss()
        if self._type == "hnsw":
            graph = faiss.IndexHNSWFlat(self._dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        else:
            graph = faiss.IndexHNSWSQ(
                self._dim, faiss.ScalarQuantizer.QT_8bit, HNSW_SQ8_M, faiss.METRIC_INNER_PRODUCT
            )
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        index = faiss.IndexIDMap2(graph)
        if quantizer_range is not None:
            # Training on the lowest and highest value of each dimension sets the
            # quantizer's range to exactly that (FAISS's default min-max statistic).
            index.train(quantizer_range)
        return index

    @property
    def _is_graph(self) -> bool:
        if self._type == "ivfpq":
            return False
        return bool(isinstance(_faiss().downcast_index(self._index.index), _faiss().IndexHNSW))

    def _quantizer_range(self) -> npt.NDArray[np.float32]:
        """The ``(2, dim)`` lowest and highest values the current sq8 graph encodes."""
        faiss = _faiss()
        storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
        trained = faiss.vector_to_array(storage.sq.trained).astype(np.float32)
        low, width = trained[: self._dim], trained[self._dim :]
        return np.stack([low, low + width])

    def _maybe_build_graph(self) -> None:
        """Turn the flat phase of an ``"hnsw-sq8"`` store into its graph when due."""
        if self._type == "ivfpq":
            if self._index.maybe_train():  # codes a delta cannot describe
                self._rewrite = True
            return
        if self._type != "hnsw-sq8" or self._is_graph or len(self._records) < SQ8_TRAIN_SIZE:
            return
        keys = self._records.keys()
        vectors = self._index.reconstruct_batch(keys)
        graph = self._new_graph(_learn_range(vectors))
        graph.add_with_ids(vectors, keys)
        self._index = graph
        self._rewrite = True
        logger.info("built an hnsw-sq8 graph over %d vectors", len(keys))

    def _maybe_rebuild(self) -> None:
        """Rebuild an HNSW graph without its tombstones once they pass the threshold."""
        total = int(self._index.ntotal)
        if not self._tombstones or len(self._tombstones) <= REBUILD_FRACTION * total:
            return
        quantizer_range = self._quantizer_range() if self._type == "hnsw-sq8" else None
        graph = self._new_graph(quantizer_range)
        keys = self._records.keys()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            # Decoded sq8 vectors encode back to the same codes: no loss accumulates.
            graph.add_with_ids(self._index.reconstruct_batch(chunk), chunk)
        logger.info(
            "rebuilt the %s graph: %d live vectors, %d tombstones dropped",
            self._type,
            len(keys),
            len(self._tombstones),
        )
        self._index = graph
        self._tombstones.clear()
        self._dead_selector = None

    def _discard_keys(self, keys: Sequence[int]) -> None:
        """Take vectors out of the index: removed from a flat one, tombstoned in a graph."""
        if not keys:
            return
        if self._is_graph:
            self._tombstones.update(keys)
            faiss = _faiss()
            dead = faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
            self._dead_selector = (faiss.IDSelectorNot(dead), dead)  # keep dead alive too
        else:
            self._index.remove_ids(np.asarray(keys, dtype=np.int64))

    # -- writes --------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert or overwrite records (see :class:`~zeroshot_vision.stores.VectorStore`)."""
        id_list, matrix, meta_list = prepare_upsert(ids, vectors, metadata, self._dim)
        if not id_list:
            return
        with self._lock.writing():
            self._upsert(id_list, matrix, meta_list)
            self._maybe_build_graph()
            self._maybe_rebuild()

    def _upsert(
        self, id_list: list[str], matrix: npt.NDArray[np.float32], meta_list: list[dict[str, Any]]
    ) -> None:
        # A flat index reuses an overwritten record's key; a graph cannot take the old
        # vector out, so the record moves to a new key and the old one is tombstoned.
        # An "ivfpq" store's vectors file only grows: a new key, a new row.
        reuse = not self._is_graph and self._type != "ivfpq"
        keys = []
        for item in id_list:
            key = self._records.key_of(item) if reuse else None
            if key is None:
                key = self._next_key
                self._next_key += 1
            keys.append(key)
        self._put(id_list, keys, matrix, meta_list)
        self._changed.update(dict.fromkeys(id_list, True))

    def _put(
        self,
        ids: Sequence[str],
        keys: Sequence[int],
        matrix: npt.NDArray[np.float32],
        metadata: Sequence[dict[str, Any]],
    ) -> None:
        replaced = []
        for item, key, meta in zip(ids, keys, metadata):
            old = self._records.put(item, key, meta)
            if old is not None:  # a flat index takes the old vector out before the new
                replaced.append(old)
        self._discard_keys(replaced)
        self._index.add_with_ids(matrix, np.asarray(keys, dtype=np.int64))

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; absent ids are ignored."""
        wanted = set(check_ids(ids))
        with self._lock.writing():
            present = [item for item in wanted if item in self._records]
            self._drop(present)
            self._changed.update(dict.fromkeys(present, False))
            self._maybe_rebuild()

    def _drop(self, ids: Sequence[str]) -> None:
        keys = [key for key in map(self._records.drop, ids) if key is not None]
        self._discard_keys(keys)

    # -- reads ---------------------------------------------------------------------------

    def query(
        self,
        vector: npt.ArrayLike,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        ef_search: int | None = None,
    ) -> list[Hit]:
        """The ``k`` most similar records that pass ``filter``, highest score first.

        Args:
            vector: The query vector.
            k: How many hits at most.
            filter: A metadata filter (:mod:`zeroshot_vision.stores._filters`).
            ef_search: Search breadth for this query on an HNSW store (default
                :attr:`ef_search`); raised as needed when a filter or tombstones rule
                out part of the graph. Ignored by ``"flat"`` stores.
        """
        query, k = prepare_query(vector, k, filter, self._dim)
        breadth = self._ef_search if ef_search is None else _check_ef_search(ef_search)
        passes = RecordFilter.of(filter) if filter else None
        with self._lock.reading():
            return self._query(query, k, passes, breadth)

    def query_many(
        self,
        vectors: npt.ArrayLike,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        ef_search: int | None = None,
    ) -> list[list[Hit]]:
        """One hit list per row of ``vectors``, as :meth:`query` would give each.

        On a flat store the whole batch is one FAISS search (FAISS spreads it over the
        CPU's cores); the filter is compiled and evaluated once for the batch.
        """
        rows = np.asarray(vectors)
        if rows.ndim != 2:
            raise InvalidInputError(f"query_many takes a 2-D array, got shape {rows.shape}")
        queries = [prepare_query(row, k, filter, self._dim)[0] for row in rows]
        k = int(k)
        breadth = self._ef_search if ef_search is None else _check_ef_search(ef_search)
        passes = RecordFilter.of(filter) if filter else None
        with self._lock.reading():
            if self._is_graph or self._type == "ivfpq" or not len(self._records) or not queries:
                return [self._query(query, k, passes, breadth) for query in queries]
            allowed: npt.NDArray[np.int64] | None = None
            if passes is not None:
                allowed = self._records.matching_keys(passes)
                if not len(allowed):
                    return [[] for _ in queries]
            faiss = _faiss()
            params = selector = None
            if allowed is not None:
                selector = disk.key_selector(allowed)  # (selector, bitmap): alive to the end
                params = faiss.SearchParameters(sel=selector[0])
            top = min(k, len(allowed) if allowed is not None else len(self._records))
            scores, keys = self._index.search(np.vstack(queries), top, params=params)
            return [self._hits(*_found(s, key)) for s, key in zip(scores, keys)]

    def _hits(self, scores: Sequence[float], keys: Sequence[int]) -> list[Hit]:
        return [
            Hit(id=item, score=float(np.clip(score, -1.0, 1.0)), metadata=dict(meta))
            for score, (item, meta) in zip(scores, self._records.by_keys(keys))
        ]

    def _query(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        passes: RecordFilter | None,
        breadth: int,
    ) -> list[Hit]:
        total = len(self._records)
        if not total:
            return []
        allowed: npt.NDArray[np.int64] | None = None
        if passes is not None:
            allowed = self._records.matching_keys(passes)
            if not len(allowed):
                return []
        candidates = len(allowed) if allowed is not None else total
        k = min(k, candidates)
        if self._type == "ivfpq":
            found = self._index.search_keys(query[0], k, allowed)
            return self._hits(*_found(*found))
        if not self._is_graph:
            if allowed is not None and len(allowed) * 2 < total:
                # A selective filter: scoring only the passing vectors beats a full scan
                # that asks the ID selector about every vector.
                scores, keys = self._search_exact(query, k, allowed)
            else:
                scores, keys = self._search_flat(query, k, allowed)
        elif candidates <= EXACT_SEARCH_LIMIT:
            scores, keys = self._search_exact(query, k, allowed)
        else:
            scores, keys = self._search_graph(query, k, allowed, breadth)
            if len(keys) < k:  # the graph walk ran out of candidates that pass
                scores, keys = self._search_exact(query, k, allowed)
        return self._hits(scores, keys)

    def _search_flat(
        self, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[list[float], list[int]]:
        faiss = _faiss()
        params = selector = None
        if allowed is not None:
            selector = disk.key_selector(allowed)  # (selector, bitmap): alive to the end
            params = faiss.SearchParameters(sel=selector[0])
        scores, keys = self._index.search(query, k, params=params)
        return _found(scores[0], keys[0])

    def _search_graph(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None,
        breadth: int,
    ) -> tuple[list[float], list[int]]:
        faiss = _faiss()
        params = faiss.SearchParametersHNSW()
        selector: Any
        if allowed is not None:
            # The bitmap the selector reads must live to the end of the search.
            selector, _bitmap = disk.key_selector(allowed)
            passing = len(allowed)
        else:
            selector = self._dead_selector[0] if self._dead_selector else None
            passing = len(self._records)
        if selector is not None:
            params.sel = selector
        # The walk only collects vectors that pass: widen it by the share that does not,
        # so a selective filter finds about as many true neighbours as no filter would.
        widen = self._index.ntotal / passing
        params.efSearch = int(min(max(breadth, k) * widen, _MAX_EF_SEARCH))
        scores, keys = self._index.search(query, k, params=params)
        return _found(scores[0], keys[0])

    def _search_exact(
        self, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[list[float], list[int]]:
        """Brute force over the stored (for sq8: decoded) vectors of ``allowed``."""
        keys = self._records.keys() if allowed is None else np.asarray(allowed, dtype=np.int64)
        best_scores = np.zeros(0, dtype=np.float32)
        best_keys = np.zeros(0, dtype=np.int64)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            scores = self._index.reconstruct_batch(chunk) @ query[0]
            best_scores = np.concatenate([best_scores, scores])
            best_keys = np.concatenate([best_keys, chunk])
            if len(best_scores) > k:
                top = np.argpartition(-best_scores, k - 1)[:k]
                best_scores, best_keys = best_scores[top], best_keys[top]
        order = np.argsort(-best_scores, kind="stable")
        return [float(s) for s in best_scores[order]], [int(i) for i in best_keys[order]]

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records for ``ids``; absent ids are left out.

        An ``"hnsw-sq8"`` store returns its quantized vectors, within about 0.01 of
        those stored.
        """
        wanted = check_ids(ids)
        out: dict[str, Record] = {}
        with self._lock.reading():
            for item in wanted:
                found = self._records.get(item)
                if found is not None:
                    key, meta = found
                    vector = np.asarray(self._index.reconstruct(key), dtype=np.float32)
                    out[item] = Record(id=item, vector=vector, metadata=dict(meta))
        return out

    def ids(self) -> Iterator[str]:
        """Every stored id (a snapshot, safe to iterate while writing).

        The iterator shows what it holds in a notebook (``IdSnapshot(3 ids: 'a', ...)``).
        """
        with self._lock.reading():
            return IdSnapshot(*self._records.ids())

    # -- persistence -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        dim: int,
        index: str | None = None,
        ef_search: int | None = None,
        ivfpq: IvfPqSettings | Mapping[str, Any] | None = None,
        memory_budget: str | int | None = None,
        capacity: int | None = None,
    ) -> FaissStore:
        """The store saved in the folder ``path``, or a new empty one that will save there.

        :meth:`commit` saves to ``path``. This is how an index folder opens its store.

        Args:
            path: The store's folder.
            dim: The dimension of its vectors.
            index: The index type of a new store (default ``"flat"``). A saved store
                keeps the type it was built with; naming another one is an error.
            ef_search: Search breadth, for this session (a saved store otherwise keeps
                the one it was saved with).
            ivfpq: Settings of a new ``"ivfpq"`` store (a saved one keeps its own).
            memory_budget: For a new store: RAM it may take; picks its kind (see
                :class:`FaissStore`).
            capacity: For a new store with a memory budget: vectors to plan for.

        Raises:
            DimensionMismatchError: The saved store holds vectors of another dimension.
            InvalidInputError: The saved store has another index type than ``index``.
            StoreError: The saved files are damaged.
        """
        folder = Path(path)
        if files.has_store(folder):
            store = cls.load(folder)
            if store.dim != dim:
                raise DimensionMismatchError(
                    f"the store in {folder} holds dimension {store.dim}, not {dim}",
                    expected=dim,
                    actual=store.dim,
                )
            if index is not None and index != store.index_type:
                raise InvalidInputError(
                    f"the store in {folder} is a {store.index_type!r} index, not {index!r}; "
                    "copy it into a new store to change its type"
                )
            if ef_search is not None:
                store.ef_search = ef_search
        else:
            if isinstance(ivfpq, Mapping):  # as an index folder records it
                ivfpq = IvfPqSettings(**ivfpq)
            store = cls(
                dim,
                index=index or "flat",
                ef_search=DEFAULT_EF_SEARCH if ef_search is None else ef_search,
                ivfpq=ivfpq,
                memory_budget=memory_budget,
                capacity=capacity,
            )
            store._home = folder
            if store._type == "ivfpq":  # stream the vectors to the folder as they come
                folder.mkdir(parents=True, exist_ok=True)
                store._index.vectors.place(folder / "vectors-1.f16")
        return store

    def commit(self) -> None:
        """Save to the folder this store was opened or loaded from; in memory, do nothing.

        Only what changed since the last commit is written (see :meth:`save`). Queries
        go on while it writes; writes wait for it.
        """
        if self._home is not None:
            self.save(self._home)

    def close(self) -> None:
        """Nothing to release: a FaissStore holds no files open. Does not commit.

        A closed store stays usable; ``with FaissStore.open(...) as store:`` reads as a
        PineconeStore's does.
        """

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store to the folder ``path``, atomically.

        The folder is created if needed. A crash at any moment leaves either the previous
        version or the new one loadable, never a mix. Saving again to the folder this
        store was loaded from or last saved to writes only what changed since. Queries
        go on while it writes; writes wait for it.

        Only one process may save to a folder at a time (an index folder's lock sees to
        it): ``save`` first removes the temp files that killed saves left in the folder,
        and would remove another writer's too. Any number of processes may load it.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with self._save_lock, self._lock.reading():
            removed = remove_temp_files(folder)
            if removed:
                logger.info("removed %d temp files of interrupted saves from %s", removed, folder)
            previous = files.read_manifest(folder) if files.has_store(folder) else None
            if previous is not None and self._can_save_delta(folder, previous):
                if self._changed:  # nothing changed since the last save: nothing to write
                    self._save_delta(folder, previous)
            else:
                self._save_generation(folder, previous)
                self._rewrite = False
            self._changed.clear()

    def ram_bytes(self) -> int:
        """About how many bytes of RAM the index and the records take (not the mapped files).

        An ``"ivfpq"`` store counts its codes, ids, centroids and unsaved rows; the other
        kinds are estimated per vector (:func:`~zeroshot_vision.stores._faiss_budget.
        index_ram_per_vector`). Records (ids, metadata) held in Python objects are counted
        at :data:`~zeroshot_vision.stores._faiss_budget.RECORD_BYTES` each: all of them,
        except in a saved ``"ivfpq"`` store, whose records file holds them.
        """
        from zeroshot_vision.stores._faiss_budget import RECORD_BYTES, index_ram_per_vector

        with self._lock.reading():
            count = len(self._records)
            if self._type == "ivfpq":
                count = self._records.overlay_size
                index = int(self._index.ram_bytes())
            else:
                held = int(self._index.ntotal)
                index = int(index_ram_per_vector(self._type, self._dim) * held)
        return index + RECORD_BYTES * count

    @staticmethod
    def disk_usage(path: str | os.PathLike[str]) -> int:
        """Bytes the store saved in the folder ``path`` takes on disk.

        Counts the live generation, its deltas and the previous generation kept for
        readers; leaves out temp files of interrupted saves (the next save removes them).
        """
        return folder_size(Path(path))

    def _can_save_delta(self, folder: Path, previous: files.StoreManifest) -> bool:
        deltas = previous.deltas
        return (
            self._saved == (folder.resolve(), previous.generation, len(deltas))
            and not self._rewrite
            and len(deltas) < files.MAX_DELTAS
            and len(self._changed) <= max(256, len(self._records) // 4)
            # An "ivfpq" store's overlay of records in RAM stays small: past the limit,
            # a new records file takes it in.
            and (
                self._type != "ivfpq" or self._records.overlay_size <= records_module.OVERLAY_LIMIT
            )
        )

    def _shape(self) -> StoreShape:
        vectors = settings = None
        if self._type == "ivfpq":
            path = self._index.vectors.path
            vectors = None if path is None else path.name
            settings = self._index.settings.as_json()
        return StoreShape(
            dim=self._dim,
            index_type=self._type,
            ef_search=self._ef_search,
            count=len(self._records),
            vectors=vectors,
            ivfpq=settings,
        )

    def _save_generation(self, folder: Path, previous: files.StoreManifest | None) -> None:
        index: bytes | Callable[[Path], None]
        records: list[files.RecordRow] | Callable[[Path], None]
        if self._type == "ivfpq":
            # The vectors go first: synced to this folder's file (a new one if the rows
            # live elsewhere) before the manifest names them.
            vectors = self._index.vectors
            if vectors.path is not None and vectors.path.parent.resolve() == folder.resolve():
                vectors.flush()
            else:
                number = (previous.generation + 1) if previous else 1
                vectors.copy_to(folder / f"vectors-{number}.f16")
            index = self._index.write_codes
            next_key = self._next_key
            indexed = self._index.settings.indexed_fields
            records = lambda path: self._records.write_sqlite(  # noqa: E731
                path, next_key, indexed
            )
        else:
            index = _faiss().serialize_index(self._index).tobytes()
            records = [[item, key, meta] for item, key, meta in self._records.rows()]
        generation = files.write_generation(
            folder,
            previous,
            index=index,
            next_key=self._next_key,
            records=records,
            shape=self._shape(),
        )
        if self._type == "ivfpq":  # the records now live in that file, not in RAM
            self._records.rebase(folder / files.records_name(generation, sqlite=True))
        self._saved = (folder.resolve(), generation, 0)
        logger.debug(
            "saved %d vectors to %s (generation %d)", len(self._records), folder, generation
        )

    def _save_delta(self, folder: Path, previous: files.StoreManifest) -> None:
        if self._type == "ivfpq":
            self._index.vectors.flush()  # the rows of every key the delta names, synced
        upserts = [item for item, present in self._changed.items() if present]
        deletes = [item for item, present in self._changed.items() if not present]
        rows: list[files.RecordRow] = []
        keys: list[int] = []
        for item in upserts:
            found = self._records.get(item)
            assert found is not None  # _changed names it present: it is in the records
            rows.append([item, found[0], found[1]])
            keys.append(found[0])
        vectors = np.zeros((len(keys), self._dim), dtype=np.float32)
        for row, key in enumerate(keys):
            vectors[row] = self._index.reconstruct(key)
        count = files.write_delta(
            folder,
            previous,
            next_key=self._next_key,
            upserts=rows,
            vectors=vectors,
            deletes=deletes,
            shape=self._shape(),
        )
        self._saved = (folder.resolve(), previous.generation, count)
        logger.debug(
            "saved a delta of %d upserts and %d deletes to %s", len(upserts), len(deletes), folder
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaissStore:
        """Load a store written by :meth:`save`.

        Safe while another process saves to the same folder: if a file the manifest
        names is removed before it is read (a newer save replaced it), the manifest is
        read again, a few times at most.

        Raises:
            IndexNotFoundError: If ``path`` holds no saved store.
            StoreError: If the files are damaged or inconsistent.
        """
        folder = Path(path)
        return files.load_retrying(folder, lambda manifest: cls._load(folder, manifest))

    @classmethod
    def _load(cls, folder: Path, manifest: files.StoreManifest, codes: bool = True) -> FaissStore:
        if manifest.index_type == "ivfpq":
            return cls._load_ivfpq(folder, manifest, codes)
        faiss = _faiss()
        deltas = manifest.deltas
        _, records = files.read_generation(folder, manifest, read_index=False)
        try:
            # Straight from the file: reading its bytes first and deserializing them held
            # the index three times over at the peak (14 GB to load a 4.6 GB flat store).
            index = faiss.read_index(str(folder / manifest.index))
        except (RuntimeError, ValueError) as exc:
            if not (folder / manifest.index).exists():  # a writer retired it meanwhile
                raise files.FileVanishedError(str(folder / manifest.index)) from exc
            raise StoreError(f"cannot load FaissStore from {folder}: {exc}") from exc
        index_type = manifest.index_type  # one of INDEX_TYPES, as the manifest's model checks
        store = cls(manifest.dim, index=index_type, ef_search=manifest.ef_search)
        store._index = index
        store._next_key = records.next_key
        for item, key, meta in records.records:
            store._records.put(item, key, {} if meta is None else meta)
        live = set(store._records.keys().tolist())
        graph = store._is_graph
        # An HNSW graph also holds the vectors of overwritten and deleted records.
        held = set(faiss.vector_to_array(index.id_map).tolist()) if graph else None
        if (
            index.d != store.dim
            or graph != (index_type == "hnsw" or (index_type == "hnsw-sq8" and graph))
            or (held is None and index.ntotal != len(records.records))
            or (held is not None and not held.issuperset(live))
        ):
            raise StoreError(
                f"FaissStore at {folder} is inconsistent: a {index_type} store, but the index "
                f"is a {type(faiss.downcast_index(index.index)).__name__} of {index.ntotal} "
                f"vectors of dim {index.d}, and the records list {len(records.records)}"
            )
        if held is not None:
            store._discard_keys(sorted(held.difference(live)))
        for name in deltas:
            store._apply_delta(folder, name)
        if manifest.count is not None and len(store) != manifest.count:
            raise IndexDamagedError(
                f"FaissStore at {folder} is inconsistent: field 'count' of {files.MANIFEST} "
                f"says {manifest.count} vectors, the files hold {len(store)}",
                path=str(folder / files.MANIFEST),
            )
        store._saved = (folder.resolve(), manifest.generation, len(deltas))
        store._home = folder
        return store

    @classmethod
    def _load_ivfpq(cls, folder: Path, manifest: files.StoreManifest, codes: bool) -> FaissStore:
        """Load an ``"ivfpq"`` store; without ``codes``, untrained (exact over its vectors).

        The codes are the part that can be rebuilt (:func:`rebuild_store` loads the
        store without them to do it).
        """
        try:
            recorded: dict[str, Any] = dict(manifest.ivfpq or {})
            settings = IvfPqSettings(**recorded)
        except (TypeError, InvalidInputError) as exc:
            raise IndexDamagedError(
                f"field 'ivfpq' of {folder / files.MANIFEST} is damaged: {exc}",
                path=str(folder / files.MANIFEST),
            ) from exc
        store = cls(manifest.dim, index="ivfpq", ef_search=manifest.ef_search, ivfpq=settings)
        index = store._index
        if files.is_sqlite_records(manifest.records):  # version 5: records stay on disk
            if not (folder / manifest.index).exists():
                raise files.FileVanishedError(str(folder / manifest.index))
            records_path = folder / manifest.records
            if not records_path.is_file():
                raise files.FileVanishedError(str(records_path))
            store._records.rebase(records_path)
            saved_next_key = store._records.next_key
        else:  # version 4: a JSON records file, read into RAM until the next generation
            _, records = files.read_generation(folder, manifest, read_index=False)
            for item, key, meta in records.records:
                store._records.put(item, key, {} if meta is None else meta)
            saved_next_key = records.next_key
        next_key = saved_next_key
        for name in manifest.deltas:  # the last delta knows the highest key committed
            next_key = max(next_key, files.read_delta(folder, name, manifest.dim).next_key)
        if manifest.vectors is None:
            if next_key:
                raise IndexDamagedError(
                    f"{folder / files.MANIFEST} names no vectors file for {next_key} keys",
                    path=str(folder / files.MANIFEST),
                )
        else:
            vectors_path = folder / manifest.vectors
            if not vectors_path.exists() and next_key:
                raise files.FileVanishedError(str(vectors_path))
            index.vectors.attach(vectors_path, rows=next_key)
        if codes:
            index.read_codes(folder / manifest.index)
        store._next_key = saved_next_key
        keys = store._records.keys()
        index.restore(keys)
        if index.code_count() != len(keys):
            raise IndexDamagedError(
                f"the FaissStore codes file {folder / manifest.index} holds "
                f"{index.code_count()} vectors, the records {len(keys)}; "
                + disk.repair_hint(folder),
                path=str(folder / manifest.index),
            )
        for name in manifest.deltas:
            store._apply_delta(folder, name)
        if manifest.count is not None and len(store) != manifest.count:
            raise IndexDamagedError(
                f"FaissStore at {folder} is inconsistent: field 'count' of {files.MANIFEST} "
                f"says {manifest.count} vectors, the files hold {len(store)}",
                path=str(folder / files.MANIFEST),
            )
        store._saved = (folder.resolve(), manifest.generation, len(manifest.deltas))
        store._home = folder
        return store

    def _apply_delta(self, folder: Path, name: str) -> None:
        delta = files.read_delta(folder, name, self._dim)
        self._drop(delta.deletes)
        if delta.upserts:
            self._put(
                [item for item, _, _ in delta.upserts],
                [int(key) for _, key, _ in delta.upserts],
                delta.vectors,
                [meta for _, _, meta in delta.upserts],
            )
        self._next_key = max(self._next_key, delta.next_key)


def _check_ef_search(value: object) -> int:
    return positive_int(value, "ef_search")


def _learn_range(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The ``(2, dim)`` per-dimension range an 8-bit quantizer should cover."""
    dim = vectors.shape[1]
    if len(vectors) < _FEW_TO_LEARN_FROM:
        # Too few to tell where values fall: cover all a unit vector can hold.
        return np.stack([np.full(dim, -1.0, np.float32), np.full(dim, 1.0, np.float32)])
    low, high = vectors.min(axis=0), vectors.max(axis=0)
    # A margin for vectors to come that reach a little further than these did; a unit
    # vector never leaves [-1, 1].
    margin = 0.05 * (high - low) + 1e-6
    low, high = np.maximum(low - margin, -1.0), np.minimum(high + margin, 1.0)
    return np.stack([low, high]).astype(np.float32)


def _found(
    scores: npt.NDArray[np.float32], keys: npt.NDArray[np.int64]
) -> tuple[list[float], list[int]]:
    """FAISS's results without the -1 keys it pads them with when it found fewer."""
    kept = keys >= 0
    return [float(s) for s in scores[kept]], [int(i) for i in keys[kept]]


class IdSnapshot(Iterator[str]):
    """An iterator over a fixed set of ids, with a readable ``repr`` and a length.

    The ids may be streamed (an ``"ivfpq"`` store reads them from its records file as
    they are iterated); the few ``repr`` shows are read ahead.
    """

    def __init__(self, ids: Iterable[str], count: int | None = None) -> None:
        if count is None:
            ids = list(ids)
            count = len(ids)
        self._ids = iter(ids)
        self._ahead: list[str] = []
        self._left = count

    def __next__(self) -> str:
        item = self._ahead.pop(0) if self._ahead else next(self._ids)
        self._left -= 1
        return item

    def __len__(self) -> int:
        """How many ids are left to iterate."""
        return self._left

    def __repr__(self) -> str:
        while len(self._ahead) < 6 and len(self._ahead) < self._left:
            self._ahead.append(next(self._ids))
        if not self._left:
            return "IdSnapshot(0 ids)"
        shown = ", ".join(repr(item) for item in self._ahead[:5])
        more = ", ..." if self._left > 5 else ""
        return f"IdSnapshot({self._left} ids: {shown}{more})"
