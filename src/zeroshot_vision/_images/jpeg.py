"""JPEGs for the GPU: which ones nvJPEG may decode exactly as Pillow would, and decoding them.

On a CUDA device with torchvision, a JPEG skips the decoding processes: a reader thread
checks it from one read of its header (:func:`device_jpeg`) and hands its bytes on as a
:class:`JpegData`; the feed then decodes a batch of them in one nvJPEG call
(:func:`decode_on_device`), turns them upright and resizes them on the device. Anything
the checks or nvJPEG refuse goes the CPU path, which decides its fate (and its error).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._images.pixels import PixelSpec, apply_orientation, resize_many_on_device

if TYPE_CHECKING:
    import torch

__all__ = [
    "JpegData",
    "decode_on_device",
    "device_decode_available",
    "device_jpeg",
    "looks_like_jpeg",
]

logger = logging.getLogger(__name__)

_ORIENTATION_TAG = 0x0112
_DEVICE_JPEG_MODES = frozenset({"RGB", "L"})
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif")
_JPEG_MAGIC = b"\xff\xd8\xff"
# A JPEG file far larger than its raw pixels is not an ordinary photo: the CPU path reads
# it, from the open file, without loading it whole.
_JPEG_BYTES_PER_PIXEL = 4
_JPEG_SLACK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class JpegData:
    """A checked JPEG, for the GPU decoder: its bytes and its EXIF orientation (1-8)."""

    data: bytearray
    orientation: int


def device_decode_available(device: torch.device) -> bool:
    """Whether JPEGs can be decoded on ``device``: CUDA, with torchvision installed."""
    if device.type != "cuda":
        return False
    try:
        from torchvision.io import decode_jpeg  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken torchvision just means "no"
        return False
    return True


def looks_like_jpeg(source: Any) -> bool:
    """Whether a path or bytes source is a JPEG, from its suffix or its first bytes."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:3]) == _JPEG_MAGIC
    return Path(source).suffix.lower() in _JPEG_SUFFIXES


def device_jpeg(source: Any, max_pixels: int | None) -> JpegData | None:
    """A JPEG the GPU can decode exactly as Pillow would, else None (the CPU path takes it).

    Checked here, on a reader thread, from one read of the header: an RGB or gray
    baseline/progressive JPEG (not CMYK, not a multi-picture file), within the pixel
    limit, of an ordinary size for its pixels (a file is read whole only then), and
    complete (ending in the EOI marker; a truncated file keeps the CPU path and its error).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytearray(source)
        if not data.startswith(_JPEG_MAGIC):
            return None
        orientation = _device_jpeg_header(io.BytesIO(data), max_pixels, file_size=None)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() not in _JPEG_SUFFIXES or not path.is_file():
            return None
        with path.open("rb") as handle:
            if handle.read(3) != _JPEG_MAGIC:
                return None
            handle.seek(0)
            file_size = os.fstat(handle.fileno()).st_size
            orientation = _device_jpeg_header(handle, max_pixels, file_size=file_size)
            if orientation is None:
                return None
            handle.seek(0)
            data = bytearray(handle.read())
    else:
        return None
    if orientation is None or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    return JpegData(data=data, orientation=orientation)


def _device_jpeg_header(
    stream: Any, max_pixels: int | None, *, file_size: int | None
) -> int | None:
    """The EXIF orientation (1-8) of a JPEG the GPU may decode, from its header; else None."""
    from PIL import Image

    with Image.open(stream) as image:
        width, height = image.size
        if (
            image.format != "JPEG"
            or image.mode not in _DEVICE_JPEG_MODES
            or width * height == 0
            or (max_pixels is not None and width * height > max_pixels)
            or (
                file_size is not None
                and file_size > _JPEG_BYTES_PER_PIXEL * width * height + _JPEG_SLACK_BYTES
            )
        ):
            return None
        try:
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
        except Exception:  # noqa: BLE001 - the CPU path logs and ignores broken EXIF
            return None
    return orientation if 1 <= orientation <= 8 else 1


def decode_on_device(
    jpegs: list[JpegData], spec: PixelSpec, device: torch.device
) -> list[torch.Tensor | None]:
    """Model-size ``(H, W, 3)`` uint8 pixels of each JPEG, or None where nvJPEG fails."""
    import torch
    from torchvision.io import (  # type: ignore[import-not-found, unused-ignore]
        ImageReadMode,
        decode_jpeg,
    )

    datas = [torch.frombuffer(jpeg.data, dtype=torch.uint8) for jpeg in jpegs]
    try:
        decoded: list[Any] = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as exc:
        logger.debug("batch JPEG decode failed (%s); decoding one at a time", exc)
        decoded = []
        for data in datas:
            try:
                decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    upright = [
        None if pixels is None else apply_orientation(pixels, jpeg.orientation)
        for jpeg, pixels in zip(jpegs, decoded)
    ]
    return resize_many_on_device(upright, spec)
