"""``ingest``: run a source through plan -> extract -> encode -> write.

Every ingest entry point of the library is a short call of :func:`ingest` with its own
:class:`~zeroshot_vision.ingest._source.Source`; what differs between them (which items
need no work, whether failures are recorded, how often to commit) is the source's skip
rule and the call's arguments, not another loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zeroshot_vision._errors import ExtractorUnavailableError
from zeroshot_vision._index.writer import IndexWriter
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision.ingest._encode import encode
from zeroshot_vision.ingest._ledger import Ledger
from zeroshot_vision.ingest._plan import Plan, plan
from zeroshot_vision.ingest._source import IndexView
from zeroshot_vision.ingest._write import WriteStage

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._index.folder import IndexFolder
    from zeroshot_vision._types import FolderReport
    from zeroshot_vision.ingest._extract import Extractor
    from zeroshot_vision.ingest._source import Source
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["ingest", "ingest_into_store", "writer_for"]

logger = logging.getLogger(__name__)

_VECTOR_BATCH = 256
"""Items per write when nothing is encoded (vectors from a file, or reused)."""


def ingest(
    source: Source,
    writer: IndexWriter,
    encoder: Encoder | None,
    *,
    extractors: Sequence[Extractor] = (),
    batch_size: int | None = None,
    commit_every: float | None = 0.0,
    allow_removal: bool = False,
    record_failures: bool | None = None,
    progress: ProgressOption = None,
) -> FolderReport:
    """Index what ``source`` lists into ``writer``'s store (and index folder).

    Args:
        source: What to index.
        writer: The only writer: its store, and its index folder's state when it has one.
        encoder: The local encoder (``None`` for a source whose items carry vectors);
            touched only when an item needs encoding.
        extractors: Run on every item written, in order (see
            :class:`~zeroshot_vision.ingest._extract.Extractor`).
        batch_size: Items per batch; default the encoder's.
        commit_every: Seconds between commits (``0``: after every batch;
            ``math.inf``: once at the end; ``None``: never, the caller commits).
        allow_removal: Allow removing more than half of a source's indexed items.
        record_failures: Record bad images in the folder's state (not retried until they
            change); default for sources that skip unchanged items.
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress`.

    Returns:
        What the run did (its ``count`` is the store's size at the end).

    Raises:
        InvalidInputError: The source cannot be indexed, or the run would remove most
            of its items without ``allow_removal``.
        IndexLockedError: Another process writes to the index folder.
        ExtractorUnavailableError: An extractor's service went away: what was written is
            committed (unless ``commit_every`` is ``None``), the items not reached are
            left for the next run; the error's ``report`` says what this run did.
    """
    started = time.monotonic()
    writer.begin()  # takes the folder's lock before the state is read
    folder = writer.folder
    # Only fingerprints and tracked extractors need the state read up front (opened
    # before the encoder's decoding processes start, its file would be inherited by them).
    tracked = any(extractor.version is not None for extractor in extractors)
    needs_state = folder is not None and (source.skip == "unchanged" or tracked)
    state = folder.state() if folder is not None and needs_state else None
    entries = state.entries() if state is not None else {}
    view = IndexView(
        entries=entries,
        sources=tuple(state.sources()) if state is not None else (),
        has_folder=folder is not None,
        folder=folder.path if folder is not None else None,
    )
    listing = source.open(view)
    ledger = Ledger.of(folder.path) if folder is not None and tracked else None
    tracker: Tracker | None = None

    def skipped(count: int) -> None:
        if tracker is not None:
            tracker.advance(count)

    work = plan(
        writer,
        listing,
        skip=source.skip,
        entries=entries,
        extractors=extractors,
        versions=ledger.versions() if ledger is not None else None,
        allow_removal=allow_removal,
        batch_size=batch_size or _VECTOR_BATCH,
        on_skip=skipped,
        started=started,
    )
    total = None if work.total is None else work.total + len(work.refresh)
    tracker = Tracker(progress, task="index", total=total)
    stage = WriteStage(
        writer=writer,
        extractors=extractors,
        tracker=tracker,
        commit_every=commit_every,
        record_failures=source.skip == "unchanged" if record_failures is None else record_failures,
    )
    if ledger is not None:
        writer.attach(ledger)
    try:
        try:
            _run(work, encoder, stage, batch_size)
        except ExtractorUnavailableError as exc:
            if commit_every is not None:
                stage.commit()
            exc.report = work.report(
                indexed=stage.indexed, failed=stage.failed, count=len(writer.store)
            )
            logger.info("index %s stopped: %s", work.root or type(source).__name__, exc)
            raise
        finally:
            tracker.close()
        if commit_every is not None:
            stage.commit()
    finally:
        if ledger is not None:
            writer.detach(ledger)
    report = work.report(indexed=stage.indexed, failed=stage.failed, count=len(writer.store))
    logger.info("index %s: %s", work.root or type(source).__name__, report)
    return report


def _run(work: Plan, encoder: Encoder | None, stage: WriteStage, batch_size: int | None) -> None:
    for chunk in encode(work.refresh, None, batch_size=batch_size or _VECTOR_BATCH):
        stage(chunk)
    if work.total == 0:
        return  # the encoder is touched only for work: zsv index loads it lazily
    size = batch_size or (encoder.batch_size if encoder is not None else _VECTOR_BATCH)
    for chunk in encode(work.todo, encoder, batch_size=size):
        stage(chunk)


def ingest_into_store(
    source: Source,
    store: VectorStore,
    folder: IndexFolder | None = None,
    *,
    encoder: Encoder | None = None,
    commit_every: float = math.inf,
    progress: ProgressOption = None,
) -> FolderReport:
    """:func:`ingest` with a writer of its own over ``store`` (and ``folder``'s state).

    For callers that hold a store but no engine (``zsv import``): the writer is made,
    used and closed here (closing releases the folder's lock); one commit at the end
    unless ``commit_every`` says otherwise.
    """
    with writer_for(store, folder) as writer:
        return ingest(source, writer, encoder, commit_every=commit_every, progress=progress)


def writer_for(store: VectorStore, folder: IndexFolder | None = None) -> IndexWriter:
    """A writer over ``store`` (and ``folder``'s state) for an executor of this pipeline
    that drives its own stages (Ray's driver): writers are made here only."""
    return IndexWriter(store, folder)
