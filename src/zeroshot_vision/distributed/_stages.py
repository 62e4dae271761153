"""The CPU stage of a distributed run: read and decode a chunk's images in Ray tasks.

:func:`decode_chunk` runs in Ray tasks (``Dataset.map``) on any node's CPUs: it reads each
image (a path, a ``pyarrow.fs`` URI, or bytes a caller's dataset holds), decodes it,
turns it upright and resizes it to the model's input size, exactly as the encoder's own
decoding processes do (:func:`zeroshot_vision._images.feed.prepare`), so the encoder
actors receive model-size ``uint8`` pixels and spend their time in the model. An image
that cannot be read becomes its reason, never the chunk's failure.

:func:`pack_chunks` turns a caller's dataset of images (one row each) into chunk rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._errors import ImageLoadError

if TYPE_CHECKING:
    from zeroshot_vision._images.pixels import PixelSpec
    from zeroshot_vision.distributed._sinks import ShardSink

__all__ = ["DecodeSpec", "decode_chunk", "pack_chunks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DecodeSpec:
    """How the decoding tasks prepare images for a model.

    Attributes:
        pixels: The model's fixed-size pixel recipe; ``None`` for processors that crop
            or pad (CLIP), whose images the actors decode with the processor itself.
        draft_size: JPEGs decode at reduced scale down to this size (the encoder's).
        shards: Where shards go, when chunks already written are to be skipped.
    """

    pixels: PixelSpec | None
    draft_size: tuple[int, int]
    shards: ShardSink | None = None


def _read(source: str, data: bytes | None) -> Any:
    """What the image loader takes: bytes as given, a URI's bytes, or a local path."""
    from zeroshot_vision.distributed._sources import is_uri

    if data is not None:
        return data
    if is_uri(source):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(source)
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    return source


def decode_chunk(row: dict[str, Any], *, spec: DecodeSpec) -> dict[str, Any]:
    """One chunk row to model-size pixels (a Ray ``map`` function; never raises for an image).

    Adds ``pixels`` (``(n, H, W, 3)`` uint8, zeros for failed images), ``errors`` (one
    reason or ``""`` per image) and ``done`` (the shard exists already: nothing decoded).
    Without a pixel recipe, ``data`` carries each image's bytes for the actor instead.
    """
    from zeroshot_vision._errors import ImageDecodeError
    from zeroshot_vision._images.feed import prepare
    from zeroshot_vision._images.loading import describe_source

    ids = list(row["ids"])
    sources = [str(s) for s in row["sources"]]
    given = row.get("data")
    datas: list[bytes | None] = list(given) if given is not None else [None] * len(ids)
    out = {k: row[k] for k in ("shard", "ids", "sources", "metadata")}
    photo_fields = list(row.get("photo_fields") or [False] * len(ids))
    metadata = [str(meta) for meta in row["metadata"]]
    empty = np.zeros((0, 1, 1, 3), np.uint8)
    if spec.shards is not None and spec.shards.exists(str(row["shard"])):
        return {**out, "done": True, "errors": [""] * len(ids), "pixels": empty, "data": []}
    errors: list[str] = []
    if spec.pixels is None:
        blobs: list[bytes] = []
        for source, data in zip(sources, datas):
            try:
                loaded = _read(source, data)
                blob = loaded if isinstance(loaded, bytes) else _file_bytes(loaded)
                blobs.append(blob)
                errors.append("")
                if photo_fields[len(blobs) - 1]:
                    metadata[len(blobs) - 1] = _with_photo_fields(metadata[len(blobs) - 1], blob)
            except OSError as exc:
                blobs.append(b"")
                errors.append(f"cannot read it: {exc.strerror or exc}")
        out["metadata"] = metadata
        return {**out, "done": False, "errors": errors, "pixels": empty, "data": blobs}
    pixels = np.zeros((len(ids), spec.pixels.height, spec.pixels.width, 3), np.uint8)
    for i, (source, data) in enumerate(zip(sources, datas)):
        try:
            loaded = _read(source, data)
            prepared = prepare(loaded, spec.pixels, draft_size=spec.draft_size)
            if photo_fields[i] and not isinstance(prepared, ImageLoadError):
                metadata[i] = _with_photo_fields(metadata[i], loaded)
        except OSError as exc:  # a URI that cannot be fetched
            prepared = ImageDecodeError(describe_source(source), exc.strerror or str(exc))
        if isinstance(prepared, ImageLoadError):
            errors.append(prepared.reason)
        else:
            assert isinstance(prepared, np.ndarray)
            pixels[i] = prepared
            errors.append("")
    out["metadata"] = metadata
    return {**out, "done": False, "errors": errors, "pixels": pixels, "data": []}


def _with_photo_fields(metadata: str, image: str | bytes) -> str:
    """A listed image's metadata (JSON) with its EXIF photo fields, as ``zsv index`` stores
    them for a folder's files (the listing's own fields win)."""
    from zeroshot_vision._images.exif import photo_metadata

    return json.dumps({**photo_metadata(image), **json.loads(metadata)})


def _file_bytes(path: str) -> bytes:
    with open(path, "rb") as file:  # noqa: PTH123 - a str from the listing
        return file.read()


def pack_chunks(batch: Mapping[str, Any], *, model: str) -> dict[str, list[Any]]:
    """A batch of a caller's image rows as one chunk row (``Dataset.map_batches``).

    The rows need ``id`` and either ``path`` (a path or URI) or ``bytes``; ``metadata``
    (a mapping or JSON text) is optional. Each chunk is named from the model and its
    ids, so a re-run that batches alike finds the shards it wrote.
    """
    from zeroshot_vision.distributed._sources import chunk_name

    ids = [str(item) for item in batch["id"]]
    if "path" in batch:
        sources = [str(path) for path in batch["path"]]
        data = None
    else:
        sources = [f"<bytes of {item}>" for item in ids]
        data = [bytes(blob) for blob in batch["bytes"]]
    metadata = []
    given = batch.get("metadata")
    for i, source in enumerate(sources):
        value = None if given is None else given[i]
        meta = json.loads(value) if isinstance(value, (str, bytes)) else dict(value or {})
        if data is None:
            meta.setdefault("path", source)
        metadata.append(json.dumps(meta))
    row: dict[str, list[Any]] = {
        "shard": [chunk_name(model, ([item] for item in ids))],
        "ids": [ids],
        "sources": [sources],
        "metadata": [metadata],
    }
    if data is not None:
        row["data"] = [data]
    return row
