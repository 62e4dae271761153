"""The ``VectorStore`` protocol and the input checks every backend shares.

A backend is any class with these methods; it does not inherit from anything. The rules
below are the contract, and :mod:`zeroshot_vision.testing._contract` checks them: every
backend runs that suite by supplying one fixture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import check_id, item_list, positive_int
from zeroshot_vision._errors import (
    DimensionMismatchError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidVectorError,
)
from zeroshot_vision._text import is_utf8, short_repr
from zeroshot_vision.stores._filters import INT_RANGE, int_in_range, validate_filter

if TYPE_CHECKING:
    from zeroshot_vision._types import Hit, Metadata, Record

__all__ = [
    "INT_RANGE",
    "MAX_DIM",
    "MAX_METADATA_DEPTH",
    "VectorStore",
    "check_ids",
    "check_k",
    "clean_metadata",
    "normalize_rows",
    "prepare_query",
    "prepare_upsert",
]

MAX_DIM = 1 << 16
"""The largest dimension a file on disk may declare (SigLIP's largest is 1,152): a bigger
number in a manifest is damage, not a model."""

MAX_METADATA_DEPTH = 32
"""How deeply lists and mappings may nest in one record's metadata, the record's own
mapping counting as the first level. Deeper metadata is refused at upsert: it would fail
to save (or to load) with a ``RecursionError`` instead.
"""


@runtime_checkable
class VectorStore(Protocol):
    """Where image vectors live, and how they are searched.

    Rules every backend obeys:

    * Vectors are compared by cosine similarity. Stores normalize what they receive, so
      ``Hit.score`` is a cosine in [-1, 1], and hits come highest score first.
    * ``upsert`` of an existing id overwrites its vector *and* its metadata. If the same id
      appears twice in one call, the last one wins.
    * ``delete`` of an id that is not stored is not an error.
    * ``query`` returns at most ``k`` hits and never a placeholder: with fewer matching
      records than ``k``, it returns fewer hits.
    * Filters use one language everywhere (:mod:`zeroshot_vision.stores._filters`).
    * Rejected input raises a subclass of ``ValueError``
      (:class:`~zeroshot_vision._errors.InvalidInputError`) and changes nothing: a wrong
      dimension, NaN or infinite values, an all-zero vector, ids and vectors of different
      lengths, empty or non-string ids, metadata that is not JSON-like, a malformed filter.
      Ids and metadata must also be savable: text must be valid UTF-8 (no lone surrogates,
      as ``os.walk`` yields for file names that are not UTF-8), integers must lie in
      :data:`INT_RANGE`, and metadata may nest at most :data:`MAX_METADATA_DEPTH` deep.
    * ``commit`` makes writes durable and ``close`` releases resources; an index folder
      (:class:`~zeroshot_vision._index.IndexFolder`) calls them the same way for every
      backend, and new backends join through :func:`~zeroshot_vision.stores.register_store_kind`.
    * Every store is a context manager: ``with store:`` returns the store itself and
      closes it on the way out (without committing, as ``close`` does).
    """

    @property
    def dim(self) -> int:
        """The dimension of every stored vector."""
        ...

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert or overwrite records.

        Args:
            ids: One non-empty string per vector.
            vectors: A ``(len(ids), dim)`` array of finite, non-zero vectors.
            metadata: One JSON-like mapping (or ``None`` for none) per id.
        """
        ...

    def query(
        self, vector: npt.ArrayLike, k: int = 10, filter: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The ``k`` stored vectors most similar to ``vector`` that pass ``filter``."""
        ...

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records for ``ids``; ids that are not stored are left out."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; ids that are not stored are ignored."""
        ...

    def ids(self) -> Iterator[str]:
        """Every stored id, in no particular order."""
        ...

    def __len__(self) -> int:
        """How many records are stored."""
        ...

    # Lifecycle. A backend that subclasses ``VectorStore`` explicitly inherits these
    # defaults; one that does not must define all four (commit and close may do nothing).

    def commit(self) -> None:
        """Make every write so far durable.

        An embedded store writes its files here (atomically: a crash leaves the previous
        commit readable); a remote store whose every write is already durable does
        nothing. Writes after the last commit may be lost if the process dies.
        """
        return None

    def close(self) -> None:
        """Release connections, handles and files. Does not commit.

        Closing twice is harmless; using a store after closing it is not supported.
        """
        return None

    def __enter__(self) -> VectorStore:
        """The store itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store (see :meth:`close`)."""
        self.close()


def check_k(k: object) -> int:
    """Validate a result count and return it as an ``int``."""
    return positive_int(k, "k")


def _as_matrix(vectors: npt.ArrayLike, dim: int, *, what: str) -> npt.NDArray[np.float32]:
    try:
        array = np.asarray(vectors)
        if array.dtype not in (np.float32, np.float64):  # float32 is not widened: no copy
            array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(f"{what} must be numeric arrays: {exc}") from exc
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be a 2-D array, got shape {array.shape}")
    if array.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} have dimension {array.shape[1]}, but the store holds dimension {dim}",
            expected=dim,
            actual=int(array.shape[1]),
        )
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise InvalidVectorError(f"{what} row {bad} holds NaN or infinity")
    return normalize_rows(array, what=what)


def normalize_rows(array: npt.ArrayLike, *, what: str = "vectors") -> npt.NDArray[np.float32]:
    """Scale each row to unit length, as C-contiguous float32.

    Rows already of unit length (within float32 rounding, as the encoder and every store
    give them) are kept bit for bit: dividing them by their norm again would move some
    components by one unit in the last place, and a copy or an export and import round
    trip must give back exactly what was stored.

    Raises:
        InvalidVectorError: If a row is all zeros (it has no direction).
    """
    source = np.asarray(array)
    if source.dtype not in (np.float32, np.float64):
        source = np.asarray(source, dtype=np.float64)
    matrix = np.array(source, dtype=np.float32, order="C")  # the copy returned
    # Norms in float64, a block of rows at a time: widening the whole matrix (as
    # np.linalg.norm on a float64 copy did) cost 8x its float32 size in temporaries and
    # most of a large upsert's time. Same pairwise sums, so the same norms to the bit.
    norms = np.empty(len(matrix), dtype=np.float64)
    for start in range(0, len(matrix), _NORM_BLOCK):
        part = np.asarray(source[start : start + _NORM_BLOCK], dtype=np.float64)
        norms[start : start + _NORM_BLOCK] = np.sqrt((part * part).sum(axis=1))
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms == 0)[0])
        raise InvalidVectorError(f"{what} row {bad} is all zeros and has no direction")
    off = np.flatnonzero(np.abs(norms - 1.0) > UNIT_TOLERANCE)
    if len(off):
        matrix[off] = np.asarray(source[off], dtype=np.float64) / norms[off, None]
    return matrix


_NORM_BLOCK = 2048
UNIT_TOLERANCE = 1e-6
"""A row whose norm is this close to 1 counts as unit length and is stored unchanged."""


def clean_metadata(value: Any, *, where: str = "metadata") -> Any:
    """Return a plain-JSON copy of ``value``, or raise :class:`InvalidMetadataError`.

    Accepts UTF-8 str, bool, int in :data:`INT_RANGE`, finite float, ``None``,
    lists/tuples and str-keyed mappings nested at most :data:`MAX_METADATA_DEPTH` deep,
    and numpy scalars (converted to Python numbers). Whatever it accepts, every store can
    save and load back unchanged.
    """
    return _clean(value, where=where, depth=0)


def _clean(value: Any, *, where: str, depth: int) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not int_in_range(value):
            # Python cannot even write an int of more than 4,300 digits as text; JSON
            # readers other than Python's lose precision far sooner.
            raise InvalidMetadataError(
                f"{where} holds an integer of {value.bit_length()} bits, outside the 64-bit "
                f"range [{INT_RANGE[0]}, {INT_RANGE[1]}]; store it as a string"
            )
        return value
    if isinstance(value, str):
        if not is_utf8(value):
            raise InvalidMetadataError(
                f"{where} holds text that is not valid UTF-8 (a lone surrogate, as from a "
                f"file name that is not UTF-8): {short_repr(value)}"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"{where} holds a non-finite number {value!r}")
        return value
    if isinstance(value, (list, tuple, Mapping)) and depth >= MAX_METADATA_DEPTH:
        raise InvalidMetadataError(
            f"{where} nests lists and mappings more than {MAX_METADATA_DEPTH} deep"
        )
    if isinstance(value, (list, tuple)):
        return [_clean(v, where=f"{where}[{i}]", depth=depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadataError(
                    f"{where} has a key that is not a string: {short_repr(key)}"
                )
            if not is_utf8(key):
                raise InvalidMetadataError(
                    f"{where} has a key that is not valid UTF-8: {short_repr(key)}"
                )
            # A key with a newline or an escape sequence would break a one-line message.
            field = f"{where}.{key}" if key.isprintable() else f"{where}[{short_repr(key)}]"
            out[key] = _clean(item, where=field, depth=depth + 1)
        return out
    raise InvalidMetadataError(
        f"{where} holds a {type(value).__name__}, which is not JSON-like "
        "(use str, number, bool, None, list or dict)"
    )


def prepare_upsert(
    ids: Sequence[str],
    vectors: npt.ArrayLike,
    metadata: Sequence[Metadata | None] | None,
    dim: int,
) -> tuple[list[str], npt.NDArray[np.float32], list[dict[str, Any]]]:
    """Validate an upsert and return clean ids, unit vectors and metadata dicts.

    Duplicate ids within the call are collapsed, the last occurrence winning.
    """
    id_list = check_ids(ids)
    matrix = _as_matrix(vectors, dim, what="vectors") if id_list else np.zeros((0, dim), "f4")
    if len(matrix) != len(id_list):
        raise InvalidInputError(f"got {len(id_list)} ids but {len(matrix)} vectors")
    if metadata is None:
        meta_list: list[dict[str, Any]] = [{} for _ in id_list]
    else:
        if isinstance(metadata, (Mapping, str)):
            raise InvalidMetadataError("metadata must be a sequence with one mapping per id")
        if len(metadata) != len(id_list):
            raise InvalidInputError(f"got {len(id_list)} ids but {len(metadata)} metadata items")
        meta_list = []
        for i, meta in enumerate(metadata):
            if meta is None:
                meta_list.append({})
            elif not isinstance(meta, Mapping):
                raise InvalidMetadataError(
                    f"metadata[{i}] must be a mapping, got {type(meta).__name__}"
                )
            else:
                meta_list.append(clean_metadata(meta, where=f"metadata[{i}] (id {id_list[i]!r})"))
    last = {item: i for i, item in enumerate(id_list)}
    if len(last) != len(id_list):
        keep = sorted(last.values())
        id_list = [id_list[i] for i in keep]
        matrix = matrix[keep]
        meta_list = [meta_list[i] for i in keep]
    return id_list, matrix, meta_list


def prepare_query(
    vector: npt.ArrayLike, k: object, filter: Mapping[str, Any] | None, dim: int
) -> tuple[npt.NDArray[np.float32], int]:
    """Validate a query and return a ``(1, dim)`` unit vector and ``k``."""
    k = check_k(k)
    validate_filter(filter)
    array = np.asarray(vector)
    if array.ndim == 2 and array.shape[0] != 1:
        raise InvalidVectorError(f"query takes one vector, got shape {array.shape}")
    return _as_matrix(array, dim, what="query vector"), k


def check_ids(ids: Sequence[str]) -> list[str]:
    """Validate a list of ids (for upsert, fetch or delete) and return it as a list.

    Each id follows the one id rule, :func:`~zeroshot_vision._checks.check_id`.

    Raises:
        InvalidInputError: If ``ids`` is one string, or an id is empty, not a string, not
            valid UTF-8 (a store could not save it), or longer than
            :data:`~zeroshot_vision._checks.MAX_ID_BYTES` bytes.
    """
    if isinstance(ids, str):
        raise InvalidInputError("ids must be a sequence of strings, not one string")
    out = item_list(ids, "ids")
    for i, item in enumerate(out):
        check_id(item, f"ids[{i}]")
    return out
