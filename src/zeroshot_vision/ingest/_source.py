"""The ``Source`` protocol: where the items to index come from.

A source is opened against what the index already holds (an :class:`IndexView`) and
answers with a :class:`Listing`: the items (an iterable, read lazily), and for sources
that know their whole extent (a folder tree), which recorded entries lie where they look,
so that the plan stage can tell which ids disappeared. How a source's items are compared
with the index is its :attr:`Source.skip` rule.

The sources of the library: :class:`~zeroshot_vision.ingest._sources.FolderSource` (a
folder tree, or Unsplash Lite through :func:`~zeroshot_vision.ingest._sources.folder_source`),
:class:`~zeroshot_vision.ingest._sources.ImageListSource` (paths, bytes, PIL images:
``index_images``, LangChain's ``add_images``, LlamaIndex),
:class:`~zeroshot_vision.ingest._sources.ParquetSource` (vectors already computed),
:class:`~zeroshot_vision.integrations.hf_datasets.DatasetSource` (a Hugging Face dataset)
and :class:`~zeroshot_vision.ingest._sources.ListedSource` (listed files and URIs, as Ray
reads them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from zeroshot_vision._index.folder import FileEntry, SourceFolder
from zeroshot_vision._types import ImageFailure

if TYPE_CHECKING:
    from zeroshot_vision.ingest._item import Item

__all__ = ["IndexView", "Listing", "SkipRule", "Source"]

SkipRule = Literal["unchanged", "stored", "never"]
"""How the plan stage decides an item needs no work.

* ``"unchanged"``: the index folder's state records it indexed with the same
  fingerprint (path, size, mtime): a folder run. Recorded failures with the same
  fingerprint are not retried.
* ``"stored"``: the store already holds its id (a dataset: rows have no fingerprint).
* ``"never"``: every item is (re)written: an explicit list, an import.
"""


@dataclass(frozen=True, kw_only=True)
class IndexView:
    """What a source may read of the index it feeds, before any item is written.

    Attributes:
        entries: The index folder's state rows by id (empty for an in-memory engine).
        sources: The folders the index mirrors, in the order they were added.
        has_folder: Whether the engine owns an index folder (a state to record in).
        folder: The index folder's path, where a source may keep a cache of what is
            costly to list again (the frames chosen in videos); ``None`` without one.
    """

    entries: Mapping[str, FileEntry] = field(default_factory=dict)
    sources: Sequence[SourceFolder] = ()
    has_folder: bool = False
    folder: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Listing:
    """A source's answer: its items, and what it can say about what it did not yield.

    Attributes:
        items: The items, in a stable order; may be a lazy iterator (a streaming dataset).
        total: How many items, when known up front (for progress bars).
        root: How the run names the source in logs and reports (a folder's path).
        covers: For a source that knows its whole extent: whether a recorded entry lies
            where it looks. A covered entry whose id the source did not yield is gone,
            and the plan stage removes it. ``None``: the source cannot tell (a list, a
            dataset), and nothing is removed.
        unreadable: Places that could not be listed or examined; what the index holds
            there is kept.
        register: A folder to add to the index's recorded sources.
    """

    items: Iterable[Item]
    total: int | None = None
    root: str | None = None
    covers: Callable[[FileEntry], bool] | None = None
    unreadable: tuple[ImageFailure, ...] = ()
    register: SourceFolder | None = None


@runtime_checkable
class Source(Protocol):
    """Where items to index come from. Rules every source follows:

    * Ids are stable: the same image gets the same id on every run (a relative path, a
      photo id, a row's id); two items of one listing never share an id.
    * ``open`` does not write: it reads the file system (or a dataset) and the
      :class:`IndexView`, and may raise
      :class:`~zeroshot_vision._errors.InvalidInputError` for a source that cannot be
      indexed (a missing folder, ids that another source's files hold).
    * Items are listed in a stable order (batches, and so vectors, come out the same).
    * A bad image is not the source's concern: it yields the item, and the encode stage
      records the failure. A source raises only for what makes the whole run wrong.
    """

    @property
    def skip(self) -> SkipRule:
        """How the plan stage decides an item needs no work (see :data:`SkipRule`)."""
        ...

    def open(self, index: IndexView) -> Listing:
        """List the items to index, given what the index holds."""
        ...
