"""Resumable, incremental indexing of a folder (or an Unsplash Lite folder) into an index folder.

The index folder (:mod:`zeroshot_vision.index_dir`) mirrors a source folder: one vector per
readable image, with the id being the file's path relative to the source (or, for Unsplash
Lite, the photo id). Running :func:`index_source` again brings it up to date:

* **Incremental.** Each file's size and modification time (ns) are recorded in
  ``state.json``; a re-run encodes only new files and files whose size or mtime changed,
  and removes the vectors of files that are gone.
* **Resumable.** Progress is committed every batch: the store is saved (atomically, see
  :meth:`FaissStore.save`), then the state file is written (atomically). A run killed at
  any moment, even with SIGKILL, leaves an index that loads; the next run continues where
  it stopped.
* **Exactly one vector per image.** Ids are derived from the files, so re-encoding a file
  overwrites its vector. The state is only written after the store, so at worst the store
  is ahead of the state; the next run reconciles the two: a stored id with no state entry
  is re-encoded (overwritten) if its file exists and deleted if not, and a state entry with
  no stored vector is forgotten and re-encoded.
* **Bad images never stop a run.** They are skipped, reported, and remembered with their
  size and mtime, so an unchanged bad file is not retried on every run.

Progress goes to an optional callback; nothing here prints.

Example:
    >>> report = index_source("photos", "photos-index",
    ...                       model="google/siglip-so400m-patch14-384")  # doctest: +SKIP
    >>> report.indexed, report.failed  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._files import write_atomic
from zeroshot_vision.errors import InvalidInputError, StoreError
from zeroshot_vision.index_dir import (
    IndexSettings,
    check_index_folder,
    close_store,
    create_index_dir,
    model_reference,
    open_store,
    read_settings,
    save_store,
)
from zeroshot_vision.stores.faiss import FaissStore
from zeroshot_vision.types import ImageFailure

if TYPE_CHECKING:
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.stores.base import VectorStore

__all__ = [
    "STATE_FILE",
    "IndexProgress",
    "PipelineReport",
    "SourceImage",
    "StateSummary",
    "index_source",
    "read_state_summary",
    "scan_source",
    "update_index",
]

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
STATE_FORMAT = "zeroshot-vision/index-state"
STATE_VERSION = 1

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class SourceImage:
    """One image file found in a source, with what identifies its version.

    Attributes:
        id: The id its vector gets: the path relative to the source folder (``/``
            separated), or the Unsplash photo id.
        path: The file.
        size: Its size in bytes.
        mtime_ns: Its modification time in nanoseconds.
        metadata: What is stored with its vector (always holds ``"path"``).
    """

    id: str
    path: Path
    size: int
    mtime_ns: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexProgress:
    """Where a run stands; passed to the progress callback after every batch.

    Attributes:
        total: Images this run has to encode (new and changed ones).
        done: Images handled so far, indexed or failed.
        advanced: Images handled since the previous call.
        indexed: Images indexed so far.
        failed: Images that could not be read so far.
    """

    total: int
    done: int
    advanced: int
    indexed: int
    failed: int


@dataclass(frozen=True)
class PipelineReport:
    """What a run of :func:`update_index` did.

    Attributes:
        indexed: Ids encoded and stored in this run (new or changed files).
        skipped: Files unchanged since they were indexed, not encoded again.
        removed: Ids whose files are gone, removed from the store.
        failed: Images that could not be read in this run.
        known_failed: Unchanged images that failed in an earlier run; not retried.
        count: Vectors in the store at the end.
        seconds: Wall time of the run.
    """

    indexed: tuple[str, ...] = ()
    skipped: int = 0
    removed: tuple[str, ...] = ()
    failed: tuple[ImageFailure, ...] = ()
    known_failed: tuple[ImageFailure, ...] = ()
    count: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Indexing throughput of this run (0 when nothing was encoded)."""
        return len(self.indexed) / self.seconds if self.indexed and self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (counts, and the failures with their reasons)."""
        return {
            "indexed": len(self.indexed),
            "skipped": self.skipped,
            "removed": len(self.removed),
            "failed": [{"source": f.source, "reason": f.reason} for f in self.failed],
            "known_failed": [{"source": f.source, "reason": f.reason} for f in self.known_failed],
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }

    def __str__(self) -> str:
        return (
            f"indexed {len(self.indexed)}, skipped {self.skipped}, removed {len(self.removed)}, "
            f"failed {len(self.failed) + len(self.known_failed)}; {self.count} in the index"
        )


# -- finding the images ---------------------------------------------------------------------


def _image_files(folder: Path) -> Iterator[Path]:
    from zeroshot_vision.images import IMAGE_SUFFIXES

    for root, dirs, files in os.walk(folder):
        # Hidden folders and files (.git, temp files of an interrupted download) are not
        # part of the collection.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:  # removed between listing and stat
        return None


def scan_source(source: PathLike, *, images_dir: PathLike | None = None) -> list[SourceImage]:
    """List the images of a source folder, with ids and metadata.

    A plain folder is searched recursively for files with an image suffix
    (:data:`zeroshot_vision.images.IMAGE_SUFFIXES`); ids are paths relative to it. An
    Unsplash Lite folder (one holding a ``photos`` table) gives the downloaded photos
    ``<photo_id>.jpg`` found under ``images_dir`` (default: the folder itself), with
    each photo's description, ai_description, photographer, location, country, year and
    keywords as metadata; image files that are not in the table are left out.

    Raises:
        InvalidInputError: If ``source`` (or ``images_dir``) is not a folder.
    """
    from zeroshot_vision.datasets.unsplash import is_unsplash_dir, read_keywords, read_photos

    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"{source} is not a folder")
    image_root = Path(images_dir).expanduser().resolve() if images_dir else root
    if not image_root.is_dir():
        raise InvalidInputError(f"{images_dir} is not a folder")

    if not is_unsplash_dir(root):
        found = []
        for path in _image_files(root):
            stat = _stat(path)
            if stat is not None:
                found.append(
                    SourceImage(
                        id=path.relative_to(root).as_posix(),
                        path=path,
                        size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                        metadata={"path": str(path)},
                    )
                )
        return found

    files: dict[str, Path] = {}
    seen: set[str] = set()
    for path in _image_files(image_root):
        files.setdefault(path.stem, path)
    photos = []
    for photo in read_photos(root):
        if photo.photo_id not in files:
            continue
        if photo.photo_id in seen:
            # One vector per id: the first row wins, as it does for the downloader.
            logger.warning("photo %s is listed twice in the photos table", photo.photo_id)
            continue
        seen.add(photo.photo_id)
        photos.append(photo)
    keywords = read_keywords(root, photo_ids=[photo.photo_id for photo in photos])
    found = []
    for photo in photos:
        path = files[photo.photo_id]
        stat = _stat(path)
        if stat is not None:
            meta = {**photo.metadata(keywords.get(photo.photo_id, ())), "path": str(path)}
            found.append(SourceImage(photo.photo_id, path, stat.st_size, stat.st_mtime_ns, meta))
    ignored = len(files) - len(found)
    if ignored:
        logger.info("%d image files in %s are not in the photos table", ignored, image_root)
    logger.info("found %d downloaded Unsplash photos in %s", len(found), image_root)
    return found


# -- the state file -------------------------------------------------------------------------


@dataclass
class _State:
    source: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path, source: str) -> _State:
        path = folder / STATE_FILE
        if not path.is_file():
            return cls(source)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != STATE_FORMAT or int(raw.get("version", 0)) > STATE_VERSION:
                raise ValueError("not a state file of this version")
            return cls(str(raw["source"]), dict(raw["files"]), dict(raw["failed"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The state is a cache of what the store holds: losing it costs re-encoding,
            # never correctness, so a damaged one is set aside rather than fatal.
            logger.warning("ignoring unreadable %s (%s); files will be re-encoded", path, exc)
            return cls(source)

    def write(self, folder: Path) -> None:
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "source": self.source,
            "files": self.files,
            "failed": self.failed,
        }
        write_atomic(folder / STATE_FILE, json.dumps(payload, ensure_ascii=False).encode())


@dataclass(frozen=True)
class StateSummary:
    """What the state file of an index folder says, for display.

    Attributes:
        source: The source folder the index mirrors (``None`` before the first commit).
        files: Images recorded as indexed.
        failed: Images recorded as unreadable.
    """

    source: str | None
    files: int
    failed: int


def read_state_summary(index_dir: PathLike) -> StateSummary:
    """Summarize an index folder's state file (all zeros when there is none yet)."""
    folder = Path(index_dir)
    if not (folder / STATE_FILE).is_file():
        return StateSummary(None, 0, 0)
    state = _State.read(folder, "")
    return StateSummary(state.source or None, len(state.files), len(state.failed))


def _same_version(entry: Mapping[str, Any] | None, image: SourceImage) -> bool:
    return (
        entry is not None
        and entry.get("size") == image.size
        and entry.get("mtime_ns") == image.mtime_ns
        and entry.get("path") == str(image.path)
    )


def _version(image: SourceImage) -> dict[str, Any]:
    return {"path": str(image.path), "size": image.size, "mtime_ns": image.mtime_ns}


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold a lock on the index folder; the OS releases it if the process dies."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        handle = (folder / LOCK_FILE).open("a")
    except OSError as exc:  # a read-only folder or file system
        raise OSError(
            exc.errno, f"cannot write to the index folder {folder}: {exc.strerror or exc}"
        ) from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StoreError(f"another process is indexing into {folder}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# -- the run --------------------------------------------------------------------------------


def update_index(
    engine: SearchEngine,
    index_dir: PathLike,
    source: PathLike,
    *,
    images_dir: PathLike | None = None,
    batch_size: int | None = None,
    commit_every: float = 0.0,
    progress: Callable[[IndexProgress], None] | None = None,
) -> PipelineReport:
    """Bring the index folder up to date with ``source``, committing as it goes.

    ``engine.store`` must be the index folder's store (see :func:`index_source`, which
    sets this up). The index folder must already hold its settings.

    Args:
        engine: Encodes the images and holds the store.
        index_dir: The index folder.
        source: The folder of images, or an Unsplash Lite folder.
        images_dir: For an Unsplash Lite folder: where the downloaded photos are.
        batch_size: Images per batch (and per commit); default the encoder's.
        commit_every: Seconds: commit after a batch only once this long has passed since
            the last commit (``0``, the default, commits every batch). Larger values cut
            disk writes on fast GPUs, at the cost of redoing up to that much work after a
            crash.
        progress: Called with an :class:`IndexProgress` before the first batch and after
            every batch.

    Raises:
        InvalidInputError: If ``source`` is not a folder, the index mirrors another
            source folder, or ``commit_every`` is negative or NaN.
        StoreError: If another process is indexing into the same folder.
    """
    if not commit_every >= 0:  # also refuses nan, which would never commit
        raise InvalidInputError(f"commit_every must be 0 or more seconds, got {commit_every}")
    folder = Path(index_dir)
    started = time.monotonic()
    root = str(Path(source).expanduser().resolve())
    with _exclusive(folder):
        images = scan_source(source, images_dir=images_dir)
        state = _State.read(folder, root)
        if state.source != root:
            raise InvalidInputError(
                f"{folder} is the index of {state.source}, not of {root}; use another "
                "--index folder (or delete this one to start over)"
            )
        store = engine.store
        by_id = {image.id: image for image in images}
        # A FaissStore belongs to its index folder, so every id in it is ours. A remote
        # namespace may hold other records: there only ids the state knows are touched,
        # and the state is trusted (each remote upsert is durable before it is recorded).
        stored = set(store.ids()) if isinstance(store, FaissStore) else set(state.files)

        # Reconcile: anything stored or recorded whose file is gone goes away, and a state
        # entry without a stored vector is forgotten (its file will be encoded again).
        removed = sorted((stored | set(state.files)) - set(by_id))
        if removed:
            store.delete(removed)
            logger.info("removing %d vectors of files that are gone", len(removed))
        for item in removed:
            state.files.pop(item, None)
        for item in [i for i in state.files if i not in stored]:
            del state.files[item]
        for item in [i for i in state.failed if i not in by_id]:
            del state.failed[item]
        if removed:
            _commit(folder, store, state)

        pending = []
        known_failed = []
        skipped = 0
        for image in images:
            if _same_version(state.files.get(image.id), image):
                skipped += 1
            elif _same_version(state.failed.get(image.id), image):
                known_failed.append(ImageFailure(str(image.path), state.failed[image.id]["reason"]))
            else:
                pending.append(image)
        logger.info(
            "%d images: %d to encode, %d unchanged, %d known bad",
            len(images),
            len(pending),
            skipped,
            len(known_failed),
        )

        size = batch_size or int(getattr(engine.encoder, "batch_size", 8))
        failed: list[ImageFailure] = []
        done = 0
        last_commit = time.monotonic()
        if progress is not None:
            progress(IndexProgress(len(pending), 0, 0, 0, 0))
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            batch_failed = _index_batch(engine, batch, state)
            failed.extend(batch_failed)
            done += len(batch)
            if time.monotonic() - last_commit >= commit_every:
                _commit(folder, store, state)
                last_commit = time.monotonic()
            if progress is not None:
                progress(
                    IndexProgress(len(pending), done, len(batch), done - len(failed), len(failed))
                )
        if pending:
            _commit(folder, store, state)
        elif not (folder / STATE_FILE).exists():
            _commit(folder, store, state)  # an empty source still makes a loadable index

    report = PipelineReport(
        indexed=tuple(i.id for i in pending if i.id in state.files),
        skipped=skipped,
        removed=tuple(removed),
        failed=tuple(failed),
        known_failed=tuple(known_failed),
        count=len(store),
        seconds=time.monotonic() - started,
    )
    logger.info("index %s: %s", folder, report)
    return report


def _index_batch(
    engine: SearchEngine, batch: Sequence[SourceImage], state: _State
) -> list[ImageFailure]:
    """Encode and store one batch; update ``state`` in memory; return its failures."""
    report = engine.index_images(
        [image.path for image in batch],
        ids=[image.id for image in batch],
        metadata=[image.metadata for image in batch],
        batch_size=len(batch),
    )
    done = set(report.indexed)
    bad = [image for image in batch if image.id not in done]
    for image in batch:
        if image.id in done:
            state.files[image.id] = _version(image)
            state.failed.pop(image.id, None)
    failures = []
    # report.failed lists the bad images in input order, like ``bad``.
    for image, failure in zip(bad, report.failed):
        failures.append(ImageFailure(str(image.path), failure.reason))
        state.failed[image.id] = {**_version(image), "reason": failure.reason}
        state.files.pop(image.id, None)
    stale = [image.id for image in bad]
    if stale:
        # A file that changed into something unreadable must not keep its old vector.
        engine.store.delete(stale)
    return failures


def _commit(folder: Path, store: VectorStore, state: _State) -> None:
    # Store first, state second: a crash in between leaves the store ahead of the state,
    # which the next run reconciles (see the module docstring).
    try:
        save_store(folder, store)
        state.write(folder)
    except OSError as exc:
        # A full disk or a read-only folder: say which index, and that nothing is lost.
        # OSError(errno, ...) keeps the subclass (PermissionError, ...) for callers.
        raise OSError(
            exc.errno,
            f"cannot save the index in {folder}: {exc.strerror or exc}; what was saved "
            "before is intact, so fix this and run again to continue",
        ) from exc


def index_source(
    source: PathLike,
    index_dir: PathLike,
    *,
    model: str | None = None,
    store: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    images_dir: PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: Any = None,
    commit_every: float = 0.0,
    progress: Callable[[IndexProgress], None] | None = None,
) -> PipelineReport:
    """Create or update the index of a folder: load the model, open the store, run.

    A new index folder records the model, its dimension and the store; a later run needs
    none of these options again, and refuses ones that contradict the folder.

    Args:
        source: The folder of images, or an Unsplash Lite folder.
        index_dir: The index folder (created if needed).
        model: Checkpoint name or local folder. Default: the one the index was built with,
            or, for a new index, ``$ZSV_MODEL`` or ``google/siglip-so400m-patch14-384``.
        store: ``"faiss"`` or ``"pinecone"``; default the index's, or ``"faiss"``.
        store_options: For ``"pinecone"``: ``host`` or ``index_name``, and ``namespace``.
        images_dir: For an Unsplash Lite folder: where the downloaded photos are.
        batch_size: Images per batch and per commit.
        device: Torch device for the encoder.
        dtype: Torch dtype for the encoder.
        commit_every: See :func:`update_index`.
        progress: See :func:`update_index`.

    Raises:
        ModelLoadError: If the model cannot be loaded.
        InvalidInputError: If the options contradict the existing index folder.
    """
    from zeroshot_vision.encoder import DEFAULT_MODEL, Encoder
    from zeroshot_vision.engine import SearchEngine

    folder = Path(index_dir)
    existing: IndexSettings | None = None
    if (folder / "settings.json").exists():
        existing = read_settings(folder)
    if not Path(source).expanduser().is_dir():
        raise InvalidInputError(f"{source} is not a folder")
    check_index_folder(folder)  # before the (slow) model load
    if not commit_every >= 0:
        raise InvalidInputError(f"commit_every must be 0 or more seconds, got {commit_every}")
    chosen = model or (existing.model if existing else os.environ.get("ZSV_MODEL") or DEFAULT_MODEL)
    if existing is not None and model_reference(chosen) != existing.model:
        raise InvalidInputError(
            f"{folder} was indexed with model {existing.model!r}, not {chosen!r}; "
            "use another --index folder for another model"
        )
    encoder = Encoder.from_pretrained(chosen, device=device, dtype=dtype)
    settings = create_index_dir(
        folder,
        model=chosen,
        dim=encoder.dim,
        store=store or (existing.store if existing else "faiss"),
        store_options=store_options
        if store_options is not None
        else (existing.store_options if existing else None),
    )
    vector_store = open_store(folder, settings)
    try:
        return update_index(
            SearchEngine(encoder, vector_store),
            folder,
            source,
            images_dir=images_dir,
            batch_size=batch_size,
            commit_every=commit_every,
            progress=progress,
        )
    finally:
        close_store(vector_store)
