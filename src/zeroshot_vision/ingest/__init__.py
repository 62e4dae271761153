"""The one ingest pipeline: source -> plan -> extract -> encode -> write.

Every way a photo reaches an index goes through here (``SearchEngine.index_folder`` and
``index_images``, ``index_dataset``, ``import_index``, ``zsv index``, ``index_with_ray``):

* :mod:`~zeroshot_vision.ingest._source`: the :class:`Source` protocol (what to index);
  :mod:`~zeroshot_vision.ingest._sources` holds the library's sources;
* :mod:`~zeroshot_vision.ingest._item`: :class:`Item`, the one type of "an image to index",
  and :func:`file_entry`, the one place its state row is built;
* :mod:`~zeroshot_vision.ingest._video`: a video file as its chosen frames, one item
  each (``<file id>#t=<seconds>``), for a folder source with videos on;
* :mod:`~zeroshot_vision.ingest._plan`: diff a source against the index (new, changed,
  removed, unchanged);
* :mod:`~zeroshot_vision.ingest._extract`: the :class:`Extractor` protocol (EXIF today);
* :mod:`~zeroshot_vision.ingest._encode`: the local encoder (Ray Data is another executor
  of the same stage, :mod:`zeroshot_vision.distributed`);
* :mod:`~zeroshot_vision.ingest._write`: through
  :class:`~zeroshot_vision._index.writer.IndexWriter`, the only writer;
* :mod:`~zeroshot_vision.ingest._run`: :func:`ingest`, which runs them in order.
"""

from __future__ import annotations

from zeroshot_vision.ingest._extract import (
    ExifExtractor,
    Extracted,
    ExtractionError,
    Extractor,
    ItemExtras,
    extract,
)
from zeroshot_vision.ingest._item import Item, file_entry
from zeroshot_vision.ingest._run import ingest
from zeroshot_vision.ingest._source import IndexView, Listing, SkipRule, Source
from zeroshot_vision.ingest._sources import FolderSource, ImageListSource, ParquetSource
from zeroshot_vision.ingest._sync import sync_folder
from zeroshot_vision.ingest._watch import watch_folders

__all__ = [
    "ExifExtractor",
    "Extracted",
    "ExtractionError",
    "Extractor",
    "FolderSource",
    "ImageListSource",
    "IndexView",
    "Item",
    "ItemExtras",
    "Listing",
    "ParquetSource",
    "SkipRule",
    "Source",
    "extract",
    "file_entry",
    "ingest",
    "sync_folder",
    "watch_folders",
]
