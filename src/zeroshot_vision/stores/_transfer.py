"""Copy every record of one vector store into another, without re-encoding.

The usual use is moving a collection that outgrew one machine from
:class:`~zeroshot_vision.stores.FaissStore` to
:class:`~zeroshot_vision.stores._pinecone.PineconeStore`::

    source = FaissStore.load("photos-index/store")
    target = PineconeStore.connect(host=host, namespace="photos")
    copied = copy_store(source, target, batch_size=1000)

Records stream through in batches (``source.ids()`` then ``source.fetch()`` per batch),
so memory stays bounded whatever the collection's size. Upsert overwrites, so running
the copy again after a failure is safe; the error also says what is left to do, and
``copy_store(source, target, ids=exc.failed_ids)`` copies just that.

A source that changes during the copy: a record deleted before its batch is fetched is
skipped; a record changed before its batch is fetched is copied as changed; a record
added or changed after its batch went by is not seen (``FaissStore.ids()`` is a snapshot
taken when the copy starts). Copy again, or copy those ids, to catch up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from zeroshot_vision._checks import batched, positive_int
from zeroshot_vision._errors import (
    DimensionMismatchError,
    InvalidInputError,
    PartialWriteError,
    ZeroshotVisionError,
)
from zeroshot_vision.stores._base import VectorStore

__all__ = ["copy_store"]

logger = logging.getLogger(__name__)


def copy_store(
    source: VectorStore,
    target: VectorStore,
    *,
    batch_size: int = 1_000,
    progress: Callable[[int], object] | None = None,
    ids: Iterable[str] | None = None,
) -> int:
    """Copy every record (id, vector, metadata) of ``source`` into ``target``.

    Records already in ``target`` under the same id are overwritten; other records of
    ``target`` are left alone. Vectors are copied as stored (unit length), so nothing is
    re-encoded.

    Args:
        source: The store to read from.
        target: The store to write to; it must have the same dimension.
        batch_size: How many records to fetch and upsert at a time. A backend splits a
            batch further if its own request limits need it.
        progress: Called after each batch with the number of records it copied
            (``tqdm``'s ``update`` fits).
        ids: Copy only these ids (those of ``source`` that exist), e.g. a
            :class:`~zeroshot_vision._errors.PartialWriteError`'s ``failed_ids`` to resume.
            ``None`` copies every record.

    Returns:
        How many records were copied.

    Raises:
        DimensionMismatchError: If the stores' dimensions differ (nothing is copied).
        InvalidInputError: If ``batch_size`` is not a positive integer, or a record
            breaks a rule of ``target`` (for example Pinecone's metadata rules); the
            records of earlier batches are already copied.
        PartialWriteError: If ``target`` failed part way; ``written_ids`` lists every
            record copied so far and ``failed_ids`` the rest (those of the failed batch
            and those not yet reached), so a caller can resume with just those.
    """
    batch_size = positive_int(batch_size, "batch_size")
    if source.dim != target.dim:
        raise DimensionMismatchError(
            f"cannot copy a store of dimension {source.dim} into one of dimension {target.dim}",
            expected=target.dim,
            actual=source.dim,
        )
    if isinstance(ids, str):
        raise InvalidInputError("ids must be a sequence of strings, not one string")
    wanted = source.ids() if ids is None else iter(list(dict.fromkeys(ids)))
    copied: list[str] = []
    for chunk in batched(wanted, batch_size):
        records = source.fetch(chunk)
        # An id listed but deleted before the fetch is simply gone.
        present = [item for item in chunk if item in records]
        if not present:
            continue
        vectors = np.stack([records[item].vector for item in present])
        metadata = [records[item].metadata for item in present]
        try:
            target.upsert(present, vectors, metadata)
        except PartialWriteError as exc:
            written = copied + list(exc.written_ids)
            failed = list(exc.failed_ids) + _drain(wanted)
            raise PartialWriteError(
                f"copy stopped after {len(written)} records; {len(failed)} are left to copy: {exc}",
                written_ids=written,
                failed_ids=failed,
            ) from exc
        copied.extend(present)
        if progress is not None:
            progress(len(present))
        logger.debug("copied %d records so far", len(copied))
    logger.info("copied %d records from %r to %r", len(copied), source, target)
    return len(copied)


def _drain(ids: Iterator[str]) -> list[str]:
    """The ids not reached yet, as far as the source can still list them."""
    rest: list[str] = []
    try:
        rest.extend(ids)
    except ZeroshotVisionError as exc:
        logger.warning("could not list the remaining ids after a failed copy: %s", exc)
    return rest
