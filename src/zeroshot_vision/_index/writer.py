"""``IndexWriter``: the one owner of every write to a store and its index folder's state.

Every writer of vectors (``SearchEngine.index_images``, ``index_folder``'s sync,
``zsv import``, the server, the integrations) goes through it, so the protocol that keeps
a folder's state and its store in agreement is written once:

1. **pending**: before vectors reach the store, their ids are recorded (durably) as
   *pending* in the folder's state;
2. **upsert**: the store receives them;
3. **indexed**: at the next :meth:`IndexWriter.commit`, the store commits first, then the
   state records the rows as indexed (or failed, or forgotten).

A writer killed between 1 and 3 leaves pending ids, which the next folder run re-encodes
(the file exists) or deletes (it does not): no store, remote ones included, is left
holding vectors the index does not know. Without an index folder (an in-memory engine)
the writer only upserts, deletes and commits the store.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.folder import FileEntry
from zeroshot_vision.stores._base import check_ids

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from zeroshot_vision._index.folder import IndexFolder
    from zeroshot_vision._types import Metadata
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["Companion", "IndexWriter"]

logger = logging.getLogger(__name__)


class Companion(Protocol):
    """A side index kept in step with the store (a lexical index, the extractor ledger).

    Attached to a writer with :meth:`IndexWriter.attach`, it receives every write and
    delete, staged, and commits after the store and before the folder's state records
    the rows as indexed: ids a crash leaves pending are rewritten by the next run, so a
    companion's writes must be upserts (writing an id twice is harmless).
    """

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        """Stage the extras of written ids (what the ingest pipeline's extractors gave:
        ``{"texts": {...}, "versions": {...}, "metadata": {...}}``)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Stage the removal of ids (missing ones are ignored)."""
        ...

    def commit(self) -> None:
        """Make what was staged durable."""
        ...

    def discard(self) -> None:
        """Forget what was staged since the last commit."""
        ...


class IndexWriter:
    """Writes vectors into ``store`` with ``folder``'s state kept in step.

    The first write takes the folder's lock (a second writer gets
    :class:`~zeroshot_vision._errors.IndexLockedError`); :meth:`close` commits nothing by
    itself and releases the lock. Use it as a context manager to commit on success::

        with IndexWriter(store, folder) as writer:
            writer.write(entries, vectors, metadata)

    Args:
        store: The store the vectors go to.
        folder: The index folder the store belongs to, if any.
    """

    def __init__(self, store: VectorStore, folder: IndexFolder | None = None) -> None:
        self.store = store
        self.folder = folder
        # Changes not yet committed: the store has them, the state does not yet.
        self._uncommitted: dict[str, FileEntry | None] = {}
        self._dirty = False
        self._closed = False
        self._companions: list[Companion] = []

    def __repr__(self) -> str:
        where = f", folder={str(self.folder.path)!r}" if self.folder is not None else ""
        return f"IndexWriter(store={self.store!r}{where})"

    def attach(self, companion: Companion) -> None:
        """Keep ``companion`` in step with the store from now on (see :class:`Companion`)."""
        if companion not in self._companions:
            self._companions.append(companion)

    def detach(self, companion: Companion) -> None:
        """Stop feeding ``companion`` (commit first: what it staged is not committed)."""
        if companion in self._companions:
            self._companions.remove(companion)

    @property
    def dirty(self) -> bool:
        """Whether something was written since the last :meth:`commit`."""
        return self._dirty

    def begin(self) -> None:
        """Prepare to write: take the folder's lock (once).

        Raises:
            InvalidInputError: The writer is closed.
            IndexLockedError: Another process writes to the folder.
        """
        if self._closed:
            raise InvalidInputError("this index writer is closed")
        if self.folder is not None:
            self.folder.lock()
        self._dirty = True

    def write(
        self,
        entries: Sequence[FileEntry],
        vectors: npt.NDArray[np.float32],
        metadata: Sequence[Metadata | None],
        *,
        extras: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Upsert vectors, with the folder's state knowing their ids before the store does.

        Args:
            entries: One state row per vector (its id, path, size and mtime); recorded
                as pending now and as given at the next :meth:`commit`.
            vectors: ``(len(entries), dim)`` unit vectors.
            metadata: One mapping (or ``None``) per vector.
            extras: One mapping per vector for the attached companions (see
                :class:`Companion`); default none.
        """
        self.reserve(entries)
        ids = [e.id for e in entries]
        self.store.upsert(ids, vectors, list(metadata))
        for companion in self._companions:
            companion.write(ids, extras if extras is not None else [{}] * len(ids))
        if self.folder is not None:  # in memory there is no state to record them in
            self._uncommitted.update({e.id: e for e in entries})

    def reserve(self, entries: Sequence[FileEntry]) -> None:
        """Record ids as pending (durably, now) before another process upserts them.

        Step 1 of the protocol for writes this writer does not make itself: workers of
        the distributed indexer upsert into a remote store directly. Record their
        outcome afterwards with :meth:`record` and :meth:`commit`; ids still pending
        when a run stops are reconciled by the next folder run, as for :meth:`write`.
        """
        check_ids([e.id for e in entries])  # the one id rule, before the state records any
        self.begin()
        if self.folder is not None:
            self.folder.state().write(
                FileEntry(id=e.id, path=e.path, size=None, mtime_ns=None, status="pending")
                for e in entries
            )

    def record(self, entries: Iterable[FileEntry], *, forget: Iterable[str] = ()) -> None:
        """Record state rows (and drop others) at the next :meth:`commit`, with the store."""
        self.begin()
        if self.folder is not None:
            self._uncommitted.update({e.id: e for e in entries})
            self._uncommitted.update(dict.fromkeys(forget))

    def delete(self, ids: Sequence[str]) -> None:
        """Delete ids from the store, and from the state at the next :meth:`commit`."""
        self.begin()
        self.store.delete(list(ids))
        for companion in self._companions:
            companion.delete(list(ids))
        self.record((), forget=ids)

    def commit(self) -> None:
        """Make every write so far durable: the store first, then the folder's state.

        Raises:
            OSError: The store's files cannot be written (a full disk, permissions); what
                was committed before is intact.
        """
        if self.folder is not None:
            self.folder.lock()  # writing the folder's files is the writer's job
        try:
            self.store.commit()
        except OSError as exc:
            where = f" in {self.folder.path}" if self.folder is not None else ""
            # OSError(errno, ...) keeps the subclass (PermissionError, ...) for callers.
            raise OSError(
                exc.errno or errno.EIO,
                f"cannot save the index{where}: {exc.strerror or exc}; what was saved before "
                "is intact, so fix this and run again to continue",
            ) from exc
        for companion in self._companions:
            companion.commit()
        if self.folder is not None and self._uncommitted:
            self.folder.state().write(
                [entry for entry in self._uncommitted.values() if entry is not None],
                forget=[item for item, entry in self._uncommitted.items() if entry is None],
            )
        self._uncommitted.clear()
        self._dirty = False

    def discard(self) -> None:
        """Forget what was written since the last commit, without committing it.

        The store may still hold those vectors in memory; the folder's state keeps them
        pending, so the next folder run reconciles them.
        """
        self._uncommitted.clear()
        self._dirty = False
        for companion in self._companions:
            companion.discard()

    def close(self) -> None:
        """Release the folder's lock and state. Commits nothing: call :meth:`commit`."""
        self._closed = True
        if self.folder is not None:
            self.folder.unlock()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None and self._dirty:
                self.commit()
            else:
                self.discard()
        finally:
            self.close()
