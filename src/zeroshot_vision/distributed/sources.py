"""What a distributed run indexes: listed images, cut into chunks with stable names.

A source becomes a list of :class:`ListedImage` on the driver (a folder or an Unsplash
Lite folder through :func:`~zeroshot_vision.index.scan.scan_source`, a list of paths or
URIs), and the images to encode are cut into :class:`Chunk`: one model batch each, named
by a hash of what it holds. A chunk is the unit of work, of output (one Parquet shard)
and of resumption: a re-run that finds a chunk's shard already written imports it
instead of encoding it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zeroshot_vision._checks import batched
from zeroshot_vision._optional import require
from zeroshot_vision.errors import InvalidInputError
from zeroshot_vision.index.folder import FileEntry
from zeroshot_vision.index.scan import SourceImage, displayable, file_id

__all__ = ["Chunk", "ListedImage", "chunk_images", "chunk_name", "is_uri", "list_paths"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, kw_only=True)
class ListedImage:
    """One image to index, as the driver lists it.

    Attributes:
        id: The id its vector gets (as ``zsv index`` gives it).
        source: What a worker reads: a local path, or a URI that ``pyarrow.fs`` opens
            (``s3://``, ``gs://``, ``hdfs://``, ``file://``).
        display_path: ``source`` as text that can be stored and shown.
        size: Its size in bytes (0 when unknown).
        mtime_ns: Its modification time in nanoseconds (0 when unknown).
        metadata: What is stored with its vector (holds ``"path"``).
        photo_fields: Whether its EXIF photo fields join the metadata, as ``zsv index``
            adds them for the files of a folder (read where the image is decoded).
    """

    id: str
    source: str
    display_path: str
    size: int
    mtime_ns: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    photo_fields: bool = False

    @classmethod
    def from_scan(cls, image: SourceImage) -> ListedImage:
        """The listing of an image found by :func:`~zeroshot_vision.index.scan.scan_source`."""
        return cls(
            id=image.id,
            source=os.fspath(image.path),
            display_path=image.display_path,
            size=image.size,
            mtime_ns=image.mtime_ns,
            metadata=dict(image.metadata),
            photo_fields=True,
        )

    def entry(self, *, failed: str | None = None) -> FileEntry:
        """Its row in an index folder's state, as ``zsv index`` records it."""
        return FileEntry(
            id=self.id,
            path=self.display_path,
            size=self.size,
            mtime_ns=self.mtime_ns,
            status="failed" if failed is not None else "indexed",
            reason=failed,
        )


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI (``scheme://...``) rather than a local path."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum() and len(scheme) > 1


def list_paths(sources: Iterable[PathLike], *, root: PathLike | None = None) -> list[ListedImage]:
    """List image files and URIs with their ids, sizes and modification times.

    Local files get the ids ``SearchEngine.index_images`` gives them
    (:func:`~zeroshot_vision.index.scan.file_id`: relative to ``root``, else absolute);
    a URI is its own id. Sizes and times come from the file system (``pyarrow.fs`` for
    URIs), so that a re-run skips unchanged images.

    Raises:
        InvalidInputError: A source is empty or listed twice, or a local file is missing.
        FileNotFoundError: A URI names nothing.
    """
    listed: list[ListedImage] = []
    seen: set[str] = set()
    for source in sources:
        text = os.fspath(source)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"image sources must be non-empty paths, got {source!r}")
        image = _list_uri(text) if is_uri(text) else _list_file(text, root)
        if image.id in seen:
            raise InvalidInputError(f"{image.display_path} is listed twice")
        seen.add(image.id)
        listed.append(image)
    return listed


def _list_file(text: str, root: PathLike | None) -> ListedImage:
    from pathlib import Path

    path = Path(text).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{displayable(text)} does not exist") from exc
    if not path.is_file():
        raise InvalidInputError(f"{displayable(text)} is not a file")
    shown = displayable(str(path.resolve()))
    return ListedImage(
        id=file_id(path, root),
        source=str(path.resolve()),
        display_path=shown,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        metadata={"path": shown},
    )


def _list_uri(uri: str) -> ListedImage:
    fs = require("pyarrow.fs", extra="ray", purpose="images at URIs")
    filesystem, path = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(2, "no such image", uri)
    mtime = info.mtime_ns if info.mtime_ns is not None else 0
    return ListedImage(
        id=uri,
        source=uri,
        display_path=uri,
        size=int(info.size or 0),
        mtime_ns=int(mtime),
        metadata={"path": uri},
    )


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One batch of images: the unit of work, of output and of resumption.

    Attributes:
        name: ``shard-<hash>``: a hash of the model and of every image's id, source,
            size and time, so the same inputs always get the same name.
        images: The images, in listing order.
    """

    name: str
    images: tuple[ListedImage, ...]

    def row(self) -> dict[str, Any]:
        """The chunk as a row of the job's input dataset."""
        return {
            "shard": self.name,
            "ids": [image.id for image in self.images],
            "sources": [image.source for image in self.images],
            "metadata": [json.dumps(dict(image.metadata)) for image in self.images],
            "photo_fields": [image.photo_fields for image in self.images],
        }


def chunk_name(model: str, parts: Iterable[Sequence[object]]) -> str:
    """A chunk's name from the model and what identifies each of its images."""
    digest = hashlib.sha256(model.encode())
    for part in parts:
        digest.update(b"\0" + json.dumps(list(part), ensure_ascii=False).encode())
    return f"shard-{digest.hexdigest()[:32]}"


def chunk_images(images: Sequence[ListedImage], *, batch_size: int, model: str) -> list[Chunk]:
    """Cut images into batches of ``batch_size`` in order, each with its stable name.

    The same cut as ``zsv index`` makes, so each batch holds the same images: on a CPU
    in float32 the vectors come out bit for bit the same.
    """
    return [
        Chunk(
            name=chunk_name(model, ((i.id, i.source, i.size, i.mtime_ns) for i in chunk)),
            images=tuple(chunk),
        )
        for chunk in batched(images, batch_size)
    ]
