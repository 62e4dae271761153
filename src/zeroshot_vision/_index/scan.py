"""Paths and ids of a folder tree's image files (the index folder format's id scheme).

A file's id is its path relative to the source folder, ``/``-separated. The scans that
turn a folder into ingest items are :mod:`zeroshot_vision.ingest._scan`. What could not
be read is reported, never taken for "no files": the indexer must not delete the vectors
of a folder it merely failed to list.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from zeroshot_vision._errors import InvalidInputError

__all__ = [
    "absolute",
    "check_exclude",
    "displayable",
    "file_id",
    "folder_ancestors",
    "image_files",
    "stat_file",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def absolute(path: PathLike) -> Path:
    """``path`` absolute and normalized, symbolic links kept: the path ``os.walk`` gives."""
    return Path(os.path.abspath(Path(path).expanduser()))  # noqa: PTH100


def file_id(path: PathLike, root: PathLike | None = None) -> str:
    """The id of an image file: its path relative to ``root``, ``/``-separated.

    A file outside ``root`` (or with no root) gets its absolute path. This is the one id
    scheme for files: ``zsv index``, :meth:`SearchEngine.index_folder` and
    :meth:`SearchEngine.index_images` all use it, so the same file never gets two ids.
    """
    path_abs = absolute(path)
    if root is not None:
        base = absolute(root)
        if path_abs.is_relative_to(base) and path_abs != base:
            return displayable(path_abs.relative_to(base).as_posix())
        # The folder may be reached through a symbolic link (~/Pictures -> /mnt/photos):
        # compare where the folders really are, keeping the file's own name.
        real_base, real_parent = base.resolve(), path_abs.parent.resolve()
        if real_parent.is_relative_to(real_base):
            relative = (real_parent / path_abs.name).relative_to(real_base)
            return displayable(relative.as_posix())
    return displayable(path_abs.as_posix())


def displayable(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) written as ``\\xNN``.

    ``os.walk`` returns names that are not valid UTF-8 with surrogate escapes, which no
    JSON file, database or remote store can hold; this form can, and is stable.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")
    return text


def folder_ancestors(root: Path, path: Path) -> list[str]:
    """The folders holding ``path``, from ``root`` down to its own folder, as text.

    Stored as the ``folders`` list of a folder index's records, so that "under this
    folder" is ``{"folders": {"$in": [folder]}}``: list membership, which every store
    (Pinecone too, which has no prefix operator) filters on.
    """
    folders = [displayable(str(root))]
    for part in path.parent.relative_to(root).parts:
        folders.append(displayable(str(Path(folders[-1]) / part)))
    return folders


def _excluded(relative: str, patterns: Sequence[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def image_files(
    folder: Path,
    exclude: Sequence[str],
    unreadable: list[tuple[str, str]],
    *,
    suffixes: Collection[str] | None = None,
) -> Iterator[Path]:
    """The image files under ``folder`` (hidden and excluded ones left out), sorted;
    folders that cannot be listed are added to ``unreadable``. ``suffixes``: the file
    suffixes to list (lower case), default the image suffixes."""
    from zeroshot_vision._images import IMAGE_SUFFIXES

    wanted = IMAGE_SUFFIXES if suffixes is None else suffixes

    def on_error(error: OSError) -> None:
        where = displayable(str(error.filename or folder))
        unreadable.append((where, error.strerror or str(error)))
        logger.warning("cannot read folder %s: %s", where, error.strerror or error)

    for root, dirs, files in os.walk(folder, onerror=on_error):
        here = Path(root)
        relative_root = here.relative_to(folder).as_posix()
        prefix = "" if relative_root == "." else relative_root + "/"
        # Hidden folders and files (.git, temp files of an interrupted download) are not
        # part of the collection; neither is anything the caller excluded.
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not _excluded(prefix + d, exclude)
        )
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in wanted:
                continue
            if not _excluded(prefix + name, exclude):
                yield here / name


def stat_file(path: Path, unreadable: list[tuple[str, str]]) -> os.stat_result | None:
    """``path``'s stat; ``None`` when it is gone, or cannot be examined (then noted)."""
    try:
        return path.stat()
    except FileNotFoundError:  # removed between listing and stat
        return None
    except OSError as exc:  # exists, but cannot be examined: keep what the index has
        unreadable.append((displayable(str(path)), exc.strerror or str(exc)))
        return None


def check_exclude(exclude: Sequence[str] | None) -> tuple[str, ...]:
    """Validate exclude patterns (glob patterns on relative paths or names)."""
    if exclude is None:
        return ()
    if isinstance(exclude, str):
        exclude = [exclude]
    for pattern in exclude:
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidInputError(f"exclude patterns must be non-empty strings, got {pattern!r}")
    return tuple(exclude)
