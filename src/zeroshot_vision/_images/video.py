"""Video files as frames: which to index (scene cuts plus a maximum interval), and their pixels.

Needs the ``video`` extra (PyAV, the FFmpeg binding, whose wheels carry FFmpeg).

* :func:`select_frames` decodes a video once and compares small grayscale thumbnails
  (64 x 36, scaled by FFmpeg) of frames at most :data:`ANALYSIS_FPS` a second apart
  (mean absolute difference, 0 to 255): a difference over
  :attr:`VideoOptions.cut_threshold` starts a new scene. Each scene is cut into slices of
  :attr:`VideoOptions.max_interval` seconds from its start (the last one shorter), and
  each slice gives the compared frame nearest its middle, so a chosen frame is never a
  blend on a cut and no two chosen frames of a scene lie more than the interval apart.
  The choice is made as the pass goes (:func:`scan_frames` hands each chosen frame's
  picture to a :class:`FrameKeeper`), so the encode stage needs no second decode.
* :func:`read_frames` decodes the chosen frames again (by their position in decoding
  order), for a frame whose picture was not kept; both passes scale at conversion to at
  most :attr:`VideoOptions.max_side` pixels on a side and turn frames upright (the
  stream's display matrix or ``rotate`` tag).

Bounds: at most :attr:`VideoOptions.max_frames` frames per video (more are thinned
evenly over the video); a pass holds FFmpeg's frames at the source's resolution, one
64 x 36 thumbnail and, with a keeper, at most 17 candidates of the current slice (FFmpeg
frames up to 1920 x 1088, downscaled pictures above that) besides what the keeper keeps.
Frames whose time goes backwards (a broken muxer) are never chosen, so ids stay unique
and ordered.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zeroshot_vision._errors import ImageDecodeError, InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ANALYSIS_FPS",
    "VIDEO_SUFFIXES",
    "FrameChoice",
    "FrameKeeper",
    "FrameSelection",
    "VideoOptions",
    "frame_at",
    "read_frames",
    "scan_frames",
    "select_frames",
]

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv"})
"""File suffixes that a folder run reads as videos (lower case)."""

ANALYSIS_FPS = 10.0
"""At most this many frames a second are compared for scene cuts (the rest are decoded
but not compared: a cut is found at most a tenth of a second late)."""

_THUMB = (64, 36)

_LUMA_FIRST = {
    "yuv420p": False, "yuv422p": False, "yuv444p": False, "nv12": False, "nv21": False,
    "yuvj420p": True, "yuvj422p": True, "yuvj444p": True,
}  # fmt: skip
"""8-bit formats whose first plane is luma, and whether it is full range (0-255)."""


def _thumbnail(frame: Any) -> Any:
    """A 64 x 36 grayscale thumbnail (float32, 0 to 255) to compare frames by.

    For the common 8-bit YUV formats it is read straight from the luma plane: each cell
    the mean of four samples (a 2 x 2 grid inside it), about 100 times cheaper than
    FFmpeg's scaler; other formats are scaled by FFmpeg.
    """
    import numpy as np

    full_range = _LUMA_FIRST.get(frame.format.name)
    if full_range is None or frame.height < 2 * _THUMB[1] or frame.width < 2 * _THUMB[0]:
        thumb = frame.reformat(width=_THUMB[0], height=_THUMB[1], format="gray")
        return thumb.to_ndarray().astype(np.float32)
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    cells: Any = 0.0
    for row_at in (0.25, 0.75):
        rows = ((np.arange(_THUMB[1]) + row_at) * frame.height / _THUMB[1]).astype(np.intp)
        for col_at in (0.25, 0.75):
            cols = ((np.arange(_THUMB[0]) + col_at) * frame.width / _THUMB[0]).astype(np.intp)
            cells = cells + luma[np.ix_(rows, cols)].astype(np.float32)
    cells = cells / 4.0
    if not full_range:  # limited range (16-235) stretched to 0-255, as FFmpeg's gray is
        cells = np.clip((cells - 16.0) * (255.0 / 219.0), 0.0, 255.0)
    return cells


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How frames are chosen and decoded.

    Attributes:
        max_interval: Seconds: a scene longer than this gets more frames, so that no two
            chosen frames of a scene lie further apart.
        cut_threshold: Mean absolute difference (0 to 255) of two consecutive grayscale
            thumbnails over which a new scene starts.
        max_frames: At most this many frames per video.
        max_side: Chosen frames are downscaled at decode to at most this many pixels on
            their longer side.
        one_pass: Decode a video once: a stream of more than 20 frames a second without
            the frames nothing refers to (most B-frames), and the chosen frames' pictures
            kept from that pass for the encode stage (see docs/video.md for the memory
            bound). ``False``: every frame is decoded, and the chosen ones are decoded
            again at encode time (twice the decoding, only thumbnails held).
    """

    max_interval: float = 5.0
    cut_threshold: float = 30.0
    max_frames: int = 200
    max_side: int = 768
    one_pass: bool = True

    def __post_init__(self) -> None:
        if not (self.max_interval > 0 and math.isfinite(self.max_interval)):
            raise InvalidInputError(f"max_interval must be positive, got {self.max_interval}")
        if not 0 < self.cut_threshold <= 255:
            raise InvalidInputError(f"cut_threshold must be in (0, 255], got {self.cut_threshold}")
        if self.max_frames < 1 or self.max_side < 16:
            raise InvalidInputError("max_frames must be >= 1 and max_side >= 16")

    def key(self) -> str:
        """What a cached selection must have been made with to be reused."""
        return f"{self.max_interval:g}/{self.cut_threshold:g}/{self.max_frames}"


@dataclass(frozen=True, kw_only=True)
class FrameChoice:
    """One chosen frame.

    Attributes:
        position: Its place in decoding order (0 for the first frame decoded).
        timestamp: Seconds from the start of the video.
        scene_start: When its scene starts, in seconds.
        scene_end: When its scene ends, in seconds.
    """

    position: int
    timestamp: float
    scene_start: float
    scene_end: float


@dataclass(frozen=True, kw_only=True)
class FrameSelection:
    """What :func:`select_frames` found in a video.

    Attributes:
        frames: The chosen frames, by time.
        facts: What the container says of the video, as metadata for every frame:
            ``duration`` (seconds), ``width``/``height`` (as displayed), and where present
            ``taken``/``year``/``month`` (its creation time, as photos have them) and
            ``latitude``/``longitude``.
        skip_frame: The decoder's ``skip_frame`` the frames' positions count in
            (``"DEFAULT"``: every frame; ``"NONREF"``: the referenced ones).
    """

    frames: tuple[FrameChoice, ...]
    facts: Mapping[str, Any]
    skip_frame: str = "DEFAULT"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_json`)."""
        return {
            "frames": [asdict(f) for f in self.frames],
            "facts": dict(self.facts),
            "skip_frame": self.skip_frame,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrameSelection:
        """The selection :meth:`to_json` wrote."""
        return cls(
            frames=tuple(FrameChoice(**frame) for frame in data["frames"]),
            facts=dict(data["facts"]),
            skip_frame=str(data.get("skip_frame", "DEFAULT")),
        )


def _av() -> Any:
    from zeroshot_vision._optional import require

    return require("av", extra="video", purpose="indexing videos")


def _open(path: Path, skip_frame: str = "DEFAULT") -> Any:
    """The container and its first video stream.

    Raises:
        ImageDecodeError: Not a video FFmpeg can read, or one without a video stream.
    """
    av = _av()
    name = os.fspath(path)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError(name, "empty file")
        container = av.open(name, metadata_errors="ignore")
    except ImageDecodeError:
        raise
    except Exception as exc:  # FFmpeg's errors (InvalidDataError, OSError, ...): not a video
        raise ImageDecodeError(name, f"not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise ImageDecodeError(name, "no video stream (an audio-only file?)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if skip_frame != "DEFAULT":
        stream.codec_context.skip_frame = skip_frame
    return container, stream


class FrameKeeper(Protocol):
    """Where :func:`scan_frames` hands the pixels of the frames it chooses, as it goes."""

    def keep(self, position: int, picture: Image.Image) -> None:
        """A chosen frame's picture (upright, downscaled to ``max_side``)."""

    def keep_only(self, positions: Collection[int]) -> None:
        """Drop every kept picture but those at ``positions`` (the final choice)."""


def select_frames(path: str | os.PathLike[str], options: VideoOptions) -> FrameSelection:
    """Choose the frames of a video to index: scene cuts plus a maximum interval.

    Raises:
        ImageDecodeError: The file is not a readable video, has no video stream, or no
            frame could be decoded.
        MissingDependencyError: The ``video`` extra is not installed.
    """
    return scan_frames(path, options)


def scan_frames(
    path: str | os.PathLike[str], options: VideoOptions, keeper: FrameKeeper | None = None
) -> FrameSelection:
    """:func:`select_frames`, handing each chosen frame's picture to ``keeper`` on the way.

    With :attr:`VideoOptions.one_pass` (the default) a stream of more than twice
    :data:`ANALYSIS_FPS` frames a second is decoded without the frames nothing refers to
    (FFmpeg's ``skip_frame = NONREF``: most B-frames), which costs about half a full
    decode; should that leave fewer than half the analysis rate (a stream whose P-frames
    are all unreferenced), it is decoded again in full.

    Raises:
        ImageDecodeError: See :func:`select_frames`.
    """
    file = Path(path)
    skip = "DEFAULT"
    if options.one_pass:
        container, stream = _open(file)
        rate = _rate(stream)
        container.close()
        if rate > 2 * ANALYSIS_FPS:
            skip = "NONREF"
    scan = _Scan(options, keeper if options.one_pass else None)
    try:
        selection = scan.run(file, skip)
    except ImageDecodeError:
        if skip == "DEFAULT":
            raise
        selection = None
    if selection is not None and (skip == "DEFAULT" or not scan.sparse()):
        return selection
    logger.info("%s: frames skipped left too few to compare: decoding every frame", file)
    if keeper is not None:
        keeper.keep_only(())
    return _Scan(options, keeper if options.one_pass else None).run(file, "DEFAULT")


def _rate(stream: Any) -> float:
    """The stream's frames a second (25 when it does not say)."""
    try:
        rate = float(stream.average_rate or stream.guessed_rate or 25)
    except (TypeError, ZeroDivisionError):
        rate = 25.0
    return rate if math.isfinite(rate) and rate > 0 else 25.0


class _Scan:
    """One decoding pass that finds the cuts and chooses the frames as it goes.

    Frames are compared at most :data:`ANALYSIS_FPS` a second (by time). A scene is cut
    into slices of ``max_interval`` seconds from its start (the last one shorter); each
    slice's frame is the compared frame nearest its middle, among candidates at least
    ``max_interval / 64`` apart (every compared frame, for intervals up to 6.4 s), from
    the first half of the slice. A candidate is dropped as soon as it can no longer be
    nearest the middle (the middle lies at least halfway to the newest frame), so at
    most 17 are held. With a keeper, they are held as FFmpeg's frames up to 1920 x 1088
    pixels (converted only once chosen: one conversion per slice) and as downscaled
    pictures above that.
    """

    _RAW_PIXELS = 1920 * 1088

    _GRID = 64

    def __init__(self, options: VideoOptions, keeper: FrameKeeper | None) -> None:
        self.options = options
        self.keeper = keeper
        self.interval = options.max_interval
        self.grid = options.max_interval / self._GRID
        self.samples = 0
        self.first_time = 0.0
        self.last_time = -math.inf
        self.frames: list[FrameChoice] = []
        self.scene: list[tuple[int, float]] = []  # chosen in the current scene
        self.scene_start = 0.0
        self.slice_start = 0.0
        self.candidates: list[tuple[int, float, Any]] = []  # frame or picture
        self.rotation = 0
        self.next_candidate = 0.0

    def sparse(self) -> bool:
        """Whether fewer than half the analysis rate of frames were compared."""
        span = self.last_time - self.first_time
        return span > 2.0 and self.samples < 0.5 * ANALYSIS_FPS * span

    def run(self, file: Path, skip: str) -> FrameSelection:
        import numpy as np

        container, stream = _open(file, skip)
        rate = _rate(stream)
        gap = 1.0 / ANALYSIS_FPS - 0.25 / rate  # a frame a tenth of a second, at most
        rotation = 0
        size = (0, 0)
        previous = None
        next_sample = -math.inf
        try:
            try:
                for position, frame in enumerate(container.decode(stream)):
                    time = frame.time if frame.time is not None else position / rate
                    if time <= self.last_time or time < next_sample:
                        continue  # backwards in time (never chosen), or between samples
                    next_sample = time + gap
                    if not self.samples:
                        rotation = self.rotation = _rotation(frame, stream)
                        size = (frame.width, frame.height)
                        self._start_scene(time)
                        self.first_time = time
                    self.last_time = time
                    pixels = _thumbnail(frame)
                    if previous is not None and float(np.abs(pixels - previous).mean()) > (
                        self.options.cut_threshold
                    ):
                        self._end_scene(time)
                        self._start_scene(time)
                    previous = pixels
                    self.samples += 1
                    self._sample(position, time, frame, rotation)
            except Exception as exc:
                if not self.samples:
                    raise ImageDecodeError(
                        os.fspath(file), f"no frame could be decoded ({exc})"
                    ) from exc
                logger.warning("%s: decoding stopped after %d frames: %s", file, self.samples, exc)
            if not self.samples:
                raise ImageDecodeError(os.fspath(file), "no frame could be decoded")
            facts = _facts(container, stream, self.last_time, rotation, size)
        finally:
            container.close()
        self._end_scene(max(float(facts["duration"]), self.last_time))
        frames = self.frames
        if len(frames) > self.options.max_frames:
            keep = np.linspace(0, len(frames) - 1, self.options.max_frames).round().astype(int)
            frames = [frames[i] for i in sorted(set(keep.tolist()))]
        if self.keeper is not None:
            self.keeper.keep_only({frame.position for frame in frames})
        return FrameSelection(frames=tuple(frames), facts=facts, skip_frame=skip)

    def _start_scene(self, time: float) -> None:
        self.scene_start = time
        self.scene = []
        self._start_slice(time)

    def _start_slice(self, time: float) -> None:
        self.slice_start = time
        self.candidates = []
        self.next_candidate = time

    def _sample(self, position: int, time: float, frame: Any, rotation: int) -> None:
        end = self.slice_start + self.interval
        if time >= end - 1e-9:
            self._end_slice(end)
            slices = math.floor((time - self.scene_start) / self.interval + 1e-9)
            self._start_slice(self.scene_start + slices * self.interval)
        # The middle lies at least halfway from the slice's start to this frame: of the
        # candidates before that, only the last can still be the nearest.
        lower = (self.slice_start + time) / 2
        before = sum(1 for candidate in self.candidates if candidate[1] <= lower)
        if before > 1:
            del self.candidates[: before - 1]
        half = self.slice_start + self.interval / 2
        if time < self.next_candidate - 1e-9:
            return
        if self.candidates and self.candidates[-1][1] > half:
            return  # one candidate past the half is enough: no middle lies beyond it
        held: Any = None
        if self.keeper is not None:
            small = frame.width * frame.height <= self._RAW_PIXELS
            held = frame if small else _picture(frame, rotation, self.options.max_side)
        self.candidates.append((position, time, held))
        self.next_candidate = time + self.grid

    def _end_slice(self, end: float) -> None:
        if not self.candidates:
            return
        middle = (self.slice_start + end) / 2
        position, time, held = min(self.candidates, key=lambda c: abs(c[1] - middle))
        self.scene.append((position, time))
        if self.keeper is not None and held is not None:
            from PIL import Image

            if not isinstance(held, Image.Image):
                held = _picture(held, self.rotation, self.options.max_side)
            self.keeper.keep(position, held)
        self.candidates = []

    def _end_scene(self, end: float) -> None:
        self._end_slice(min(end, self.slice_start + self.interval))
        for position, time in self.scene:
            self.frames.append(
                FrameChoice(
                    position=position,
                    timestamp=round(time, 3),
                    scene_start=round(self.scene_start, 3),
                    scene_end=round(end, 3),
                )
            )
        self.scene = []


def _rotation(frame: Any, stream: Any) -> int:
    """Clockwise degrees (0, 90, 180, 270) to turn the frame upright for display."""
    degrees = 0.0
    try:
        # PyAV reads the display matrix: counter-clockwise degrees.
        degrees = -float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        degrees = 0.0
    if not degrees:
        tag = stream.metadata.get("rotate") if stream.metadata else None
        try:
            degrees = float(tag) if tag else 0.0
        except ValueError:
            degrees = 0.0
    return round(degrees / 90.0) % 4 * 90


_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def _facts(
    container: Any,
    stream: Any,
    last: float,
    rotation: int,
    size: tuple[int, int],
) -> dict[str, Any]:
    """Duration, displayed size, creation time and place, as frame metadata."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    if duration is None or not math.isfinite(duration) or duration < last:
        duration = last
    width, height = size if rotation in (0, 180) else size[::-1]
    facts: dict[str, Any] = {"duration": round(duration, 3), "width": width, "height": height}
    tags = {**(stream.metadata or {}), **(container.metadata or {})}
    created = _created(tags.get("creation_time"))
    if created is not None:
        facts.update(taken=int(created.timestamp()), year=created.year, month=created.month)
    place = tags.get("location") or tags.get("com.apple.quicktime.location.ISO6709")
    match = _ISO6709.match(place.strip()) if isinstance(place, str) else None
    if match:
        latitude, longitude = float(match.group(1)), float(match.group(2))
        if -90 <= latitude <= 90 and -180 <= longitude <= 180:
            facts.update(latitude=latitude, longitude=longitude)
    return facts


def _created(value: object) -> dt.datetime | None:
    """A container's ``creation_time`` (ISO 8601, UTC), or ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        created = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if created.year < 1971:  # muxers write 1904 or 1970 for "unknown"
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    return created


def read_frames(
    path: str | os.PathLike[str],
    positions: Sequence[int],
    options: VideoOptions,
    *,
    skip_frame: str = "DEFAULT",
) -> Iterator[tuple[int, Image.Image]]:
    """The frames at ``positions`` (decoding order), upright, downscaled, in that order.

    Positions not reached (the file ended early, or changed) are not yielded.
    ``skip_frame`` is the selection's (:attr:`FrameSelection.skip_frame`): positions count
    the frames decoded with it.

    Raises:
        ImageDecodeError: The file is not a readable video, or decoding failed.
    """

    file = Path(path)
    wanted = sorted(set(positions))
    if not wanted:
        return
    container, stream = _open(file, skip_frame)
    try:
        rotation: int | None = None
        next_wanted = 0
        try:
            for position, frame in enumerate(container.decode(stream)):
                if position < wanted[next_wanted]:
                    continue
                if rotation is None:
                    rotation = _rotation(frame, stream)
                yield position, _picture(frame, rotation, options.max_side)
                next_wanted += 1
                if next_wanted == len(wanted):
                    return
        except ImageDecodeError:
            raise
        except Exception as exc:
            raise ImageDecodeError(os.fspath(file), f"decoding failed ({exc})") from exc
    finally:
        container.close()


def frame_at(path: str | os.PathLike[str], seconds: float, *, max_side: int = 768) -> Image.Image:
    """The first frame shown at or after ``seconds``, upright and downscaled (a thumbnail
    of a moment: seeks to the keyframe before it, then decodes forward).

    Raises:
        ImageDecodeError: The file is not a readable video, or has no frame there.
    """

    file = Path(path)
    container, stream = _open(file)
    try:
        try:
            if stream.time_base:
                container.seek(max(0, int(seconds / stream.time_base)), stream=stream)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time + 1e-3 < seconds:
                    continue
                return _picture(frame, _rotation(frame, stream), max_side)
        except Exception as exc:
            raise ImageDecodeError(os.fspath(file), f"decoding failed ({exc})") from exc
    finally:
        container.close()
    raise ImageDecodeError(os.fspath(file), f"no frame at {seconds:.3f} s")


def _picture(frame: Any, rotation: int, max_side: int) -> Image.Image:
    """A decoded frame as an RGB image: scaled down at conversion, then turned upright."""
    from PIL import Image

    scale = min(1.0, max_side / max(frame.width, frame.height))
    image: Image.Image = frame.to_image(
        width=max(1, round(frame.width * scale)), height=max(1, round(frame.height * scale))
    )
    if rotation:
        turn = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180}
        image = image.transpose(turn.get(rotation, Image.Transpose.ROTATE_90))
    return image
