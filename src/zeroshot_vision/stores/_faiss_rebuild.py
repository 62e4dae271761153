"""Moving a saved FaissStore to another index kind without re-encoding: :func:`rebuild_store`.

The new store is built from the vectors the old one holds, in a staging folder inside
the store's folder (``.rebuild-<kind>/``), committed after every chunk: a rebuild that
is killed resumes where it stopped, and until it finishes the old store is untouched and
opens as before. The finished store is saved into the store's folder as its next
generation, so the switch is the usual atomic swap of ``store.json``; a disk that fills
up on the way raises a clean error and leaves the old store as it was.

An ``"ivfpq"`` store whose codes file is damaged can be rebuilt too: its vectors are
read without the codes (the repair its error message names).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zeroshot_vision._errors import IndexDamagedError, StoreError
from zeroshot_vision.stores import _faiss_files as files
from zeroshot_vision.stores._faiss import INDEX_TYPES, FaissStore
from zeroshot_vision.stores._faiss_disk import IvfPqSettings

__all__ = ["rebuild_store"]

logger = logging.getLogger(__name__)

REBUILD_CHUNK = 10_000
"""Records copied (and committed in the staging folder) at a time."""


def _chunks(
    rows: Iterator[tuple[str, int, dict[str, Any]]], size: int
) -> Iterator[list[tuple[str, int, dict[str, Any]]]]:
    while part := list(itertools.islice(rows, size)):
        yield part


def _staging(folder: Path, kind: str) -> Path:
    return folder / f".rebuild-{kind}"


def _source(folder: Path) -> FaissStore:
    """The saved store; an ``"ivfpq"`` one without its codes if they are damaged."""
    try:
        return FaissStore.load(folder)
    except IndexDamagedError as exc:
        manifest = files.read_manifest(folder)
        if manifest.index_type != "ivfpq" or not str(exc.path or "").endswith(".faiss"):
            raise
        logger.warning("the codes of %s are damaged: rebuilding from its vectors", folder)
        return files.load_retrying(
            folder,
            lambda found: FaissStore._load(folder, found, codes=False),
        )


def rebuild_store(
    path: str | os.PathLike[str],
    kind: str,
    *,
    ivfpq: IvfPqSettings | None = None,
    chunk: int = REBUILD_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> FaissStore:
    """Rebuild the FaissStore saved in ``path`` as an index of ``kind``, resumably.

    Args:
        path: The store's folder (an index folder's ``store/``).
        kind: ``"flat"``, ``"hnsw"``, ``"hnsw-sq8"`` or ``"ivfpq"``.
        ivfpq: Settings of an ``"ivfpq"`` target (default: sized for the store's count).
        chunk: Records copied and committed at a time.
        progress: Called with ``(records done, records in all)`` after each chunk.

    Returns:
        The rebuilt store, saved in ``path``.

    Raises:
        InvalidInputError: An unknown kind.
        IndexNotFoundError: No store in ``path``.
        StoreError: The disk filled up (the old store is intact; free space and call
            again to resume), or the old store is damaged beyond its codes.
    """
    folder = Path(path)
    if kind not in INDEX_TYPES:
        from zeroshot_vision._errors import InvalidInputError

        raise InvalidInputError(f"kind must be one of {', '.join(INDEX_TYPES)}, got {kind!r}")
    source = _source(folder)
    total = len(source)
    if kind == "ivfpq" and ivfpq is None:
        # The fields a user chose to index for filters stay chosen.
        fields = source._index.settings.indexed_fields if source.index_type == "ivfpq" else None
        ivfpq = IvfPqSettings(
            expected_count=total,
            train_size=min(max(total, 1), 100_000),
            indexed_fields=fields,
        )
    staging = _staging(folder, kind)
    try:
        target = FaissStore.open(staging, dim=source.dim, index=kind, ivfpq=ivfpq)
        done = len(target)
        if done:
            logger.info(
                "resuming the rebuild of %s as %s: %d of %d done", folder, kind, done, total
            )
            gone = [item for item in target.ids() if item not in source._records]  # deleted
            if gone:
                target.delete(gone)
                done -= len(gone)
        # The source's records stream in key order, its vectors in runs of keys: no list
        # of every id, and rows read from the vectors file front to back.
        copied = 0
        for part in _chunks(source._records.rows(), chunk):
            if done:  # resuming: skip what the staging store holds already
                part = [row for row in part if row[0] not in target._records]
            if not part:
                continue
            keys = np.asarray([key for _, key, _ in part], dtype=np.int64)
            target.upsert(
                [item for item, _, _ in part],
                np.asarray(source._index.reconstruct_batch(keys), dtype=np.float32),
                [dict(meta) for _, _, meta in part],
            )
            target.commit()
            copied += len(part)
            if progress is not None:
                progress(done + copied, total)
        target.save(folder)  # the next generation of the folder: an atomic switch
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(
                f"no space left to rebuild {folder} as {kind}; the store is unchanged: "
                "free some space and run the rebuild again to resume"
            ) from exc
        raise
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("rebuilt %s as a %s store of %d vectors", folder, kind, len(target))
    return FaissStore.load(folder)
