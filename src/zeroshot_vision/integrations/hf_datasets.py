"""Hugging Face ``datasets`` in and out: index a dataset of images, export a store as one.

* :func:`index_dataset` embeds the images of a
  ``datasets.Dataset`` or a streaming ``datasets.IterableDataset`` and stores them. The
  image column may hold the ``Image`` feature (decoded or not), image bytes, or paths.
  Like ``index_folder`` it is incremental (ids already in the store are skipped, not
  encoded again) and commits after every batch, and an image that cannot be decoded is
  a recorded failure in the returned report, never fatal.
* :func:`open_dataset` opens ``PATH_OR_NAME[:split]``: a folder of ``save_to_disk``, or a
  dataset name that ``datasets.load_dataset`` resolves (what ``zsv index --dataset`` takes).
* :func:`to_dataset` gives a store's records as a ``datasets.Dataset`` with ``id``,
  ``vector`` and metadata columns; :func:`save_dataset` writes one to a folder that
  ``datasets.load_from_disk`` opens. The Parquet file of ``zsv export`` (see
  :mod:`zeroshot_vision.stores._parquet`) also loads as a dataset:
  ``datasets.load_dataset("parquet", data_files="vectors.parquet")``.

Needs the ``datasets`` extra: ``pip install "zeroshot-vision[datasets]"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zeroshot_vision._checks import batched, positive_int
from zeroshot_vision._errors import InvalidInputError, InvalidMetadataError, MissingColumnError
from zeroshot_vision._optional import require
from zeroshot_vision._progress import ProgressOption
from zeroshot_vision._types import FolderReport
from zeroshot_vision.ingest._item import Item
from zeroshot_vision.ingest._source import IndexView, Listing, SkipRule
from zeroshot_vision.ingest._sources import ImageListSource

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import ImageSource
    from zeroshot_vision.stores._base import VectorStore

__all__ = [
    "DatasetSource",
    "check_columns",
    "index_dataset",
    "open_dataset",
    "save_dataset",
    "to_dataset",
]

MetadataLayout = Literal["json", "columns"]


def _datasets() -> Any:
    return require("datasets", extra="datasets", purpose="Hugging Face datasets support")


def open_dataset(spec: str | os.PathLike[str], *, split: str | None = None) -> Any:
    """The dataset ``spec`` names: ``PATH_OR_NAME`` or ``PATH_OR_NAME:split``.

    A folder written by ``save_to_disk`` opens with ``datasets.load_from_disk``; anything
    else goes to ``datasets.load_dataset`` (a Hub name, or a local loading script or data
    folder). A dataset of several splits needs one: ``split``, the ``:split`` suffix, or
    its only split.

    Raises:
        InvalidInputError: No such split, or several splits and none named.
        DatasetNotFoundError: Neither a saved dataset nor a name ``datasets`` resolves.
    """
    from zeroshot_vision._errors import DatasetNotFoundError

    datasets = _datasets()
    text = os.fspath(spec)
    name, suffix = text, None
    if not Path(text).expanduser().exists() and ":" in text:
        head, _, tail = text.rpartition(":")
        if tail and "/" not in tail and "\\" not in tail:
            name, suffix = head, tail
    if split is not None and suffix is not None and split != suffix:
        raise InvalidInputError(f"two splits given: {suffix!r} in {text!r} and {split!r}")
    split = split or suffix
    path = Path(name).expanduser()
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(os.fspath(path))
    else:
        try:
            loaded = datasets.load_dataset(name, split=split)
        except FileNotFoundError as exc:  # datasets' DatasetNotFoundError is one
            raise DatasetNotFoundError(
                f"{name} is neither a dataset folder (saved with save_to_disk) nor a dataset "
                f"that datasets.load_dataset finds: {exc}"
            ) from exc
    if isinstance(loaded, datasets.DatasetDict | datasets.IterableDatasetDict):
        splits = list(loaded)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split is None:
            raise InvalidInputError(
                f"{name} has several splits ({', '.join(splits)}); name one: {name}:SPLIT"
            )
        if split not in loaded:
            raise InvalidInputError(f"{name} has no split {split!r}; it has {', '.join(splits)}")
        return loaded[split]
    return loaded


def check_columns(
    dataset: Any,
    *,
    image_column: str = "image",
    id_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
) -> list[str]:
    """The metadata columns :func:`index_dataset` stores, once every column named exists.

    Called before anything is created (``zsv index --dataset`` makes no index folder for
    a column that is not there).

    Raises:
        MissingColumnError: The dataset has no column of a name given.
        InvalidInputError: ``metadata_columns`` is one name instead of a list.
    """
    columns = _column_names(dataset)
    wanted = [image_column, *([id_column] if id_column else [])]
    if metadata_columns is None:
        metadata_columns = [c for c in columns if c not in wanted]
    elif isinstance(metadata_columns, str):
        raise InvalidInputError("metadata_columns must be a list of column names, not one name")
    for column in [*wanted, *metadata_columns]:
        if column not in columns:
            raise MissingColumnError(
                f"the dataset has no column {column!r}; it has {', '.join(columns) or 'none'}",
                column=column,
                columns=columns,
            )
    return list(metadata_columns)


def index_dataset(
    engine: SearchEngine,
    dataset: Any,
    *,
    image_column: str = "image",
    id_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: ProgressOption = None,
) -> FolderReport:
    """Embed a dataset's images into ``engine``'s store, skipping ids already there.

    Args:
        engine: The search engine to index into (in memory or an index folder).
        dataset: A ``datasets.Dataset`` or ``datasets.IterableDataset`` (streaming).
        image_column: The column of images: the ``Image`` feature (decoded or not),
            bytes, or paths.
        id_column: The column of ids (made strings). Default: the row's position
            (``"0"``, ``"1"``, ...), stable only as long as the dataset's order is.
        metadata_columns: Columns stored as each image's metadata; default every column
            but the image and id columns. Their values must be JSON-like.
        batch_size: Rows per batch (each batch is encoded, written and committed);
            default four times the encoder's batch size.
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress`.

    Returns:
        A :class:`~zeroshot_vision._types.FolderReport`: ids indexed, how many rows were
        skipped as already indexed, the images that failed (``source`` is the row's id)
        and the store's count at the end.

    Raises:
        MissingColumnError: The dataset has no image, id or metadata column of the
            name given.
        InvalidInputError: Not a dataset, an empty or repeated id, a bad batch size.
        InvalidMetadataError: A metadata value is not JSON-like.
    """
    datasets = _datasets()
    if not isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)):
        raise InvalidInputError(
            f"index_dataset takes a datasets.Dataset or IterableDataset, got "
            f"{type(dataset).__name__} (for a DatasetDict, pick a split: ds['train'])"
        )
    metadata_columns = check_columns(
        dataset, image_column=image_column, id_column=id_column, metadata_columns=metadata_columns
    )
    feature = (dataset.features or {}).get(image_column)
    if isinstance(feature, datasets.Image) and feature.decode:
        # Decoding here would raise on the first bad image and stop the run; undecoded,
        # each image goes through the encoder's own path and a bad one is recorded.
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    size = (
        positive_int(batch_size, "batch_size")
        if batch_size is not None
        else engine.encoder.batch_size * 4
    )
    total = len(dataset) if isinstance(dataset, datasets.Dataset) else None
    source = DatasetSource(
        rows=_rows(dataset, image_column, id_column, list(metadata_columns), size), total=total
    )
    return engine.ingest(source, batch_size=size, record_failures=False, progress=progress)


@dataclass(frozen=True, kw_only=True)
class DatasetSource:
    """The rows of a Hugging Face dataset as an ingest source: ids already stored are skipped.

    Attributes:
        rows: Batches of ``(id, image, metadata)``, read lazily (see :func:`index_dataset`).
        total: The row count, when known (not for a streaming dataset).
    """

    rows: Iterable[list[tuple[str, ImageSource, dict[str, Any]]]]
    total: int | None = None
    skip: SkipRule = field(default="stored", init=False)

    def open(self, index: IndexView) -> Listing:
        """The rows as items, named by their ids in reports."""
        return Listing(items=self._items(index), total=self.total)

    def _items(self, index: IndexView) -> Iterator[Item]:
        for rows in self.rows:
            listed = ImageListSource.of(
                [image for _, image, _ in rows],
                ids=[row_id for row_id, _, _ in rows],
                metadata=[meta for _, _, meta in rows],
            )
            for row_id, item in zip((row[0] for row in rows), listed.open(index).items):
                yield dataclasses.replace(item, label=row_id)


def _column_names(dataset: Any) -> list[str]:
    names = dataset.column_names
    if names is None:  # a streaming dataset whose features are not known up front
        first = next(iter(dataset.take(1)), None)
        names = list(first) if first is not None else []
    return list(names)


def _rows(
    dataset: Any,
    image_column: str,
    id_column: str | None,
    metadata_columns: list[str],
    size: int,
) -> Iterator[list[tuple[str, ImageSource, dict[str, Any]]]]:
    """Batches of ``(id, image source, metadata)``, read lazily from the dataset."""
    seen: set[str] = set()
    for position, chunk in _numbered_batches(dataset, size):
        rows = []
        for offset, example in enumerate(chunk):
            row_id = _row_id(example, id_column, position + offset)
            if row_id in seen:
                raise InvalidInputError(f"the id {row_id!r} appears twice in the dataset")
            seen.add(row_id)
            source, path = _image_source(example[image_column], row_id)
            meta = {column: example[column] for column in metadata_columns}
            if path is not None:
                meta.setdefault("path", path)
            rows.append((row_id, source, meta))
        yield rows


def _numbered_batches(dataset: Any, size: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    position = 0
    for chunk in batched(iter(dataset), size):
        yield position, chunk
        position += len(chunk)


def _row_id(example: dict[str, Any], id_column: str | None, position: int) -> str:
    if id_column is None:
        return str(position)
    value = example[id_column]
    if value is None or (isinstance(value, str) and not value):
        raise InvalidInputError(f"row {position} has an empty id in column {id_column!r}")
    return str(value)


def _image_source(value: Any, row_id: str) -> tuple[ImageSource, str | None]:
    """What to hand the encoder for one cell, and the file's path when it is on disk."""
    if isinstance(value, dict):  # the Image feature, undecoded: {"bytes", "path"}
        data, path = value.get("bytes"), value.get("path")
        on_disk = path if isinstance(path, str) and Path(path).is_file() else None
        if data is not None:
            return bytes(data), on_disk
        if isinstance(path, str) and path:
            return path, on_disk
        return b"", None  # recorded as a failure: an empty image
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        return path, path if Path(path).is_file() else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if value is None:
        return b"", None
    return value, None  # a PIL image or an array, as the encoder takes them


def to_dataset(
    store: VectorStore | SearchEngine | str | os.PathLike[str],
    *,
    metadata: MetadataLayout = "columns",
    model: str | None = None,
    batch_size: int = 1_000,
) -> Any:
    """A store's (or an index folder's) records as a ``datasets.Dataset`` (in memory).

    Columns: ``id`` (string), ``vector`` (a fixed-length list of float32: the stored
    unit vector), then the metadata: one column per metadata key
    (``metadata="columns"``, missing values ``None``), or one ``metadata`` column of
    JSON text (``metadata="json"``: any shape survives; the layout of ``zsv export``).

    For a store too large for memory, write ``zsv export``'s Parquet file and open it
    with ``datasets.load_dataset("parquet", data_files=...)``, which maps it from disk.

    Args:
        store: Any vector store, a search engine (its store), or the path of an index
            folder (read without loading its model).
        metadata: ``"columns"`` or ``"json"``.
        model: The model that made the vectors, recorded in the dataset's description.
        batch_size: Records fetched per batch.

    Raises:
        InvalidMetadataError: With ``metadata="columns"``, a key holds values of
            kinds one column cannot hold (a number here, text there); use ``"json"``.
    """
    datasets = _datasets()
    pq = require("pyarrow.parquet", extra="datasets", purpose="Hugging Face datasets support")
    pa = require("pyarrow", extra="datasets", purpose="Hugging Face datasets support")

    if metadata not in ("json", "columns"):
        raise InvalidInputError(f"metadata must be 'columns' or 'json', got {metadata!r}")
    from zeroshot_vision.stores._base import VectorStore as StoreProtocol
    from zeroshot_vision.stores._parquet import export_store

    with contextlib.ExitStack() as stack:
        # Told apart by the protocol, not by importing the engine (which imports this).
        if isinstance(store, (str, os.PathLike)):
            from zeroshot_vision._index import IndexFolder

            index = IndexFolder.open(store)
            vectors: VectorStore = stack.enter_context(contextlib.closing(index.open_store()))
            model = model or index.manifest.model
        elif isinstance(store, StoreProtocol):
            vectors = store
        else:
            vectors = store.store
            model = model or store.encoder.model_name
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="zsv-dataset-"))
        file = Path(folder) / "vectors.parquet"
        export_store(vectors, file, model=model, batch_size=batch_size)
        table = pq.read_table(file)
    if metadata == "columns":
        table = _metadata_columns(pa, table)
    info = datasets.DatasetInfo(
        description=f"zeroshot-vision vectors{f' of {model}' if model else ''}"
    )
    return datasets.Dataset(datasets.table.InMemoryTable(table), info=info)


def _metadata_columns(pa: Any, table: Any) -> Any:
    parsed = [json.loads(text) if text else {} for text in table.column("metadata").to_pylist()]
    keys = list(dict.fromkeys(key for item in parsed for key in item))
    reserved = [key for key in keys if key in ("id", "vector")]
    if reserved:
        raise InvalidMetadataError(
            f"metadata keys {reserved} clash with the id and vector columns; use metadata='json'"
        )
    base = table.drop_columns(["metadata"])
    for key in keys:
        try:
            column = pa.array([item.get(key) for item in parsed])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidMetadataError(
                f"metadata key {key!r} holds values of different kinds, which one column "
                f"cannot hold ({exc}); use metadata='json'"
            ) from exc
        base = base.append_column(key, column)
    return base


def save_dataset(
    store: VectorStore | SearchEngine | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    metadata: MetadataLayout = "columns",
    model: str | None = None,
) -> int:
    """Write :func:`to_dataset` to a new folder that ``datasets.load_from_disk`` opens.

    The folder is written under a temporary name and renamed when complete, so a failed
    export never leaves half a dataset under ``path``.

    Returns:
        How many records were written.

    Raises:
        InvalidInputError: ``path`` already exists.
    """
    target = Path(path)
    if target.exists():
        raise InvalidInputError(f"{target} already exists; give a new folder")
    dataset = to_dataset(store, metadata=metadata, model=model)
    partial = target.with_name(f".{target.name}.partial")
    try:
        dataset.save_to_disk(os.fspath(partial))
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return len(dataset)
