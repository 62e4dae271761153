"""The folder format of a saved :class:`~zeroshot_vision.stores._faiss.FaissStore`.

One folder holds one store::

    store.json              # the manifest: format, dim, count, the live generation, its deltas
    index-<gen>.faiss       # FAISS index (serialized with faiss.serialize_index)
    records-<gen>.json      # ids, FAISS ids and metadata of the live records
    records-<gen>.sqlite    # the same, for "ivfpq" stores: an SQLite file read in place
    delta-<gen>-<n>.json    # changes since the generation was written: upserts and deletes
    delta-<gen>-<n>.f32     # the upserted vectors, raw little-endian float32
    vectors-<gen>.f16       # "ivfpq" only: every vector as float16, one row per FAISS key

An ``"ivfpq"`` store's ``index-<gen>.faiss`` holds its codes (written with
``faiss.write_index``; empty until trained) and its vectors file is shared by the
generations that follow the one that created it: it only grows, by appending, so a
generation's rows are never rewritten (see :mod:`zeroshot_vision.stores._faiss_disk`).

Every file is written beside the old ones (atomically, through ``_files.write_atomic``)
before :func:`swap_manifest` renames the new ``store.json`` into place, so a crash at any
point leaves the previous version loadable. The generation before the live one is kept
until the next one is written, for readers that read the old manifest just before a
swap; :func:`load_retrying` reads the manifest again when a file vanished anyway.

This module knows the files, not the index: the store hands it bytes, record lists and
vectors, and gets them back. No pickle is used anywhere. Each JSON file has a pydantic
model here (:class:`StoreManifest`, :class:`RecordsFile`, :class:`DeltaFile`: strict
types, file names that cannot point outside the folder, unknown fields ignored since a
newer format bumps the version) and is read only through ``_json.read_model``, so any
damage is an :class:`~zeroshot_vision._errors.IndexDamagedError` naming the file and the
field.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pydantic

from zeroshot_vision._errors import IndexDamagedError, IndexNotFoundError, StoreError
from zeroshot_vision._files import fsync_dir, write_atomic
from zeroshot_vision._json import format_matches, format_problem, read_model
from zeroshot_vision.stores._base import MAX_DIM, MAX_METADATA_DEPTH

logger = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = "zeroshot-vision/faiss-store"
FORMAT_VERSION = 5
"""Version 3 adds HNSW stores (``index_type``, ``ef_search``, tombstones in the index);
version 4 adds ``"ivfpq"`` stores (``vectors``, ``ivfpq``); version 5 keeps an
``"ivfpq"`` store's records in SQLite (``records-<gen>.sqlite``, see
:mod:`zeroshot_vision.stores._faiss_records`)."""
MANIFEST = "store.json"
MAX_DELTAS = 64
"""Saves that write only a delta before the next one rewrites the whole store."""
_GENERATION_FILE = re.compile(
    r"^(?:(?:index|records)-(\d+)\.(?:faiss|json|sqlite)|delta-(\d+)-\d+\.(?:json|f32))$"
)
_LOAD_ATTEMPTS = 5
"""How often a load re-reads a manifest whose files were replaced while it read them."""

RecordRow = list[Any]
"""``[id, faiss_key, metadata]``, as the records and delta files hold each record."""

_MANIFEST_MAX_BYTES = 1 << 20
_DATA_MAX_BYTES = 1 << 40
"""Records and delta files grow with the collection; this bound only refuses absurdity."""
_DATA_MAX_DEPTH = MAX_METADATA_DEPTH + 3  # the file, the records list, a row, then metadata
_Id = Annotated[str, pydantic.Field(strict=True, min_length=1)]
_Key = Annotated[int, pydantic.Field(strict=True, ge=0, lt=1 << 63)]  # FAISS ids are int64
_Row = Annotated[
    tuple[_Id, _Key, dict[str, Any] | None],
    pydantic.Field(strict=False),  # a JSON array; its items stay strict
]


def _name(pattern: str) -> Any:
    # File names the manifest gives are matched whole: no folders, no "..".
    return pydantic.Field(pattern=pattern, max_length=64)


class StoreManifest(pydantic.BaseModel):
    """``store.json``: which generation and deltas are live, and the store's shape."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    format: Literal["zeroshot-vision/faiss-store"]
    version: int = pydantic.Field(ge=1, le=FORMAT_VERSION)
    dim: int = pydantic.Field(gt=0, le=MAX_DIM)
    index_type: Literal["flat", "hnsw", "hnsw-sq8", "ivfpq"] = "flat"  # version 2: flat only
    ef_search: int = pydantic.Field(default=128, gt=0, le=1 << 16)  # faiss.py: _MAX_EF_SEARCH
    count: int | None = pydantic.Field(default=None, ge=0)
    generation: int = pydantic.Field(ge=1)
    index: str = _name(r"^index-\d+\.faiss$")
    records: str = _name(r"^records-\d+\.(?:json|sqlite)$")
    deltas: list[Annotated[str, _name(r"^delta-\d+-\d+\.json$")]] = pydantic.Field(
        default_factory=list, max_length=MAX_DELTAS
    )
    vectors: str | None = pydantic.Field(  # version 4, "ivfpq" only
        default=None, pattern=r"^vectors-\d+\.f16$", max_length=64
    )
    ivfpq: (
        dict[
            str,
            Annotated[int, pydantic.Field(ge=0, le=1 << 40)]
            | Annotated[
                list[Annotated[str, pydantic.Field(max_length=256)]],
                pydantic.Field(max_length=1024),
            ],
        ]
        | None
    ) = None

    @pydantic.model_validator(mode="after")
    def _names_match_generation(self) -> StoreManifest:
        names = [self.index, self.records, *self.deltas]
        expected = [
            f"index-{self.generation}.faiss",
            records_name(self.generation, sqlite=is_sqlite_records(self.records)),
            *(f"delta-{self.generation}-{n}.json" for n in range(1, len(self.deltas) + 1)),
        ]
        if names != expected:
            raise ValueError(
                f"field 'generation' is {self.generation} but the files named are "
                f"{', '.join(names)} (expected {', '.join(expected)})"
            )
        return self


class RecordsFile(pydantic.BaseModel):
    """``records-<gen>.json``: every live record of a generation, and the next FAISS key."""

    model_config = pydantic.ConfigDict(extra="ignore", strict=True)

    next_key: _Key
    records: list[_Row]


class DeltaFile(pydantic.BaseModel):
    """``delta-<gen>-<n>.json``: one incremental save's upserts and deletes."""

    model_config = pydantic.ConfigDict(extra="ignore", strict=True)

    next_key: _Key
    vectors: str = _name(r"^delta-\d+-\d+\.f32$")
    upserts: list[_Row]
    deletes: list[_Id]


def _damaged(path: Path) -> Callable[[str], IndexDamagedError]:
    def damaged(problem: str) -> IndexDamagedError:
        return IndexDamagedError(
            f"the FaissStore file {path} is damaged: {problem}", path=str(path)
        )

    return damaged


def _check_version(folder: Path) -> Callable[[Any], None]:
    def check(raw: Any) -> None:
        if not isinstance(raw, dict) or not format_matches(raw, FORMAT):
            raise IndexDamagedError(
                f"{folder / MANIFEST} is not a FaissStore manifest ({format_problem(raw, FORMAT)})",
                path=str(folder / MANIFEST),
            )
        version = raw.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise IndexDamagedError(
                f"{folder / MANIFEST} was written by a newer zeroshot-vision (format "
                f"{version}; this version reads up to {FORMAT_VERSION}); upgrade "
                "zeroshot-vision to open it",
                path=str(folder / MANIFEST),
            )

    return check


@dataclass(frozen=True)
class StoreShape:
    """What the manifest says about the store as a whole."""

    dim: int
    index_type: str
    ef_search: int
    count: int
    vectors: str | None = None
    ivfpq: dict[str, Any] | None = None


@dataclass(frozen=True)
class Delta:
    """One delta file, read back: the changes of one incremental save."""

    next_key: int
    upserts: list[RecordRow]
    vectors: npt.NDArray[np.float32]
    deletes: list[str]


class FileVanishedError(Exception):
    """A file named by the manifest is missing: replaced by a newer save, or lost."""


def records_name(generation: int, *, sqlite: bool) -> str:
    """The name of a generation's records file: JSON, or SQLite for ``"ivfpq"`` stores."""
    return f"records-{generation}.{'sqlite' if sqlite else 'json'}"


def is_sqlite_records(name: str) -> bool:
    """Whether a records file named so is an SQLite one."""
    return name.endswith(".sqlite")


def has_store(folder: Path) -> bool:
    """Whether ``folder`` holds a saved store's manifest."""
    return (folder / MANIFEST).exists()


def read_manifest(folder: Path) -> StoreManifest:
    """The manifest of the store in ``folder``.

    Raises:
        IndexDamagedError: It cannot be read, is not a store manifest, is damaged (the
            message names the field), or is of a newer format.
    """
    path = folder / MANIFEST
    try:
        return read_model(
            path,
            StoreManifest,
            max_bytes=_MANIFEST_MAX_BYTES,
            max_depth=3,
            damaged=_damaged(path),
            check=_check_version(folder),
        )
    except FileNotFoundError as exc:
        raise _damaged(path)("it is missing") from exc


def write_generation(
    folder: Path,
    previous: StoreManifest | None,
    *,
    index: bytes | Callable[[Path], None],
    next_key: int,
    records: list[RecordRow] | Callable[[Path], None],
    shape: StoreShape,
) -> int:
    """Write the whole store as the next generation and make it the live one.

    Args:
        folder: The store's folder.
        previous: Its manifest before this save (None for a new folder).
        index: The serialized FAISS index, or a function that writes it to the path
            it is given (a temp file, renamed into place once synced).
        next_key: The next FAISS key the store will hand out.
        records: Every live record, or a function that writes them as an SQLite file
            to the path it is given (``records-<gen>.sqlite``).
        shape: The store's dimension, type, search breadth and count.

    Returns:
        The new generation's number.
    """
    generation = (previous.generation + 1) if previous else 1
    index_name = f"index-{generation}.faiss"
    records_file = records_name(generation, sqlite=callable(records))
    if isinstance(index, bytes):
        write_atomic(folder / index_name, index)
    else:
        write_atomic_with(folder / index_name, index)
    if callable(records):
        write_atomic_with(folder / records_file, records)
    else:
        content = {"next_key": next_key, "records": records}
        write_atomic(folder / records_file, json.dumps(content, ensure_ascii=False).encode())
    swap_manifest(folder, shape, generation, index_name, records_file, [])
    # Keep the generation just replaced (and its deltas): a reader in another process
    # may have read the old manifest and not yet its files. Older ones can go, as can
    # leftovers of saves that crashed before their swap.
    keep = {generation, previous.generation if previous else generation}
    for stale in folder.iterdir():
        found = _GENERATION_FILE.match(stale.name)
        if found and int(found.group(1) or found.group(2)) not in keep:
            stale.unlink(missing_ok=True)
    # Vectors files outlive their generation: keep those the two kept manifests name.
    named = {shape.vectors, previous.vectors if previous else None} - {None}
    for stale in folder.glob("vectors-*.f16"):
        if stale.name not in named:
            stale.unlink(missing_ok=True)
    return generation


def write_atomic_with(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temp)`` into a temp file beside ``path``, synced, then renamed to ``path``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_delta(
    folder: Path,
    previous: StoreManifest,
    *,
    next_key: int,
    upserts: list[RecordRow],
    vectors: npt.NDArray[np.float32],
    deletes: Sequence[str],
    shape: StoreShape,
) -> int:
    """Write the changes since the last save as one more delta of the live generation.

    Args:
        folder: The store's folder.
        previous: Its manifest before this save.
        next_key: The next FAISS key the store will hand out.
        upserts: The records written since, one row each.
        vectors: Their vectors, one row per upsert, in order.
        deletes: The ids deleted since.
        shape: The store's dimension, type, search breadth and count.

    Returns:
        How many deltas the generation has now.
    """
    generation, deltas = previous.generation, list(previous.deltas)
    name = f"delta-{generation}-{len(deltas) + 1}"
    write_atomic(folder / f"{name}.f32", np.asarray(vectors, dtype="<f4").tobytes())
    delta = {
        "next_key": next_key,
        "vectors": f"{name}.f32",
        "upserts": upserts,
        "deletes": list(deletes),
    }
    write_atomic(folder / f"{name}.json", json.dumps(delta, ensure_ascii=False).encode())
    deltas.append(f"{name}.json")
    swap_manifest(folder, shape, generation, previous.index, previous.records, deltas)
    return len(deltas)


def swap_manifest(
    folder: Path,
    shape: StoreShape,
    generation: int,
    index: str,
    records: str,
    deltas: list[str],
) -> None:
    """Make the named files the live store: write ``store.json`` and rename it into place."""
    manifest = {
        "format": FORMAT,
        "version": _version(shape, records),
        "dim": shape.dim,
        "index_type": shape.index_type,
        "ef_search": shape.ef_search,
        "count": shape.count,
        "generation": generation,
        "index": index,
        "records": records,
        "deltas": deltas,
    }
    if shape.vectors is not None:
        manifest["vectors"] = shape.vectors
        manifest["ivfpq"] = shape.ivfpq
    fsync_dir(folder)
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    fsync_dir(folder)


def _version(shape: StoreShape, records: str) -> int:
    # Readers of version 2 know flat stores only: keep writing those as version 2, HNSW
    # ones as version 3, and the newest version only for what needs it.
    if is_sqlite_records(records):
        return FORMAT_VERSION
    return {"flat": 2, "ivfpq": 4}.get(shape.index_type, 3)


def read_generation(
    folder: Path, manifest: StoreManifest, *, read_index: bool = True
) -> tuple[npt.NDArray[np.uint8], RecordsFile]:
    """The serialized index and the records file of the manifest's generation.

    Raises:
        FileVanishedError: A file it names is missing.
        StoreError: The index file cannot be read.
        IndexDamagedError: The records file is damaged (the message names the field).
    """
    path = folder / manifest.records
    try:
        if read_index:
            raw = np.frombuffer((folder / manifest.index).read_bytes(), dtype=np.uint8)
        else:  # the caller reads it itself (memory: no second copy of big codes)
            (folder / manifest.index).stat()
            raw = np.zeros(0, dtype=np.uint8)
        records = read_model(
            path,
            RecordsFile,
            max_bytes=_DATA_MAX_BYTES,
            max_depth=_DATA_MAX_DEPTH,
            damaged=_damaged(path),
        )
    except FileNotFoundError as exc:
        raise FileVanishedError(str(exc)) from exc
    except OSError as exc:
        raise StoreError(f"cannot load FaissStore from {folder}: {exc}") from exc
    return raw, records


def read_delta(folder: Path, name: str, dim: int) -> Delta:
    """One delta file and its vectors.

    Raises:
        FileVanishedError: The delta or its vectors are missing.
        StoreError: They cannot be read, or do not fit together.
    """
    path = folder / name
    try:
        delta = read_model(
            path,
            DeltaFile,
            max_bytes=_DATA_MAX_BYTES,
            max_depth=_DATA_MAX_DEPTH,
            damaged=_damaged(path),
        )
        raw = (folder / delta.vectors).read_bytes()
    except FileNotFoundError as exc:
        raise FileVanishedError(str(exc)) from exc
    except OSError as exc:
        raise StoreError(f"cannot load FaissStore delta {path}: {exc}") from exc
    upserts = [list(row) for row in delta.upserts]
    if len(raw) != len(upserts) * dim * 4:
        raise IndexDamagedError(
            f"the FaissStore file {folder / delta.vectors} is damaged: {len(raw)} bytes of "
            f"vectors for {len(upserts)} records of dim {dim}",
            path=str(folder / delta.vectors),
        )
    matrix = np.frombuffer(raw, dtype="<f4").reshape(len(upserts), dim)
    # Stored vectors are unit vectors: NaN, infinity or zeros mean a damaged file, which
    # FAISS would load and then silently never return those records from a search.
    usable = np.isfinite(matrix).all(axis=1) & matrix.any(axis=1)
    if not usable.all():
        bad = int(np.flatnonzero(~usable)[0])
        raise IndexDamagedError(
            f"the FaissStore file {folder / delta.vectors} is damaged: the vector of record "
            f"{bad} (of {len(upserts)}) holds NaN, infinity or only zeros",
            path=str(folder / delta.vectors),
        )
    return Delta(
        next_key=delta.next_key,
        upserts=upserts,
        vectors=np.ascontiguousarray(matrix, dtype=np.float32),
        deletes=list(delta.deletes),
    )


def load_retrying(folder: Path, load: Callable[[StoreManifest], T]) -> T:
    """``load(manifest)``, read again when a newer save replaced its files meanwhile.

    Safe while another process saves to the same folder: if a file the manifest names
    is removed before it is read (``load`` raises :class:`FileVanishedError`), the
    manifest is read again, a few times at most.

    Raises:
        IndexNotFoundError: ``folder`` holds no saved store.
        StoreError: A file is missing for good, or the store kept changing.
    """
    for _ in range(_LOAD_ATTEMPTS):
        if not (folder / MANIFEST).is_file():
            raise IndexNotFoundError(f"no FaissStore at {folder} (missing {MANIFEST})")
        manifest = read_manifest(folder)
        try:
            return load(manifest)
        except FileVanishedError as exc:
            if read_manifest(folder) == manifest:  # not replaced: missing for good
                raise StoreError(f"cannot load FaissStore from {folder}: {exc}") from exc
            logger.debug("%s changed while loading it; reading it again", folder)
    raise StoreError(
        f"cannot load FaissStore from {folder}: it changed {_LOAD_ATTEMPTS} times while being read"
    )
