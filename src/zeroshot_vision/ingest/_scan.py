"""Scans: the images a folder source holds, as ingest items.

* :func:`scan_source`: a folder tree, ids relative to it;
* :func:`scan_unsplash`: an Unsplash Lite folder, whose ``photos`` table names its photos
  (``<photo_id>.jpg`` under ``images_dir``): the format resolves its own files, with each
  photo's fields as metadata.

The path and id helpers they share (:func:`~zeroshot_vision._index.scan.file_id`,
:func:`~zeroshot_vision._index.scan.displayable`, ...) belong to the index folder format,
in :mod:`zeroshot_vision._index.scan`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.scan import (
    displayable,
    folder_ancestors,
    image_files,
    stat_file,
)
from zeroshot_vision.ingest._item import Item

__all__ = ["Scan", "scan_source", "scan_unsplash"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, kw_only=True)
class Scan:
    """What a scan found.

    Attributes:
        root: The source folder, absolute.
        images: The images as ingest items (id, path, display path, size, mtime and
            metadata: ``"path"``, and ``"folders"`` for a folder tree, see
            :func:`folder_ancestors`), sorted by path.
        unreadable: Folders (or files) that could not be listed or examined, with the
            reason; the index keeps what it holds for them.
    """

    root: Path
    images: tuple[Item, ...]
    unreadable: tuple[tuple[str, str], ...] = ()

    def covers(self, display_path: str) -> bool:
        """Whether a file at ``display_path`` lies where the scan could look.

        False for paths outside the source folder and for paths inside a folder that
        could not be read: what the scan did not see there may still exist.
        """
        root = displayable(str(self.root))
        if display_path != root and not display_path.startswith(root.rstrip(os.sep) + os.sep):
            return False
        return not any(
            display_path == bad or display_path.startswith(bad.rstrip(os.sep) + os.sep)
            for bad, _ in self.unreadable
        )


def scan_source(
    source: PathLike, *, exclude: Sequence[str] = (), suffixes: Collection[str] | None = None
) -> Scan:
    """List the image files of a folder tree, with ids and metadata.

    The folder is searched recursively for files with an image suffix (or one of
    ``suffixes``: videos too, for a folder run with videos); ids are paths relative to
    it. (An Unsplash Lite folder lists its photos itself:
    :func:`zeroshot_vision.unsplash._lite.scan_unsplash`.)

    Raises:
        InvalidInputError: If ``source`` is not a folder.
    """
    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"{displayable(os.fspath(source))} is not a folder")
    unreadable: list[tuple[str, str]] = []
    found = []
    for path in image_files(root, exclude, unreadable, suffixes=suffixes):
        stat = stat_file(path, unreadable)
        if stat is not None:
            shown = displayable(str(path))
            found.append(
                Item(
                    id=displayable(path.relative_to(root).as_posix()),
                    path=path,
                    display_path=shown,
                    size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                    metadata={"path": shown, "folders": folder_ancestors(root, path)},
                )
            )
    return Scan(root=root, images=tuple(found), unreadable=tuple(unreadable))


def scan_unsplash(
    dataset_dir: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    exclude: Sequence[str] = (),
) -> Scan:
    """The downloaded photos of an Unsplash Lite folder, with ids and metadata.

    The photos ``<photo_id>.jpg`` found under ``images_dir`` (default: the folder itself)
    that the ``photos`` table lists, with each photo's fields as metadata; image files
    that are not in the table are left out. Ids are photo ids.

    This is how an Unsplash Lite folder resolves its own photo files for the ingest
    pipeline (:func:`zeroshot_vision.ingest._sources.folder_source`).

    Raises:
        InvalidInputError: ``dataset_dir`` or ``images_dir`` is not a folder.
    """
    from zeroshot_vision.unsplash._lite import read_keywords, read_photos

    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"{displayable(os.fspath(dataset_dir))} is not a folder")
    image_root = Path(images_dir).expanduser().resolve() if images_dir else root
    if not image_root.is_dir():
        raise InvalidInputError(f"{images_dir} is not a folder")
    unreadable: list[tuple[str, str]] = []
    files: dict[str, Path] = {}
    for path in image_files(image_root, exclude, unreadable):
        files.setdefault(path.stem, path)
    photos = []
    seen: set[str] = set()
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
        stat = stat_file(path, unreadable)
        if stat is not None:
            shown = displayable(str(path))
            meta = {**photo.metadata(keywords.get(photo.photo_id, ())), "path": shown}
            found.append(
                Item(
                    id=photo.photo_id,
                    path=path,
                    display_path=shown,
                    size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                    metadata=meta,
                )
            )
    logger.info("found %d downloaded Unsplash photos in %s", len(found), image_root)
    # The photos live under images_dir: that is where coverage is judged.
    return Scan(root=image_root, images=tuple(found), unreadable=tuple(unreadable))
