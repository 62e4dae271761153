"""Videos as a source of frames: each chosen frame of a video file is one item.

A folder run with videos on (:class:`~zeroshot_vision.ingest._sources.FolderSource`'s
``video``) lists a video file as its chosen frames (see
:func:`~zeroshot_vision._images.video.select_frames`), each an item with:

* the id ``<file id>#t=<seconds, 3 decimals>`` (``clip.mp4#t=12.500``);
* the video's ``display_path``, size and mtime: when the file changes, every frame is
  listed anew and the old ones that are not listed again are removed; when it goes, all
  of them go;
* metadata ``path`` (the video), ``timestamp``, ``scene_start``, ``scene_end`` (seconds),
  ``duration``, ``width``/``height`` and, where the container says, ``taken``/``year``/
  ``month`` and ``latitude``/``longitude`` (so date and place filters work for videos).

**One decode.** Choosing frames decodes the whole video once, so it is done only for
new and changed videos: the choice is kept in the index folder (``video-frames.json``,
a cache: deleting it costs a new analysis), keyed by the file's path, size, mtime and
the options. The same pass keeps the chosen frames' pictures (downscaled to
``max_side``, JPEG-compressed at quality 95) for the encode stage, within one budget
for the whole run (:data:`HELD_BYTES`); a frame whose picture was not kept (over the
budget, thinned by ``max_frames``, or a run that resumes with a cached choice) is
decoded again when the encode stage asks for it, all such frames of one video in one
forward pass.

**Resuming.** The cached choice is written before any frame is encoded, and frames are
written in order; a run killed in the middle of a video lists the same frames next time,
and only those not yet recorded are encoded: no duplicate, no missing frame.

**Bad videos** (empty, truncated before the first frame, not a video, audio only) are
one recorded failure under the file's own id, not retried until the file changes. A
frame that cannot be decoded (a file truncated after its first frames) is that frame's
recorded failure.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import ImageDecodeError, ImageLoadError, MissingDependencyError
from zeroshot_vision._images.video import VIDEO_SUFFIXES, FrameSelection, VideoOptions
from zeroshot_vision.ingest._item import Item

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._types import ImageSource
    from zeroshot_vision.ingest._source import IndexView

__all__ = [
    "CACHE_FILE",
    "HELD_BYTES",
    "FrameReader",
    "HeldFrames",
    "VideoFrameItem",
    "expand_videos",
    "frame_id",
    "is_video",
    "video_available",
]

logger = logging.getLogger(__name__)

CACHE_FILE = "video-frames.json"
"""The index folder's cache of chosen frames (see the module)."""

HELD_BYTES = 256 * 1024 * 1024
"""At most this many bytes of kept pictures (JPEG) in one run: about 2,000 frames of
768 x 432; past it, frames are decoded again at encode time."""

_SAVE_EVERY = 30.0
"""Seconds between saves of the cache while a listing analyses many new videos."""


def frame_id(file_id: str, timestamp: float) -> str:
    """A frame's id: the file's id and its time, ``clip.mp4#t=12.500``."""
    return f"{file_id}#t={timestamp:.3f}"


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s suffix is a video's (see :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_available() -> bool:
    """Whether the ``video`` extra (PyAV) is installed."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


class _Budget:
    """Bytes of kept pictures still allowed in this run (shared by its videos)."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if size > self.left:
                return False
            self.left -= size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.left += size


class HeldFrames:
    """The pictures one pass chose (a :class:`~zeroshot_vision._images.video.FrameKeeper`),
    JPEG-compressed within the run's budget, each handed out once."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self._jpegs: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def __contains__(self, position: object) -> bool:
        return position in self._jpegs

    def keep(self, position: int, picture: Image.Image) -> None:
        """Compress and keep ``picture``, when the budget allows."""
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=95)
        data = buffer.getvalue()
        if self._budget.take(len(data)):
            with self._lock:
                self._jpegs[position] = data

    def keep_only(self, positions: Collection[int]) -> None:
        """Drop (and give back to the budget) every picture but those at ``positions``."""
        with self._lock:
            for position in [p for p in self._jpegs if p not in positions]:
                self._budget.give(len(self._jpegs.pop(position)))

    def take(self, position: int) -> Image.Image | None:
        """The picture at ``position``, given up by this holder; ``None`` if not held."""
        from PIL import Image

        with self._lock:
            data = self._jpegs.pop(position, None)
        if data is None:
            return None
        self._budget.give(len(data))
        image = Image.open(io.BytesIO(data))
        image.load()
        return image


class FrameReader:
    """Decodes the chosen frames of one video in one forward pass, as they are asked for.

    Shared by the frame items of one video. Asked in order (the encode stage), each frame
    costs its share of one pass; asked out of order (an extractor reading pixels again),
    the last frames handed out are kept, and anything else restarts the pass. Frames
    whose pictures the choosing pass kept (``held``) are not decoded again. Safe to call
    from several threads.
    """

    _KEEP = 4

    def __init__(
        self,
        path: Path,
        positions: Iterable[int],
        options: VideoOptions,
        *,
        skip_frame: str = "DEFAULT",
        held: HeldFrames | None = None,
    ) -> None:
        self.path = path
        self.positions = tuple(sorted(set(positions)))
        self.options = options
        self.skip_frame = skip_frame
        self.held = held
        self._lock = threading.Lock()
        self._frames: Iterator[tuple[int, Image.Image]] | None = None
        self._recent: dict[int, Image.Image] = {}
        self._error: ImageLoadError | None = None

    def frame(self, position: int) -> Image.Image:
        """The frame at ``position``.

        Raises:
            ImageDecodeError: The video (or this frame) cannot be decoded.
        """
        from zeroshot_vision._images.video import read_frames

        with self._lock:
            if position in self._recent:
                return self._recent[position]
            picture = self.held.take(position) if self.held is not None else None
            if picture is not None:
                self._remember(position, picture)
                return picture
            for attempt in range(2):
                if self._frames is None:
                    held = self.held if self.held is not None else ()
                    self._frames = read_frames(
                        self.path,
                        [p for p in self.positions if p not in held],
                        self.options,
                        skip_frame=self.skip_frame,
                    )
                try:
                    for found, image in self._frames:
                        self._remember(found, image)
                        if found == position:
                            return image
                        if found > position:
                            break
                except ImageLoadError as exc:
                    self._frames = None
                    raise ImageDecodeError(exc.source, exc.reason) from exc
                # Passed it (asked out of order) or reached the end: one fresh pass.
                self._frames = None
                if attempt == 0 and position in self.positions:
                    continue
            raise ImageDecodeError(str(self.path), f"frame {position} could not be decoded")

    def _remember(self, position: int, image: Image.Image) -> None:
        self._recent[position] = image
        while len(self._recent) > self._KEEP:
            self._recent.pop(next(iter(self._recent)))


@dataclass(frozen=True, kw_only=True, eq=False)
class VideoFrameItem(Item):
    """One chosen frame of a video (or, with ``error``, a video that gave none).

    Attributes:
        position: The frame's place in decoding order.
        reader: Decodes it, shared with the video's other frames (``None`` with ``error``).
        error: Why the video gave no frame: the encode stage records it as the item's
            failure.
    """

    position: int = 0
    reader: FrameReader | None = field(default=None, repr=False)
    error: ImageLoadError | None = None

    def pixels(self) -> ImageSource:
        """The decoded frame (a PIL image), upright and downscaled.

        Raises:
            ImageLoadError: The video, or this frame, cannot be decoded.
        """
        if self.error is not None:
            raise self.error
        if self.reader is None:
            raise ImageDecodeError(self.name, "no frame reader")
        return self.reader.frame(self.position)

    def image(self) -> Image.Image:
        """The decoded frame (see :meth:`pixels`)."""
        from zeroshot_vision._images import load_image

        return load_image(self.pixels())


@dataclass(kw_only=True)
class _Cache:
    """The index folder's ``video-frames.json``: chosen frames by file."""

    path: Path | None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False
    saved: float = field(default_factory=time.monotonic)

    @classmethod
    def load(cls, folder: Path | None) -> _Cache:
        if folder is None:
            return cls(path=None)
        path = folder / CACHE_FILE
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, dict):
                raise ValueError("not an object")
        except FileNotFoundError:
            rows = {}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring the video frame cache %s: %s", path, exc)
            rows = {}
        return cls(path=path, rows=rows)

    def get(self, item: Item, options: VideoOptions) -> FrameSelection | None:
        row = self.rows.get(item.display_path or "")
        if not row or [row.get("size"), row.get("mtime_ns"), row.get("options")] != [
            item.size,
            item.mtime_ns,
            options.key(),
        ]:
            return None
        try:
            return FrameSelection.from_json(row["selection"])
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, item: Item, options: VideoOptions, selection: FrameSelection) -> None:
        if item.display_path is None:
            return
        self.rows[item.display_path] = {
            "size": item.size,
            "mtime_ns": item.mtime_ns,
            "options": options.key(),
            "selection": selection.to_json(),
        }
        self.dirty = True
        if time.monotonic() - self.saved >= _SAVE_EVERY:
            self.save()

    def forget(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.rows.pop(path, None)
            self.dirty = True

    def save(self) -> None:
        """Write the cache (atomically), if it changed."""
        from zeroshot_vision._files import write_atomic

        if self.path is None or not self.dirty:
            return
        try:
            write_atomic(self.path, json.dumps(self.rows, sort_keys=True).encode())
        except OSError as exc:  # a cache: the next run analyses again
            logger.warning("cannot save the video frame cache %s: %s", self.path, exc)
        self.dirty = False
        self.saved = time.monotonic()


def expand_videos(
    items: Iterable[Item],
    options: VideoOptions,
    index: IndexView,
    *,
    covers: Callable[[str], bool] | None = None,
) -> Iterator[Item]:
    """``items`` with each video file replaced by its chosen frames (see the module).

    Other items pass through unchanged. Read lazily: a video is analysed when the
    iteration reaches it, and only when the index folder's cache has no choice for it.

    Args:
        items: A source's items; those whose file has a video suffix are expanded.
        options: How frames are chosen.
        index: The index (its folder keeps the cache).
        covers: Whether a path lies where the source looked: cached choices for such
            paths that were not listed are dropped (the file is gone).
    """
    from zeroshot_vision._images import video

    cache = _Cache.load(index.folder)
    budget = _Budget(HELD_BYTES)
    listed: set[str] = set()
    for item in items:
        path = item.local_path()
        if path is None or not is_video(path):
            yield item
            continue
        if item.display_path is not None:
            listed.add(item.display_path)
        selection = cache.get(item, options)
        held = None
        if selection is None:
            held = HeldFrames(budget) if options.one_pass else None
            try:
                selection = video.scan_frames(path, options, held)
            except MissingDependencyError:
                raise
            except ImageLoadError as exc:
                logger.info("video %s: %s", item.name, exc.reason)
                yield VideoFrameItem(
                    id=item.id,
                    path=item.path,
                    display_path=item.display_path,
                    size=item.size,
                    mtime_ns=item.mtime_ns,
                    metadata=item.metadata,
                    error=ImageDecodeError(item.name, exc.reason),
                )
                continue
            cache.put(item, options, selection)
        yield from _frames(item, path, selection, options, held)
    if covers is not None:
        cache.forget(path for path in list(cache.rows) if covers(path) and path not in listed)
    cache.save()


def _frames(
    item: Item,
    path: Path,
    selection: FrameSelection,
    options: VideoOptions,
    held: HeldFrames | None,
) -> Iterator[VideoFrameItem]:
    reader = FrameReader(
        path,
        (f.position for f in selection.frames),
        options,
        skip_frame=selection.skip_frame,
        held=held,
    )
    base: Mapping[str, Any] = {**selection.facts, **item.metadata}
    for frame in selection.frames:
        item_id = frame_id(item.id, frame.timestamp)
        yield VideoFrameItem(
            id=item_id,
            path=item.path,
            display_path=item.display_path,
            size=item.size,
            mtime_ns=item.mtime_ns,
            label=f"{item.display_path or item.id}#t={frame.timestamp:.3f}",
            metadata={
                **base,
                "timestamp": frame.timestamp,
                "scene_start": frame.scene_start,
                "scene_end": frame.scene_end,
            },
            position=frame.position,
            reader=reader,
        )
