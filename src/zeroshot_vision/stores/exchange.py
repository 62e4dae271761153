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

from zeroshot_vision._checks import batched, positive_int
from zeroshot_vision._optional import require
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision.errors import DimensionMismatchError, InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.stores.base import VectorStore

__all__ = ["ParquetVectors", "export_store", "import_store", "vectors_schema", "vectors_table"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
SCHEMA_KEY = b"zeroshot_vision"
FORMAT_VERSION = 1


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
        recorded = json.loads((schema.metadata or {}).get(SCHEMA_KEY, b"{}"))
        model = recorded.get("model") if isinstance(recorded, dict) else None
        return cls(
            path=file,
            rows=parquet.metadata.num_rows,
            dim=dim,
            model=model if isinstance(model, str) else None,
        )

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

    def _batches(
        self, parquet: Any, dim: int, size: int, progress: ProgressOption
    ) -> Iterator[tuple[list[str], np.ndarray[Any, Any], list[dict[str, Any] | None]]]:
        columns = [c for c in ("id", "vector", "metadata") if c in parquet.schema_arrow.names]
        row = 0
        with Tracker(progress, task="import", total=self.rows, unit="vec") as tracker:
            for batch in parquet.iter_batches(batch_size=size, columns=columns):
                ids: list[str] = batch.column("id").to_pylist()
                vectors = _matrix(batch.column("vector"), dim, self.path, row)
                metadata: list[dict[str, Any] | None] = (
                    [
                        _metadata(value, self.path, row + i)
                        for i, value in enumerate(batch.column("metadata").to_pylist())
                    ]
                    if "metadata" in columns
                    else [None] * len(ids)
                )
                for i, item in enumerate(ids):
                    if not isinstance(item, str) or not item:
                        raise InvalidInputError(f"{self.path}: row {row + i} has no id")
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
        path: The ``.parquet`` file to write (replaced if it exists).
        model: The model that made the vectors, recorded in the file.
        batch_size: Records fetched and written per batch (one row group each).
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision.types.Progress`.

    Returns:
        How many records were written.

    Raises:
        MissingDependencyError: pyarrow is not installed (the ``parquet`` extra).
    """
    _, pq = _pyarrow()
    size = positive_int(batch_size, "batch_size")
    target = Path(path)
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
        partial.replace(target)
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
            :class:`~zeroshot_vision.types.Progress`.

    Returns:
        How many records were imported.

    Raises:
        DimensionMismatchError: The file's vectors have another dimension than the
            store's (checked before anything is written, when the file says).
        InvalidInputError: Not a vectors file, or a row breaks a store rule (empty id,
            NaN, metadata that is not a JSON object); earlier batches are imported.
    """
    imported = 0
    batches = ParquetVectors.open(path).batches(store.dim, batch_size=batch_size, progress=progress)
    for ids, vectors, metadata in batches:
        store.upsert(ids, vectors, metadata)
        imported += len(ids)
    logger.info("imported %d records from %s", imported, path)
    return imported


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
    # float32 stays as is (bit-identical); float64 from other tools is narrowed.
    return np.ascontiguousarray(values.reshape(len(lengths), dim), dtype=np.float32)


def _metadata(value: Any, path: Path, row: int) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: row {row}'s metadata is not JSON ({exc})") from exc
        if parsed is None or isinstance(parsed, dict):
            return parsed
    raise InvalidInputError(f"{path}: row {row}'s metadata is not a JSON object")
