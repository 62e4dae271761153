"""The writer lock of an index folder: one writer at a time, readers never wait.

``.lock`` is an OS file lock (``filelock``), released by the OS if the holder dies;
``.lock.owner`` records who holds it (process id, since when), so that a second writer is
told whom it waits for (:class:`~zeroshot_vision._errors.IndexLockedError`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic

from zeroshot_vision._errors import IndexLockedError, InvalidInputError
from zeroshot_vision._files import write_atomic
from zeroshot_vision._json import read_model

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["LOCK", "LOCK_OWNER", "LockOwner", "WriterLock"]

logger = logging.getLogger(__name__)

LOCK = ".lock"
"""The lock file's name in an index folder."""
LOCK_OWNER = ".lock.owner"
"""The file naming the lock's holder."""


class LockOwner(pydantic.BaseModel):
    """``.lock.owner``: which process holds the writer lock, and since when."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    pid: int = pydantic.Field(gt=0)
    since: str = pydantic.Field(min_length=1, max_length=64)
    """When it took the lock: ISO 8601, UTC, to the second."""


class WriterLock:
    """The writer lock of the index folder at ``folder`` (taken at most once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock: BaseFileLock | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock is not None

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; record the owner.

        Raises:
            IndexLockedError: Another process, or another lock object in this one, holds
                it (and did not release it within ``timeout``).
            OSError: The folder cannot be written (read-only, permissions).
        """
        if self._lock is not None:
            return
        from filelock import FileLock, Timeout

        lock = FileLock(self.folder / LOCK, timeout=timeout, thread_local=False, is_singleton=False)
        try:
            lock.acquire(poll_interval=min(0.05, max(timeout / 10, 0.005)))
        except Timeout as exc:
            owner = self.owner()
            holder = f"process {owner.pid} since {owner.since}" if owner else "another process"
            waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
            raise IndexLockedError(
                f"the index {self.folder} is locked by {holder}: another process is writing "
                f"to it{waited}; wait for it to finish",
                pid=owner.pid if owner else None,
                since=owner.since if owner else None,
            ) from exc
        except OSError as exc:  # a read-only folder or file system
            raise OSError(
                exc.errno, f"cannot write to the index folder {self.folder}: {exc.strerror or exc}"
            ) from exc
        self._lock = lock
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = LockOwner(pid=os.getpid(), since=since).model_dump_json().encode()
        try:
            write_atomic(self.folder / LOCK_OWNER, record)
        except OSError as exc:  # only a courtesy to other writers; the lock itself holds
            logger.debug("cannot record the lock's owner in %s: %s", self.folder, exc)

    def owner(self) -> LockOwner | None:
        """Who holds the lock, as recorded in ``.lock.owner`` (``None``: unknown).

        Only meaningful while the lock is held: a killed writer leaves its record, which
        the next writer replaces.
        """
        try:
            return read_model(
                self.folder / LOCK_OWNER,
                LockOwner,
                max_bytes=4096,
                max_depth=2,
                damaged=InvalidInputError,
            )
        except (OSError, InvalidInputError):  # absent or damaged: the holder is unknown
            return None

    def release(self) -> None:
        """Release the lock (harmless when not held)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                (self.folder / LOCK_OWNER).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
