"""``state.sqlite``: one row per image file of an index folder, and what became of it.

Each row holds the file's id, path, size, mtime and status: ``indexed``, ``failed``
(unreadable; not retried until it changes) or ``pending`` (being written when the writer
stopped; reconciled on the next run). The ``meta`` table lists the source folders the index
mirrors. Readers open the database read-only and never wait; only the writer (who holds
the folder's lock, :mod:`~zeroshot_vision._index.lock`) opens it for writing, and every
change is one transaction. A damaged state is refused with
:class:`~zeroshot_vision._errors.IndexDamagedError`; a full disk or an I/O error is an
``OSError`` that says so.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from zeroshot_vision._index.manifest import damaged
from zeroshot_vision._json import describe_problem, loads_bounded

__all__ = ["STATE", "FileEntry", "FolderState", "SourceFolder", "Status"]

STATE = "state.sqlite"
"""The state's file name in an index folder."""

Status = Literal["indexed", "failed", "pending"]


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """One row of an index folder's state: an image file and what became of it.

    Attributes:
        id: The id of its vector.
        path: The file's path as text (``None`` for images indexed from bytes).
        size: Its size in bytes when indexed.
        mtime_ns: Its modification time when indexed.
        status: ``"indexed"``, ``"failed"`` (unreadable; not retried until it changes) or
            ``"pending"`` (being written when the writer stopped; reconciled next run).
        reason: Why it failed, for ``"failed"``.
    """

    id: str
    path: str | None
    size: int | None = None
    mtime_ns: int | None = None
    status: Status = "indexed"
    reason: str | None = None

    def same_file(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether this entry describes that file, unchanged."""
        return self.path == path and self.size == size and self.mtime_ns == mtime_ns


@dataclass(frozen=True, kw_only=True)
class SourceFolder:
    """A folder an index mirrors, and how its files' ids begin.

    Attributes:
        path: The folder, absolute.
        prefix: Put before its files' relative paths to make their ids: ``""`` for the
            first source (ids are plain relative paths, as for an index of one folder),
            the folder's name for later ones (``"camera/DSC_0001.jpg"``), so that ids stay
            unique across sources and never change once given.
    """

    path: str
    prefix: str = ""

    def image_id(self, relative: str) -> str:
        """The id of the file at ``relative`` (``/``-separated) in this source."""
        return f"{self.prefix}/{relative}" if self.prefix else relative


_StrictText = Annotated[str, pydantic.Field(strict=True)]
_Count = Annotated[int, pydantic.Field(strict=True, ge=0)]
_STATE_ROWS: pydantic.TypeAdapter[list[tuple[Any, ...]]] = pydantic.TypeAdapter(
    list[
        tuple[
            Annotated[str, pydantic.Field(strict=True, min_length=1)],  # id
            _StrictText | None,  # path
            _Count | None,  # size
            Annotated[int, pydantic.Field(strict=True)] | None,  # mtime_ns
            Literal["indexed", "failed", "pending"],  # status
            _StrictText | None,  # reason
        ]
    ]
)
"""The schema of ``state.sqlite``'s ``files`` rows (SQLite itself stores any type anywhere)."""

_SQLITE_READONLY = 8
"""SQLite's primary result code for "attempt to write a readonly database"."""
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


def _sqlite_error(path: Path, exc: sqlite3.Error) -> Exception:
    """A full disk or an I/O error is the machine's trouble, not a damaged state."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if path.exists() and not path.is_file():  # SQLite says "disk I/O error" for a folder
        return damaged(path, "it is not a regular file (a folder?)")
    if code == _SQLITE_FULL:
        return OSError(errno.ENOSPC, f"no space left to write {path}; nothing was lost")
    if code == _SQLITE_IOERR:
        return OSError(errno.EIO, f"cannot write {path}: {exc}")
    if code == _SQLITE_READONLY:
        return OSError(errno.EROFS, f"cannot write {path}: the index folder is read-only")
    return damaged(path, exc)


class FolderState:
    """``state.sqlite``: the file table, read-only for readers, read-write for the writer."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS files (
            id TEXT PRIMARY KEY,
            path TEXT,
            size INTEGER,
            mtime_ns INTEGER,
            status TEXT NOT NULL CHECK (status IN ('indexed', 'failed', 'pending')),
            reason TEXT
        );
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, *, write: bool) -> FolderState | None:
        """The state at ``path``; ``None`` for a reader when there is none yet."""
        if not write and not path.exists():
            return None
        try:
            if write:
                db = sqlite3.connect(path, timeout=10, isolation_level=None)
                db.executescript(cls._SCHEMA)
            else:
                db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
            try:
                db.execute("SELECT id, path, size, mtime_ns, status, reason FROM files LIMIT 1")
            except sqlite3.OperationalError as exc:
                if write or getattr(exc, "sqlite_errorcode", 0) & 0xFF != _SQLITE_READONLY:
                    raise
                # A writer killed mid-transaction left a hot journal, which only a
                # read-write connection may roll back (SQLite does so on first read).
                db.close()
                db = sqlite3.connect(path, timeout=10, isolation_level=None)
                db.execute("SELECT id, path, size, mtime_ns, status, reason FROM files LIMIT 1")
            db.execute("SELECT key, value FROM meta LIMIT 1")
        except sqlite3.Error as exc:
            raise _sqlite_error(path, exc) from exc
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, rows: Iterable[tuple[Any, ...]] | None = None) -> sqlite3.Cursor:
        try:
            if rows is None:
                return self._db.execute(sql)
            return self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _sqlite_error(self.path, exc) from exc

    def meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise damaged(self.path, exc) from exc
        if row is None:
            return None
        if not isinstance(row[0], str):
            raise damaged(self.path, f"table meta, key {key!r}: expected text, got {row[0]!r}")
        return row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(key, value)])

    def sources(self) -> list[SourceFolder]:
        """The recorded sources: ``sources`` (version 3), else the one ``source`` (2)."""
        listed = self.meta("sources")
        if listed is None:
            single = self.meta("source")
            return [SourceFolder(path=single)] if single else []
        try:
            rows = loads_bounded(listed, max_depth=3, max_bytes=1 << 20, what="the sources row")
            return [SourceFolder(path=str(row["path"]), prefix=str(row["prefix"])) for row in rows]
        except (ValueError, TypeError, KeyError) as exc:
            raise damaged(self.path, f"the sources row holds {listed[:200]!r}") from exc

    def set_sources(self, sources: Iterable[SourceFolder]) -> None:
        """Record the sources, replacing a version 2 ``source`` row in one transaction."""
        text = json.dumps([{"path": s.path, "prefix": s.prefix} for s in sources])
        self._run("BEGIN IMMEDIATE")
        try:
            self._run("INSERT OR REPLACE INTO meta VALUES ('sources', ?)", [(text,)])
            self._run("DELETE FROM meta WHERE key = 'source'")
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def entries(self) -> dict[str, FileEntry]:
        rows = self._run("SELECT id, path, size, mtime_ns, status, reason FROM files").fetchall()
        try:
            checked = _STATE_ROWS.validate_python(rows)
        except pydantic.ValidationError as exc:
            raise damaged(self.path, f"table files, {describe_problem(exc)}") from exc
        return {
            row[0]: FileEntry(
                id=row[0], path=row[1], size=row[2], mtime_ns=row[3], status=row[4], reason=row[5]
            )
            for row in checked
        }

    def counts(self) -> dict[str, int]:
        rows = self._run("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall()
        counts = {"indexed": 0, "failed": 0, "pending": 0}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def write(self, entries: Iterable[FileEntry] = (), forget: Iterable[str] = ()) -> None:
        """Record ``entries`` and drop ``forget`` in one transaction (all or nothing)."""
        rows = [(e.id, e.path, e.size, e.mtime_ns, e.status, e.reason) for e in entries]
        gone = [(item,) for item in forget]
        if not rows and not gone:
            return
        self._run("BEGIN IMMEDIATE")
        try:
            if gone:
                self._run("DELETE FROM files WHERE id = ?", gone)
            if rows:
                self._run("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            # SQLite rolls back by itself after some errors (a full disk): a second
            # ROLLBACK would fail and hide the error that matters.
            if self._db.in_transaction:
                self._run("ROLLBACK")
            raise
        self._run("COMMIT")
