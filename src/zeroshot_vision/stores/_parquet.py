"""Vectors in and out as Parquet: move an index to another tool, and back.

The file has one row per record and three columns:

* ``id`` (string): the stored id;
* ``vector`` (fixed-size list of float32): the stored unit vector, bit for bit;
* ``metadata`` (string): the stored metadata as JSON text (``null`` when empty), so any
  shape of metadata survives, and ``json.loads`` or DuckDB's ``json`` functions read it.

The file's schema metadata (key ``zeroshot_vision``) records the dimension and, when
known, the model, so an import into a new index folder knows both. Files written by
other tools import too, as long as they have ``id`` and ``vector`` columns (a list of
floats of the right length); ``metadata`` may also be a struct column.

Both directions stream in batches (``store.ids()`` then ``store.fetch`` out; Parquet
record batches in), so memory stays bounded whatever the collection's size; export
works for every store, through the :class:`~zeroshot_vision.stores.VectorStore`
protocol. ``pyarrow`` comes with the ``parquet`` extra.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic

from zeroshot_vision._checks import MAX_ID_BYTES, batched, check_id, positive_int
from zeroshot_vision._errors import DimensionMismatchError, InvalidInputError
from zeroshot_vision._files import check_replaceable, replace_file
from zeroshot_vision._json import describe_problem, loads_bounded
from zeroshot_vision._optional import require
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision._text import short_repr
from zeroshot_vision.stores._base import MAX_METADATA_DEPTH

if TYPE_CHECKING:
    from zeroshot_vision.stores._base import VectorStore

__all__ = [
    "MAX_IMPORT_ID_BYTES",
    "MAX_ROW_METADATA_BYTES",
    "ParquetVectors",
    "export_store",
    "import_store",
    "vectors_schema",
    "vectors_table",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
SCHEMA_KEY = b"zeroshot_vision"
FORMAT_VERSION = 1
MAX_ROW_METADATA_BYTES = 1 << 20
"""The largest metadata (JSON text) one row may carry; more is refused, not parsed."""
MAX_IMPORT_ID_BYTES = MAX_ID_BYTES
"""The longest id an import accepts: the one id rule's
(:data:`~zeroshot_vision._checks.MAX_ID_BYTES`)."""
_SCHEMA_MAX_BYTES = 1 << 16


def _pyarrow() -> tuple[Any, Any]:
    pa = require("pyarrow", extra="parquet", purpose="Parquet export and import")
    pq = require("pyarrow.parquet", extra="parquet", purpose="Parquet export and import")
    return pa, pq


@dataclass(frozen=True, kw_only=True)
class ParquetVectors:
    """What a vectors file holds, read from its schema without reading the rows.

    Attributes:
        path: The file.
        rows: How many records it holds.
        dim: The vector dimension (``None`` for a variable-length list column: checked
            row by row on import).
        model: The model that made the vectors, when the file records it.
    """

    path: Path
    rows: int
    dim: int | None
    model: str | None

    @classmethod
    def open(cls, path: PathLike) -> ParquetVectors:
        """Read a vectors file's schema.

        Raises:
            InvalidInputError: Not a Parquet file, or no ``id`` or ``vector`` column.
            FileNotFoundError: No such file.
        """
        pa, pq = _pyarrow()
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(2, "no such file", str(file))
        try:
            parquet = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(f"{file} is not a Parquet file ({exc})") from exc
        schema = parquet.schema_arrow
        missing = [name for name in ("id", "vector") if name not in schema.names]
        if missing:
            raise InvalidInputError(
                f"{file} has no {' or '.join(repr(m) for m in missing)} column (it has "
                f"{', '.join(schema.names) or 'none'}); vectors files need id and vector"
            )
        vector_type = schema.field("vector").type
        dim: int | None = None
        if pa.types.is_fixed_size_list(vector_type):
            dim = int(vector_type.list_size)
        elif not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type)):
            raise InvalidInputError(f"{file}: the vector column holds {vector_type}, not lists")
        recorded = _schema_record(file, (schema.metadata or {}).get(SCHEMA_KEY))
        if recorded.dim is not None and dim is not None and recorded.dim != dim:
            raise InvalidInputError(
                f"{file}: its schema metadata says dimension {recorded.dim}, but its vector "
                f"column holds {dim}-d vectors; the file is damaged or was edited"
            )
        return cls(path=file, rows=parquet.metadata.num_rows, dim=dim, model=recorded.model)

    def batches(
        self, dim: int, *, batch_size: int = 1_000, progress: ProgressOption = None
    ) -> Iterator[tuple[list[str], np.ndarray[Any, Any], list[dict[str, Any] | None]]]:
        """The file's rows as ``(ids, vectors, metadata)`` batches, checked against ``dim``.

        Raises:
            DimensionMismatchError: The file's dimension (when it says) or a row's
                differs from ``dim``; raised before the first batch when the file says.
            InvalidInputError: A row has no id or vector, or metadata that is not a JSON
                object.
        """
        _, pq = _pyarrow()
        size = positive_int(batch_size, "batch_size")
        if self.dim is not None and self.dim != dim:
            raise DimensionMismatchError(
                f"{self.path} holds {self.dim}-d vectors, but the index holds {dim}-d vectors "
                "(made by another model?)",
                expected=dim,
                actual=self.dim,
            )
        return self._batches(pq.ParquetFile(self.path), dim, size, progress)

    def check(self, dim: int, *, batch_size: int = 1_000) -> None:
        """Read the whole file once and raise what :meth:`batches` would, writing nothing.

        Imports call this first, so that a bad row anywhere (a NaN, a duplicate id, a
        damaged page) is an error before the first record reaches a store: an import
        is all or nothing. Memory stays bounded by a batch, plus the set of ids.

        Raises:
            DimensionMismatchError: See :meth:`batches`.
            InvalidInputError: See :meth:`batches`.
        """
        for _ in self.batches(dim, batch_size=batch_size):
            pass

    def _batches(
        self, parquet: Any, dim: int, size: int, progress: ProgressOption
    ) -> Iterator[tuple[list[str], np.ndarray[Any, Any], list[dict[str, Any] | None]]]:
        pa, _ = _pyarrow()
        columns = [c for c in ("id", "vector", "metadata") if c in parquet.schema_arrow.names]
        row = 0
        seen: dict[str, int] = {}
        with Tracker(progress, task="import", total=self.rows, unit="vec") as tracker:
            batches = parquet.iter_batches(batch_size=size, columns=columns)
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as exc:  # a damaged page or row group
                    raise InvalidInputError(
                        f"{self.path} is damaged after row {row}: {' '.join(str(exc).split())}"
                    ) from exc
                if batch is None:
                    break
                ids: list[str] = batch.column("id").to_pylist()
                for i, item in enumerate(ids):
                    _check_id(item, seen, self.path, row + i)
                vectors = _matrix(batch.column("vector"), dim, self.path, row)
                _check_vectors(vectors, self.path, row)
                metadata: list[dict[str, Any] | None] = (
                    [
                        _metadata(value, self.path, row + i)
                        for i, value in enumerate(batch.column("metadata").to_pylist())
                    ]
                    if "metadata" in columns
                    else [None] * len(ids)
                )
                yield ids, vectors, metadata
                row += len(ids)
                tracker.advance(len(ids))


def vectors_schema(
    dim: int, *, model: str | None = None, extra: Mapping[bytes, bytes] | None = None
) -> Any:
    """The Arrow schema of a vectors file: ``id``, ``vector`` (``dim`` float32), ``metadata``.

    Args:
        dim: The vector dimension.
        model: The model that made the vectors, recorded in the schema metadata.
        extra: More schema metadata (other keys than ``zeroshot_vision``), which readers
            of vectors files ignore.
    """
    pa, _ = _pyarrow()
    recorded = {"format": FORMAT_VERSION, "dim": dim, "model": model}
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("metadata", pa.string()),
        ],
        metadata={**(extra or {}), SCHEMA_KEY: json.dumps(recorded).encode()},
    )


def vectors_table(
    ids: Sequence[str],
    vectors: np.ndarray[Any, Any],
    metadata: Sequence[Mapping[str, Any] | None],
    schema: Any,
) -> Any:
    """Records as an Arrow table of :func:`vectors_schema`: vectors bit for bit, as a
    fixed-size list column, metadata as JSON text (``null`` when empty)."""
    pa, _ = _pyarrow()
    dim = schema.field("vector").type.list_size
    flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    return pa.Table.from_arrays(
        [
            pa.array(list(ids), pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
            pa.array(
                [json.dumps(dict(m), ensure_ascii=False) if m else None for m in metadata],
                pa.string(),
            ),
        ],
        schema=schema,
    )


def export_store(
    store: VectorStore,
    path: PathLike,
    *,
    model: str | None = None,
    batch_size: int = 1_000,
    progress: ProgressOption = None,
) -> int:
    """Write every record of ``store`` (id, vector, metadata) to a Parquet file.

    The file is written under a temporary name and renamed when complete, so a failed
    export never leaves a truncated file under ``path``.

    Args:
        store: Any vector store.
        path: The ``.parquet`` file to write (replaced if it is a regular file; a
            folder, a device or a FIFO is refused).
        model: The model that made the vectors, recorded in the file.
        batch_size: Records fetched and written per batch (one row group each).
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress`.

    Returns:
        How many records were written.

    Raises:
        MissingDependencyError: pyarrow is not installed (the ``parquet`` extra).
        InvalidInputError: ``path`` is a folder, a device, a FIFO or a socket.
    """
    _, pq = _pyarrow()
    size = positive_int(batch_size, "batch_size")
    target = Path(path)
    check_replaceable(target)  # before any work: a folder or a device is refused at once
    schema = vectors_schema(store.dim, model=model)
    partial = target.with_name(f".{target.name}.partial")
    written = 0
    ids = list(store.ids())  # a snapshot: the count is known for the progress bar
    try:
        with (
            Tracker(progress, task="export", total=len(ids), unit="vec") as tracker,
            pq.ParquetWriter(partial, schema) as writer,
        ):
            for chunk in batched(ids, size):
                records = store.fetch(chunk)
                present = [records[item] for item in chunk if item in records]
                if present:
                    table = vectors_table(
                        [r.id for r in present],
                        np.stack([r.vector.astype(np.float32) for r in present]),
                        [r.metadata for r in present],
                        schema,
                    )
                    writer.write_table(table)
                    written += len(present)
                tracker.advance(len(chunk))
        replace_file(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("exported %d records to %s", written, target)
    return written


def import_store(
    path: PathLike,
    store: VectorStore,
    *,
    batch_size: int = 1_000,
    progress: ProgressOption = None,
) -> int:
    """Upsert every record of a Parquet vectors file into ``store``.

    Records with ids already in ``store`` are overwritten; others are left alone.

    Args:
        path: A file written by :func:`export_store`, or any Parquet file with ``id``
            and ``vector`` columns (and optionally ``metadata``: JSON text or a struct).
        store: Any vector store of the file's dimension.
        batch_size: Rows read and upserted per batch.
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress`.

    Returns:
        How many records were imported.

    Raises:
        DimensionMismatchError: The file's vectors have another dimension than the
            store's (checked before anything is written, when the file says).
        InvalidInputError: Not a vectors file, or a row breaks a rule (an empty, duplicate
            or giant id, NaN or an all-zero vector, metadata that is not a JSON object, a
            damaged page): checked for every row before the first is written.
    """
    imported = 0
    info = ParquetVectors.open(path)
    info.check(store.dim, batch_size=batch_size)  # all or nothing: every row checked first
    batches = info.batches(store.dim, batch_size=batch_size, progress=progress)
    for ids, vectors, metadata in batches:
        store.upsert(ids, vectors, metadata)
        imported += len(ids)
    logger.info("imported %d records from %s", imported, path)
    return imported


def _check_id(item: object, seen: dict[str, int], path: Path, row: int) -> None:
    if item is None or item == "":
        raise InvalidInputError(f"{path}: row {row} has no id")
    if not isinstance(item, str):
        raise InvalidInputError(
            f"{path}: row {row}'s id is a {type(item).__name__}, not a string (the id column "
            "must hold text)"
        )
    check_id(item, f"{path}: row {row}'s id")
    first = seen.setdefault(item, row)
    if first != row:
        raise InvalidInputError(
            f"{path}: rows {first} and {row} have the same id {short_repr(item, 60)}; ids must "
            "be unique (which one should win is not for the import to guess)"
        )


def _check_vectors(vectors: np.ndarray[Any, Any], path: Path, row: int) -> None:
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(
            f"{path}: row {row + bad}'s vector holds NaN or infinity (or a number beyond "
            "float32's range)"
        )
    zero = ~vectors.any(axis=1)
    if zero.any():
        bad = int(np.flatnonzero(zero)[0])
        raise InvalidInputError(f"{path}: row {row + bad}'s vector is all zeros")


def _matrix(column: Any, dim: int, path: Path, row: int) -> np.ndarray[Any, Any]:
    """A vector column as an ``(n, dim)`` float32 array, without changing a bit."""
    if column.null_count:
        raise InvalidInputError(f"{path}: a row from row {row} on has no vector")
    values = column.flatten().to_numpy(zero_copy_only=False)
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != dim).any():
        bad = int(np.flatnonzero(lengths != dim)[0])
        raise DimensionMismatchError(
            f"{path}: row {row + bad} holds a {int(lengths[bad])}-d vector, but the index "
            f"holds {dim}-d vectors",
            expected=dim,
            actual=int(lengths[bad]),
        )
    # float32 stays as is (bit-identical); float64 from other tools is narrowed. A value
    # beyond float32's range becomes infinity, which _check_vectors refuses by row: numpy's
    # overflow warning would only be a raw line on stderr.
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(values.reshape(len(lengths), dim), dtype=np.float32)


class _SchemaRecord(pydantic.BaseModel):
    """What :func:`export_store` records in a file's schema metadata (key ``zeroshot_vision``)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    format: int = pydantic.Field(default=FORMAT_VERSION, ge=1)
    dim: int | None = pydantic.Field(default=None, gt=0)
    model: str | None = pydantic.Field(default=None, min_length=1, max_length=4096)


def _schema_record(path: Path, raw: bytes | None) -> _SchemaRecord:
    """The file's ``zeroshot_vision`` schema metadata, validated (absent: nothing known)."""
    if raw is None:
        return _SchemaRecord()
    what = f"{path}: the schema metadata {SCHEMA_KEY.decode()!r}"
    parsed = loads_bounded(raw, max_depth=4, max_bytes=_SCHEMA_MAX_BYTES, what=what)
    version = parsed.get("format") if isinstance(parsed, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise InvalidInputError(
            f"{path} was written by a newer zeroshot-vision (vectors format {version}; "
            f"this version reads up to {FORMAT_VERSION})"
        )
    try:
        return _SchemaRecord.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise InvalidInputError(f"{what} is damaged: {describe_problem(exc)}") from exc


def _metadata(value: Any, path: Path, row: int) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        parsed = loads_bounded(
            value,
            max_depth=MAX_METADATA_DEPTH + 1,
            max_bytes=MAX_ROW_METADATA_BYTES,
            what=f"{path}: row {row}'s metadata",
        )
        if parsed is None or isinstance(parsed, dict):
            return parsed
    raise InvalidInputError(f"{path}: row {row}'s metadata is not a JSON object")
