"""The index folder: one on-disk format, owned by one object, :class:`IndexFolder`.

``SearchEngine.create``/``SearchEngine.open``, ``zsv`` and the app all read and write this
format and nothing else, so an index made in one opens in the others::

    settings.json   the manifest: format, version, the model, the dimension, and the store
                    (a kind and its options: for Pinecone the host or index name and the
                    namespace, never the API key)
    state.sqlite    one row per image file: its id, path, size, mtime and status
                    (indexed, failed, or pending: being written when the run stopped)
    store/          the store's own files (FaissStore); absent for a remote store
    .lock           held by the one process that writes
    .lock.owner     who holds it: the process id and since when (for the message a second
                    writer gets)

The manifest is validated with pydantic and carries a format version; a folder written by
a newer version, or with a damaged manifest or state, is refused with
:class:`~zeroshot_vision.errors.IndexDamagedError` rather than read as an empty index.
Version 1 folders (``state.json``) are read, and upgraded the first time they are written.

Creating is exclusive: the manifest is linked into place only if none is there, so of two
processes creating one folder at once, one gets
:class:`~zeroshot_vision.errors.IndexExistsError` instead of silently replacing the other's
manifest. Writers are exclusive and readers never wait: :meth:`IndexFolder.lock` takes the
folder's lock (a second writer gets :class:`~zeroshot_vision.errors.IndexLockedError`
naming the process that holds it and since when, or waits up to ``lock_wait`` seconds),
while searching, ``zsv info`` and the app open the folder without it.

Example:
    >>> folder = IndexFolder.create("my-index", model="google/siglip-so400m-patch14-384",
    ...                             dim=1152)  # doctest: +SKIP
    >>> IndexFolder.open("my-index").manifest.model  # doctest: +SKIP
    'google/siglip-so400m-patch14-384'
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from zeroshot_vision._checks import non_negative_seconds
from zeroshot_vision._files import is_temp_file, write_atomic, write_exclusive
from zeroshot_vision._json import (
    describe_problem,
    format_matches,
    format_problem,
    loads_bounded,
    read_model,
)
from zeroshot_vision.errors import (
    DimensionMismatchError,
    IndexDamagedError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
)
from zeroshot_vision.stores.base import MAX_DIM
from zeroshot_vision.stores.registry import StoreLocation, check_store_options, open_store_kind

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from zeroshot_vision.stores.base import VectorStore

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "EncoderRecord",
    "FileEntry",
    "IndexFolder",
    "IndexManifest",
    "LockOwner",
    "SourceFolder",
    "StoreSpec",
    "model_reference",
]

logger = logging.getLogger(__name__)

FORMAT: Literal["zeroshot-vision/index"] = "zeroshot-vision/index"
FORMAT_VERSION = 3
"""Version 3: several source folders, listed in the state's ``meta`` row ``sources``.

Version 2 moved the state from ``state.json`` to ``state.sqlite``, with pending rows, and
recorded one source folder (``meta`` row ``source``); it is migrated in place, in one
transaction, the first time a writer opens it.
"""

MANIFEST = "settings.json"
STATE = "state.sqlite"
STORE_DIR = "store"
LOCK = ".lock"
LOCK_OWNER = ".lock.owner"
_MANIFEST_MAX_BYTES = 1 << 20
"""A manifest is a few hundred bytes; a megabyte is damage (or not a manifest at all)."""
_MANIFEST_MAX_DEPTH = 8
_V1_STATE_MAX_BYTES = 1 << 32
_V1_STATE = "state.json"
_V1_STATE_FORMAT = "zeroshot-vision/index-state"

PathLike = str | os.PathLike[str]
Status = Literal["indexed", "failed", "pending"]


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
            :data:`~zeroshot_vision.backends.PROBE_TEXTS` (float16, base64), so that a
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
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    format: Literal["zeroshot-vision/index"]
    version: int = pydantic.Field(default=FORMAT_VERSION, ge=1, strict=True)
    model: str = pydantic.Field(min_length=1, max_length=4096)  # a hub name or a path
    dim: int = pydantic.Field(gt=0, le=MAX_DIM, strict=True)
    store: StoreSpec = pydantic.Field(default_factory=StoreSpec)
    encoder: EncoderRecord | None = None


class LockOwner(pydantic.BaseModel):
    """``.lock.owner``: which process holds the writer lock, and since when."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    pid: int = pydantic.Field(gt=0)
    since: str = pydantic.Field(min_length=1, max_length=64)
    """When it took the lock: ISO 8601, UTC, to the second."""


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


def model_reference(model: str) -> str:
    """The form of a model name to record: local folders become absolute paths.

    A relative folder would point elsewhere once a later command runs from another
    working directory; a hub name (``google/siglip-...``) is kept as given.
    """
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


def _damaged(path: Path, problem: object) -> IndexDamagedError:
    text = " ".join(str(problem).split())
    return IndexDamagedError(f"the index file {path} is damaged: {text}", path=str(path))


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
        return _damaged(path, "it is not a regular file (a folder?)")
    if code == _SQLITE_FULL:
        return OSError(errno.ENOSPC, f"no space left to write {path}; nothing was lost")
    if code == _SQLITE_IOERR:
        return OSError(errno.EIO, f"cannot write {path}: {exc}")
    if code == _SQLITE_READONLY:
        return OSError(errno.EROFS, f"cannot write {path}: the index folder is read-only")
    return _damaged(path, exc)


class _State:
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
    def open(cls, path: Path, *, write: bool) -> _State | None:
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
            raise _damaged(self.path, exc) from exc
        if row is None:
            return None
        if not isinstance(row[0], str):
            raise _damaged(self.path, f"table meta, key {key!r}: expected text, got {row[0]!r}")
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
            raise _damaged(self.path, f"the sources row holds {listed[:200]!r}") from exc

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
            raise _damaged(self.path, f"table files, {describe_problem(exc)}") from exc
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


def _read_manifest(folder: Path) -> IndexManifest:
    file = folder / MANIFEST

    def check(raw: object) -> None:
        if not isinstance(raw, dict) or not format_matches(raw, FORMAT):
            raise _damaged(
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
            damaged=lambda problem: _damaged(file, problem),
            check=check,
        )
    except FileNotFoundError as exc:
        raise IndexNotFoundError(
            f"no index at {folder} (missing {MANIFEST}; create one with 'zsv index' or "
            "SearchEngine.create)"
        ) from exc


class IndexFolder:
    """An index folder on disk: its manifest, its file state, its store and its lock.

    Build one with :meth:`create` or :meth:`open`; ``SearchEngine.create`` and
    ``SearchEngine.open`` do this for you.

    Attributes:
        path: The folder.
        manifest: What the folder records (model, dimension, store).
    """

    lock_wait: float = 0.0
    """Seconds :meth:`lock` waits for another writer to finish (0: fail at once)."""

    def __init__(self, path: Path, manifest: IndexManifest) -> None:
        self.path = path
        self.manifest = manifest
        self._lock: BaseFileLock | None = None
        self._state: _State | None = None

    def __repr__(self) -> str:
        return (
            f"IndexFolder({str(self.path)!r}, model={self.manifest.model!r}, "
            f"store={self.manifest.store.kind!r})"
        )

    # -- creating and opening ----------------------------------------------------------

    @staticmethod
    def exists(path: PathLike) -> bool:
        """Whether ``path`` holds an index folder (a manifest, sound or not)."""
        return (Path(path) / MANIFEST).exists()

    @staticmethod
    def check_available(path: PathLike) -> None:
        """Check that ``path`` can become an index: nothing there, or an empty folder.

        A folder holding other files is refused, so that a mistyped path never mixes an
        index into a folder that belongs to something else.

        Raises:
            InvalidInputError: ``path`` is a file, or a non-empty folder without an index.
        """
        folder = Path(path)
        if not folder.exists() or IndexFolder.exists(folder):
            return
        if not folder.is_dir():
            raise InvalidInputError(f"{folder} is a file, not an index folder")
        # Another process creating this index right now leaves only its temp file (and
        # maybe the lock): that folder is still free to race for, and the race decides.
        foreign = any(not _creating(entry.name) for entry in folder.iterdir())
        # A creator that won meanwhile (its manifest linked after our first look) may
        # already be writing its files: that folder is an index now, not foreign.
        if foreign and not IndexFolder.exists(folder):
            raise InvalidInputError(
                f"{folder} is not empty and holds no index (no {MANIFEST}); give a new or "
                "empty folder"
            )

    @classmethod
    def create(
        cls,
        path: PathLike,
        *,
        model: str,
        dim: int,
        store: str = "faiss",
        store_options: Mapping[str, Any] | None = None,
        encoder: EncoderRecord | None = None,
    ) -> IndexFolder:
        """Create a new index folder and write its manifest (atomically).

        Args:
            path: A new or empty folder; created with its parents.
            model: The encoder's checkpoint name or local folder.
            dim: The encoder's embedding dimension.
            store: A registered store kind (``"faiss"``, ``"pinecone"``, or your own).
            store_options: The kind's options (Pinecone: ``host`` or ``index_name``, and
                ``namespace``). Never secrets: they stay in the environment.
            encoder: The encoder's route and probe vectors, recorded for later queries.

        Creation is exclusive: the manifest is linked into place only if none is there,
        so when several processes create one folder at once exactly one succeeds.

        Raises:
            IndexExistsError: ``path`` already holds an index, or another process created
                one there first (also an :class:`InvalidInputError`).
            InvalidInputError: ``path`` holds other files, or the store kind or options
                are not acceptable.
        """
        folder = Path(path)
        if cls.exists(folder):
            raise IndexExistsError(f"{folder} already holds an index; open it instead")
        cls.check_available(folder)
        options = check_store_options(store, store_options or {})
        try:
            manifest = IndexManifest(
                format=FORMAT,
                model=model_reference(model),
                dim=dim,
                store=StoreSpec(kind=store, options=options),
                encoder=encoder,
            )
        except pydantic.ValidationError as exc:
            raise InvalidInputError(f"cannot create an index: {exc.errors()[0]['msg']}") from exc
        folder.mkdir(parents=True, exist_ok=True)
        try:
            write_exclusive(folder / MANIFEST, manifest.model_dump_json(indent=2).encode())
        except FileExistsError as exc:
            raise IndexExistsError(
                f"{folder} already holds an index (another process created it just now); "
                "open it instead"
            ) from exc
        logger.info("created index folder %s (model %s, dim %d)", folder, manifest.model, dim)
        return cls(folder, manifest)

    @classmethod
    def open(cls, path: PathLike) -> IndexFolder:
        """Open an existing index folder (without its lock: for reading).

        Raises:
            IndexNotFoundError: ``path`` holds no index.
            IndexDamagedError: The manifest is damaged or from a newer version.
        """
        folder = Path(path)
        return cls(folder, _read_manifest(folder))

    def check_matches(
        self,
        *,
        model: str | None = None,
        dim: int | None = None,
        store: str | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse settings that contradict this folder's (``None`` means "any").

        Raises:
            InvalidInputError: Another model, store kind or store options.
            DimensionMismatchError: Another dimension.
        """
        recorded = self.manifest
        if model is not None and model_reference(model) != recorded.model:
            raise InvalidInputError(
                f"{self.path} was indexed with model {recorded.model!r}, not {model!r}; "
                "use another index folder for another model"
            )
        if dim is not None and dim != recorded.dim:
            raise DimensionMismatchError(
                f"{self.path} holds vectors of dimension {recorded.dim}, the model makes {dim}",
                expected=recorded.dim,
                actual=dim,
            )
        if store is not None and store != recorded.store.kind:
            raise InvalidInputError(
                f"{self.path} uses the {recorded.store.kind!r} store, not {store!r}"
            )
        if store_options:
            wanted = {k: v for k, v in store_options.items() if v is not None}
            if wanted != dict(recorded.store.options):
                raise InvalidInputError(
                    f"{self.path} uses the store options {dict(recorded.store.options)}, not "
                    f"{wanted}; use another index folder"
                )

    # -- the store ---------------------------------------------------------------------

    def open_store(self) -> VectorStore:
        """Open the folder's store with the recorded kind and options.

        Raises:
            IndexDamagedError: The store's files are missing although vectors were
                committed, or are damaged.
            MissingDependencyError: The store kind's optional package is missing.
        """
        counts = self.counts()
        location = StoreLocation(
            folder=self.path / STORE_DIR,
            dim=self.manifest.dim,
            options=dict(self.manifest.store.options),
            must_exist=counts["indexed"] > 0,
        )
        return open_store_kind(self.manifest.store.kind, location)

    # -- the writer's lock -------------------------------------------------------------

    @property
    def locked(self) -> bool:
        """Whether this object holds the folder's writer lock."""
        return self._lock is not None

    def lock(self, *, wait: float | None = None) -> None:
        """Take the writer lock (once; the OS releases it if the process dies).

        The holder records its process id and the time in ``.lock.owner``, for the
        message another writer gets.

        Args:
            wait: Seconds to wait for another writer to finish; default
                :attr:`lock_wait` (0: fail at once).

        Raises:
            IndexLockedError: Another process, or another engine in this one, writes here
                (and did not finish within ``wait``).
            OSError: The folder cannot be written (read-only, permissions).
        """
        if self._lock is not None:
            return
        from filelock import FileLock, Timeout

        # A negative timeout would make filelock wait forever.
        timeout = non_negative_seconds(self.lock_wait if wait is None else wait, "wait")
        lock = FileLock(self.path / LOCK, timeout=timeout, thread_local=False, is_singleton=False)
        try:
            lock.acquire(poll_interval=min(0.05, max(timeout / 10, 0.005)))
        except Timeout as exc:
            owner = self.lock_owner()
            holder = f"process {owner.pid} since {owner.since}" if owner else "another process"
            waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
            raise IndexLockedError(
                f"the index {self.path} is locked by {holder}: another process is writing "
                f"to it{waited}; wait for it to finish",
                pid=owner.pid if owner else None,
                since=owner.since if owner else None,
            ) from exc
        except OSError as exc:  # a read-only folder or file system
            raise OSError(
                exc.errno, f"cannot write to the index folder {self.path}: {exc.strerror or exc}"
            ) from exc
        self._lock = lock
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = LockOwner(pid=os.getpid(), since=since).model_dump_json().encode()
        try:
            write_atomic(self.path / LOCK_OWNER, record)
        except OSError as exc:  # only a courtesy to other writers; the lock itself holds
            logger.debug("cannot record the lock's owner in %s: %s", self.path, exc)

    def lock_owner(self) -> LockOwner | None:
        """Who holds the writer lock, as recorded in ``.lock.owner`` (``None``: unknown).

        Only meaningful while the lock is held: a killed writer leaves its record, which
        the next writer replaces.
        """
        try:
            return read_model(
                self.path / LOCK_OWNER,
                LockOwner,
                max_bytes=4096,
                max_depth=2,
                damaged=InvalidInputError,
            )
        except (OSError, InvalidInputError):  # absent or damaged: the holder is unknown
            return None

    def unlock(self) -> None:
        """Release the writer lock and close the state (harmless when not held)."""
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                (self.path / LOCK_OWNER).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    # -- the file state ----------------------------------------------------------------

    def state(self) -> _State:
        """The writable state (needs the lock); upgrades a version 1 ``state.json``."""
        if self._lock is None:
            raise InvalidInputError("lock the index folder before writing its state")
        if self._state is None:
            state = _State.open(self.path / STATE, write=True)
            assert state is not None
            self._upgrade_v1(state)
            self._upgrade_v2(state)
            self._state = state
        return self._state

    def _upgrade_v2(self, state: _State) -> None:
        """Version 2 to 3: the one ``source`` row becomes the ``sources`` list.

        The state changes in one transaction, then the manifest is replaced atomically; a
        writer killed between the two leaves a version 2 manifest over a version 3 state,
        which this method finishes next time (reading either works meanwhile).
        """
        if state.meta("sources") is None:
            state.set_sources(state.sources())
        if self.manifest.version < FORMAT_VERSION:
            upgraded = self.manifest.model_copy(update={"version": FORMAT_VERSION})
            write_atomic(self.path / MANIFEST, upgraded.model_dump_json(indent=2).encode())
            self.manifest = upgraded
            logger.info("upgraded %s to index format %d", self.path, FORMAT_VERSION)

    def _upgrade_v1(self, state: _State) -> None:
        old = self.path / _V1_STATE
        if not old.exists():
            return
        source, entries = _read_v1_state(old)
        if source and state.meta("source") is None:
            state.set_meta("source", source)
        state.write(entries)
        old.unlink()
        if self.manifest.version < FORMAT_VERSION:
            upgraded = self.manifest.model_copy(update={"version": FORMAT_VERSION})
            write_atomic(self.path / MANIFEST, upgraded.model_dump_json(indent=2).encode())
            self.manifest = upgraded
        logger.info("upgraded %s to index format %d", self.path, FORMAT_VERSION)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[_State | None]:
        """The state to read: the writer's own, else a read-only connection, else None."""
        if self._state is not None:
            yield self._state
            return
        state = _State.open(self.path / STATE, write=False)
        try:
            yield state
        finally:
            if state is not None:
                state.close()

    def counts(self) -> dict[str, int]:
        """How many files the state records as indexed, failed and pending."""
        with self._reading() as state:
            if state is not None:
                return state.counts()
        counts = {"indexed": 0, "failed": 0, "pending": 0}
        if (self.path / _V1_STATE).exists():
            for entry in _read_v1_state(self.path / _V1_STATE)[1]:
                counts[entry.status] += 1
        return counts

    def entries(self) -> dict[str, FileEntry]:
        """Every row of the state, by id (empty before the first write)."""
        with self._reading() as state:
            return state.entries() if state is not None else {}

    def source(self) -> str | None:
        """The first source folder this index mirrors (``None`` before the first run)."""
        found = self.sources()
        return found[0].path if found else None

    def sources(self) -> list[SourceFolder]:
        """The source folders this index mirrors, in the order they were added."""
        with self._reading() as state:
            if state is not None:
                return state.sources()
        if (self.path / _V1_STATE).exists():
            single = _read_v1_state(self.path / _V1_STATE)[0]
            return [SourceFolder(path=single)] if single else []
        return []

    def size_bytes(self) -> int:
        """The size of the folder's files, in bytes (temporary files of a save excluded)."""
        from zeroshot_vision._files import folder_size

        return folder_size(self.path)


def _creating(name: str) -> bool:
    """Whether a file in a folder being created belongs to the creation itself."""
    # The manifest itself: another creator may link it between our two looks.
    return name in (MANIFEST, LOCK, LOCK_OWNER) or (
        is_temp_file(name) and name.startswith(f".{MANIFEST}.")
    )


def _read_v1_state(path: Path) -> tuple[str, list[FileEntry]]:
    try:
        raw = loads_bounded(
            path.read_bytes(), max_depth=4, max_bytes=_V1_STATE_MAX_BYTES, what="it"
        )
        if raw.get("format") != _V1_STATE_FORMAT:
            raise ValueError("not an index state file")
        entries = [
            FileEntry(
                id=str(item),
                path=str(entry["path"]),
                size=int(entry["size"]),
                mtime_ns=int(entry["mtime_ns"]),
            )
            for item, entry in raw["files"].items()
        ]
        entries += [
            FileEntry(
                id=str(item),
                path=str(entry["path"]),
                size=int(entry["size"]),
                mtime_ns=int(entry["mtime_ns"]),
                status="failed",
                reason=str(entry.get("reason", "")),
            )
            for item, entry in raw["failed"].items()
        ]
        return str(raw["source"]), entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # InvalidInputError (too large, too deep, not JSON) is a ValueError too.
        raise _damaged(path, exc) from exc
