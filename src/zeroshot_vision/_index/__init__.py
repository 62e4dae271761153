"""Index folders: the on-disk format, and the one writer that changes them.

* :mod:`~zeroshot_vision._index.folder`: :class:`IndexFolder`, the format, which puts
  together the :mod:`~zeroshot_vision._index.manifest` (``settings.json``), the file
  :mod:`~zeroshot_vision._index.state` (``state.sqlite``), the writer's
  :mod:`~zeroshot_vision._index.lock` and the :mod:`~zeroshot_vision._index.migration` of
  older folders, and says when a folder changed (:func:`index_version`);
* :mod:`~zeroshot_vision._index.writer`: :class:`IndexWriter`, which owns every write
  (pending -> upsert -> indexed);
* :mod:`~zeroshot_vision._index.scan`: the id scheme for files (:func:`file_id`) and the
  paths of a folder's image files.

Bringing an index up to date with a folder, watching one, and index folders in and out as
Parquet are the ingest pipeline's (:mod:`zeroshot_vision.ingest`).

Nothing here imports the engine, the CLI or the app: they are built on this package.
"""

from zeroshot_vision._index.folder import IndexFolder, index_version
from zeroshot_vision._index.manifest import (
    FORMAT,
    FORMAT_VERSION,
    IndexManifest,
    StoreSpec,
    model_reference,
)
from zeroshot_vision._index.scan import file_id
from zeroshot_vision._index.state import FileEntry
from zeroshot_vision._index.writer import IndexWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FileEntry",
    "IndexFolder",
    "IndexManifest",
    "IndexWriter",
    "StoreSpec",
    "file_id",
    "index_version",
    "model_reference",
]
