"""The library's sources: a folder tree, a list of images, a Parquet export, listed files.

An Unsplash Lite folder is a :class:`FolderSource` whose photos
resolves with :func:`~zeroshot_vision.ingest._scan.scan_unsplash` (see
:func:`folder_source`); a Hugging Face dataset is
:class:`~zeroshot_vision.integrations.hf_datasets.DatasetSource`, beside the code that
knows that format.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._checks import check_id
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.folder import FileEntry, SourceFolder
from zeroshot_vision._index.scan import absolute, check_exclude, displayable, file_id
from zeroshot_vision._types import ImageFailure
from zeroshot_vision.ingest._item import Item
from zeroshot_vision.ingest._scan import Scan, scan_source
from zeroshot_vision.ingest._source import IndexView, Listing, SkipRule

if TYPE_CHECKING:
    from zeroshot_vision._images.video import VideoOptions
    from zeroshot_vision._types import ImageSource, Metadata

__all__ = ["FolderSource", "ImageListSource", "ParquetSource", "folder_source"]

PathLike = str | os.PathLike[str]


class FolderSource:
    """A folder tree: every image file under it, incremental, with removals.

    Ids are paths relative to the folder (``/``-separated); a folder added to an index
    that already mirrors another gets ids that start with its name. Metadata: ``path``
    and ``folders`` (see :func:`~zeroshot_vision._index.scan.folder_ancestors`).

    Args:
        path: The folder.
        exclude: Glob patterns of files or folders to leave out.
        scan: Lists the folder's images, given the folder and the exclude patterns;
            default :func:`~zeroshot_vision.ingest._scan.scan_source` (a folder tree). A
            folder format that resolves its own files passes its own (Unsplash Lite:
            :func:`~zeroshot_vision.ingest._scan.scan_unsplash`).
        video: Index video files too (``.mp4``, ``.mov``, ``.webm``, ``.mkv``, ``.m4v``),
            as their chosen frames (see :mod:`zeroshot_vision.ingest._video`), chosen
            with these options; ``None``: images only. Needs the ``video`` extra.

    Raises:
        InvalidInputError: ``path`` is not a folder, or a pattern is empty.
    """

    skip: SkipRule = "unchanged"

    def __init__(
        self,
        path: PathLike,
        *,
        exclude: Sequence[str] | None = None,
        scan: Callable[[str, tuple[str, ...]], Scan] | None = None,
        video: VideoOptions | None = None,
    ) -> None:
        self.exclude = check_exclude(exclude)
        self.video = video
        self.root = str(Path(path).expanduser().resolve())
        if not Path(self.root).is_dir():
            hint = ""
            if Path(self.root).is_file():
                hint = " (a folder run indexes folders; index single files, videos too, "
                hint += "with SearchEngine.index_images)"
            raise InvalidInputError(f"{displayable(os.fspath(path))} is not a folder{hint}")
        self._scan = scan

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"

    def scan(self) -> Scan:
        """The folder's images, with ids (relative paths for a folder tree)."""
        if self._scan is not None:
            return self._scan(self.root, self.exclude)
        if self.video is not None:
            from zeroshot_vision._images import IMAGE_SUFFIXES
            from zeroshot_vision._images.video import VIDEO_SUFFIXES

            suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            return scan_source(self.root, exclude=self.exclude, suffixes=suffixes)
        return scan_source(self.root, exclude=self.exclude)

    def open(self, index: IndexView) -> Listing:
        """List the folder's images with the ids this index gives them.

        Raises:
            InvalidInputError: The folder lies inside (or holds) a folder the index
                mirrors, or a file would get an id another source's file holds.
        """
        root = displayable(self.root)
        source = _source_for(root, index.sources, index.entries)
        scan = self.scan()
        items = tuple(
            dataclasses.replace(image, id=source.image_id(image.id)) for image in scan.images
        )
        _check_ids_are_free(items, index.entries, scan)

        def covers(entry: FileEntry) -> bool:
            return entry.path is not None and scan.covers(entry.path)

        listed: Iterable[Item] = items
        if self.video is not None and self._scan is None:
            from zeroshot_vision.ingest._video import expand_videos

            # A video is many items (its frames), known once it is analysed: listed
            # lazily, so that the plan stage reads them as it goes.
            listed = expand_videos(items, self.video, index, covers=scan.covers)
        return Listing(
            items=listed,
            total=len(items) if listed is items else None,
            root=root,
            covers=covers,
            unreadable=tuple(
                ImageFailure(source=where, reason=why) for where, why in scan.unreadable
            ),
            register=source if source not in index.sources else None,
        )


def folder_source(
    path: PathLike,
    *,
    images_dir: PathLike | None = None,
    exclude: Sequence[str] | None = None,
    video: VideoOptions | None = None,
) -> FolderSource:
    """The source for a folder: Unsplash Lite when it holds a ``photos`` table, else a tree
    (with its videos' frames when ``video`` says how to choose them).

    Raises:
        InvalidInputError: ``path`` (or ``images_dir``) is not a folder.
    """
    from zeroshot_vision.ingest._scan import scan_unsplash
    from zeroshot_vision.unsplash._lite import is_unsplash_dir

    folder = Path(path).expanduser()
    if folder.is_dir() and images_dir and not Path(images_dir).expanduser().is_dir():
        raise InvalidInputError(f"{images_dir} is not a folder")
    if folder.is_dir() and is_unsplash_dir(folder.resolve()):

        def photos(root: str, exclude: tuple[str, ...]) -> Scan:
            return scan_unsplash(root, images_dir=images_dir, exclude=exclude)

        return FolderSource(path, exclude=exclude, scan=photos)
    return FolderSource(path, exclude=exclude, video=video)


@dataclass(frozen=True, kw_only=True)
class ImageListSource:
    """Images given one by one: paths, bytes, PIL images or arrays, with their ids.

    What :meth:`SearchEngine.index_images` indexes (and LangChain's ``add_images`` and
    LlamaIndex through it). Every image is written (upserted): nothing is skipped and
    nothing removed. A path's item records the file's size and time when the index has
    a folder, so that a later folder run knows it unchanged.

    Attributes:
        images: The images.
        ids: One id per image.
        metadata: One mapping per image (``"path"`` is added for paths).
        video: How to choose the frames of a video file given by path (``.mp4``,
            ``.mov``, ``.webm``, ``.mkv``, ``.m4v``): each chosen frame becomes an item, as
            in a folder run (ids ``<id>#t=<seconds>``). ``None``: a video path is a
            recorded failure that says how to index it.
    """

    images: Sequence[ImageSource]
    ids: Sequence[str]
    metadata: Sequence[Mapping[str, Any]]
    video: VideoOptions | None = None
    skip: SkipRule = field(default="never", init=False)

    @classmethod
    def of(
        cls,
        images: Sequence[ImageSource],
        *,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
        root: PathLike | None = None,
        video: VideoOptions | None = None,
    ) -> ImageListSource:
        """Check and complete what ``index_images`` was given.

        Raises:
            InvalidInputError: Ids are missing for bytes or PIL images, empty, or their
                count (or the metadata's) differs from the images'.
        """
        if ids is None:
            if not all(isinstance(s, (str, os.PathLike)) for s in images):
                raise InvalidInputError("pass ids= when indexing bytes or PIL images")
            ids = [file_id(s, root) for s in images]  # type: ignore[arg-type]
        if isinstance(ids, str) or len(ids) != len(images):
            raise InvalidInputError(f"give one id per image ({len(images)} images)")
        if metadata is not None and len(metadata) != len(images):
            raise InvalidInputError(f"got {len(images)} images but {len(metadata)} metadata")
        for i, item in enumerate(ids):
            check_id(item, f"ids[{i}]")  # the one id rule, before any image is read
        metas = []
        for i, image in enumerate(images):
            meta = dict(metadata[i] or {}) if metadata is not None else {}
            if isinstance(image, (str, os.PathLike)):
                meta.setdefault("path", displayable(str(absolute(image))))
            metas.append(meta)
        return cls(images=list(images), ids=list(ids), metadata=metas, video=video)

    def open(self, index: IndexView) -> Listing:
        """The images as items, in order (a video path as its chosen frames)."""
        from zeroshot_vision.ingest._video import expand_videos, is_video

        items: Iterable[Item] = self._items(stat=index.has_folder)
        videos = any(isinstance(s, (str, os.PathLike)) and is_video(s) for s in self.images)
        if videos and self.video is not None:
            return Listing(items=expand_videos(items, self.video, index), total=None, root=None)
        return Listing(items=items, total=len(self.images), root=None)

    def _items(self, *, stat: bool) -> Iterator[Item]:
        from zeroshot_vision._images import describe_source
        from zeroshot_vision.ingest._video import is_video

        for item_id, image, meta in zip(self.ids, self.images, self.metadata):
            label = describe_source(image)
            if not isinstance(image, (str, os.PathLike)):
                yield Item(id=item_id, data=image, metadata=meta, label=label)
                continue
            path = absolute(image)
            if self.video is None and is_video(path):
                yield _video_refused(item_id, image, meta, label)
                continue
            size = mtime = None
            # Only an index folder's state needs a file's size and mtime: no stat for
            # every image of an in-memory engine.
            if stat:
                try:
                    info = path.stat()
                    size, mtime = info.st_size, info.st_mtime_ns
                except OSError:
                    pass
            yield Item(
                id=item_id,
                path=image if isinstance(image, str) else Path(image),
                display_path=displayable(str(path)) if stat else None,
                size=size,
                mtime_ns=mtime,
                metadata=meta,
                label=label,
            )


def _video_refused(item_id: str, image: PathLike, meta: Mapping[str, Any], label: str) -> Item:
    """A video path given with videos off: its recorded failure says how to index it."""
    from zeroshot_vision._errors import ImageDecodeError
    from zeroshot_vision.ingest._video import VideoFrameItem

    reason = (
        "a video file: pass video=True to index its frames (needs the 'video' extra: "
        "pip install 'zeroshot-vision[video]')"
    )
    return VideoFrameItem(
        id=item_id,
        path=image if isinstance(image, str) else Path(image),
        metadata=meta,
        label=label,
        error=ImageDecodeError(displayable(str(absolute(image))), reason),
    )


@dataclass(frozen=True, kw_only=True)
class ParquetSource:
    """The records of a Parquet export (``zsv export``): vectors already computed.

    Nothing is encoded: each record's vector is written as it is, with its metadata;
    the state records the ``path`` its metadata names, if any.

    Attributes:
        batches: ``(ids, vectors, metadata)`` batches, already checked against the
            index's dimension (:meth:`~zeroshot_vision.stores._parquet.ParquetVectors.batches`).
        name: The file, for logs.
    """

    batches: Iterable[tuple[Sequence[str], Any, Sequence[Metadata | None]]]
    name: str | None = None
    skip: SkipRule = field(default="never", init=False)

    def open(self, index: IndexView) -> Listing:
        """The records as items carrying their vectors."""
        return Listing(items=self._items(), root=self.name)

    def _items(self) -> Iterator[Item]:
        for ids, vectors, metadata in self.batches:
            for item_id, vector, meta in zip(ids, vectors, metadata):
                path = (meta or {}).get("path")
                yield Item(
                    id=item_id,
                    display_path=path if isinstance(path, str) and path else None,
                    metadata=meta or {},
                    vector=vector,
                )


def _source_for(
    root: str, sources: Sequence[SourceFolder], entries: Mapping[str, FileEntry]
) -> SourceFolder:
    """The recorded source at ``root``, or a new one with an id prefix no id uses.

    Raises:
        InvalidInputError: ``root`` lies inside a recorded source, or holds one: its
            files would be two sources' at once.
    """
    for source in sources:
        if source.path == root:
            return source
    for source in sources:
        inner, outer = (root, source.path), (source.path, root)
        for child, parent in (inner, outer):
            if Path(child).is_relative_to(parent):
                raise InvalidInputError(
                    f"{child} lies inside {parent}, which this index already mirrors or is "
                    "asked to; index one of them, or use another index folder"
                )
    if not sources:
        # The first source keeps plain relative ids, as an index of one folder always had.
        return SourceFolder(path=root)
    taken = {s.prefix for s in sources} | {item.split("/", 1)[0] for item in entries}
    name = Path(root).name or "source"
    prefix, n = name, 1
    while prefix in taken:
        n += 1
        prefix = f"{name}-{n}"
    return SourceFolder(path=root, prefix=prefix)


def _check_ids_are_free(
    items: Sequence[Item], entries: Mapping[str, FileEntry], scan: Scan
) -> None:
    """Refuse ids that another source's files already hold (never overwrite them)."""
    for item in items:
        entry = entries.get(item.id)
        if entry is not None and entry.path is not None and not scan.covers(entry.path):
            raise InvalidInputError(
                f"{item.display_path} would get the id {item.id!r}, which {entry.path} (of "
                "another source) holds; rename one of them, or use another index folder"
            )
