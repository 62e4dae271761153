"""``settings.json``: the manifest of an index folder, validated with pydantic.

It records the format and its version, the model, the dimension, and the store (a kind
and its options: for Pinecone the host or index name and the namespace, never the API
key). A folder written by a newer version, or with a damaged manifest, is refused with
:class:`~zeroshot_vision._errors.IndexDamagedError` rather than read as an empty index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic

from zeroshot_vision._constants import INDEX_MANIFEST
from zeroshot_vision._errors import IndexDamagedError, IndexNotFoundError
from zeroshot_vision._json import format_matches, format_problem, read_model
from zeroshot_vision.stores._base import MAX_DIM

__all__ = [
    "DEFAULT_STORE_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "EncoderRecord",
    "IndexManifest",
    "StoreSpec",
    "damaged",
    "encoder_record",
    "model_reference",
    "read_manifest",
]

FORMAT: Literal["zeroshot-vision/index"] = "zeroshot-vision/index"
FORMAT_VERSION = 3
"""Version 3: several source folders, listed in the state's ``meta`` row ``sources``.

Version 2 moved the state from ``state.json`` to ``state.sqlite``, with pending rows, and
recorded one source folder (``meta`` row ``source``); it is migrated in place, in one
transaction, the first time a writer opens it (see :mod:`~zeroshot_vision._index.migration`).
"""

MANIFEST = INDEX_MANIFEST
"""The manifest's file name (``settings.json``)."""
DEFAULT_STORE_DIR = "store"
"""The folder of an embedded store's files, unless the manifest names another."""
_MANIFEST_MAX_BYTES = 1 << 20
"""A manifest is a few hundred bytes; a megabyte is damage (or not a manifest at all)."""
_MANIFEST_MAX_DEPTH = 8


class StoreSpec(pydantic.BaseModel):
    """Which store holds an index's vectors: a registered kind and its options."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str = pydantic.Field(default="faiss", min_length=1, max_length=100)
    options: dict[str, str | int | float | bool] = pydantic.Field(default_factory=dict)


class EncoderRecord(pydantic.BaseModel):
    """How an index's images were encoded: the encoder's route, and its probe text vectors.

    Attributes:
        backend: ``"torch"`` or ``"onnx"``.
        precision: The route's precision (``"bfloat16"``, ``"int8"``...).
        probes: The route's text vectors for
            :data:`~zeroshot_vision._backends.PROBE_TEXTS` (float16, base64), so that a
            query through another route can be checked against them.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    backend: str = pydantic.Field(min_length=1, max_length=32)
    precision: str = pydantic.Field(min_length=1, max_length=64)
    probes: str | None = pydantic.Field(default=None, max_length=200_000)


class IndexManifest(pydantic.BaseModel):
    """The manifest of an index folder (``settings.json``), validated when read.

    Attributes:
        format: Always ``"zeroshot-vision/index"``.
        version: The format version that wrote it.
        model: The encoder's checkpoint: a hub name, or an absolute local path.
        dim: The embedding dimension.
        store: The store kind and its options.
        encoder: The route the images were encoded with (``None``: an index written
            before routes were recorded, by the torch backend).
        store_dir: The folder inside the index folder that holds an embedded store's
            files: ``"store"``, until a reindex to another model (see
            :func:`~zeroshot_vision.ingest._reindex.reindex`) writes a new store beside the
            old one and switches to it by replacing this manifest.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    format: Literal["zeroshot-vision/index"]
    version: int = pydantic.Field(default=FORMAT_VERSION, ge=1, strict=True)
    model: str = pydantic.Field(min_length=1, max_length=4096)  # a hub name or a path
    dim: int = pydantic.Field(gt=0, le=MAX_DIM, strict=True)
    store: StoreSpec = pydantic.Field(default_factory=StoreSpec)
    encoder: EncoderRecord | None = None
    store_dir: str = pydantic.Field(
        default=DEFAULT_STORE_DIR, min_length=1, max_length=64, pattern=r"^store[A-Za-z0-9_.-]*$"
    )


def encoder_record(encoder: Any) -> EncoderRecord | None:
    """What an index records of the encoder that fills it: its route and probe vectors.

    ``None`` for an encoder-like object (tests, wrappers) without a route.
    """
    from zeroshot_vision._backends import PROBE_TEXTS, encode_probes

    route = getattr(encoder, "route", None)
    if route is None:
        return None
    probes = encode_probes(encoder.encode_texts(list(PROBE_TEXTS)))
    return EncoderRecord(backend=route.backend, precision=route.precision, probes=probes)


def model_reference(model: str) -> str:
    """The form of a model name to record: local folders become absolute paths.

    A relative folder would point elsewhere once a later command runs from another
    working directory; a hub name (``google/siglip-...``) is kept as given.
    """
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


def damaged(path: Path, problem: object) -> IndexDamagedError:
    """The error for an index file that cannot be read as what it should be."""
    text = " ".join(str(problem).split())
    return IndexDamagedError(f"the index file {path} is damaged: {text}", path=str(path))


def read_manifest(folder: Path) -> IndexManifest:
    """The manifest of the index folder ``folder``, checked.

    Raises:
        IndexNotFoundError: ``folder`` holds no manifest.
        IndexDamagedError: The manifest is damaged, or from a newer version.
    """
    file = folder / MANIFEST

    def check(raw: object) -> None:
        if not isinstance(raw, dict) or not format_matches(raw, FORMAT):
            raise damaged(
                file, f"it is not a zeroshot-vision index manifest ({format_problem(raw, FORMAT)})"
            )
        version = raw.get("version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise IndexDamagedError(
                f"{file} was written by a newer zeroshot-vision (index format {version}; "
                f"this version reads up to {FORMAT_VERSION}); upgrade zeroshot-vision to open it",
                path=str(file),
            )

    try:
        return read_model(
            file,
            IndexManifest,
            max_bytes=_MANIFEST_MAX_BYTES,
            max_depth=_MANIFEST_MAX_DEPTH,
            damaged=lambda problem: damaged(file, problem),
            check=check,
        )
    except FileNotFoundError as exc:
        raise IndexNotFoundError(
            f"no index at {folder} (missing {MANIFEST}; create one with 'zsv index' or "
            "SearchEngine.create)"
        ) from exc
