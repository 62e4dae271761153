"""``SearchEngine``: an encoder and a vector store, composed into search and classify.

An engine lives in memory (``SearchEngine(encoder, store)``) or owns an index folder
(``SearchEngine.create(path)`` / ``SearchEngine.open(path)``), the format ``zsv`` and the
app read and write too, so an index built here opens there and the other way round.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._checks import batched, clean_labels, positive_int, probability
from zeroshot_vision.errors import (
    DimensionMismatchError,
    ImageLoadError,
    InvalidInputError,
    RecordNotFoundError,
)
from zeroshot_vision.images import describe_source, iter_loaded, load_image
from zeroshot_vision.index import FileEntry, IndexFolder
from zeroshot_vision.stores.base import check_k
from zeroshot_vision.stores.filters import validate_filter
from zeroshot_vision.types import (
    ClassifyReport,
    FolderReport,
    ImageFailure,
    ImageSource,
    IndexProgress,
    IndexReport,
    LabelScore,
    Metadata,
    SearchResult,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.stores.base import VectorStore
    from zeroshot_vision.types import Hit

__all__ = ["SearchEngine", "file_id"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Progress = Callable[[int], None]


def _absolute(path: PathLike) -> Path:
    # Absolute and normalized, but symbolic links kept: the path os.walk would give.
    return Path(os.path.abspath(Path(path).expanduser()))  # noqa: PTH100


def file_id(path: PathLike, root: PathLike | None = None) -> str:
    """The id of an image file: its path relative to ``root``, ``/``-separated.

    A file outside ``root`` (or with no root) gets its absolute path. This is the one id
    scheme for files: ``zsv index``, :meth:`SearchEngine.index_folder` and
    :meth:`SearchEngine.index_images` all use it, so the same file never gets two ids.
    """
    from zeroshot_vision._scan import displayable

    absolute = _absolute(path)
    if root is not None:
        base = _absolute(root)
        if absolute.is_relative_to(base) and absolute != base:
            return displayable(absolute.relative_to(base).as_posix())
    return displayable(absolute.as_posix())


class SearchEngine:
    """Text-to-image search, image-to-image search and zero-shot classification.

    Args:
        encoder: Embeds images and texts (:class:`~zeroshot_vision.encoder.Encoder`).
        store: Holds the image vectors (any :class:`~zeroshot_vision.stores.VectorStore`).
        folder: The index folder the store belongs to, when there is one; use
            :meth:`create` or :meth:`open` rather than passing it yourself.

    Raises:
        DimensionMismatchError: The encoder's and the store's dimensions differ.

    Example:
        >>> with SearchEngine.create("my-index") as engine:  # doctest: +SKIP
        ...     engine.index_folder("photos")
        ...     engine.search("a happy golden retriever puppy", k=5)
    """

    def __init__(
        self, encoder: Encoder, store: VectorStore, *, folder: IndexFolder | None = None
    ) -> None:
        if encoder.dim != store.dim:
            raise DimensionMismatchError(
                f"the encoder makes {encoder.dim}-d vectors but the store holds {store.dim}-d "
                "vectors; build the store with dim=encoder.dim",
                expected=store.dim,
                actual=encoder.dim,
            )
        self.encoder = encoder
        self.store = store
        self.folder = folder
        # Changes not yet committed: the store has them in memory, the state not yet.
        self._uncommitted: dict[str, FileEntry | None] = {}
        self._dirty = False
        self._closed = False

    def __repr__(self) -> str:
        where = f", folder={str(self.folder.path)!r}" if self.folder is not None else ""
        return f"SearchEngine(encoder={self.encoder!r}, store={self.store!r}{where})"

    # -- index folders -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: PathLike,
        *,
        model: str | None = None,
        store: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        encoder: Encoder | None = None,
        device: str | None = None,
        dtype: Any = None,
        exist_ok: bool = False,
    ) -> SearchEngine:
        """Create an index folder and an engine that owns it.

        Args:
            path: A new or empty folder.
            model: Checkpoint name or local folder; default ``$ZSV_MODEL``, else
                ``google/siglip-so400m-patch14-384`` (``"tiny"``: a tiny random model).
            store: A registered store kind: ``"faiss"`` (default) or ``"pinecone"``.
            store_options: The kind's options (Pinecone: ``host`` or ``index_name``, and
                ``namespace``; the key stays in ``PINECONE_API_KEY``).
            encoder: An already loaded encoder to use instead of loading ``model``.
            device: Torch device for the encoder.
            dtype: Torch dtype for the encoder.
            exist_ok: If ``path`` already holds an index, open it instead of failing, as
                long as the arguments given do not contradict it.

        Raises:
            InvalidInputError: ``path`` holds an index (and not ``exist_ok``) or other
                files, or the arguments contradict the existing index.
            ModelLoadError: The model cannot be loaded.
        """
        if IndexFolder.exists(path):
            if not exist_ok:
                raise InvalidInputError(
                    f"{path} already holds an index; open it with SearchEngine.open"
                )
            folder = IndexFolder.open(path)
            folder.check_matches(
                model=model or (encoder.model_name if encoder else None),
                store=store,
                store_options=store_options,
            )
            return cls._with_folder(folder, encoder=encoder, device=device, dtype=dtype)
        IndexFolder.check_available(path)  # before the slow model load
        if encoder is None:
            from zeroshot_vision.encoder import Encoder

            encoder = Encoder.from_pretrained(model, device=device, dtype=dtype)
        folder = IndexFolder.create(
            path,
            model=encoder.model_name,
            dim=encoder.dim,
            store=store or "faiss",
            store_options=store_options,
        )
        return cls(encoder, folder.open_store(), folder=folder)

    @classmethod
    def open(
        cls,
        path: PathLike,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        device: str | None = None,
        dtype: Any = None,
    ) -> SearchEngine:
        """Open an index folder: its recorded model and store, nothing else needed.

        Opening takes no lock: any number of engines may search one folder, also while
        another process updates it. The first write takes the folder's lock.

        Args:
            path: The index folder.
            model: Use this checkpoint instead of the recorded one (for example a local
                copy of the same model); its dimension must match.
            encoder: An already loaded encoder to use instead.
            device: Torch device for the encoder.
            dtype: Torch dtype for the encoder.

        Raises:
            IndexNotFoundError: ``path`` holds no index.
            IndexDamagedError: A file of the folder is damaged or from a newer version.
            ModelLoadError: The model cannot be loaded.
            DimensionMismatchError: The model's dimension differs from the index's.
        """
        folder = IndexFolder.open(path)
        return cls._with_folder(folder, encoder=encoder, model=model, device=device, dtype=dtype)

    @classmethod
    def _with_folder(
        cls,
        folder: IndexFolder,
        *,
        encoder: Encoder | None,
        model: str | None = None,
        device: str | None = None,
        dtype: Any = None,
    ) -> SearchEngine:
        store = folder.open_store()  # cheap, and fails before the slow model load
        try:
            if encoder is None:
                from zeroshot_vision.encoder import Encoder

                encoder = Encoder.from_pretrained(
                    model or folder.manifest.model, device=device, dtype=dtype
                )
            if encoder.dim != folder.manifest.dim:
                raise DimensionMismatchError(
                    f"model {encoder.model_name!r} makes vectors of dimension {encoder.dim}, "
                    f"but the index at {folder.path} holds dimension {folder.manifest.dim}",
                    expected=folder.manifest.dim,
                    actual=encoder.dim,
                )
            return cls(encoder, store, folder=folder)
        except BaseException:
            store.close()
            raise

    def commit(self) -> None:
        """Make every write so far durable: the store first, then the folder's state.

        In memory (no index folder) this commits the store, which for a
        :class:`~zeroshot_vision.stores.FaissStore` not opened from a folder does
        nothing. A crash between commits loses at most the writes since the last one;
        the next :meth:`index_folder` redoes them.

        Raises:
            OSError: The store's files cannot be written (a full disk, permissions); what
                was committed before is intact.
        """
        if self.folder is not None:
            self.folder.lock()  # writing the folder's files is the writer's job
        try:
            self.store.commit()
        except OSError as exc:
            where = f" in {self.folder.path}" if self.folder is not None else ""
            # OSError(errno, ...) keeps the subclass (PermissionError, ...) for callers.
            raise OSError(
                exc.errno or errno.EIO,
                f"cannot save the index{where}: {exc.strerror or exc}; what was saved before "
                "is intact, so fix this and run again to continue",
            ) from exc
        if self.folder is not None and self._uncommitted:
            state = self.folder.state()
            state.write(
                [entry for entry in self._uncommitted.values() if entry is not None],
                forget=[item for item, entry in self._uncommitted.items() if entry is None],
            )
        self._uncommitted.clear()
        self._dirty = False

    def close(self) -> None:
        """Commit what this engine wrote, release the folder's lock and the store.

        An engine that only searched writes nothing. Closing twice is harmless.
        """
        if self._closed:
            return
        try:
            if self._dirty:
                self.commit()
        finally:
            self._closed = True
            try:
                self.store.close()
            finally:
                if self.folder is not None:
                    self.folder.unlock()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            # Do not commit half of a failed block; release everything all the same.
            self._dirty = False
            self._uncommitted.clear()
        self.close()

    def _begin_write(self) -> None:
        if self._closed:
            raise InvalidInputError("this engine is closed")
        if self.folder is not None:
            self.folder.lock()
        self._dirty = True

    # -- indexing ----------------------------------------------------------------------

    def index_folder(
        self,
        source: PathLike,
        *,
        images_dir: PathLike | None = None,
        exclude: Sequence[str] | None = None,
        batch_size: int | None = None,
        commit_every: float = 0.0,
        allow_removal: bool = False,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> FolderReport:
        """Bring the index up to date with a folder of images, committing as it goes.

        Recursive and incremental: only new files and files whose size or modification
        time changed are encoded; the vectors of deleted files are removed. Ids are
        paths relative to ``source`` (for an Unsplash Lite folder, photo ids), the same
        as ``zsv index``. A run killed at any moment, even with SIGKILL, leaves an index
        that opens; the next run continues where it stopped.

        Args:
            source: A folder of images, or an Unsplash Lite folder.
            images_dir: For Unsplash Lite: where ``zsv download`` put the photos.
            exclude: Glob patterns of files or folders to leave out, matched against
                paths relative to ``source`` and against names (``"raw"``, ``"*.gif"``).
            batch_size: Images per batch; default the encoder's.
            commit_every: Seconds: commit only once this long has passed since the last
                commit (``0``, the default, commits after every batch).
            allow_removal: Allow a run to remove more than half of the indexed images
                (as when a drive is not mounted, nothing is found: by default that is
                refused, and nothing is removed).
            progress: Called with an :class:`~zeroshot_vision.types.IndexProgress`
                before the first batch and after every batch.

        Raises:
            InvalidInputError: ``source`` is not a folder, the index mirrors another
                folder, or the run would remove most of the index without
                ``allow_removal``.
            IndexLockedError: Another process is writing to this index.
        """
        from zeroshot_vision._sync import sync_folder

        if self.folder is None:
            raise InvalidInputError(
                "index_folder needs an index folder: use SearchEngine.create(path) or "
                "SearchEngine.open(path) (or index_images for an in-memory engine)"
            )
        return sync_folder(
            self,
            source,
            images_dir=images_dir,
            exclude=exclude,
            batch_size=positive_int(batch_size, "batch_size") if batch_size else None,
            commit_every=commit_every,
            allow_removal=allow_removal,
            progress=progress,
        )

    def index_images(
        self,
        images: ImageSource | Iterable[ImageSource],
        *,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
        root: PathLike | None = None,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Embed images and upsert them into the store, skipping unreadable ones.

        Args:
            images: Paths, bytes or PIL images (or one of them).
            ids: One id per image, kept as given. Default (paths only): the path
                relative to ``root`` (see :func:`file_id`), so re-indexing a file
                overwrites its vector instead of adding a second one.
            metadata: One mapping (or ``None``) per image. For paths, ``"path"`` is
                added unless the mapping already has one.
            root: The folder ids are relative to; default the folder this index mirrors
                (its :meth:`index_folder` source), else none (absolute paths).
            batch_size: Images per forward pass and per store write.
            progress: Called with the number of images just handled, after each batch.

        Returns:
            The ids written and, for each skipped image, the reason. A bad image (missing,
            truncated, not an image, a decompression bomb) never aborts the batch.

        Raises:
            InvalidInputError: A folder was passed (use :meth:`index_folder`), ids are
                missing for bytes or PIL images, or lengths differ.
        """
        sources = self._image_list(images)
        if ids is None:
            if not all(isinstance(s, (str, os.PathLike)) for s in sources):
                raise InvalidInputError("pass ids= when indexing bytes or PIL images")
            base = root if root is not None else self._source_root()
            ids = [file_id(s, base) for s in sources]  # type: ignore[arg-type]
        if isinstance(ids, str) or len(ids) != len(sources):
            raise InvalidInputError(f"give one id per image ({len(sources)} images)")
        if metadata is not None and len(metadata) != len(sources):
            raise InvalidInputError(f"got {len(sources)} images but {len(metadata)} metadata")
        for i, item in enumerate(ids):
            if not isinstance(item, str) or not item:
                raise InvalidInputError(f"ids[{i}] must be a non-empty string, got {item!r}")
        metas = [self._metadata_for(sources[i], metadata, i) for i in range(len(sources))]
        size = positive_int(batch_size, "batch_size") if batch_size else self.encoder.batch_size
        self._begin_write()
        indexed: list[str] = []
        failed: list[ImageFailure] = []
        for chunk in self.encode_batches(range(len(sources)), sources, size):
            good = [(i, vector) for i, vector in chunk if not isinstance(vector, ImageLoadError)]
            for i, error in chunk:
                if isinstance(error, ImageLoadError):
                    logger.warning("skipping %s", error)
                    failed.append(
                        ImageFailure(source=describe_source(sources[i]), reason=error.reason)
                    )
            if good:
                entries = [self._entry_for(ids[i], sources[i]) for i, _ in good]
                self.write_vectors(
                    entries,
                    np.stack([vector for _, vector in good]),
                    [metas[i] for i, _ in good],
                )
                indexed.extend(ids[i] for i, _ in good)
            if progress is not None:
                progress(len(chunk))
        report = IndexReport(indexed=tuple(indexed), failed=tuple(failed))
        logger.info("index_images: %s", report)
        return report

    @staticmethod
    def _image_list(images: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
        if isinstance(images, (str, os.PathLike)):
            if Path(images).is_dir():
                raise InvalidInputError(
                    f"{os.fspath(images)} is a folder; index it with index_folder() (or pass "
                    "a list of image files)"
                )
            return [images]
        if isinstance(images, (bytes, bytearray)) or hasattr(images, "getpixel"):
            return [images]  # type: ignore[list-item]
        return list(images)  # type: ignore[arg-type]

    def _source_root(self) -> str | None:
        return self.folder.source() if self.folder is not None else None

    @staticmethod
    def _metadata_for(
        source: object, metadata: Sequence[Metadata | None] | None, i: int
    ) -> dict[str, Any]:
        from zeroshot_vision._scan import displayable

        meta = dict(metadata[i] or {}) if metadata is not None else {}
        if isinstance(source, (str, os.PathLike)):
            meta.setdefault("path", displayable(str(_absolute(source))))
        return meta

    @staticmethod
    def _entry_for(item: str, source: object) -> FileEntry:
        from zeroshot_vision._scan import displayable

        if isinstance(source, (str, os.PathLike)):
            path = _absolute(source)
            try:
                stat = path.stat()
            except OSError:
                return FileEntry(id=item, path=displayable(str(path)))
            return FileEntry(
                id=item, path=displayable(str(path)), size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
        return FileEntry(id=item, path=None)

    def encode_batches(
        self, keys: Iterable[Any], sources: Sequence[ImageSource], size: int
    ) -> Iterator[list[tuple[Any, npt.NDArray[np.float32] | ImageLoadError]]]:
        """Encode images a batch at a time: ``(key, vector or the image's error)`` pairs.

        Decoding runs on worker threads ahead of the model (see
        :func:`~zeroshot_vision.images.iter_loaded`); unreadable images come back as
        their :class:`~zeroshot_vision.errors.ImageLoadError`, never raised.
        """
        loaded = iter_loaded(sources, draft_size=self.encoder.draft_size)
        for chunk in batched(zip(keys, loaded), size):
            images = [image for _, (_, image) in chunk if not isinstance(image, ImageLoadError)]
            vectors = iter(self.encoder.encode_loaded(images))
            yield [
                (key, image if isinstance(image, ImageLoadError) else next(vectors))
                for key, (_, image) in chunk
            ]

    def write_vectors(
        self,
        entries: Sequence[FileEntry],
        vectors: npt.NDArray[np.float32],
        metadata: Sequence[Metadata],
    ) -> None:
        """Upsert vectors, with the folder's state knowing them before the store does.

        Each id is first recorded as *pending* (durably), then written to the store, and
        recorded as indexed at the next :meth:`commit`. A writer killed in between leaves
        pending ids, which the next :meth:`index_folder` re-encodes or removes: no store,
        remote ones included, can be left holding vectors the index does not know.
        """
        self._begin_write()
        if self.folder is not None:
            pending = [
                FileEntry(id=e.id, path=e.path, size=None, mtime_ns=None, status="pending")
                for e in entries
            ]
            self.folder.state().write(pending)
        self.store.upsert([e.id for e in entries], vectors, list(metadata))
        if self.folder is not None:  # in memory there is no state to record them in
            self._uncommitted.update({e.id: e for e in entries})

    def record_entries(self, entries: Iterable[FileEntry], *, forget: Iterable[str] = ()) -> None:
        """Record state rows (and drop others) at the next :meth:`commit`, with the store."""
        self._begin_write()
        if self.folder is not None:
            self._uncommitted.update({e.id: e for e in entries})
            self._uncommitted.update(dict.fromkeys(forget))

    # -- search ------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        min_probability: float | None = None,
        negative: str | None = None,
        negative_weight: float = 0.5,
    ) -> list[SearchResult]:
        """The images that best match a text query, best first.

        Args:
            query: What to look for, in words ("a cyber-punk street at night").
            k: How many results at most.
            filter: A metadata filter (:mod:`zeroshot_vision.stores.filters`).
            min_probability: Drop results whose calibrated probability is lower.
            negative: Words to steer away from ("people"). Retrieval uses the query
                direction minus ``negative_weight`` times the negative direction; scores
                and probabilities still describe the match with ``query`` alone.
            negative_weight: How hard to steer away from ``negative``.

        Raises:
            InvalidInputError: Empty query, ``k`` not a positive integer, a bad filter,
                or ``min_probability`` outside [0, 1].
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query is empty; type some words to search for")
        k = check_k(k)
        validate_filter(filter)
        if min_probability is not None:
            min_probability = probability(min_probability, "min_probability")
        texts = [query] if not (negative and negative.strip()) else [query, negative]
        vectors = self.encoder.encode_texts(texts)
        positive = vectors[0]
        if len(vectors) == 1:
            hits = self.store.query(positive, k=k, filter=filter)
            scores = np.array([hit.score for hit in hits])
        else:
            direction = positive - negative_weight * vectors[1]
            hits = self.store.query(direction, k=k, filter=filter)
            records = self.store.fetch([hit.id for hit in hits])
            scores = np.array(
                [
                    float(records[hit.id].vector @ positive) if hit.id in records else hit.score
                    for hit in hits
                ]
            )
        probabilities = self.encoder.probability(scores) if len(hits) else np.zeros(0)
        results = [
            SearchResult(id=hit.id, score=float(score), probability=float(p), metadata=hit.metadata)
            for hit, score, p in zip(hits, scores, probabilities)
        ]
        if min_probability is not None:
            results = [r for r in results if (r.probability or 0.0) >= min_probability]
        return results

    def search_by_image(
        self, image: ImageSource, k: int = 10, *, filter: Mapping[str, Any] | None = None
    ) -> list[SearchResult]:
        """The stored images most similar to ``image`` (a path, bytes or PIL image).

        Image-to-image similarity has no calibrated probability: ``probability`` is None.

        Raises:
            ImageLoadError: ``image`` cannot be read.
        """
        k = check_k(k)
        validate_filter(filter)
        loaded = load_image(image, draft_size=self.encoder.draft_size)
        vector = self.encoder.encode_loaded([loaded])[0]
        return _results(self.store.query(vector, k=k, filter=filter))

    def search_by_id(
        self, id: str, k: int = 10, *, filter: Mapping[str, Any] | None = None
    ) -> list[SearchResult]:
        """ "More like this": the stored images most similar to a stored one, itself excluded.

        Raises:
            RecordNotFoundError: ``id`` is not in the store (also a ``KeyError``).
        """
        k = check_k(k)
        validate_filter(filter)
        record = self.store.fetch([id]).get(id)
        if record is None:
            raise RecordNotFoundError(f"no image with id {id!r} in the store", id=id)
        hits = self.store.query(record.vector, k=k + 1, filter=filter)
        return _results([hit for hit in hits if hit.id != id][:k])

    # -- classification ----------------------------------------------------------------

    def classify(
        self, image: ImageSource, labels: str | Sequence[str], *, softmax: bool | None = None
    ) -> list[LabelScore]:
        """Score ``labels`` against one image (see :meth:`Encoder.classify`); no store needed."""
        return self.encoder.classify(image, labels, softmax=softmax)

    def classify_many(
        self,
        images: Iterable[ImageSource],
        labels: str | Sequence[str],
        *,
        softmax: bool | None = None,
        batch_size: int | None = None,
    ) -> ClassifyReport:
        """Score ``labels`` against many images (see :meth:`Encoder.classify_many`)."""
        return self.encoder.classify_many(
            images, clean_labels(labels), softmax=softmax, batch_size=batch_size
        )


def _results(hits: list[Hit]) -> list[SearchResult]:
    return [
        SearchResult(id=hit.id, score=hit.score, probability=None, metadata=hit.metadata)
        for hit in hits
    ]
