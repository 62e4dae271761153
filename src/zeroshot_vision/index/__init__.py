"""Index folders: the on-disk format, and the one writer that changes them.

* :mod:`~zeroshot_vision.index.folder`: :class:`IndexFolder`, the format (manifest, file
  state, store, lock);
* :mod:`~zeroshot_vision.index.writer`: :class:`IndexWriter`, which owns every write
  (pending -> upsert -> indexed);
* :mod:`~zeroshot_vision.index.scan`: finding a source folder's images, and the id scheme
  for files (:func:`file_id`);
* :mod:`~zeroshot_vision.index.sync`: bringing an index up to date with a source folder;
* :mod:`~zeroshot_vision.index.exchange`: index folders in and out as Parquet.

Nothing here imports the engine, the CLI or the app: they are built on this package.
"""

from zeroshot_vision.index.exchange import export_index, import_index
from zeroshot_vision.index.folder import (
    FORMAT,
    FORMAT_VERSION,
    FileEntry,
    IndexFolder,
    IndexManifest,
    StoreSpec,
    model_reference,
)
from zeroshot_vision.index.scan import file_id
from zeroshot_vision.index.writer import IndexWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FileEntry",
    "IndexFolder",
    "IndexManifest",
    "IndexWriter",
    "StoreSpec",
    "export_index",
    "file_id",
    "import_index",
    "model_reference",
]
