"""Bringing an index folder up to date with a source folder (``SearchEngine.index_folder``).

It takes an :class:`~zeroshot_vision.index.writer.IndexWriter` (every write goes through
it) and an encoder, nothing else of the engine.

* **Incremental.** Each file's size and mtime are recorded in the folder's state; a re-run
  encodes only new and changed files and removes the vectors of files that are gone.
* **Nothing the state does not know reaches the store.** Before a batch is written to the
  store its ids are recorded as *pending*; after the store commits, they are recorded as
  indexed. A run killed in between leaves pending ids, and the next run re-encodes them
  (their file exists) or deletes them (it does not), whatever the store: a remote store
  never keeps vectors of photos that no longer exist.
* **Absence is not deletion.** A folder that cannot be read keeps what the index holds for
  it, and a run that would remove more than half of the indexed images (an unmounted
  drive looks like an empty folder) is refused unless removal is allowed explicitly.
* **Bad images never stop a run.** They are skipped, reported, and remembered with their
  size and mtime, so an unchanged bad file is not retried on every run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from zeroshot_vision._checks import non_negative_seconds
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision.errors import ImageLoadError, InvalidInputError
from zeroshot_vision.images.exif import photo_metadata
from zeroshot_vision.index.folder import FileEntry, SourceFolder
from zeroshot_vision.index.scan import Scan, SourceImage, check_exclude, displayable, scan_source
from zeroshot_vision.types import FolderReport, ImageFailure

if TYPE_CHECKING:
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.index.writer import IndexWriter

__all__ = ["FolderPlan", "plan_folder", "plan_images", "sync_folder"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class _Versioned(Protocol):
    """An image with what identifies its version (a SourceImage, or a listed URI)."""

    @property
    def id(self) -> str: ...
    @property
    def display_path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


_Image = TypeVar("_Image", bound=_Versioned)


@dataclass(frozen=True, kw_only=True)
class FolderPlan:
    """What a folder run has to do, once gone files are removed: see :func:`plan_folder`.

    Attributes:
        root: The source folder, absolute, as recorded in the index.
        todo: Images to encode (new, changed, pending, or lost by the store), in scan order.
        skipped: Images unchanged since they were indexed.
        removed: Ids whose files are gone; already removed from the store.
        known_failed: Unchanged images that failed in an earlier run; not retried.
        unreadable: Folders or files that could not be listed or examined.
        started: ``time.monotonic()`` when planning began.
    """

    root: str
    todo: tuple[SourceImage, ...]
    skipped: int
    removed: tuple[str, ...]
    known_failed: tuple[ImageFailure, ...]
    unreadable: tuple[ImageFailure, ...]
    started: float

    def report(
        self, *, indexed: Sequence[str], failed: Sequence[ImageFailure], count: int
    ) -> FolderReport:
        """The run's :class:`~zeroshot_vision.types.FolderReport`, timed from planning."""
        return FolderReport(
            indexed=tuple(indexed),
            skipped=self.skipped,
            removed=self.removed,
            failed=tuple(failed),
            known_failed=self.known_failed,
            unreadable=self.unreadable,
            count=count,
            seconds=time.monotonic() - self.started,
        )


def sync_folder(
    writer: IndexWriter,
    encoder: Encoder,
    source: PathLike,
    *,
    images_dir: PathLike | None,
    exclude: Sequence[str] | None,
    batch_size: int | None,
    commit_every: float,
    allow_removal: bool,
    progress: ProgressOption,
) -> FolderReport:
    """See :meth:`SearchEngine.index_folder`; ``writer`` must have an index folder."""
    commit_every = non_negative_seconds(commit_every, "commit_every")
    plan = plan_folder(
        writer, source, images_dir=images_dir, exclude=exclude, allow_removal=allow_removal
    )
    todo = list(plan.todo)
    size = batch_size or (encoder.batch_size if todo else 1)
    failed: list[ImageFailure] = []
    indexed: list[str] = []
    tracker = Tracker(progress, task="index", total=len(todo))
    paths = [image.path for image in todo]
    try:
        if todo:  # the encoder is touched only for work: zsv index loads it lazily
            _encode_todo(writer, encoder, todo, paths, size, tracker, indexed, failed, commit_every)
    finally:
        tracker.close()
    writer.commit()
    report = plan.report(indexed=indexed, failed=failed, count=len(writer.store))
    logger.info("index %s: %s", plan.root, report)  # the source folder
    return report


def plan_folder(
    writer: IndexWriter,
    source: PathLike,
    *,
    images_dir: PathLike | None = None,
    exclude: Sequence[str] | None = None,
    allow_removal: bool = False,
) -> FolderPlan:
    """Scan a source folder against its index: remove gone files, list what to encode.

    The first half of :func:`sync_folder`, shared with the distributed indexer
    (:func:`zeroshot_vision.distributed.index_with_ray`) so that both treat a folder
    alike. Takes the folder's lock, records the source, deletes (and commits) the
    vectors of files that are gone.

    Raises:
        InvalidInputError: ``source`` is not a folder, the index mirrors another folder,
            or the run would remove most of the index without ``allow_removal``.
    """
    patterns = check_exclude(exclude)
    folder = writer.folder
    if folder is None:
        raise InvalidInputError("a folder run needs a writer with an index folder")
    started = time.monotonic()
    root = str(Path(source).expanduser().resolve())
    if not Path(root).is_dir():
        raise InvalidInputError(f"{displayable(os.fspath(source))} is not a folder")
    writer.begin()  # takes the folder's lock
    state = folder.state()
    entries = state.entries()
    sources = state.sources()
    source_folder = _source_for(displayable(root), sources, entries)
    scan = scan_source(root, images_dir=images_dir, exclude=patterns)
    scan = dataclasses.replace(
        scan,
        images=tuple(
            dataclasses.replace(image, id=source_folder.image_id(image.id)) for image in scan.images
        ),
    )
    by_id = {image.id: image for image in scan.images}
    _check_ids_are_free(by_id, entries, scan)

    # Gone: recorded files the scan could have seen but did not. Files outside the source
    # (added with index_images) and under unreadable folders are not the scan's to judge.
    gone = sorted(
        entry.id
        for entry in entries.values()
        if entry.id not in by_id and entry.path is not None and scan.covers(entry.path)
    )
    # Only this source's files count: other sources are not re-scanned, so not judged.
    indexed_before = sum(
        entry.status == "indexed" and entry.path is not None and scan.covers(entry.path)
        for entry in entries.values()
    )
    gone_indexed = sum(entries[item].status == "indexed" for item in gone)
    if gone_indexed * 2 > indexed_before and not allow_removal:
        raise InvalidInputError(
            f"{displayable(root)} now lacks {gone_indexed} of the {indexed_before} indexed "
            "images; nothing was removed. If the folder is on a drive that is not mounted, "
            "mount it; if the files really are gone, run again with --allow-removal "
            "(allow_removal=True)"
        )
    if gone:
        logger.info("removing %d vectors of files that are gone", len(gone))
        writer.delete(gone)
        writer.commit()
    if source_folder not in sources:
        state.set_sources([*sources, source_folder])

    # Vectors the state counts but the store lost (a store restored from an older copy).
    indexed_ids = {e.id for e in entries.values() if e.status == "indexed" and e.id in by_id}
    lost: set[str] = set()
    if indexed_ids and len(writer.store) < len(indexed_ids):
        lost = indexed_ids - set(writer.store.ids())
        logger.warning("%d indexed images have no vector in the store; re-encoding", len(lost))

    todo, skipped, known_failed = plan_images(scan.images, entries, lost=lost)
    logger.info(
        "%d images: %d to encode, %d unchanged, %d known bad",
        len(scan.images),
        len(todo),
        skipped,
        len(known_failed),
    )
    return FolderPlan(
        root=displayable(root),
        todo=tuple(todo),
        skipped=skipped,
        removed=tuple(gone),
        known_failed=tuple(known_failed),
        unreadable=tuple(ImageFailure(source=where, reason=why) for where, why in scan.unreadable),
        started=started,
    )


def plan_images(
    images: Iterable[_Image],
    entries: Mapping[str, FileEntry],
    *,
    lost: Container[str] = frozenset(),
) -> tuple[list[_Image], int, list[ImageFailure]]:
    """Split images into those to encode, the unchanged count, and the known bad ones.

    An image is unchanged when the state records it indexed with the same path, size
    and mtime (and the store did not lose it); known bad when recorded failed so.
    """
    todo: list[_Image] = []
    known_failed: list[ImageFailure] = []
    skipped = 0
    for image in images:
        entry = entries.get(image.id)
        same = entry is not None and entry.same_file(image.display_path, image.size, image.mtime_ns)
        if same and entry is not None and entry.status == "indexed" and image.id not in lost:
            skipped += 1
        elif same and entry is not None and entry.status == "failed":
            known_failed.append(
                ImageFailure(source=image.display_path, reason=entry.reason or "unreadable")
            )
        else:
            todo.append(image)
    return todo, skipped, known_failed


def _encode_todo(
    writer: IndexWriter,
    encoder: Encoder,
    todo: list[SourceImage],
    paths: list[Path],
    size: int,
    tracker: Tracker,
    indexed: list[str],
    failed: list[ImageFailure],
    commit_every: float,
) -> None:
    """Encode and write the files to (re)index, committing every ``commit_every`` s."""
    last_commit = time.monotonic()
    for chunk in encoder.encode_batches(paths, keys=todo, batch_size=size):
        good = [
            (image, vector) for image, vector in chunk if not isinstance(vector, ImageLoadError)
        ]
        bad = [(image, error) for image, error in chunk if isinstance(error, ImageLoadError)]
        if good:
            writer.write(
                [_entry(image) for image, _ in good],
                np.stack([vector for _, vector in good]),
                [_with_photo_fields(image) for image, _ in good],
            )
            indexed.extend(image.id for image, _ in good)
        if bad:
            # A file that changed into something unreadable must not keep its old vector.
            writer.delete([image.id for image, _ in bad])
            writer.record(_entry(image, failed=error.reason) for image, error in bad)
            failed.extend(
                ImageFailure(source=image.display_path, reason=error.reason) for image, error in bad
            )
        if time.monotonic() - last_commit >= commit_every:
            writer.commit()
            last_commit = time.monotonic()
        tracker.advance(len(chunk), failed=len(bad))


def _source_for(
    root: str, sources: list[SourceFolder], entries: Mapping[str, FileEntry]
) -> SourceFolder:
    """The recorded source at ``root``, or a new one with an id prefix no id uses.

    Raises:
        InvalidInputError: ``root`` lies inside a recorded source, or holds one: its
            files would be two sources' at once.
    """
    for source in sources:
        if source.path == root:
            return source
    for source in sources:
        inner, outer = (root, source.path), (source.path, root)
        for child, parent in (inner, outer):
            if Path(child).is_relative_to(parent):
                raise InvalidInputError(
                    f"{child} lies inside {parent}, which this index already mirrors or is "
                    "asked to; index one of them, or use another index folder"
                )
    if not sources:
        # The first source keeps plain relative ids, as an index of one folder always had.
        return SourceFolder(path=root)
    taken = {s.prefix for s in sources} | {item.split("/", 1)[0] for item in entries}
    name = Path(root).name or "source"
    prefix, n = name, 1
    while prefix in taken:
        n += 1
        prefix = f"{name}-{n}"
    return SourceFolder(path=root, prefix=prefix)


def _check_ids_are_free(
    by_id: Mapping[str, SourceImage], entries: Mapping[str, FileEntry], scan: Scan
) -> None:
    """Refuse ids that another source's files already hold (never overwrite them)."""
    for item, image in by_id.items():
        entry = entries.get(item)
        if entry is not None and entry.path is not None and not scan.covers(entry.path):
            raise InvalidInputError(
                f"{image.display_path} would get the id {item!r}, which {entry.path} (of "
                "another source) holds; rename one of them, or use another index folder"
            )


def _with_photo_fields(image: SourceImage) -> dict[str, Any]:
    """The image's metadata with what its EXIF says (the source's own fields win)."""
    return {**photo_metadata(image.path), **image.metadata}


def _entry(image: SourceImage, *, failed: str | None = None) -> FileEntry:
    return FileEntry(
        id=image.id,
        path=image.display_path,
        size=image.size,
        mtime_ns=image.mtime_ns,
        status="failed" if failed is not None else "indexed",
        reason=failed,
    )
