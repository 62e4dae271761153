"""Memory budgets: which FAISS index kind holds a collection in a given amount of RAM.

:func:`plan_index` turns a budget (``"4GB"``) and a capacity (vectors to plan for) into
an :class:`IndexPlan`: the most accurate kind whose RAM fits, its settings, and the
recall@10 to expect from it (as measured by ``benchmarks/bench_scale.py`` on clustered
1152-d vectors; check it on your own queries). ``FaissStore(dim, memory_budget=...)``
and ``zsv index --memory-budget`` use it.

RAM per vector, as this module counts it (``d`` the dimension):

* ``flat``: ``4d`` for the vector, plus the id map.
* ``hnsw``: ``4d`` plus the graph (``2 x M`` links of 4 bytes in its base layer, M=32).
* ``hnsw-sq8``: ``d`` plus a graph of M=16.
* ``ivfpq``: the PQ code (``code_bytes``), its 8-byte id and a liveness byte; plus the
  centroids once. The float16 vectors (``2d``) are on disk, memory-mapped: the kernel
  keeps the pages it has room for, and drops them first.

Every kind also pays :data:`RECORD_BYTES` per record for the store's ids and (small)
metadata, which live in Python objects; ``ivfpq`` only for the records changed since its
last records file was written (at most
:data:`~zeroshot_vision.stores._faiss_records.OVERLAY_LIMIT`): the rest are in that
SQLite file, read through a memory map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.stores._faiss_disk import HNSW_QUANTIZER_LISTS, IvfPqSettings
from zeroshot_vision.stores._faiss_records import OVERLAY_LIMIT

__all__ = ["IndexPlan", "index_ram_per_vector", "parse_size", "plan_index"]

RECORD_BYTES = 400
"""RAM per record outside the index: its id, FAISS key and a small metadata dict."""
DEFAULT_CAPACITY = 1_000_000
"""Vectors a budget is planned for when no capacity is given."""
FLAT_LIMIT = 200_000
"""Up to this many vectors exact search is fast enough (tens of ms) to be the pick."""

EXPECTED_RECALL: dict[str, float] = {
    "flat": 1.0,
    "hnsw": 0.998,
    "hnsw-sq8": 0.97,
    "ivfpq-96": 0.98,  # bench_scale.py at 100k: 0.981
    "ivfpq-48": 0.97,
    "ivfpq-24": 0.90,
}
"""recall@10 against exact search on clustered 1152-d vectors (``bench_ann.py`` at 1M for
the HNSW kinds, ``bench_scale.py`` for ivfpq, which re-scores its candidates exactly)."""

_CODE_BYTES = (96, 48, 24)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(size: str | int) -> int:
    """Bytes in ``size``: an integer, or a number with a unit (``4GB``, ``512MiB``).

    Raises:
        InvalidInputError: Not a size, or not positive.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        found = _SIZE.match(str(size))
        unit = found.group(2).lower() if found else None
        if not found or unit not in _UNITS:
            raise InvalidInputError(
                f"{size!r} is not a size: give bytes or a number with KB, MB, GB, TB "
                "(or KiB, MiB, GiB, TiB), such as 4GB"
            )
        value = int(float(found.group(1)) * _UNITS[unit])
    if value <= 0:
        raise InvalidInputError(f"a memory budget must be positive, got {size!r}")
    return value


def _lists(capacity: int) -> int:
    return IvfPqSettings(expected_count=capacity).lists_for(max(capacity, 1))


def index_ram_per_vector(kind: str, dim: int, code_bytes: int = 0) -> float:
    """Bytes of RAM one vector takes in an index of ``kind`` (without fixed costs)."""
    if kind == "flat":
        return 4 * dim + 16
    if kind == "hnsw":
        return 4 * dim + 2 * 32 * 4 * 1.1 + 16
    if kind == "hnsw-sq8":
        return dim + 2 * 16 * 4 * 1.1 + 16
    if kind == "ivfpq":
        return code_bytes + 8 + 1
    raise InvalidInputError(f"no RAM estimate for index kind {kind!r}")


@dataclass(frozen=True, kw_only=True)
class IndexPlan:
    """What :func:`plan_index` picked.

    Attributes:
        index: The kind (``"flat"``, ``"hnsw"``, ``"hnsw-sq8"``, ``"ivfpq"``).
        ivfpq: Its settings, for ``"ivfpq"``.
        ram_bytes: RAM it should take at ``capacity`` vectors, records included.
        disk_bytes: Disk it should take (vectors files and saved index).
        capacity: The vectors planned for.
        expected_recall: recall@10 against exact search to expect.
    """

    index: str
    ivfpq: IvfPqSettings | None
    ram_bytes: int
    disk_bytes: int
    capacity: int
    expected_recall: float

    def summary(self) -> str:
        """One line: the kind, its RAM and disk, and the recall to expect."""
        kind = self.index
        if self.ivfpq is not None:
            kind += f" ({self.ivfpq.code_bytes}-byte codes, nprobe {self.ivfpq.nprobe})"
        return (
            f"{kind} for {self.capacity:,} vectors: about {_gb(self.ram_bytes)} of RAM, "
            f"{_gb(self.disk_bytes)} on disk, expected recall@10 {self.expected_recall:.2f}"
        )


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB"


def _plans(dim: int, capacity: int) -> list[IndexPlan]:
    """Every candidate, most accurate first."""
    plans = []
    records = RECORD_BYTES * capacity
    for kind in ("flat", "hnsw", "hnsw-sq8"):
        ram = int(index_ram_per_vector(kind, dim) * capacity) + records
        if kind == "flat" and capacity > FLAT_LIMIT:
            continue  # exact, but too slow per query at this size
        plans.append(
            IndexPlan(
                index=kind,
                ivfpq=None,
                ram_bytes=ram,
                disk_bytes=ram - records,
                capacity=capacity,
                expected_recall=EXPECTED_RECALL[kind],
            )
        )
    lists = _lists(capacity)
    centroids = lists * dim * 4 * (2 if lists >= HNSW_QUANTIZER_LISTS else 1)
    for code in _CODE_BYTES:
        usable = max(d for d in range(1, min(dim, code) + 1) if dim % d == 0)
        settings = IvfPqSettings(
            code_bytes=usable,
            expected_count=capacity,
            train_size=min(max(39 * lists, 50_000), max(capacity, 1)),
        )
        in_python = RECORD_BYTES * min(capacity, OVERLAY_LIMIT)  # the rest: in SQLite
        ram = int(index_ram_per_vector("ivfpq", dim, usable) * capacity) + centroids + in_python
        disk = capacity * (2 * dim + usable + 8) + centroids
        recall = EXPECTED_RECALL.get(f"ivfpq-{code}", 0.9)
        plans.append(
            IndexPlan(
                index="ivfpq",
                ivfpq=settings,
                ram_bytes=ram,
                disk_bytes=disk,
                capacity=capacity,
                expected_recall=recall,
            )
        )
    return plans


def plan_index(dim: int, budget: str | int, *, capacity: int | None = None) -> IndexPlan:
    """The most accurate FAISS index kind whose RAM at ``capacity`` vectors fits ``budget``.

    Args:
        dim: The vector dimension.
        budget: RAM the store may take: bytes, or ``"4GB"``, ``"512MiB"``...
        capacity: Vectors to plan for (default :data:`DEFAULT_CAPACITY`).

    Raises:
        InvalidInputError: The budget is not a size, or too small for any kind (the
            message gives the smallest budget that fits).

    Example:
        >>> plan_index(1152, "8GB", capacity=10_000_000).index
        'ivfpq'
    """
    size = parse_size(budget)
    capacity = DEFAULT_CAPACITY if capacity is None else int(capacity)
    if capacity <= 0:
        raise InvalidInputError(f"capacity must be a positive number of vectors, got {capacity}")
    plans = _plans(dim, capacity)
    for plan in plans:
        if plan.ram_bytes <= size:
            return plan
    smallest = min(plans, key=lambda plan: plan.ram_bytes)
    raise InvalidInputError(
        f"a memory budget of {_gb(size)} is too small for {capacity:,} vectors of dimension "
        f"{dim}: the smallest index, {smallest.summary()}; give at least "
        f"{_gb(smallest.ram_bytes)}, or plan for fewer vectors"
    )
