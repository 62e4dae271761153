"""The plan stage: diff a source's listing against the index (new, changed, removed, unchanged).

* **Removed.** For a source that knows its extent (:attr:`Listing.covers`), recorded
  entries it covers but no longer yields are deleted (and committed) first. A run that
  would remove more than half of what the source had indexed is refused unless removal
  is allowed: an unmounted drive looks like an empty folder.
* **Unchanged.** By the source's :data:`~zeroshot_vision.ingest._source.SkipRule`: same
  fingerprint as recorded (and the store still holds the vector), or the id is stored.
  Images recorded as failed with the same fingerprint are not retried.
* **Refresh.** Unchanged images whose tracked extractors (see
  :class:`~zeroshot_vision.ingest._extract.Extractor`) have not run at their current
  version: their stored vectors are reused and only the extractors run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zeroshot_vision._checks import batched
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.folder import FileEntry
from zeroshot_vision._types import FolderReport, ImageFailure

if TYPE_CHECKING:
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision.ingest._extract import Extractor
    from zeroshot_vision.ingest._item import Item
    from zeroshot_vision.ingest._source import Listing, SkipRule

__all__ = ["Plan", "plan", "split_unchanged"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Plan:
    """What a run has to do, once gone items are removed.

    Attributes:
        root: How the source is named in logs (a folder's path), if it has a name.
        todo: Items to extract, encode and write, in the source's order; lazy for a
            source whose items are (``skipped`` grows as it is read).
        total: ``len(todo)`` when known up front.
        refresh: Unchanged items to run tracked extractors on, with their stored vectors.
        skipped: Items that need no work.
        removed: Ids that were gone; already deleted and committed.
        known_failed: Unchanged items that failed before; not retried.
        unreadable: Places the source could not read.
        started: ``time.monotonic()`` when planning began.
    """

    root: str | None
    todo: Iterable[Item]
    total: int | None
    refresh: tuple[Item, ...] = ()
    skipped: int = 0
    removed: tuple[str, ...] = ()
    known_failed: tuple[ImageFailure, ...] = ()
    unreadable: tuple[ImageFailure, ...] = ()
    started: float = field(default_factory=time.monotonic)

    def report(
        self, *, indexed: Sequence[str], failed: Sequence[ImageFailure], count: int
    ) -> FolderReport:
        """The run's :class:`~zeroshot_vision._types.FolderReport`, timed from planning."""
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


def plan(
    writer: IndexWriter,
    listing: Listing,
    *,
    skip: SkipRule,
    entries: Mapping[str, FileEntry],
    extractors: Sequence[Extractor] = (),
    versions: Mapping[str, Mapping[str, str]] | None = None,
    allow_removal: bool = False,
    batch_size: int = 1_000,
    on_skip: Callable[[int], None] | None = None,
    started: float | None = None,
) -> Plan:
    """Diff ``listing`` against the index that ``writer`` writes: see the module.

    Args:
        writer: The run's writer (gone ids are deleted through it).
        listing: What the source listed.
        skip: The source's skip rule.
        entries: The index folder's state rows (empty without a folder).
        extractors: The run's extractors; tracked ones may make unchanged items refresh.
        versions: The extractor ledger's rows (``None``: no ledger, nothing refreshes).
        allow_removal: Allow removing more than half of the source's indexed items.
        batch_size: Ids per store lookup for the ``"stored"`` rule.
        on_skip: Called with the count of items found stored (``"stored"`` rule).
        started: When the run began (default now).

    Raises:
        InvalidInputError: The run would remove most of the source's items.
    """
    started = time.monotonic() if started is None else started
    if listing.covers is None and skip != "unchanged":
        todo = listing.items
        result = Plan(
            root=listing.root, todo=todo, total=listing.total, unreadable=listing.unreadable
        )
        if skip == "stored":
            result.todo = _not_stored(writer, listing.items, batch_size, result, on_skip)
            result.total = None
        result.started = started
        return result

    items = list(listing.items)
    by_id = {item.id: item for item in items}
    removed = _remove_gone(writer, listing, by_id, entries, allow_removal)
    if listing.register is not None:
        folder = writer.folder
        if folder is not None:
            state = folder.state()
            known = state.sources()
            if listing.register not in known:
                state.set_sources([*known, listing.register])
    if skip == "never":
        return Plan(
            root=listing.root,
            todo=tuple(items),
            total=len(items),
            removed=tuple(removed),
            unreadable=listing.unreadable,
            started=started,
        )
    lost = _lost(writer, by_id, entries) if skip == "unchanged" else set()
    if skip == "unchanged":
        todo, unchanged, known_failed = split_unchanged(items, entries, lost=lost)
    else:
        stored = set(writer.store.fetch(list(by_id)))
        todo = [item for item in items if item.id not in stored]
        unchanged, known_failed = [item for item in items if item.id in stored], []
    refresh = _refresh(writer, unchanged, extractors, versions, batch_size)
    logger.info(
        "%d images: %d to encode, %d unchanged (%d to refresh), %d known bad",
        len(items),
        len(todo),
        len(unchanged),
        len(refresh),
        len(known_failed),
    )
    return Plan(
        root=listing.root,
        todo=tuple(todo),
        total=len(todo),
        refresh=tuple(refresh),
        skipped=len(unchanged) - len(refresh),
        removed=tuple(removed),
        known_failed=tuple(known_failed),
        unreadable=listing.unreadable,
        started=started,
    )


def split_unchanged(
    items: Iterable[Item],
    entries: Mapping[str, FileEntry],
    *,
    lost: Container[str] = frozenset(),
) -> tuple[list[Item], list[Item], list[ImageFailure]]:
    """Split items into those to encode, the unchanged ones, and the known bad ones.

    An item is unchanged when the state records it indexed with the same fingerprint
    (path, size, mtime) and the store did not lose it; known bad when recorded failed so.
    """
    todo: list[Item] = []
    unchanged: list[Item] = []
    known_failed: list[ImageFailure] = []
    for item in items:
        entry = entries.get(item.id)
        fingerprint = item.fingerprint
        same = entry is not None and fingerprint is not None and entry.same_file(*fingerprint)
        if same and entry is not None and entry.status == "indexed" and item.id not in lost:
            unchanged.append(item)
        elif same and entry is not None and entry.status == "failed":
            known_failed.append(ImageFailure(source=item.name, reason=entry.reason or "unreadable"))
        else:
            todo.append(item)
    return todo, unchanged, known_failed


def _remove_gone(
    writer: IndexWriter,
    listing: Listing,
    by_id: Mapping[str, Item],
    entries: Mapping[str, FileEntry],
    allow_removal: bool,
) -> list[str]:
    covers = listing.covers
    if covers is None:
        return []
    # Gone: recorded entries the source could have yielded but did not. Entries outside
    # it (other sources, index_images) and under unreadable folders are not its to judge.
    gone = sorted(entry.id for entry in entries.values() if entry.id not in by_id and covers(entry))
    indexed_before = sum(entry.status == "indexed" and covers(entry) for entry in entries.values())
    # A file still listed is not gone, even when its items' ids changed (a changed
    # video's frames): only vanished files count towards the guard.
    listed = {item.display_path for item in by_id.values() if item.display_path is not None}
    gone_indexed = sum(
        entries[item].status == "indexed" and entries[item].path not in listed for item in gone
    )
    if gone_indexed * 2 > indexed_before and not allow_removal:
        raise InvalidInputError(
            f"{listing.root} now lacks {gone_indexed} of the {indexed_before} indexed "
            "images; nothing was removed. If the folder is on a drive that is not mounted, "
            "mount it; if the files really are gone, run again with --allow-removal "
            "(allow_removal=True)"
        )
    if gone:
        logger.info("removing %d vectors of files that are gone", len(gone))
        writer.delete(gone)
        writer.commit()
    return gone


def _lost(
    writer: IndexWriter, by_id: Mapping[str, Item], entries: Mapping[str, FileEntry]
) -> set[str]:
    """Ids the state counts indexed but the store lost (a store restored from a copy)."""
    indexed_ids = {e.id for e in entries.values() if e.status == "indexed" and e.id in by_id}
    if indexed_ids and len(writer.store) < len(indexed_ids):
        lost = indexed_ids - set(writer.store.ids())
        logger.warning("%d indexed images have no vector in the store; re-encoding", len(lost))
        return lost
    return set()


def _refresh(
    writer: IndexWriter,
    unchanged: Sequence[Item],
    extractors: Sequence[Extractor],
    versions: Mapping[str, Mapping[str, str]] | None,
    batch_size: int,
) -> list[Item]:
    """Unchanged items missing a tracked extractor's current version, with their vectors."""
    import dataclasses

    tracked = {e.name: e.version for e in extractors if e.version is not None}
    if not tracked or versions is None:
        return []
    stale = [
        item
        for item in unchanged
        if any(versions.get(item.id, {}).get(name) != version for name, version in tracked.items())
    ]
    refresh: list[Item] = []
    for chunk in batched(stale, batch_size):
        records = writer.store.fetch([item.id for item in chunk])
        refresh.extend(
            dataclasses.replace(
                item,
                vector=records[item.id].vector,
                stored_metadata=dict(records[item.id].metadata),
            )
            for item in chunk
            if item.id in records
        )
    return refresh


def _not_stored(
    writer: IndexWriter,
    items: Iterable[Item],
    batch_size: int,
    result: Plan,
    on_skip: Callable[[int], None] | None,
) -> Iterator[Item]:
    """The items whose ids the store does not hold, looked up a batch at a time."""
    for chunk in batched(items, batch_size):
        present = writer.store.fetch([item.id for item in chunk])
        if present:
            result.skipped += len(present)
            if on_skip is not None:
                on_skip(len(present))
        yield from (item for item in chunk if item.id not in present)
