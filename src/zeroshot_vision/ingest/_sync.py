"""Bringing an index folder up to date with a source folder (``SearchEngine.index_folder``).

A short call of the one ingest pipeline (:func:`zeroshot_vision.ingest._run.ingest`) with
a folder source (:func:`zeroshot_vision.ingest._sources.folder_source`: a folder tree, or
Unsplash Lite) and the EXIF extractor; what follows is what that pipeline guarantees.

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

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zeroshot_vision._checks import non_negative_seconds
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._progress import ProgressOption

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._images.video import VideoOptions
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision._types import FolderReport
    from zeroshot_vision.ingest._extract import Extractor

__all__ = ["default_extractors", "sync_folder"]

PathLike = str | os.PathLike[str]


def default_extractors() -> list[Extractor]:
    """The extractors a folder run uses unless told otherwise: EXIF photo fields."""
    from zeroshot_vision.ingest._extract import ExifExtractor

    return [ExifExtractor()]


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
    extractors: Sequence[Extractor] | None = None,
    video: VideoOptions | None = None,
) -> FolderReport:
    """See :meth:`SearchEngine.index_folder`; ``writer`` must have an index folder."""
    from zeroshot_vision.ingest._run import ingest
    from zeroshot_vision.ingest._sources import folder_source

    commit_every = non_negative_seconds(commit_every, "commit_every")
    if writer.folder is None:
        raise InvalidInputError("a folder run needs a writer with an index folder")
    return ingest(
        folder_source(source, images_dir=images_dir, exclude=exclude, video=video),
        writer,
        encoder,
        extractors=default_extractors() if extractors is None else extractors,
        batch_size=batch_size,
        commit_every=commit_every,
        allow_removal=allow_removal,
        progress=progress,
    )
