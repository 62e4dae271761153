"""Where the workers' vectors go: Parquet shards, or a remote store directly.

* :class:`ShardSink`: one Parquet file per chunk, in exactly the format of ``zsv export``
  (``id`` string, ``vector`` fixed-size list of float32, ``metadata`` JSON text; the
  schema records dimension and model), written under a temporary name and renamed, so
  a shard that exists is complete. The chunk's failures ride along in the schema
  metadata (key ``zeroshot_vision.failed``), which readers of vectors files ignore. The
  driver imports each shard into the index folder through its
  :class:`~zeroshot_vision._index.writer.IndexWriter`. The folder may be a path every
  worker sees (local, NFS) or a URI that ``pyarrow.fs`` opens (``s3://``, ``gs://``).
* :class:`StoreSink`: workers upsert into a remote store (Pinecone) themselves, with the
  store's own batching and limits; the driver has recorded the ids as pending first.

Both are small frozen values: Ray pickles them to the workers, which open them there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from zeroshot_vision._optional import require

if TYPE_CHECKING:
    from zeroshot_vision._types import Metadata
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["FAILED_KEY", "Shard", "ShardSink", "StoreSink"]

FAILED_KEY = b"zeroshot_vision.failed"
"""Schema metadata key of a shard's failures: JSON ``[[id, reason], ...]``."""

_SUFFIX = ".parquet"


def _arrow() -> tuple[Any, Any, Any]:
    pa = require("pyarrow", extra="ray", purpose="Parquet shards")
    fs = require("pyarrow.fs", extra="ray", purpose="Parquet shards")
    pq = require("pyarrow.parquet", extra="ray", purpose="Parquet shards")
    return pa, fs, pq


@dataclass(frozen=True, kw_only=True)
class Shard:
    """What one shard holds."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    metadata: list[dict[str, Any] | None]
    failures: list[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class ShardSink:
    """Parquet shards in a folder or under a URI, one per chunk.

    Attributes:
        location: A local folder (absolute) or a ``pyarrow.fs`` URI.
        dim: The vector dimension.
        model: The model recorded in each shard.
    """

    location: str
    dim: int
    model: str

    @classmethod
    def at(cls, location: str | os.PathLike[str], *, dim: int, model: str) -> ShardSink:
        """A sink at ``location`` (a relative local folder is made absolute)."""
        from zeroshot_vision.distributed._sources import is_uri

        text = os.fspath(location)
        where = text if is_uri(text) else str(Path(text).expanduser().resolve())
        return cls(location=where, dim=dim, model=model)

    def _fs(self) -> tuple[Any, str]:
        _, fs, _ = _arrow()
        from zeroshot_vision.distributed._sources import is_uri

        if is_uri(self.location):
            filesystem, root = fs.FileSystem.from_uri(self.location)
            return filesystem, root.rstrip("/")
        return fs.LocalFileSystem(), self.location

    def prepare(self) -> None:
        """Create the folder, and remove what killed writers left half-written."""
        _, fs, _ = _arrow()
        filesystem, root = self._fs()
        filesystem.create_dir(root, recursive=True)
        for info in filesystem.get_file_info(fs.FileSelector(root)):
            if info.base_name.startswith(".") and info.base_name.endswith(".partial"):
                filesystem.delete_file(info.path)

    def names(self) -> set[str]:
        """The names of the complete shards there."""
        _, fs, _ = _arrow()
        filesystem, root = self._fs()
        found = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
        return {
            info.base_name.removesuffix(_SUFFIX)
            for info in found
            if info.base_name.endswith(_SUFFIX) and not info.base_name.startswith(".")
        }

    def exists(self, name: str) -> bool:
        """Whether the shard ``name`` was written completely."""
        _, fs, _ = _arrow()
        filesystem, root = self._fs()
        return bool(filesystem.get_file_info(f"{root}/{name}{_SUFFIX}").type == fs.FileType.File)

    def write(
        self,
        name: str,
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        metadata: Sequence[Metadata | None],
        failures: Sequence[tuple[str, str]],
    ) -> None:
        """Write a shard atomically: a temporary file, renamed when complete."""
        from zeroshot_vision.stores._parquet import vectors_schema, vectors_table

        _, _, pq = _arrow()
        filesystem, root = self._fs()
        failed = json.dumps([list(pair) for pair in failures], ensure_ascii=False).encode()
        schema = vectors_schema(self.dim, model=self.model, extra={FAILED_KEY: failed})
        table = vectors_table(ids, vectors.reshape(len(ids), self.dim), metadata, schema)
        partial = f"{root}/.{name}-{uuid.uuid4().hex[:8]}.partial"
        try:
            with filesystem.open_output_stream(partial) as stream:
                pq.write_table(table, stream)
            filesystem.move(partial, f"{root}/{name}{_SUFFIX}")
        except BaseException:
            with contextlib.suppress(OSError):  # never written: the original error matters
                filesystem.delete_file(partial)
            raise

    def read(self, name: str) -> Shard:
        """Read a shard back with the reader of ``zsv import``
        (:class:`~zeroshot_vision.stores._parquet.ParquetVectors`)."""
        from zeroshot_vision.stores._parquet import ParquetVectors

        _, fs, pq = _arrow()
        filesystem, root = self._fs()
        remote = f"{root}/{name}{_SUFFIX}"
        with tempfile.TemporaryDirectory(prefix="zsv-shard-") as scratch:
            local = remote
            if not isinstance(filesystem, fs.LocalFileSystem):  # fetched, then read locally
                local = str(Path(scratch) / f"{name}{_SUFFIX}")
                with filesystem.open_input_stream(remote) as src, Path(local).open("wb") as dst:
                    dst.write(src.read())
            info = ParquetVectors.open(local)
            ids: list[str] = []
            vectors: list[npt.NDArray[np.float32]] = []
            metadata: list[dict[str, Any] | None] = []
            for batch_ids, batch_vectors, batch_metadata in info.batches(self.dim):
                ids += batch_ids
                vectors.append(batch_vectors)
                metadata += batch_metadata
            recorded = pq.read_schema(local).metadata or {}
        failures = [(str(i), str(r)) for i, r in json.loads(recorded.get(FAILED_KEY, b"[]"))]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return Shard(ids=ids, vectors=matrix, metadata=metadata, failures=failures)

    def remove(self, name: str) -> None:
        """Delete a shard (once imported), if it is there."""
        filesystem, root = self._fs()
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_file(f"{root}/{name}{_SUFFIX}")


@dataclass(frozen=True, kw_only=True)
class StoreSink:
    """A remote store that workers upsert into themselves.

    Attributes:
        kind: The registered store kind (``"pinecone"``).
        dim: The vector dimension.
        options: The kind's options as the index folder records them (never secrets:
            workers read those, such as ``PINECONE_API_KEY``, from their environment).
    """

    kind: str
    dim: int
    options: Mapping[str, Any] = field(default_factory=dict)

    def open(self) -> VectorStore:
        """Open the store (on a worker)."""
        from zeroshot_vision.stores._registry import StoreLocation, open_store_kind

        # A remote store has no files: the folder is never used.
        unused = Path(tempfile.gettempdir()) / "zeroshot-vision-remote-store"
        location = StoreLocation(folder=unused, dim=self.dim, options=dict(self.options))
        return open_store_kind(self.kind, location)
