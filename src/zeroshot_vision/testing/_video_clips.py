"""Video clips made from photos, for tests and benchmarks (needs the ``video`` extra).

:func:`write_clip` encodes one scene per photo: the photo slowly panned and zoomed, with
a little noise on every frame, as a camera held by hand films a still subject; scenes
follow each other with hard cuts. Scene ``i`` spans ``[i * seconds, (i + 1) * seconds)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["main", "write_clip"]


def write_clip(
    path: str | os.PathLike[str],
    photos: Sequence[npt.ArrayLike],
    *,
    seconds: float = 2.0,
    fps: int = 12,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    noise: float = 4.0,
    rotate: int | None = None,
    tags: dict[str, str] | None = None,
    seed: int = 0,
) -> None:
    """Write a clip of one scene per photo.

    Args:
        path: The file to write; its suffix picks the container (``.mp4``, ``.webm``,
            ``.mkv``, ``.mov``).
        photos: ``HxWx3`` (or ``HxW`` gray) arrays, ``uint8`` or floats in [0, 1].
        seconds: Each scene's length.
        fps: Frames a second.
        size: ``(width, height)`` of the video (even numbers for yuv420p).
        codec: The encoder (``libx264``, ``libvpx-vp9``, ``mpeg4``).
        noise: Standard deviation of the Gaussian noise added to every frame.
        rotate: Clockwise degrees a player must turn the frames to show them upright,
            written as the stream's display matrix (a phone held upright).
        tags: Container metadata (``creation_time``, ``location``).
        seed: Seeds the noise.
    """
    import av
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    with av.open(os.fspath(path), mode="w") as container:
        for key, value in (tags or {}).items():
            container.metadata[key] = value
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotate:
            # The display matrix turns counter-clockwise: a clockwise turn is negative.
            stream.set_display_rotation(-float(rotate % 360))
        per_scene = max(1, round(seconds * fps))
        for photo in photos:
            image = Image.fromarray(_uint8(photo)).convert("RGB")
            for k in range(per_scene):
                # A slow pan and zoom across the photo: slight motion within the scene.
                zoom = 1.0 + 0.1 * k / per_scene
                crop_w, crop_h = image.width / zoom, image.height / zoom
                left = (image.width - crop_w) * k / per_scene
                box = (left, 0.0, left + crop_w, crop_h)
                frame = np.asarray(image.resize((width, height), box=box), dtype=np.float32)
                frame += rng.normal(0.0, noise, frame.shape)
                pixels = np.clip(frame, 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _uint8(photo: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    array = np.asarray(photo)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return array


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zeroshot_vision.testing._video_clips OUT.mp4 [SECONDS]``: a sample clip
    of three scenes (scikit-image's astronaut, coffee cup and cat), ``SECONDS`` each."""
    import importlib
    import sys
    from pathlib import Path

    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        sys.stderr.write("usage: python -m zeroshot_vision.testing._video_clips OUT [SECONDS]\n")
        return 2
    data: Any = importlib.import_module("skimage.data")  # untyped
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    Path(args[0]).parent.mkdir(parents=True, exist_ok=True)
    write_clip(args[0], photos, seconds=float(args[1]) if len(args) > 1 else 2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
