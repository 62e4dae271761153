"""Which stored image files may be handed out: the one rule of ``GET /v1/images/{id}``,
the app's download and thumbnails, and LangChain's ``image_content="base64"``.

A record's metadata ``path`` is data, and data can come from anywhere: ``zsv import``
of a Parquet file written by someone else, an upsert, a LangChain document. Reading
whatever file it names would hand out ``~/.ssh/id_ed25519`` to whoever can write a row.
So a stored path is served only when

* it lies under one of the index's registered source folders (the folders
  ``zsv index`` / :meth:`~zeroshot_vision._engine.SearchEngine.index_folder` mirror), when
  the index has any; the path is normalized first, so ``..`` cannot leave a folder;
* and it is a regular file that its name and its content both say is an image
  (:func:`~zeroshot_vision._images.is_image_file`).

An index without registered folders (a store in memory, images indexed from a list of
paths) gets the second check only: its paths were given by its own caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from zeroshot_vision._images.loading import is_image_file

if TYPE_CHECKING:
    from zeroshot_vision._index.folder import IndexFolder

__all__ = ["servable_image", "servable_video", "source_roots"]


def source_roots(folder: IndexFolder | None) -> list[Path] | None:
    """The registered source folders of an index folder, or ``None`` when it has none
    (or there is no folder)."""
    if folder is None:
        return None
    roots = [Path(_normal(source.path)) for source in folder.sources() if source.path]
    return roots or None


def servable_image(stored: object, folder: IndexFolder | None) -> Path | None:
    """The image file a record's stored ``path`` names, if it may be handed out, else ``None``.

    Args:
        stored: The metadata's ``path`` value (anything: only a non-empty ``str`` counts).
        folder: The index folder the record belongs to (its source folders bound what
            is served), or ``None`` for a store without one.
    """
    if not isinstance(stored, str) or not stored or "\x00" in stored:
        return None
    path = _normal(stored)
    roots = source_roots(folder)
    if roots is not None and not any(_inside(path, str(root)) for root in roots):
        return None
    return Path(path) if is_image_file(path) else None


def servable_video(stored: object, folder: IndexFolder | None) -> Path | None:
    """The video file a frame's stored ``path`` names, if it may be handed out (the app
    plays it from the frame's moment), else ``None``: the same rule as
    :func:`servable_image`, for a regular file with a video's suffix."""
    from zeroshot_vision._images.video import VIDEO_SUFFIXES

    if not isinstance(stored, str) or not stored or "\x00" in stored:
        return None
    path = _normal(stored)
    roots = source_roots(folder)
    if roots is not None and not any(_inside(path, str(root)) for root in roots):
        return None
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES or not Path(path).is_file():
        return None
    return Path(path)


def _normal(path: str) -> str:
    """``path`` made absolute and normalized (``..`` and ``.`` resolved as text)."""
    return os.path.normpath(os.path.abspath(path))  # noqa: PTH100


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows), or a relative mixed with absolute
        return False
