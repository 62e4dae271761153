"""What a distributed run indexes: listed images, cut into chunks with stable names.

A source becomes a list of :class:`~zeroshot_vision.ingest._item.Item` on the driver (a
folder or an Unsplash Lite folder through the ingest pipeline's folder source, a list of
paths or URIs through :class:`ListedSource`), and the images to encode are cut into
:class:`Chunk`: one model batch each, named by a hash of what it holds. A chunk is the
unit of work, of output (one Parquet shard) and of resumption: a re-run that finds a
chunk's shard already written imports it instead of encoding it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zeroshot_vision._checks import batched
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.scan import displayable, file_id
from zeroshot_vision._optional import require
from zeroshot_vision.ingest._item import Item
from zeroshot_vision.ingest._source import IndexView, Listing, SkipRule

__all__ = ["Chunk", "ListedSource", "chunk_images", "chunk_name", "is_uri", "list_paths"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, kw_only=True)
class ListedSource:
    """Listed image files and URIs as an ingest source (what Ray's workers read).

    Incremental like a folder (unchanged files are skipped by their size and time);
    nothing is removed: a list does not know what it left out.

    Attributes:
        paths: Local paths or URIs (``s3://...``: any ``pyarrow.fs`` file system).
        root: The folder local ids are relative to (default: absolute paths).
    """

    paths: Sequence[PathLike]
    root: PathLike | None = None
    skip: SkipRule = field(default="unchanged", init=False)

    def open(self, index: IndexView) -> Listing:
        """The listed images as items (see :func:`list_paths`)."""
        items = list_paths(self.paths, root=self.root)
        return Listing(items=items, total=len(items))


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI (``scheme://...``) rather than a local path."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum() and len(scheme) > 1


def list_paths(sources: Iterable[PathLike], *, root: PathLike | None = None) -> list[Item]:
    """List image files and URIs with their ids, sizes and modification times.

    Local files get the ids ``SearchEngine.index_images`` gives them
    (:func:`~zeroshot_vision._index.scan.file_id`: relative to ``root``, else absolute);
    a URI is its own id. Sizes and times come from the file system (``pyarrow.fs`` for
    URIs), so that a re-run skips unchanged images.

    Raises:
        InvalidInputError: A source is empty or listed twice, or a local file is missing.
        FileNotFoundError: A URI names nothing.
    """
    listed: list[Item] = []
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


def _list_file(text: str, root: PathLike | None) -> Item:
    from pathlib import Path

    path = Path(text).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{displayable(text)} does not exist") from exc
    if not path.is_file():
        raise InvalidInputError(f"{displayable(text)} is not a file")
    shown = displayable(str(path.resolve()))
    return Item(
        id=file_id(path, root),
        path=str(path.resolve()),
        display_path=shown,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        metadata={"path": shown},
    )


def _list_uri(uri: str) -> Item:
    fs = require("pyarrow.fs", extra="ray", purpose="images at URIs")
    filesystem, path = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(2, "no such image", uri)
    mtime = info.mtime_ns if info.mtime_ns is not None else 0
    return Item(
        id=uri,
        path=uri,
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
        photo_fields: Whether their EXIF photo fields join the metadata, as a folder
            run's EXIF extractor adds them (read where the image is decoded).
    """

    name: str
    images: tuple[Item, ...]
    photo_fields: bool = False

    def row(self) -> dict[str, Any]:
        """The chunk as a row of the job's input dataset."""
        return {
            "shard": self.name,
            "ids": [image.id for image in self.images],
            "sources": [_where(image) for image in self.images],
            "metadata": [json.dumps(dict(image.metadata)) for image in self.images],
            "photo_fields": [self.photo_fields for _ in self.images],
        }


def chunk_name(model: str, parts: Iterable[Sequence[object]]) -> str:
    """A chunk's name from the model and what identifies each of its images."""
    digest = hashlib.sha256(model.encode())
    for part in parts:
        digest.update(b"\0" + json.dumps(list(part), ensure_ascii=False).encode())
    return f"shard-{digest.hexdigest()[:32]}"


def _where(image: Item) -> str:
    """What a worker reads for ``image``: its local path or URI."""
    if image.path is None:
        raise InvalidInputError(f"{image.name} has no file or URI for a worker to read")
    return os.fspath(image.path)


def chunk_images(
    images: Sequence[Item], *, batch_size: int, model: str, photo_fields: bool = False
) -> list[Chunk]:
    """Cut images into batches of ``batch_size`` in order, each with its stable name.

    The same cut as ``zsv index`` makes, so each batch holds the same images: on a CPU
    in float32 the vectors come out bit for bit the same.
    """
    return [
        Chunk(
            name=chunk_name(model, ((i.id, _where(i), i.size, i.mtime_ns) for i in chunk)),
            images=tuple(chunk),
            photo_fields=photo_fields,
        )
        for chunk in batched(images, batch_size)
    ]
