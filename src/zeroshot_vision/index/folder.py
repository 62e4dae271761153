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

The manifest is validated with pydantic and carries a format version; a folder written by
a newer version, or with a damaged manifest or state, is refused with
:class:`~zeroshot_vision.errors.IndexDamagedError` rather than read as an empty index.
Version 1 folders (``state.json``) are read, and upgraded the first time they are written.

Writers are exclusive and readers never wait: :meth:`IndexFolder.lock` takes the folder's
lock (a second writer gets :class:`~zeroshot_vision.errors.IndexLockedError`), while
searching, ``zsv info`` and the app open the folder without it.

Example:
    >>> folder = IndexFolder.create("my-index", model="google/siglip-so400m-patch14-384",
    ...                             dim=1152)  # doctest: +SKIP
    >>> IndexFolder.open("my-index").manifest.model  # doctest: +SKIP
    'google/siglip-so400m-patch14-384'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from zeroshot_vision._files import write_atomic
from zeroshot_vision.errors import (
    DimensionMismatchError,
    IndexDamagedError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
)
from zeroshot_vision.stores.registry import StoreLocation, check_store_options, open_store_kind

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from zeroshot_vision.stores.base import VectorStore

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FileEntry",
    "IndexFolder",
    "IndexManifest",
    "SourceFolder",
    "StoreSpec",
    "model_reference",
]

logger = logging.getLogger(__name__)

FORMAT = "zeroshot-vision/index"
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
_V1_STATE = "state.json"
_V1_STATE_FORMAT = "zeroshot-vision/index-state"

PathLike = str | os.PathLike[str]
Status = Literal["indexed", "failed", "pending"]


class StoreSpec(pydantic.BaseModel):
    """Which store holds an index's vectors: a registered kind and its options."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    kind: str = "faiss"
    options: dict[str, str | int | float | bool] = pydantic.Field(default_factory=dict)


class IndexManifest(pydantic.BaseModel):
    """The manifest of an index folder (``settings.json``), validated when read.

    Attributes:
        format: Always ``"zeroshot-vision/index"``.
        version: The format version that wrote it.
        model: The encoder's checkpoint: a hub name, or an absolute local path.
        dim: The embedding dimension.
        store: The store kind and its options.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    format: Literal["zeroshot-vision/index"] = "zeroshot-vision/index"
    version: int = pydantic.Field(default=FORMAT_VERSION, ge=1, strict=True)
    model: str = pydantic.Field(min_length=1)
    dim: int = pydantic.Field(gt=0, strict=True)
    store: StoreSpec = pydantic.Field(default_factory=StoreSpec)


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


_SQLITE_READONLY = 8
"""SQLite's primary result code for "attempt to write a readonly database"."""


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
            raise _damaged(path, exc) from exc
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, rows: Iterable[tuple[Any, ...]] | None = None) -> sqlite3.Cursor:
        try:
            if rows is None:
                return self._db.execute(sql)
            return self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    def meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(key, value)])

    def sources(self) -> list[SourceFolder]:
        """The recorded sources: ``sources`` (version 3), else the one ``source`` (2)."""
        listed = self.meta("sources")
        if listed is None:
            single = self.meta("source")
            return [SourceFolder(path=single)] if single else []
        try:
            rows = json.loads(listed)
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
        rows = self._run("SELECT id, path, size, mtime_ns, status, reason FROM files")
        found: dict[str, FileEntry] = {}
        for row in rows:
            if not isinstance(row[0], str) or row[4] not in ("indexed", "failed", "pending"):
                raise _damaged(self.path, f"a row holds {row!r}")
            found[row[0]] = FileEntry(
                id=row[0], path=row[1], size=row[2], mtime_ns=row[3], status=row[4], reason=row[5]
            )
        return found

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
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")


def _read_manifest(folder: Path) -> IndexManifest:
    file = folder / MANIFEST
    try:
        raw = json.loads(file.read_bytes())
    except FileNotFoundError as exc:
        raise IndexNotFoundError(
            f"no index at {folder} (missing {MANIFEST}; create one with 'zsv index' or "
            "SearchEngine.create)"
        ) from exc
    except (OSError, ValueError) as exc:  # a folder named settings.json, bad JSON, ...
        raise _damaged(file, exc) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _damaged(file, "it is not a zeroshot-vision index manifest")
    version = raw.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IndexDamagedError(
            f"{folder} was written by a newer zeroshot-vision (index format {version}; this "
            f"version reads up to {FORMAT_VERSION}); upgrade zeroshot-vision to open it",
            path=str(file),
        )
    try:
        return IndexManifest.model_validate(raw)
    except pydantic.ValidationError as exc:
        problem = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'manifest'}: {error['msg']}"
            for error in exc.errors()
        )
        raise _damaged(file, problem) from exc


class IndexFolder:
    """An index folder on disk: its manifest, its file state, its store and its lock.

    Build one with :meth:`create` or :meth:`open`; ``SearchEngine.create`` and
    ``SearchEngine.open`` do this for you.

    Attributes:
        path: The folder.
        manifest: What the folder records (model, dimension, store).
    """

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
        if any(folder.iterdir()):
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
    ) -> IndexFolder:
        """Create a new index folder and write its manifest (atomically).

        Args:
            path: A new or empty folder; created with its parents.
            model: The encoder's checkpoint name or local folder.
            dim: The encoder's embedding dimension.
            store: A registered store kind (``"faiss"``, ``"pinecone"``, or your own).
            store_options: The kind's options (Pinecone: ``host`` or ``index_name``, and
                ``namespace``). Never secrets: they stay in the environment.

        Raises:
            InvalidInputError: ``path`` already holds an index or other files, or the
                store kind or options are not acceptable.
        """
        folder = Path(path)
        if cls.exists(folder):
            raise InvalidInputError(f"{folder} already holds an index; open it instead")
        cls.check_available(folder)
        options = check_store_options(store, store_options or {})
        try:
            manifest = IndexManifest(
                model=model_reference(model),
                dim=dim,
                store=StoreSpec(kind=store, options=options),
            )
        except pydantic.ValidationError as exc:
            raise InvalidInputError(f"cannot create an index: {exc.errors()[0]['msg']}") from exc
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / MANIFEST, manifest.model_dump_json(indent=2).encode())
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

    def lock(self) -> None:
        """Take the writer lock (once; the OS releases it if the process dies).

        Raises:
            IndexLockedError: Another process, or another engine in this one, writes here.
            OSError: The folder cannot be written (read-only, permissions).
        """
        if self._lock is not None:
            return
        from filelock import FileLock, Timeout

        lock = FileLock(self.path / LOCK, timeout=0, thread_local=False, is_singleton=False)
        try:
            lock.acquire()
        except Timeout as exc:
            raise IndexLockedError(
                f"another process is writing to the index {self.path}; wait for it to finish"
            ) from exc
        except OSError as exc:  # a read-only folder or file system
            raise OSError(
                exc.errno, f"cannot write to the index folder {self.path}: {exc.strerror or exc}"
            ) from exc
        self._lock = lock

    def unlock(self) -> None:
        """Release the writer lock and close the state (harmless when not held)."""
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock is not None:
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


def _read_v1_state(path: Path) -> tuple[str, list[FileEntry]]:
    try:
        raw = json.loads(path.read_bytes())
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
        raise _damaged(path, exc) from exc
