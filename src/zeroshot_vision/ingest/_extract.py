"""The extract stage: extractors that add metadata (and text) to each item before it is written.

An :class:`Extractor` receives an :class:`~zeroshot_vision.ingest._item.Item` (its path,
its pixels through :meth:`Item.image`, what the source knows) and returns an
:class:`Extracted`: metadata to merge into what is stored with the vector, and text
fields for a lexical index. EXIF photo fields are today's extractor
(:class:`ExifExtractor`); text read from photos, places and captions plug in the same way.

Rules:

* **Merging.** Extractors run in order; a later extractor's keys win over an earlier
  one's, and the source's own metadata wins over all of them (a photo's table row says
  more than its EXIF).
* **Failing.** An extractor that raises for an item fails that item's extraction only:
  the failure is reported (``"<name>: <reason>"``) and the run goes on; the item is
  still indexed with what the other extractors gave. An index folder remembers the
  failure, so an unchanged image is not retried on every run (it is, once it changes
  or once the extractor's version changes).
* **Stopping.** An extractor whose service is gone (not this image: an endpoint that
  refuses connections or answers 5xx after its retries) raises
  :class:`~zeroshot_vision._errors.ExtractorUnavailableError` instead. The run writes and
  commits the items before it, then raises it (with the run's report attached); the
  items not reached are not recorded as failed, so the next run continues with them.
* **Versions.** An extractor with a ``version`` is tracked per image in an index
  folder: switching it on for an index that had none, or bumping its version, runs it
  once over every image already indexed (their vectors are reused, not re-encoded),
  resumably: a run killed half-way continues where it stopped. An extractor whose
  ``version`` is ``None`` runs only on new and changed images (EXIF, which is read
  with them anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zeroshot_vision._errors import ExtractorUnavailableError, ZeroshotVisionError

if TYPE_CHECKING:
    from zeroshot_vision.ingest._item import Item

__all__ = ["ExifExtractor", "Extracted", "ExtractionError", "Extractor", "ItemExtras", "extract"]

logger = logging.getLogger(__name__)


class ExtractionError(ZeroshotVisionError, ValueError):
    """An extractor could not handle one item; the run goes on.

    Attributes:
        reason: Why, in a few words.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Extracted:
    """What one extractor found in one item.

    Attributes:
        metadata: Fields stored with the item's vector (JSON-like values).
        texts: Text fields for a lexical index (``{"ocr": "STOP"}``), written in the same
            commit as the vector by a writer companion (see
            :class:`~zeroshot_vision._index.writer.Companion`); not stored as metadata
            unless also given there.
    """

    metadata: Mapping[str, Any] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Extractor(Protocol):
    """Adds metadata (and text) to items before they are written.

    Attributes:
        name: A short stable name (``"exif"``, ``"ocr"``): the key of its records in an
            index folder and the prefix of its failures.
        version: Bump it when what the extractor produces changes: an index folder runs
            it again, once, over every indexed image. ``None``: not tracked, it runs on
            new and changed images only.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    def extract(self, item: Item) -> Extracted:
        """What this extractor finds in ``item``.

        Called in the indexing process, once per item to write, before encoding.
        ``item.image()`` decodes the pixels; ``item.local_path()`` is the file, if any.

        Raises:
            ExtractorUnavailableError: The extractor's service is gone: the run stops.
            Exception: Any other error fails this item's extraction only (an
                :class:`ExtractionError` gives the reason without a traceback in the log).
        """
        ...


@dataclass(frozen=True, kw_only=True)
class ItemExtras:
    """The extract stage's outcome for one item.

    Attributes:
        metadata: The extractors' metadata merged, under the source's own (and over
            :attr:`Item.stored_metadata`, for an item refreshed with its stored vector).
        texts: Text fields of every extractor, merged.
        versions: For tracked extractors that ran: name -> version.
        failures: ``(extractor name, reason)`` for each extractor that failed.
    """

    metadata: Mapping[str, Any]
    texts: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    failures: tuple[tuple[str, str], ...] = ()


def extract(item: Item, extractors: Sequence[Extractor]) -> ItemExtras:
    """Run ``extractors`` on ``item``: the metadata to store, texts, and what failed.

    Raises:
        ExtractorUnavailableError: An extractor's service is gone (the run stops).
    """
    found: dict[str, Any] = {}
    texts: dict[str, str] = {}
    versions: dict[str, str] = {}
    failures: list[tuple[str, str]] = []
    for extractor in extractors:
        try:
            result = extractor.extract(item)
        except ExtractorUnavailableError:
            raise
        except ExtractionError as exc:
            logger.warning("%s: %s: %s", extractor.name, item.name, exc.reason)
            failures.append((extractor.name, exc.reason))
        except Exception as exc:  # one item's extractor never stops a run
            logger.warning("%s failed on %s", extractor.name, item.name, exc_info=True)
            failures.append((extractor.name, f"{type(exc).__name__}: {exc}"))
        else:
            found.update(result.metadata)
            texts.update(result.texts)
        if extractor.version is not None:
            # Failures are versioned too: not retried until the image or version changes.
            versions[extractor.name] = extractor.version
    return ItemExtras(
        metadata={**(item.stored_metadata or {}), **found, **item.metadata},
        texts=texts,
        versions=versions,
        failures=tuple(failures),
    )


class ExifExtractor:
    """A photo's EXIF fields (taken when, where, with which camera; see
    :func:`~zeroshot_vision._images.exif.photo_metadata`), for items with a local file."""

    name = "exif"
    version: str | None = None

    def extract(self, item: Item) -> Extracted:
        """The EXIF photo fields of the item's file (``{}`` for none, or no file)."""
        from zeroshot_vision._images.exif import photo_metadata

        path = item.local_path()
        return Extracted(metadata=photo_metadata(path) if path is not None else {})
