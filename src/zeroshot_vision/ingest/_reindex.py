"""Moving an index folder to another model: every photo re-encoded into a new store.

``zsv reindex --index my-index --model siglip2-so400m`` and
:meth:`SearchEngine.reindex <zeroshot_vision._engine.SearchEngine.reindex>` call
:func:`reindex`. The photos go through the one ingest pipeline
(:func:`~zeroshot_vision.ingest._run.ingest`) with a source that lists what the index
holds (:class:`ReindexSource`), into a new store beside the old one:

* **Nothing changes for readers until the end.** The new vectors go to a new folder
  (``store-2``, ``store-3``...) inside the index folder, and ``reindex.json`` records
  the target model and that folder. Searches meanwhile read the manifest, which still
  names the old model and the old store. At the end one rename replaces the manifest
  (the new model, its dimension and route, the new store folder): that is the switch.
  The old store is removed only after it.
* **Resumable.** Each batch is committed to the new store, then the ids and file
  fingerprints it holds are recorded in ``reindex.sqlite``; a run killed at any point
  (SIGKILL included) leaves the old index answering, and the next run with the same
  model goes on: it re-encodes only ids that are not recorded with the file's current
  fingerprint (at most the one batch that was being committed). A photo changed, added
  or removed by a ``zsv index`` run between the two is re-encoded, encoded or dropped.
  A pending reindex to another model is discarded when a reindex to a new one starts.
* **One writer.** The run holds the index folder's writer lock throughout: a second
  reindex, or a ``zsv index``, gets :class:`~zeroshot_vision._errors.IndexLockedError`.
* **What does not depend on the model is kept**: ids, the state's rows (paths, sizes,
  times), every photo's metadata (copied from the old store), the lexical side
  (``text.sqlite``: words in photos, places) and the extractor ledger.
* **Photos that cannot be re-encoded are left out, never mixed in.** A photo whose file
  is gone or no longer decodes, or one indexed from bytes (no file to read again), has
  no vector from the new model; keeping its old vector would put two models' vectors in
  one store, whose scores do not compare. Such photos are listed in the report
  (:attr:`ReindexReport.left_out`, with the reason) and retried by a resumed run; at the
  switch they are dropped from the index (store, state, lexical side, ledger), so a
  later ``zsv index`` encodes a file that comes back as a new one.

Only an embedded store (``faiss``) can be reindexed this way; a Pinecone index gets a
new index or namespace made with ``zsv import`` (see docs/languages.md).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from zeroshot_vision._checks import batched
from zeroshot_vision._errors import IndexLockedError, InvalidInputError
from zeroshot_vision._files import write_atomic
from zeroshot_vision._index.folder import MANIFEST, IndexFolder
from zeroshot_vision._index.manifest import EncoderRecord, encoder_record, model_reference
from zeroshot_vision._json import read_model
from zeroshot_vision._types import ImageFailure
from zeroshot_vision.ingest._item import Item
from zeroshot_vision.ingest._ledger import StagedTable
from zeroshot_vision.ingest._source import IndexView, Listing, SkipRule

if TYPE_CHECKING:
    import os

    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._index.folder import FileEntry
    from zeroshot_vision._progress import ProgressOption
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["PENDING", "PROGRESS", "PendingReindex", "ReindexReport", "ReindexSource", "reindex"]

logger = logging.getLogger(__name__)

PENDING = "reindex.json"
"""The record of a reindex under way, in the index folder (absent otherwise)."""
PROGRESS = "reindex.sqlite"
"""The ids a reindex under way has committed to its new store, with their fingerprints."""
_EMBEDDED_KINDS = ("faiss",)
"""Store kinds whose files live in the index folder, so that a new store fits beside."""
_FETCH_BATCH = 512
_NO_FILE = "indexed from bytes or an image object: there is no file to read again"


class PendingReindex(pydantic.BaseModel):
    """``reindex.json``: a reindex under way (or switched, its old store not yet removed).

    Attributes:
        model: The target checkpoint, as the manifest will record it.
        dim: The target model's dimension.
        encoder: The target encoder's route and probe vectors.
        store_dir: The folder of the new store, inside the index folder.
        previous_store_dir: The store folder the manifest named when the reindex began.
        previous_model: The model the index had when the reindex began.
        started: When the reindex began (ISO 8601, UTC).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    model: str = pydantic.Field(min_length=1, max_length=4096)
    dim: int = pydantic.Field(gt=0)
    encoder: EncoderRecord | None = None
    store_dir: str = pydantic.Field(pattern=r"^store[A-Za-z0-9_.-]*$", max_length=64)
    previous_store_dir: str = pydantic.Field(pattern=r"^store[A-Za-z0-9_.-]*$", max_length=64)
    previous_model: str = pydantic.Field(min_length=1, max_length=4096)
    started: str = pydantic.Field(min_length=1, max_length=64)

    @classmethod
    def read(cls, folder: Path) -> PendingReindex | None:
        """The record in ``folder``, or ``None`` (none, or damaged: logged, then ignored)."""
        file = folder / PENDING
        if not file.exists():
            return None
        try:
            return read_model(file, cls, max_bytes=1 << 20, max_depth=4, damaged=InvalidInputError)
        except (OSError, InvalidInputError) as exc:
            logger.warning("ignoring the damaged reindex record %s: %s", file, exc)
            return None


@dataclass(frozen=True, kw_only=True)
class ReindexReport:
    """What :func:`reindex` did.

    Attributes:
        model: The model the index has now.
        previous_model: The model it had.
        dim: The new dimension.
        encoded: Ids re-encoded by this run.
        resumed: Ids a killed run had already re-encoded (not encoded again).
        left_out: Photos that could not be re-encoded (their file is gone or unreadable,
            or they were indexed from bytes), with the reason; dropped from the index.
        count: Vectors in the index after the switch.
        seconds: Wall time of this run.
    """

    model: str
    previous_model: str
    dim: int
    encoded: tuple[str, ...] = ()
    resumed: int = 0
    left_out: tuple[ImageFailure, ...] = ()
    count: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "model": self.model,
            "previous_model": self.previous_model,
            "dim": self.dim,
            "encoded": len(self.encoded),
            "resumed": self.resumed,
            "left_out": [{"source": f.source, "reason": f.reason} for f in self.left_out],
            "count": self.count,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, kw_only=True)
class ReindexSource:
    """The photos an index holds, listed again for a new model (a :class:`Source`).

    Every entry the state records as indexed is an item: its file, its fingerprint,
    and its metadata as the old store holds it (the new vector keeps it). Entries in
    ``done`` with the same fingerprint are left out (a resumed run).

    Attributes:
        entries: The state's rows, by id.
        old_store: The store being replaced (the metadata is read from it).
        done: Ids already in the new store, with the fingerprint they were encoded from.
    """

    entries: Mapping[str, FileEntry]
    old_store: VectorStore
    done: Mapping[str, tuple[str | None, int | None, int | None]] = field(default_factory=dict)

    skip: SkipRule = "never"

    def todo(self) -> list[FileEntry]:
        """The indexed entries not yet re-encoded from the file as it is recorded."""
        return [
            entry
            for entry in self.entries.values()
            if entry.status == "indexed"
            and self.done.get(entry.id) != (entry.path, entry.size, entry.mtime_ns)
        ]

    def open(self, index: IndexView) -> Listing:
        """List the entries still to re-encode, their metadata read a batch at a time."""
        todo = self.todo()
        return Listing(
            items=self._items(todo), total=sum(1 for entry in todo if entry.path is not None)
        )

    def _items(self, todo: Sequence[FileEntry]) -> Iterator[Item]:
        # An entry without a file (indexed from bytes) cannot be read again: left out.
        for chunk in batched([entry for entry in todo if entry.path is not None], _FETCH_BATCH):
            records = self.old_store.fetch([entry.id for entry in chunk])
            for entry in chunk:
                record = records.get(entry.id)
                yield Item(
                    id=entry.id,
                    path=Path(entry.path or ""),
                    display_path=entry.path,
                    size=entry.size,
                    mtime_ns=entry.mtime_ns,
                    metadata=dict(record.metadata or {}) if record is not None else {},
                    label=entry.path or entry.id,
                )


_Print = tuple[str | None, int | None, int | None]


class _Progress(StagedTable[_Print]):
    """``reindex.sqlite``: which ids the new store holds, from which file (a companion).

    Committed after the new store, so an id recorded here is in it; an id the store got
    but this file did not (a kill between the two commits) is re-encoded next run.
    """

    table = "done"
    schema = "id TEXT PRIMARY KEY, path TEXT, size INTEGER, mtime_ns INTEGER"
    columns = ("id", "path", "size", "mtime_ns")

    def __init__(self, path: Path, fingerprints: Mapping[str, FileEntry]) -> None:
        super().__init__(path)
        self._fingerprints = fingerprints

    def done(self) -> dict[str, _Print]:
        rows = self.select("SELECT id, path, size, mtime_ns FROM done")
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        for item in ids:
            entry = self._fingerprints.get(item)
            self._staged[item] = (
                (entry.path, entry.size, entry.mtime_ns) if entry is not None else None
            )

    def rows(self, item: str, value: _Print) -> Iterable[tuple[Any, ...]]:
        return [(item, *value)]


def reindex(
    path: str | os.PathLike[str],
    encoder: Encoder,
    *,
    batch_size: int | None = None,
    commit_every: float = 0.0,
    wait: float | None = None,
    progress: ProgressOption = None,
) -> ReindexReport:
    """Re-encode every photo of the index folder at ``path`` with ``encoder``'s model.

    See the module for what is kept, what is left out, and how a killed run resumes.

    Args:
        path: The index folder.
        encoder: The new model's encoder (its dimension may differ from the index's).
        batch_size: Images per batch; default the encoder's.
        commit_every: Seconds between commits of the new store (``0``: every batch).
        wait: Seconds to wait for another writer (default the folder's ``lock_wait``).
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress`.

    Returns:
        What was re-encoded, resumed and left out.

    Raises:
        IndexNotFoundError: ``path`` holds no index.
        IndexLockedError: Another process writes to the index (another reindex, an
            index run); nothing was changed.
        InvalidInputError: The index's store is not an embedded one (Pinecone).
    """
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision.ingest._run import ingest
    from zeroshot_vision.stores._registry import StoreLocation, open_store_kind

    started = time.monotonic()
    folder = IndexFolder.open(path)
    kind = folder.manifest.store.kind
    if kind not in _EMBEDDED_KINDS:
        raise InvalidInputError(
            f"{folder.path} keeps its vectors in a {kind!r} store; reindex re-encodes into a "
            "new store inside the index folder, which only a faiss index has. For Pinecone, "
            "create a new index (or namespace) with the new model and index the photos into "
            "it, then switch your application to it"
        )
    _lock(folder, wait)
    try:
        folder.state()  # upgrades an older folder first, under the lock
        switched = PendingReindex.read(folder.path)
        if switched is not None and switched.store_dir == folder.manifest.store_dir:
            # A run killed after its switch: finish it (drop what it left out, remove
            # the old store) before anything else.
            logger.info("%s: the switch to %s was made; finishing", folder.path, switched.model)
            left_out = _finish(folder, switched, {})
            if _same_target(switched, encoder):
                return _report(folder, switched, left_out=left_out, started=started)
        pending = _pending_for(folder, encoder)
        old_store = folder.open_store()
        try:
            new_store = open_store_kind(
                kind,
                StoreLocation(
                    folder=folder.path / pending.store_dir,
                    dim=pending.dim,
                    options=dict(folder.manifest.store.options),
                ),
            )
            try:
                entries = folder.entries()
                tracker = _Progress(folder.path / PROGRESS, entries)
                source = ReindexSource(
                    entries=entries, old_store=old_store, done=_done(tracker, new_store)
                )
                indexed = [e for e in entries.values() if e.status == "indexed"]
                resumed = len(indexed) - len(source.todo())
                writer = IndexWriter(new_store)  # the folder's lock is held here
                writer.attach(tracker)
                with writer:
                    result = ingest(
                        source,
                        writer,
                        encoder,
                        batch_size=batch_size,
                        commit_every=commit_every,
                        record_failures=False,
                        progress=progress,
                    )
                failures = {f.source: f.reason for f in result.failed}
                failures.update({e.id: _NO_FILE for e in indexed if e.path is None})
                _finish_store(folder, old_store, new_store)
                _switch(folder, pending)
            finally:
                new_store.close()
        finally:
            old_store.close()
        left_out = _finish(folder, pending, failures)
        return _report(
            folder,
            pending,
            encoded=result.indexed,
            resumed=resumed,
            left_out=left_out,
            started=started,
        )
    finally:
        folder.unlock()


def _same_target(pending: PendingReindex, encoder: Encoder) -> bool:
    from zeroshot_vision._models import same_checkpoint

    model = model_reference(encoder.model_name)
    return same_checkpoint(model, pending.model) and pending.dim == encoder.dim


def _report(
    folder: IndexFolder,
    pending: PendingReindex,
    *,
    encoded: Sequence[str] = (),
    resumed: int = 0,
    left_out: tuple[ImageFailure, ...],
    started: float,
) -> ReindexReport:
    report = ReindexReport(
        model=pending.model,
        previous_model=pending.previous_model,
        dim=pending.dim,
        encoded=tuple(encoded),
        resumed=resumed,
        left_out=left_out,
        count=folder.counts()["indexed"],
        seconds=time.monotonic() - started,
    )
    logger.info("reindex %s: %s", folder.path, report.to_json())
    return report


def _lock(folder: IndexFolder, wait: float | None) -> None:
    """Take the writer lock; a refusal names a reindex under way when there is one."""
    try:
        folder.lock(wait=wait)
    except IndexLockedError as exc:
        pending = PendingReindex.read(folder.path)
        if pending is None:
            raise
        raise IndexLockedError(
            f"{exc}; a reindex to {pending.model} started {pending.started} is under way "
            "(run zsv reindex again once it has stopped to finish it)",
            pid=exc.pid,
            since=exc.since,
        ) from exc


def _pending_for(folder: IndexFolder, encoder: Encoder) -> PendingReindex:
    """The reindex to run: the one under way if it is to this model, else a new one."""
    pending = PendingReindex.read(folder.path)
    manifest = folder.manifest
    model = model_reference(encoder.model_name)
    if pending is not None and pending.store_dir != manifest.store_dir:
        if _same_target(pending, encoder):
            logger.info("%s: resuming the reindex to %s", folder.path, pending.model)
            return pending
        logger.warning(
            "%s: discarding the unfinished reindex to %s, to reindex to %s",
            folder.path,
            pending.model,
            model,
        )
        _remove_work(folder, pending.store_dir)
    name = _free_store_dir(folder)
    pending = PendingReindex(
        model=model,
        dim=encoder.dim,
        encoder=encoder_record(encoder),
        store_dir=name,
        previous_store_dir=manifest.store_dir,
        previous_model=manifest.model,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_atomic(folder.path / PENDING, pending.model_dump_json(indent=2).encode())
    logger.info("%s: reindexing from %s to %s into %s", folder.path, manifest.model, model, name)
    return pending


def _free_store_dir(folder: IndexFolder) -> str:
    """``store-2``, ``store-3``...: the first name neither in use nor present."""
    number = 2
    while (folder.path / f"store-{number}").exists() or folder.manifest.store_dir == (
        f"store-{number}"
    ):
        number += 1
    return f"store-{number}"


def _remove_work(folder: IndexFolder, store_dir: str) -> None:
    """Remove an abandoned reindex's store and progress (never the manifest's store)."""
    if store_dir != folder.manifest.store_dir:
        shutil.rmtree(folder.path / store_dir, ignore_errors=True)
    (folder.path / PROGRESS).unlink(missing_ok=True)


def _done(
    tracker: _Progress, new_store: VectorStore
) -> dict[str, tuple[str | None, int | None, int | None]]:
    """Recorded ids that the new store really holds (a store restored from a copy)."""
    done = tracker.done()
    held = set(new_store.ids())
    return {item: print_ for item, print_ in done.items() if item in held}


def _finish_store(folder: IndexFolder, old_store: VectorStore, new_store: VectorStore) -> None:
    """Make the new store hold what the index holds, metadata as the old store has it.

    Ids the state no longer records as indexed (removed by an index run between a killed
    reindex and this one) are deleted; metadata that an index run changed meanwhile is
    copied again. Then the new store commits.
    """
    indexed = {e.id for e in folder.entries().values() if e.status == "indexed"}
    held = list(new_store.ids())
    stale = [item for item in held if item not in indexed]
    if stale:
        new_store.delete(stale)
    for chunk in batched([item for item in held if item in indexed], _FETCH_BATCH):
        old = old_store.fetch(chunk)
        new = new_store.fetch(chunk)
        changed = [
            item
            for item in chunk
            if item in old
            and item in new
            and (old[item].metadata or {}) != (new[item].metadata or {})
        ]
        if changed:
            import numpy as np

            new_store.upsert(
                changed,
                np.stack([new[item].vector for item in changed]),
                [dict(old[item].metadata or {}) for item in changed],
            )
    new_store.commit()


def _meta(record: Any) -> dict[str, Any]:
    return dict(record.metadata or {})


def _switch(folder: IndexFolder, pending: PendingReindex) -> None:
    """Replace the manifest in one rename: the new model, dimension, route and store."""
    manifest = folder.manifest.model_copy(
        update={
            "model": pending.model,
            "dim": pending.dim,
            "encoder": pending.encoder,
            "store_dir": pending.store_dir,
        }
    )
    write_atomic(folder.path / MANIFEST, manifest.model_dump_json(indent=2).encode())
    folder.manifest = manifest
    logger.info("%s now searches with %s (%s)", folder.path, pending.model, pending.store_dir)


def _finish(
    folder: IndexFolder, pending: PendingReindex, failures: Mapping[str, str]
) -> tuple[ImageFailure, ...]:
    """After the switch: drop what was left out, then remove the old store and the record.

    Returns the photos left out, with the reasons this run saw (or a general one).
    """
    from zeroshot_vision._index.text import FolderTextCompanion
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision.ingest._ledger import Ledger

    store = folder.open_store()
    try:
        held = set(store.ids())
        missing = [
            e for e in folder.entries().values() if e.status == "indexed" and e.id not in held
        ]
        if missing:
            text = FolderTextCompanion(folder)
            writer = IndexWriter(store, folder)
            writer.attach(text)
            writer.attach(Ledger.of(folder.path))
            try:
                writer.delete([e.id for e in missing])
                writer.commit()
            finally:
                text.close()
    finally:
        store.close()
    left_out = tuple(
        ImageFailure(
            source=e.path or e.id,
            reason=failures.get(e.path or e.id, "not re-encoded with the new model"),
        )
        for e in missing
    )
    if pending.previous_store_dir != folder.manifest.store_dir:
        shutil.rmtree(folder.path / pending.previous_store_dir, ignore_errors=True)
    (folder.path / PROGRESS).unlink(missing_ok=True)
    (folder.path / PENDING).unlink(missing_ok=True)
    for failure in left_out:
        logger.warning("left out of the reindex: %s (%s)", failure.source, failure.reason)
    return left_out
