"""The folder format of a saved :class:`~zeroshot_vision.stores.faiss.FaissStore`.

One folder holds one store::

    store.json              # the manifest: format, dim, count, the live generation, its deltas
    index-<gen>.faiss       # FAISS index (serialized with faiss.serialize_index)
    records-<gen>.json      # ids, FAISS ids and metadata of the live records
    delta-<gen>-<n>.json    # changes since the generation was written: upserts and deletes
    delta-<gen>-<n>.f32     # the upserted vectors, raw little-endian float32

Every file is written beside the old ones (atomically, through ``_files.write_atomic``)
before :func:`swap_manifest` renames the new ``store.json`` into place, so a crash at any
point leaves the previous version loadable. The generation before the live one is kept
until the next one is written, for readers that read the old manifest just before a
swap; :func:`load_retrying` reads the manifest again when a file vanished anyway.

This module knows the files, not the index: the store hands it bytes, record lists and
vectors, and gets them back. No pickle is used anywhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from zeroshot_vision._files import fsync_dir, write_atomic
from zeroshot_vision.errors import IndexNotFoundError, StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = "zeroshot-vision/faiss-store"
FORMAT_VERSION = 3
"""Version 3 adds HNSW stores (``index_type``, ``ef_search``, tombstones in the index)."""
MANIFEST = "store.json"
MAX_DELTAS = 64
"""Saves that write only a delta before the next one rewrites the whole store."""
_GENERATION_FILE = re.compile(
    r"^(?:(?:index|records)-(\d+)\.(?:faiss|json)|delta-(\d+)-\d+\.(?:json|f32))$"
)
_LOAD_ATTEMPTS = 5
"""How often a load re-reads a manifest whose files were replaced while it read them."""

RecordRow = list[Any]
"""``[id, faiss_key, metadata]``, as the records and delta files hold each record."""


@dataclass(frozen=True)
class StoreShape:
    """What the manifest says about the store as a whole."""

    dim: int
    index_type: str
    ef_search: int
    count: int


@dataclass(frozen=True)
class Delta:
    """One delta file, read back: the changes of one incremental save."""

    next_key: int
    upserts: list[RecordRow]
    vectors: npt.NDArray[np.float32]
    deletes: list[str]


class FileVanishedError(Exception):
    """A file named by the manifest is missing: replaced by a newer save, or lost."""


def has_store(folder: Path) -> bool:
    """Whether ``folder`` holds a saved store's manifest."""
    return (folder / MANIFEST).exists()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the store in ``folder``.

    Raises:
        StoreError: It cannot be read, is not a store manifest, or is of a newer format.
    """
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {folder / MANIFEST}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise StoreError(f"{folder / MANIFEST} is not a FaissStore manifest")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise StoreError(
            f"{folder} was written by a newer zeroshot-vision (format {manifest['version']})"
        )
    return manifest


def write_generation(
    folder: Path,
    previous: dict[str, Any] | None,
    *,
    index: bytes,
    next_key: int,
    records: list[RecordRow],
    shape: StoreShape,
) -> int:
    """Write the whole store as the next generation and make it the live one.

    Args:
        folder: The store's folder.
        previous: Its manifest before this save (None for a new folder).
        index: The serialized FAISS index.
        next_key: The next FAISS key the store will hand out.
        records: Every live record.
        shape: The store's dimension, type, search breadth and count.

    Returns:
        The new generation's number.
    """
    generation = (previous["generation"] + 1) if previous else 1
    index_name, records_name = f"index-{generation}.faiss", f"records-{generation}.json"
    write_atomic(folder / index_name, index)
    content = {"next_key": next_key, "records": records}
    write_atomic(folder / records_name, json.dumps(content, ensure_ascii=False).encode())
    swap_manifest(folder, shape, generation, index_name, records_name, [])
    # Keep the generation just replaced (and its deltas): a reader in another process
    # may have read the old manifest and not yet its files. Older ones can go, as can
    # leftovers of saves that crashed before their swap.
    keep = {generation, previous["generation"] if previous else generation}
    for stale in folder.iterdir():
        found = _GENERATION_FILE.match(stale.name)
        if found and int(found.group(1) or found.group(2)) not in keep:
            stale.unlink(missing_ok=True)
    return generation


def write_delta(
    folder: Path,
    previous: dict[str, Any],
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
    generation, deltas = previous["generation"], list(previous.get("deltas", []))
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
    swap_manifest(folder, shape, generation, previous["index"], previous["records"], deltas)
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
        # Readers of version 2 know flat stores only: keep writing those as version 2.
        "version": 2 if shape.index_type == "flat" else FORMAT_VERSION,
        "dim": shape.dim,
        "index_type": shape.index_type,
        "ef_search": shape.ef_search,
        "count": shape.count,
        "generation": generation,
        "index": index,
        "records": records,
        "deltas": deltas,
    }
    fsync_dir(folder)
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    fsync_dir(folder)


def read_generation(
    folder: Path, manifest: dict[str, Any]
) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    """The serialized index and the records file of the manifest's generation.

    Raises:
        FileVanishedError: A file it names is missing.
        StoreError: A file cannot be read or parsed.
    """
    try:
        raw = np.frombuffer((folder / manifest["index"]).read_bytes(), dtype=np.uint8)
        records: dict[str, Any] = json.loads(
            (folder / manifest["records"]).read_text(encoding="utf-8")
        )
    except FileNotFoundError as exc:
        raise FileVanishedError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot load FaissStore from {folder}: {exc}") from exc
    return raw, records


def read_delta(folder: Path, name: str, dim: int) -> Delta:
    """One delta file and its vectors.

    Raises:
        FileVanishedError: The delta or its vectors are missing.
        StoreError: They cannot be read, or do not fit together.
    """
    try:
        delta = json.loads((folder / name).read_text(encoding="utf-8"))
        raw = (folder / delta["vectors"]).read_bytes()
    except FileNotFoundError as exc:
        raise FileVanishedError(str(exc)) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(f"cannot load FaissStore delta {folder / name}: {exc}") from exc
    upserts = delta["upserts"]
    if len(raw) != len(upserts) * dim * 4:
        raise StoreError(
            f"FaissStore delta {folder / name} is damaged: {len(raw)} bytes of vectors "
            f"for {len(upserts)} records of dim {dim}"
        )
    matrix = np.frombuffer(raw, dtype="<f4").reshape(len(upserts), dim)
    return Delta(
        next_key=int(delta["next_key"]),
        upserts=upserts,
        vectors=np.ascontiguousarray(matrix, dtype=np.float32),
        deletes=delta["deletes"],
    )


def load_retrying(folder: Path, load: Callable[[dict[str, Any]], T]) -> T:
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
