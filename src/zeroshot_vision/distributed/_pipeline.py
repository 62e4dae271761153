"""``index_with_ray``: the driver of a distributed indexing run on Ray Data.

The stages, each Ray Data's own::

    list (driver)  ->  drop what the index holds  ->  decode (Ray tasks, CPUs)
        ->  encode (map_batches, an actor pool: one encoder per actor, a GPU each)
        ->  sink (Parquet shards imported by the driver, or Pinecone from the actors)

The driver lists the source exactly as ``zsv index`` does (same ids, metadata, skipping
of unchanged files and removal of gone ones: the ingest pipeline's plan stage,
:func:`~zeroshot_vision.ingest._plan.plan`); Ray Data is the executor of its encode stage),
cuts what is left into batches the way ``zsv index`` batches it, and follows the results
as they stream back: each shard is imported through the folder's
:class:`~zeroshot_vision._index.writer.IndexWriter`, each failure recorded. A progress bar
and the report are those of ``SearchEngine.index_folder``.

Failures: an unreadable image is a recorded failure; a killed actor is restarted by Ray
and its chunk retried, and since a chunk's shard has a name fixed by its inputs and is
imported once, every image lands exactly once; a killed driver leaves shards that the
next run imports without encoding them again (and, for Pinecone, pending ids that it
reconciles); running out of memory is a :class:`~zeroshot_vision._errors.BatchTooLargeError`
that names the batch size to lower.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._checks import non_negative_seconds, positive_int
from zeroshot_vision._errors import (
    BatchTooLargeError,
    DistributedJobError,
    InvalidInputError,
    ZeroshotVisionError,
)
from zeroshot_vision._index.folder import FileEntry, IndexFolder
from zeroshot_vision._index.writer import IndexWriter
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision._types import FolderReport, ImageFailure
from zeroshot_vision.distributed._cluster import connected, ray_module
from zeroshot_vision.distributed._sinks import ShardSink, StoreSink
from zeroshot_vision.distributed._sources import Chunk, ListedSource, chunk_images
from zeroshot_vision.ingest._item import Item, file_entry
from zeroshot_vision.ingest._plan import Plan, plan
from zeroshot_vision.ingest._run import writer_for
from zeroshot_vision.ingest._source import IndexView
from zeroshot_vision.ingest._sources import folder_source

if TYPE_CHECKING:
    from zeroshot_vision._images.pixels import PixelSpec

__all__ = ["ModelFacts", "index_with_ray", "model_facts"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
SHARDS_DIR = ".shards"
"""Shards of a run without ``shards=``: inside the index folder, removed once imported."""
_MAX_INPUT_BLOCKS = 1_000


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What the driver needs of a model without loading its weights.

    Attributes:
        name: The checkpoint, as an index folder records it.
        dim: The embedding dimension.
        pixels: The image processor's fixed-size recipe (``None`` for CLIP-like ones).
        draft_size: The size JPEGs decode down to.
    """

    name: str
    dim: int
    pixels: PixelSpec | None
    draft_size: tuple[int, int]


def model_facts(model: str | None) -> ModelFacts:
    """Read a checkpoint's config and image processor (not its weights).

    The dimension, the pixel recipe and the draft size follow the same rules as
    :class:`~zeroshot_vision._encoder.Encoder`, so the decoding tasks prepare exactly the
    pixels an encoder would.

    Raises:
        ModelLoadError: The checkpoint cannot be found or read.
    """
    from zeroshot_vision._errors import ModelLoadError
    from zeroshot_vision._images.pixels import PixelSpec
    from zeroshot_vision._index.folder import model_reference
    from zeroshot_vision._models import draft_size_for, embedding_dim, locate_checkpoint
    from zeroshot_vision._optional import require

    transformers = require("transformers", purpose="the model's settings")
    name = locate_checkpoint(model)
    try:
        config = transformers.AutoConfig.from_pretrained(name)
        processor = transformers.AutoProcessor.from_pretrained(name)
    except Exception as exc:
        raise ModelLoadError(f"cannot read the settings of model {name!r}: {exc}") from exc
    return ModelFacts(
        name=model_reference(name),
        dim=embedding_dim(config),
        pixels=PixelSpec.from_processor(getattr(processor, "image_processor", processor)),
        draft_size=draft_size_for(processor),
    )


@dataclass
class _Run:
    """What the driver keeps while results stream in."""

    writer: IndexWriter
    sink: ShardSink | StoreSink
    keep_shards: bool
    listing: dict[str, Item]
    tracker: Tracker
    commit_every: float
    indexed: list[str]
    failed: list[ImageFailure]
    seen: set[str]
    last_commit: float
    imported: list[str] = field(default_factory=list)
    """Shards imported since the last commit: removed once it makes them durable."""

    def entry(self, item: str, metadata: Mapping[str, Any] | None, failed: str | None) -> FileEntry:
        listed = self.listing.get(item)
        if listed is None:  # a row of a Ray dataset: known by its id and metadata
            path = (metadata or {}).get("path")
            listed = Item(id=item, display_path=path if isinstance(path, str) else None)
        return file_entry(listed, failed=failed)

    def finish(
        self, shard: str, indexed: Sequence[str], failures: Sequence[tuple[str, str]]
    ) -> None:
        """Record one chunk's outcome: its vectors, its failures; commit when due."""
        if shard in self.seen:  # a retried chunk reported twice: it is in already
            return
        self.seen.add(shard)
        writer = self.writer
        if isinstance(self.sink, ShardSink):
            contents = self.sink.read(shard)
            if contents.ids:
                entries = [
                    self.entry(item, meta, None)
                    for item, meta in zip(contents.ids, contents.metadata)
                ]
                writer.write(entries, contents.vectors, contents.metadata)
            indexed, failures = contents.ids, contents.failures
            self.imported.append(shard)
        elif indexed:
            writer.record(self.entry(item, None, None) for item in indexed)
        if failures:
            # A file that changed into something unreadable must not keep its old vector.
            writer.delete([item for item, _ in failures])
            writer.record(self.entry(item, None, reason) for item, reason in failures)
        self.indexed.extend(indexed)
        self.failed.extend(
            ImageFailure(source=self.entry(item, None, reason).path or item, reason=reason)
            for item, reason in failures
        )
        if time.monotonic() - self.last_commit >= self.commit_every:
            self.commit()
        self.tracker.advance(len(indexed) + len(failures), failed=len(failures))

    def commit(self) -> None:
        self.writer.commit()
        self.last_commit = time.monotonic()
        if isinstance(self.sink, ShardSink) and not self.keep_shards:
            for shard in self.imported:
                self.sink.remove(shard)
        self.imported.clear()


def index_with_ray(
    source: PathLike | Sequence[PathLike] | Any,
    *,
    index: PathLike,
    model: str | None = None,
    images_dir: PathLike | None = None,
    exclude: Sequence[str] | None = None,
    root: PathLike | None = None,
    allow_removal: bool = False,
    store: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    shards: PathLike | None = None,
    address: str | None = None,
    actors: int = 1,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1,
    batch_size: int | None = None,
    dtype: str | None = None,
    commit_every: float = 0.0,
    progress: ProgressOption = None,
) -> FolderReport:
    """Index a collection with a pool of encoder actors on a Ray cluster.

    The same index as ``zsv index`` (:meth:`SearchEngine.index_folder`) makes: the same
    ids, metadata and state, and on a CPU in float32 bit for bit the same vectors when
    actors run with as many threads as ``zsv index`` did; either command continues
    what the other began.

    Args:
        source: A folder of images, an Unsplash Lite folder (with ``images_dir``), a
            list of paths or URIs (``s3://...``: any ``pyarrow.fs`` file system), or a
            ``ray.data.Dataset`` with columns ``id`` and ``path`` (path or URI) or
            ``bytes``, optionally ``metadata`` (a mapping or JSON text).
        index: The index folder (created when new).
        model: The checkpoint (default: the index's, else ``$ZSV_MODEL``); on a
            cluster, a hub id or a folder that every node can read.
        images_dir: Unsplash Lite only: where the photos are.
        exclude: Glob patterns left out of a folder (as for ``zsv index``).
        root: For a list of paths: the folder ids are relative to.
        allow_removal: Allow removing more than half of a folder's indexed images.
        store: A new index's store kind (``"faiss"``, the default, or ``"pinecone"``).
        store_options: A new index's store options (Pinecone: ``host`` or
            ``index_name``, ``namespace``).
        shards: Where FAISS runs write their Parquet shards, kept after the import: a
            folder every node can reach or a URI. Default: ``.shards`` in the index
            folder, each shard removed once imported (fine on one machine).
        address: A Ray cluster (``"auto"``, ``"ray://head:10001"``); default: the
            cluster this process is connected to, else a local one on 127.0.0.1.
        actors: Encoder actors (one model each).
        gpus_per_actor: GPUs per actor; default 1 when the cluster has GPUs, else 0.
        cpus_per_actor: CPUs per actor (Ray sets the actor's torch threads to it).
        batch_size: Images per chunk and model batch (default 32 with GPUs, 8 without).
        dtype: The model's precision (default: the encoder's for the device).
        commit_every: Seconds between commits of the index (``0``: after every chunk).
        progress: ``True`` for a bar on the driver, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress` after every chunk.

    Returns:
        The run's :class:`~zeroshot_vision._types.FolderReport`.

    Raises:
        BatchTooLargeError: A batch did not fit in an actor's (or its GPU's) memory.
        DistributedJobError: The job failed beyond Ray's retries.
        InvalidInputError: A bad argument, a source that is not a folder, list or
            dataset, an index made with another model, or more actors than the
            cluster has CPUs for (one must stay free for decoding).
        IndexLockedError: Another process writes to the index.
        MissingDependencyError: Ray is not installed (the ``ray`` extra).
    """
    ray = ray_module()
    actors = positive_int(actors, "actors")
    commit_every = non_negative_seconds(commit_every, "commit_every")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    if gpus_per_actor is not None and not (
        isinstance(gpus_per_actor, (int, float)) and gpus_per_actor >= 0
    ):
        raise InvalidInputError(f"gpus_per_actor must be 0 or more, got {gpus_per_actor!r}")
    if not (isinstance(cpus_per_actor, (int, float)) and cpus_per_actor > 0):
        raise InvalidInputError(f"cpus_per_actor must be more than 0, got {cpus_per_actor!r}")
    dataset = source if isinstance(source, ray.data.Dataset) else None
    source_folder = source if isinstance(source, (str, os.PathLike)) else None
    paths: list[PathLike] | None = None
    if source_folder is not None:
        if not Path(os.fspath(source_folder)).expanduser().is_dir():
            raise InvalidInputError(f"{os.fspath(source_folder)} is not a folder")
    elif dataset is None and not isinstance(source, (str, os.PathLike)):
        paths = list(source)

    folder, facts = _open_folder(index, model, store, store_options)
    with closing(folder.open_store()) as target, writer_for(target, folder) as writer:
        started = time.monotonic()
        work: Plan | None = None
        todo: list[Item] = []
        if source_folder is not None or paths is not None:
            # The same plan stage as every other ingest path: same ids, skips, removals.
            source = (
                folder_source(source_folder, images_dir=images_dir, exclude=exclude)
                if source_folder is not None
                else ListedSource(paths=paths or [], root=root)
            )
            writer.begin()
            state = folder.state()
            entries = state.entries()
            view = IndexView(entries=entries, sources=tuple(state.sources()), has_folder=True)
            work = plan(
                writer,
                source.open(view),
                skip=source.skip,
                entries=entries,
                allow_removal=allow_removal,
                started=started,
            )
            todo = list(work.todo)
        else:
            writer.begin()
        with connected(address) as ray:
            _check_room(ray, actors, cpus_per_actor)
            gpus = _gpus(ray, gpus_per_actor)
            size = batch_size or (32 if gpus else 8)
            sink, keep = _sink(folder, facts, shards)
            run = _Run(
                writer=writer,
                sink=sink,
                keep_shards=keep,
                listing={image.id: image for image in todo},
                tracker=Tracker(progress, task="index", total=None if dataset else len(todo)),
                commit_every=commit_every,
                indexed=[],
                failed=[],
                seen=set(),
                last_commit=time.monotonic(),
            )
            try:
                chunks = chunk_images(
                    todo, batch_size=size, model=facts.name, photo_fields=source_folder is not None
                )
                if isinstance(sink, StoreSink):
                    writer.reserve([file_entry(image) for image in todo])
                else:
                    sink.prepare()
                    chunks = _import_written(run, sink, chunks)
                pipeline = _pipeline(
                    ray,
                    dataset,
                    chunks,
                    facts,
                    folder,
                    sink,
                    size,
                    actors,
                    gpus,
                    cpus_per_actor,
                    dtype,
                )
                if pipeline is not None:
                    for result in _results(pipeline, size):
                        run.finish(
                            str(result["shard"]),
                            [str(i) for i in result["indexed"]],
                            list(zip(map(str, result["failed"]), map(str, result["reasons"]))),
                        )
                run.commit()
            finally:
                run.tracker.close()
        count = len(writer.store)
    if work is not None:
        return work.report(indexed=run.indexed, failed=run.failed, count=count)
    return FolderReport(
        indexed=tuple(run.indexed),
        failed=tuple(run.failed),
        count=count,
        seconds=time.monotonic() - started,
    )


def _open_folder(
    index: PathLike, model: str | None, store: str | None, options: Mapping[str, Any] | None
) -> tuple[IndexFolder, ModelFacts]:
    """The index folder (created when new) and the facts of its model."""
    if IndexFolder.exists(index):
        folder = IndexFolder.open(index)
        folder.check_matches(model=model, store=store, store_options=options)
        return folder, model_facts(folder.manifest.model)
    IndexFolder.check_available(index)
    facts = model_facts(model)
    folder = IndexFolder.create(
        index, model=facts.name, dim=facts.dim, store=store or "faiss", store_options=options
    )
    return folder, facts


def _check_room(ray: Any, actors: int, cpus_per_actor: float) -> None:
    """Refuse a pool that would hold every CPU: the decoding tasks would never run."""
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if actors * cpus_per_actor + 1 > cpus:
        raise InvalidInputError(
            f"{actors} actors of {cpus_per_actor:g} CPUs leave none of the cluster's "
            f"{cpus:g} CPUs for decoding images; use fewer actors, or fewer CPUs per actor "
            "(cpus_per_actor=0.5)"
        )


def _gpus(ray: Any, gpus_per_actor: float | None) -> float:
    if gpus_per_actor is not None:
        return float(gpus_per_actor)
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _sink(
    folder: IndexFolder, facts: ModelFacts, shards: PathLike | None
) -> tuple[ShardSink | StoreSink, bool]:
    spec = folder.manifest.store
    if spec.kind == "pinecone":
        if shards is not None:
            raise InvalidInputError(
                "shards= is for FAISS indexes; Pinecone gets the vectors directly"
            )
        return StoreSink(kind=spec.kind, dim=folder.manifest.dim, options=dict(spec.options)), False
    location = shards if shards is not None else folder.path / SHARDS_DIR
    sink = ShardSink.at(location, dim=folder.manifest.dim, model=facts.name)
    return sink, shards is not None


def _import_written(run: _Run, sink: ShardSink, chunks: list[Chunk]) -> list[Chunk]:
    """Import the chunks an earlier run wrote but did not import; return the others."""
    written = sink.names()
    if not written:
        return chunks
    todo = []
    for chunk in chunks:
        if chunk.name in written:
            logger.info("importing %s, written by an earlier run", chunk.name)
            run.finish(chunk.name, [], [])
        else:
            todo.append(chunk)
    if not run.keep_shards:  # shards of inputs that changed since: never to be imported
        for stale in written - {chunk.name for chunk in chunks}:
            sink.remove(stale)
    return todo


def _pipeline(
    ray: Any,
    dataset: Any,
    chunks: list[Chunk],
    facts: ModelFacts,
    folder: IndexFolder,
    sink: ShardSink | StoreSink,
    size: int,
    actors: int,
    gpus: float,
    cpus: float,
    dtype: str | None,
) -> Any:
    """The Ray Data pipeline from listing to sink (``None`` when there is nothing to do)."""
    from zeroshot_vision.distributed._actors import EncodeChunks
    from zeroshot_vision.distributed._stages import DecodeSpec, decode_chunk, pack_chunks

    data = ray.data
    if dataset is None:
        if not chunks:
            return None
        rows = [chunk.row() for chunk in chunks]
        listing = data.from_items(rows, override_num_blocks=min(len(rows), _MAX_INPUT_BLOCKS))
        skip = None
    else:
        held = frozenset(_held(folder))
        listing = dataset.filter(_NotHeld(held)) if held else dataset
        listing = listing.map_batches(
            pack_chunks, batch_size=size, batch_format="numpy", fn_kwargs={"model": facts.name}
        )
        skip = sink if isinstance(sink, ShardSink) else None
    spec = DecodeSpec(pixels=facts.pixels, draft_size=facts.draft_size, shards=skip)
    # A decoding task holds its chunk's pixels and one full-size photo at a time. Asking
    # Ray for that memory also keeps Ray Data from fusing decoding into the actors
    # (it fuses stages with equal resource requests), which would leave them waiting
    # on CPU work instead of running the model.
    decoded = listing.map(
        decode_chunk, fn_kwargs={"spec": spec}, memory=_decode_memory(facts, size)
    )
    pipeline = decoded.map_batches(
        EncodeChunks,
        batch_size=1,
        batch_format="numpy",
        compute=data.ActorPoolStrategy(size=actors),
        num_gpus=gpus,
        num_cpus=cpus,
        fn_constructor_kwargs={
            "model": facts.name,
            "device": "cuda" if gpus else "cpu",
            "dtype": dtype,
            "batch_size": size,
            "sink": sink,
        },
    )
    # The driver's own bar shows progress; Ray Data's would print over it.
    pipeline.context.enable_progress_bars = False
    pipeline.context.print_on_execution_start = False
    return pipeline


def _decode_memory(facts: ModelFacts, size: int) -> int:
    """Bytes a decoding task needs: a worker process, its chunk at model size, and a
    photo being decoded."""
    photo = 256 * (1 << 20) + 3 * 8000 * 6000  # a worker, a 48-megapixel photo decoded
    if facts.pixels is None:
        return size * (8 << 20) + photo  # the chunk's files, as bytes
    return size * facts.pixels.height * facts.pixels.width * 3 + photo


class _NotHeld:
    """``Dataset.filter`` predicate: rows whose id the index does not hold yet."""

    def __init__(self, held: frozenset[str]) -> None:
        self.held = held

    def __call__(self, row: Mapping[str, Any]) -> bool:
        return str(row["id"]) not in self.held


def _held(folder: IndexFolder) -> Iterable[str]:
    entries = folder.state().entries()
    return (item for item, entry in entries.items() if entry.status != "pending")


def _results(pipeline: Any, batch_size: int) -> Iterator[Mapping[str, Any]]:
    """The pipeline's result rows, with Ray's failures turned into the library's errors."""
    try:
        yield from pipeline.iter_rows()
    except Exception as exc:
        raise _job_error(exc, batch_size) from exc


def _job_error(exc: BaseException, batch_size: int) -> ZeroshotVisionError:
    """The library's error for a failed job: the worker's own, when it raised one."""
    from zeroshot_vision.distributed._actors import out_of_memory, too_large

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BatchTooLargeError):
            return BatchTooLargeError(str(current), batch_size=current.batch_size)
        if isinstance(current, ZeroshotVisionError):
            return current
        if out_of_memory(current) or type(current).__name__ == "OutOfMemoryError":
            return too_large(batch_size, _first_line(current))
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return DistributedJobError(f"the Ray job failed: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[-1][:500]
