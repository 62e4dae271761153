"""The index folder: one on-disk format, owned by one object, :class:`IndexFolder`.

``SearchEngine.create``/``SearchEngine.open``, ``zsv`` and the app all read and write this
format and nothing else, so an index made in one opens in the others::

    settings.json   the manifest: format, version, the model, the dimension, and the store
                    (a kind and its options: for Pinecone the host or index name and the
                    namespace, never the API key)
    state.sqlite    one row per image file: its id, path, size, mtime and status
                    (indexed, failed, or pending: being written when the run stopped)
    store/          the store's own files (FaissStore); absent for a remote store (the
                    manifest's ``store_dir`` names another folder after a reindex)
    reindex.json    only while a reindex to another model is under way: its model, and
                    the folder its new store is written to (see
                    :mod:`~zeroshot_vision.ingest._reindex`)
    .lock           held by the one process that writes
    .lock.owner     who holds it: the process id and since when (for the message a second
                    writer gets)

Each concern has its module: the manifest (:mod:`~zeroshot_vision._index.manifest`,
validated with pydantic, with a format version; a folder written by a newer version, or
with a damaged manifest or state, is refused with
:class:`~zeroshot_vision._errors.IndexDamagedError` rather than read as an empty index), the
file state (:mod:`~zeroshot_vision._index.state`), the writer's lock
(:mod:`~zeroshot_vision._index.lock`) and the upgrade of older folders
(:mod:`~zeroshot_vision._index.migration`: version 1 folders, ``state.json``, are read, and
upgraded the first time they are written). This module puts them together.

Creating is exclusive: the manifest is linked into place only if none is there, so of two
processes creating one folder at once, one gets
:class:`~zeroshot_vision._errors.IndexExistsError` instead of silently replacing the other's
manifest. Writers are exclusive and readers never wait: :meth:`IndexFolder.lock` takes the
folder's lock (a second writer gets :class:`~zeroshot_vision._errors.IndexLockedError`
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
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from zeroshot_vision._checks import non_negative_seconds
from zeroshot_vision._errors import (
    DimensionMismatchError,
    IndexDamagedError,
    IndexExistsError,
    InvalidInputError,
)
from zeroshot_vision._files import is_temp_file, write_atomic, write_exclusive
from zeroshot_vision._index.lock import LOCK, LOCK_OWNER, LockOwner, WriterLock
from zeroshot_vision._index.manifest import (
    DEFAULT_STORE_DIR,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    EncoderRecord,
    IndexManifest,
    StoreSpec,
    model_reference,
    read_manifest,
)
from zeroshot_vision._index.migration import upgrade, v1_counts, v1_sources
from zeroshot_vision._index.state import STATE, FileEntry, FolderState, SourceFolder
from zeroshot_vision.stores._registry import StoreLocation, check_store_options, open_store_kind

if TYPE_CHECKING:
    from zeroshot_vision.stores._base import VectorStore

# FileEntry, SourceFolder, StoreSpec, IndexManifest, FORMAT, FORMAT_VERSION, LockOwner and
# model_reference live in the modules of their concern (state, manifest, lock); they are
# named here too because the rest of the package imported them from this module.
__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "STORE_DIR",
    "EncoderRecord",
    "FileEntry",
    "IndexFolder",
    "IndexManifest",
    "LockOwner",
    "SourceFolder",
    "StoreSpec",
    "index_version",
    "model_reference",
]

logger = logging.getLogger(__name__)

STORE_DIR = DEFAULT_STORE_DIR
"""The folder of an embedded store's files (FaissStore) inside a new index folder; a
reindex moves them to another (:attr:`IndexManifest.store_dir`, :meth:`IndexFolder.store_path`)."""

PathLike = str | os.PathLike[str]


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
        self._lock = WriterLock(path)
        self._state: FolderState | None = None

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
        return cls(folder, read_manifest(folder))

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
            InvalidInputError: Another model (by
                :func:`~zeroshot_vision._models.same_checkpoint`), store kind or store options.
            DimensionMismatchError: Another dimension.
        """
        from zeroshot_vision._models import same_checkpoint

        recorded = self.manifest
        if model is not None and not same_checkpoint(model, recorded.model):
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

    @property
    def store_path(self) -> Path:
        """The folder of the store's files, as the manifest names it (``store``)."""
        return self.path / self.manifest.store_dir

    def open_store(self) -> VectorStore:
        """Open the folder's store with the recorded kind and options.

        Raises:
            IndexDamagedError: The store's files are missing although vectors were
                committed, or are damaged.
            MissingDependencyError: The store kind's optional package is missing.
        """
        counts = self.counts()
        location = StoreLocation(
            folder=self.store_path,
            dim=self.manifest.dim,
            options=dict(self.manifest.store.options),
            must_exist=counts["indexed"] > 0,
        )
        return open_store_kind(self.manifest.store.kind, location)

    def rebuild_store(
        self, kind: str, *, progress: Callable[[int, int], None] | None = None
    ) -> VectorStore:
        """Rebuild the folder's FAISS store as ``kind`` from its vectors; record the kind.

        The store is rebuilt resumably (see
        :func:`~zeroshot_vision.stores._faiss_rebuild.rebuild_store`), then the manifest's
        store options say ``index=kind`` (the sizing options of its creation,
        ``memory_budget`` and ``capacity``, are dropped: they described the old kind), so
        ``zsv info`` and a later ``zsv index --ann`` see the kind the store now is. Hold
        the folder's lock (:meth:`lock`) around it.

        Args:
            kind: ``"flat"``, ``"hnsw"``, ``"hnsw-sq8"`` or ``"ivfpq"``.
            progress: Called with ``(vectors done, vectors in all)`` as it goes.

        Raises:
            InvalidInputError: The folder's store is not a FAISS store, or ``kind`` is unknown.
            StoreError: See :func:`~zeroshot_vision.stores._faiss_rebuild.rebuild_store`.
        """
        from zeroshot_vision.stores._faiss_rebuild import rebuild_store

        if self.manifest.store.kind != "faiss":
            raise InvalidInputError(
                f"only a faiss store can be rebuilt; {self.path} is on {self.manifest.store.kind}"
            )
        store = rebuild_store(self.store_path, kind, progress=progress)
        options = {
            key: value
            for key, value in self.manifest.store.options.items()
            if key not in _SIZING_OPTIONS
        }
        options["index"] = kind
        spec = self.manifest.store.model_copy(update={"options": options})
        manifest = self.manifest.model_copy(update={"store": spec})
        write_atomic(self.path / MANIFEST, manifest.model_dump_json(indent=2).encode())
        self.manifest = manifest
        logger.info("the store of %s is now a %s index", self.path, kind)
        return store

    # -- the writer's lock -------------------------------------------------------------

    @property
    def locked(self) -> bool:
        """Whether this object holds the folder's writer lock."""
        return self._lock.held

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
        # A negative timeout would make filelock wait forever.
        timeout = non_negative_seconds(self.lock_wait if wait is None else wait, "wait")
        self._lock.acquire(timeout)

    def lock_owner(self) -> LockOwner | None:
        """Who holds the writer lock, as recorded in ``.lock.owner`` (``None``: unknown).

        Only meaningful while the lock is held: a killed writer leaves its record, which
        the next writer replaces.
        """
        return self._lock.owner()

    def unlock(self) -> None:
        """Release the writer lock and close the state (harmless when not held)."""
        if self._state is not None:
            self._state.close()
            self._state = None
        self._lock.release()

    # -- the file state ----------------------------------------------------------------

    def state(self) -> FolderState:
        """The writable state (needs the lock); upgrades an older folder first."""
        if not self._lock.held:
            raise InvalidInputError("lock the index folder before writing its state")
        if self._state is None:
            state = FolderState.open(self.path / STATE, write=True)
            assert state is not None
            self.manifest = upgrade(self.path, self.manifest, state)
            self._state = state
        return self._state

    @contextlib.contextmanager
    def _reading(self) -> Iterator[FolderState | None]:
        """The state to read: the writer's own, else a read-only connection, else None."""
        if self._state is not None:
            yield self._state
            return
        state = FolderState.open(self.path / STATE, write=False)
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
        return v1_counts(self.path)

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
        return v1_sources(self.path)

    def meta(self, key: str) -> str | None:
        """A value recorded in the state's ``meta`` table (``None``: not recorded)."""
        with self._reading() as state:
            return state.meta(key) if state is not None else None

    def size_bytes(self) -> int:
        """The size of the folder's files, in bytes (temporary files of a save excluded)."""
        from zeroshot_vision._files import folder_size

        return folder_size(self.path)


_SIZING_OPTIONS = frozenset({"index", "memory_budget", "capacity", "ivfpq"})
"""Store options that only chose and sized a new FAISS store's kind."""


def _creating(name: str) -> bool:
    """Whether a file in a folder being created belongs to the creation itself."""
    # The manifest itself: another creator may link it between our two looks.
    return name in (MANIFEST, LOCK, LOCK_OWNER) or (
        is_temp_file(name) and name.startswith(f".{MANIFEST}.")
    )


def index_version(path: PathLike) -> str:
    """A token that changes whenever a writer commits to the index folder at ``path``.

    Built from the size and modification time of the files a commit rewrites (the
    manifest, the state, and an embedded store's manifest), without opening any of them:
    a reader that keeps an index open (the app, the server) reopens it when the token
    changes, and so shows what ``zsv index`` added meanwhile without a restart.
    """
    from zeroshot_vision.stores._faiss import MANIFEST as STORE_MANIFEST

    folder = Path(path)
    parts = []
    for name in (MANIFEST, STATE, f"{_store_dir(folder)}/{STORE_MANIFEST}"):
        try:
            stat = (folder / name).stat()
        except OSError:
            parts.append(f"{name}:-")
        else:
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _store_dir(folder: Path) -> str:
    """The store folder the manifest names, read leniently (a damaged manifest: the
    default, and opening the folder says what is wrong)."""
    try:
        return read_manifest(folder).store_dir
    except (OSError, InvalidInputError, IndexDamagedError):
        return STORE_DIR
