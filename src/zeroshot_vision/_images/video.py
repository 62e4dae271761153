"""Video files as frames: which to index (scene cuts plus a maximum interval), and their pixels.

Needs the ``video`` extra (PyAV, the FFmpeg binding, whose wheels carry FFmpeg).

* :func:`select_frames` decodes a video once, at a low analysis rate, and compares small
  grayscale thumbnails of consecutive analysed frames (mean absolute difference, 0 to
  255): a difference over :attr:`VideoOptions.cut_threshold` starts a new scene. Each
  scene gets ``ceil(length / max_interval)`` frames, at the middles of equal slices of
  it, so a chosen frame is never a blend on a cut.
* :func:`read_frames` decodes the chosen frames (by their position in decoding order),
  downscaled at decode to at most :attr:`VideoOptions.max_side` pixels on a side and
  turned upright (the stream's display matrix or ``rotate`` tag).

Bounds: at most :attr:`VideoOptions.max_frames` frames per video (more are thinned
evenly over the video); analysis holds one 64 x 36 thumbnail and a ``(position, time)``
pair per analysed frame (at most :data:`ANALYSIS_FPS` a second: about 6 MB for a
10-hour video); decoding holds one frame at the source's resolution (FFmpeg's) and one
downscaled copy. Frames whose time goes backwards (a broken muxer) are never chosen, so
ids stay unique and ordered.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import ImageDecodeError, InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ANALYSIS_FPS",
    "VIDEO_SUFFIXES",
    "FrameChoice",
    "FrameSelection",
    "VideoOptions",
    "frame_at",
    "read_frames",
    "select_frames",
]

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv"})
"""File suffixes that a folder run reads as videos (lower case)."""

ANALYSIS_FPS = 10.0
"""At most this many frames a second are compared for scene cuts (the rest are decoded
but not compared: a cut is found at most a tenth of a second late)."""

_THUMB = (64, 36)


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
    """

    max_interval: float = 5.0
    cut_threshold: float = 30.0
    max_frames: int = 200
    max_side: int = 768

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
    """

    frames: tuple[FrameChoice, ...]
    facts: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_json`)."""
        return {"frames": [asdict(f) for f in self.frames], "facts": dict(self.facts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrameSelection:
        """The selection :meth:`to_json` wrote."""
        return cls(
            frames=tuple(FrameChoice(**frame) for frame in data["frames"]),
            facts=dict(data["facts"]),
        )


def _av() -> Any:
    from zeroshot_vision._optional import require

    return require("av", extra="video", purpose="indexing videos")


def _open(path: Path) -> Any:
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
    return container, stream


def select_frames(path: str | os.PathLike[str], options: VideoOptions) -> FrameSelection:
    """Choose the frames of a video to index: scene cuts plus a maximum interval.

    Raises:
        ImageDecodeError: The file is not a readable video, has no video stream, or no
            frame could be decoded.
        MissingDependencyError: The ``video`` extra is not installed.
    """
    import numpy as np

    file = Path(path)
    container, stream = _open(file)
    samples: list[tuple[int, float]] = []  # analysed frames: (position, time)
    cuts: list[int] = [0]  # indexes into samples where a scene starts
    last_time = -math.inf
    rotation = 0
    size = (0, 0)
    try:
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        step = max(1, round(rate / ANALYSIS_FPS))
        previous = None
        try:
            for position, frame in enumerate(container.decode(stream)):
                if position % step:
                    continue
                time = frame.time if frame.time is not None else position / rate
                if time <= last_time:
                    continue  # backwards in time: never chosen
                last_time = time
                if not samples:
                    rotation = _rotation(frame, stream)
                    size = (frame.width, frame.height)
                thumb = frame.reformat(width=_THUMB[0], height=_THUMB[1], format="gray")
                pixels = thumb.to_ndarray().astype(np.float32)
                if previous is not None and float(np.abs(pixels - previous).mean()) > (
                    options.cut_threshold
                ):
                    cuts.append(len(samples))
                previous = pixels
                samples.append((position, time))
        except Exception as exc:
            if not samples:
                raise ImageDecodeError(
                    os.fspath(file), f"no frame could be decoded ({exc})"
                ) from exc
            logger.warning("%s: decoding stopped after %d frames: %s", file, len(samples), exc)
        if not samples:
            raise ImageDecodeError(os.fspath(file), "no frame could be decoded")
        facts = _facts(container, stream, samples, rotation, size)
    finally:
        container.close()
    end = float(facts["duration"])
    frames = _choose(samples, cuts, end, options.max_interval)
    if len(frames) > options.max_frames:
        keep = np.linspace(0, len(frames) - 1, options.max_frames).round().astype(int)
        frames = [frames[i] for i in sorted(set(keep.tolist()))]
    return FrameSelection(frames=tuple(frames), facts=facts)


def _choose(
    samples: Sequence[tuple[int, float]], cuts: Sequence[int], end: float, interval: float
) -> list[FrameChoice]:
    """Per scene, the samples nearest the middles of ``ceil(length / interval)`` slices."""
    chosen: list[FrameChoice] = []
    bounds = [*cuts, len(samples)]
    for first, stop in itertools.pairwise(bounds):
        start_time = samples[first][1]
        end_time = samples[stop][1] if stop < len(samples) else max(end, samples[-1][1])
        length = max(end_time - start_time, 0.0)
        count = max(1, math.ceil(length / interval))
        scene = samples[first:stop]
        taken: set[int] = set()
        for k in range(count):
            middle = start_time + (k + 0.5) * length / count
            best = min(range(len(scene)), key=lambda i: abs(scene[i][1] - middle))
            if best in taken:
                continue
            taken.add(best)
            position, time = scene[best]
            chosen.append(
                FrameChoice(
                    position=position,
                    timestamp=round(time, 3),
                    scene_start=round(start_time, 3),
                    scene_end=round(end_time, 3),
                )
            )
    chosen.sort(key=lambda choice: choice.position)
    return chosen


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
    samples: Sequence[tuple[int, float]],
    rotation: int,
    size: tuple[int, int],
) -> dict[str, Any]:
    """Duration, displayed size, creation time and place, as frame metadata."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    last = samples[-1][1]
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
    path: str | os.PathLike[str], positions: Sequence[int], options: VideoOptions
) -> Iterator[tuple[int, Image.Image]]:
    """The frames at ``positions`` (decoding order), upright, downscaled, in that order.

    Positions not reached (the file ended early, or changed) are not yielded.

    Raises:
        ImageDecodeError: The file is not a readable video, or decoding failed.
    """

    file = Path(path)
    wanted = sorted(set(positions))
    if not wanted:
        return
    container, stream = _open(file)
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
