"""The write stage: encoded items into the store and the folder's state, through the writer.

:class:`~zeroshot_vision._index.writer.IndexWriter` is the only writer: vectors go in
with their state rows (built by :func:`~zeroshot_vision.ingest._item.file_entry`),
metadata (the source's, over the extractors') and the extractors' extras for the
writer's companions. A bad image is a recorded failure, never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._errors import ExtractorUnavailableError, ImageLoadError
from zeroshot_vision._types import ImageFailure
from zeroshot_vision.ingest._extract import extract
from zeroshot_vision.ingest._item import file_entry

if TYPE_CHECKING:
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision._progress import Tracker
    from zeroshot_vision.ingest._encode import Encoded
    from zeroshot_vision.ingest._extract import Extractor

__all__ = ["WriteStage"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class WriteStage:
    """Writes encoded batches, keeps the run's tallies, commits when due.

    Attributes:
        writer: The run's writer.
        extractors: Run on each item that encoded well, before it is written.
        tracker: Advanced after every batch.
        commit_every: Seconds between commits (``0``: after every batch; ``None``: the
            caller commits).
        record_failures: Whether a bad image is recorded in the folder's state (and its
            old vector deleted), so that it is not retried until it changes: what a
            folder run does; ``index_images`` only reports it.
        indexed: Ids written so far.
        failed: Failures so far (bad images, and extractors that failed on an item).
    """

    writer: IndexWriter
    extractors: Sequence[Extractor] = ()
    tracker: Tracker | None = None
    commit_every: float | None = 0.0
    record_failures: bool = True
    indexed: list[str] = field(default_factory=list)
    failed: list[ImageFailure] = field(default_factory=list)
    last_commit: float = field(default_factory=time.monotonic)

    def __call__(self, chunk: Encoded) -> None:
        """Write one batch: the good items' vectors, the bad items' failures.

        Raises:
            ExtractorUnavailableError: An extractor's service is gone: the items before
                the one it stopped on are written (not committed), the rest of the batch
                is left for the next run.
        """
        good = [(item, vector) for item, vector in chunk if not isinstance(vector, ImageLoadError)]
        bad = [(item, error) for item, error in chunk if isinstance(error, ImageLoadError)]
        extras = []
        stopped: ExtractorUnavailableError | None = None
        for item, _ in good:
            try:
                extras.append(extract(item, self.extractors))
            except ExtractorUnavailableError as exc:
                stopped = exc
                break
        good = good[: len(extras)]
        if good:
            companion_extras: list[dict[str, Any]] = [
                {"metadata": e.metadata, "texts": e.texts, "versions": e.versions} for e in extras
            ]
            self.writer.write(
                [file_entry(item) for item, _ in good],
                np.stack([vector for _, vector in good]),
                [dict(e.metadata) for e in extras],
                extras=companion_extras,
            )
            self.indexed.extend(item.id for item, _ in good)
            for (item, _), found in zip(good, extras):
                self.failed.extend(
                    ImageFailure(source=item.name, reason=f"{name}: {reason}")
                    for name, reason in found.failures
                )
        if stopped is not None:
            if self.tracker is not None:
                self.tracker.advance(len(good))
            raise stopped
        if bad:
            # A failure the state records is shown by the report that folder runs print;
            # one that is only reported (index_images) is logged as well, as it always was.
            for _, error in bad:
                logger.log(
                    logging.DEBUG if self.record_failures else logging.WARNING, "skipping %s", error
                )
            if self.record_failures:
                # A file that changed into something unreadable must not keep its old vector.
                self.writer.delete([item.id for item, _ in bad])
                self.writer.record(file_entry(item, failed=error.reason) for item, error in bad)
            self.failed.extend(ImageFailure(source=item.name, reason=e.reason) for item, e in bad)
        if (
            self.commit_every is not None
            and time.monotonic() - self.last_commit >= self.commit_every
        ):
            self.commit()
        if self.tracker is not None:
            self.tracker.advance(len(chunk), failed=len(bad))

    def commit(self) -> None:
        """Commit the writer now."""
        self.writer.commit()
        self.last_commit = time.monotonic()
