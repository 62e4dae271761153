"""Reading images safely: any source, any mode, bad files turned into clear errors.

Every image the library sees goes through :func:`load_image`, which applies the EXIF
orientation, converts every mode (CMYK, 16-bit, palette, alpha, ...) to 8-bit RGB,
takes the first frame of animations, and refuses decompression bombs before decoding.
:func:`iter_loaded` decodes a stream of sources on worker threads, a bounded number
ahead, so decoding overlaps model compute while memory stays bounded.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import os
import re
import stat
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError, features

from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HEIF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "PNG_TEXT_CHUNK_BYTES",
    "UNRECOGNIZED_FORMAT",
    "DecodeCost",
    "allow_large_png_text",
    "decode_cost",
    "describe_source",
    "is_image_file",
    "iter_loaded",
    "load_image",
    "pillow_warnings_logged",
    "register_heif",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485
"""Images with more pixels than this are refused (Pillow's own default bomb limit)."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".ppm"}
    | {".heic", ".heif", ".avif"}
)
"""File suffixes (lower case) treated as images when scanning folders.

HEIC/HEIF (iPhone photos) need the ``heif`` extra (``pillow-heif``); AVIF is read by
Pillow itself where it was built with libavif, else by ``pillow-heif`` too. Without
them such files are listed and reported as failures naming the extra to install.
"""

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".avif"})
# What a file's suffix or its ISO-BMFF brand says it is: HEIC ("heif"), AVIF, or a generic
# HEIF container that may hold either.
_HEIF_SUFFIX_KINDS = {".heic": "heif", ".heif": "heif", ".avif": "avif"}
_HEIF_BRAND_KINDS = {
    b"ftypheic": "heif",
    b"ftypheix": "heif",
    b"ftyphevc": "heif",
    b"ftypavif": "avif",
    b"ftypmif1": "either",
    b"ftypmsf1": "either",
}

UNRECOGNIZED_FORMAT = "not a recognized image format"
"""The :class:`~zeroshot_vision._errors.ImageDecodeError` reason for data that no decoder
recognizes (as opposed to an image that is damaged)."""

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_CONVERT_BLOCK = 1 << 20
"""Pixels converted at a time from 16-bit or float to 8-bit (8 MiB of float64)."""


def describe_source(source: object) -> str:
    """A short printable name for an image source (its path, or its kind)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.width}x{source.height} {source.mode}>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))} {source.dtype}>"
    return f"<{type(source).__name__}>"


def load_image(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Read an image and return it as an upright 8-bit RGB PIL image.

    A file is decoded from the open file, never read whole first: Pillow reads the header
    and then only the data it decodes, so a huge file that is not an image costs nothing.

    Args:
        source: A path (``str`` or ``os.PathLike``), the file's bytes, a PIL image, or a
            numpy array: ``HxW`` gray, ``HxWx3`` RGB or ``HxWx4`` RGBA, as ``uint8`` or
            as floats in [0, 1] (what matplotlib and scikit-image produce).
        max_pixels: Refuse images with more pixels than this, before decoding them
            (``None``: no limit of ours; Pillow still refuses over twice its own limit).
        draft_size: If given, let JPEG decoding scale down by a power of two while
            staying at least this large: much faster for big photos that the model
            will shrink anyway.

    Raises:
        ImageNotFoundError: The file is missing, not a file, or cannot be opened.
        ImageDecodeError: The data is empty, not an image, truncated, corrupt, in an
            unsupported format, or the decoder failed in any other way (even with
            ``MemoryError``).
        ImageTooLargeError: The image has more pixels than allowed.
    """
    name = describe_source(source)
    source = _from_array(source, name) if isinstance(source, np.ndarray) else source
    _check_heif(source, name)
    try:
        if isinstance(source, Image.Image):
            return _decode(source, name, max_pixels, draft_size)
        if isinstance(source, (bytes, bytearray, memoryview)):
            if not len(source):
                raise ImageDecodeError(name, "empty data")
            return _decode(_open(io.BytesIO(bytes(source)), name), name, max_pixels, draft_size)
        if isinstance(source, (str, os.PathLike)):
            with _open_file(Path(source), name) as handle:
                return _decode(_open(handle, name), name, max_pixels, draft_size)
        raise ImageDecodeError(name, "unsupported source type (use a path, bytes or a PIL image)")
    except ImageLoadError:
        raise
    except Exception as exc:
        # Decoders raise many types on malformed data (OSError, SyntaxError, ValueError,
        # struct.error, NotImplementedError, even MemoryError for absurd headers); every
        # one of them means "this file is not usable", never "stop everything".
        raise ImageDecodeError(name, _reason(exc)) from exc


@dataclass(frozen=True, kw_only=True)
class DecodeCost:
    """What decoding an image will take, known from its header before any pixel is read.

    Attributes:
        width: Its width once decoded (after a JPEG's reduced-scale draft).
        height: Its height once decoded.
        mode: Its Pillow mode once decoded (``"1"``, ``"I;16"``, ``"RGBA"``, ...).
        peak_bytes: The most bytes of pixels :func:`load_image` holds at once while
            decoding it, turning it upright and converting it to RGB: the decoded pixels
            as Pillow stores them (whatever the bit depth or mode) plus the conversion's.
    """

    width: int
    height: int
    mode: str
    peak_bytes: int


def decode_cost(
    source: bytes | bytearray | memoryview, *, draft_size: tuple[int, int] | None = None
) -> DecodeCost:
    """The :class:`DecodeCost` of an image's bytes, from its header only.

    A 6 KB PNG can decode to a 40-megapixel image, and a 16-bit one to several bytes a
    pixel: this tells a caller with a memory budget what :func:`load_image` with the
    same ``draft_size`` would take, without decoding it.

    Raises:
        ImageDecodeError: Not an image (as :func:`load_image` would say).
        ImageTooLargeError: A decompression bomb Pillow refuses even to open.
    """
    name = describe_source(source)
    if not len(source):
        raise ImageDecodeError(name, "empty data")
    image = _open(io.BytesIO(bytes(source)), name)
    with image:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        width, height = image.size
        pixels = width * height
        source_bytes = _pixel_bytes(image.mode)
        # Turning it upright copies it; converting it to RGB makes the RGB image (and,
        # for some modes, intermediate ones) while the decoded one is still held.
        peak = pixels * (source_bytes + max(source_bytes, _conversion_bytes(image)))
        return DecodeCost(width=width, height=height, mode=image.mode, peak_bytes=peak)


def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel of ``mode`` takes in Pillow's memory: 4 for any multi-band mode (it
    pads RGB to 4), else the size of the one band ("1" is held as one byte a pixel)."""
    try:
        described = ImageMode.getmode(mode)
    except KeyError:
        return 4
    if len(described.bands) > 1:
        return 4
    return max(1, int(np.dtype(described.typestr).itemsize))


def _conversion_bytes(image: Image.Image) -> int:
    """Bytes a pixel that :func:`_to_rgb` allocates on top of the decoded image."""
    mode = image.mode
    if mode == "RGB":
        return 0
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return 1 + 1 + 4  # the 8-bit gray array, its L image, the RGB image
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return 4 * 4  # RGBA, the white background, the composite, the RGB image
    return 4


def _from_array(array: np.ndarray[Any, Any], name: str) -> Image.Image:
    """A numpy image as a PIL image: uint8, or floats in [0, 1]; gray, RGB or RGBA."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageDecodeError(
            name, f"an array image must be HxW, HxWx3 or HxWx4, got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min(initial=0) < 0 or array.max(initial=0) > 1:
            raise ImageDecodeError(name, "a float array image must hold values in [0, 1]")
        pixels = np.rint(array * 255).astype(np.uint8)
    else:
        raise ImageDecodeError(
            name, f"an array image must be uint8 or float in [0, 1], got {array.dtype}"
        )
    # fromarray reads the mode from the shape: HxW -> L, HxWx3 -> RGB, HxWx4 -> RGBA.
    return Image.fromarray(np.ascontiguousarray(pixels))


@functools.cache
def register_heif() -> bool:
    """Let Pillow read HEIC/HEIF (and AVIF) through ``pillow-heif``, if it is installed.

    Returns:
        Whether ``pillow-heif`` is installed (and now registered). Called on the first
        HEIF-looking image; safe to call more than once.
    """
    try:
        import pillow_heif  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        logger.warning(
            'HEIC/HEIF images need pillow-heif: pip install "zeroshot-vision[heif]"; '
            "they are reported as failures until then"
        )
        return False
    pillow_heif.register_heif_opener()
    return True


def _check_heif(source: Any, name: str) -> None:
    """Register the HEIF opener for a HEIF-looking source, or say which extra it needs."""
    if isinstance(source, (str, os.PathLike)):
        kind = _HEIF_SUFFIX_KINDS.get(Path(source).suffix.lower())
    elif isinstance(source, (bytes, bytearray, memoryview)):
        kind = _HEIF_BRAND_KINDS.get(bytes(source[4:12]))
    else:
        return
    if kind is None:
        return
    if kind != "heif" and features.check("avif"):
        # Pillow reads AVIF itself; a generic "mif1" file may still be HEIC, so use
        # pillow-heif too where it is installed, without asking for it.
        if kind == "either" and importlib.util.find_spec("pillow_heif") is not None:
            register_heif()
        return
    if not register_heif():
        raise ImageDecodeError(
            name, 'HEIC/HEIF images need the heif extra: pip install "zeroshot-vision[heif]"'
        )


def _open_file(path: Path, name: str) -> BinaryIO:
    if not path.exists():
        raise ImageNotFoundError(name, "file not found")
    if path.is_dir():
        raise ImageNotFoundError(name, "not a file (a folder)")
    # O_NONBLOCK: opening a FIFO would otherwise block until someone writes to it, and
    # checking first leaves a moment in which a file can be swapped for one.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageNotFoundError(name, _reason(exc)) from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):  # a FIFO, a device (/dev/zero), a socket
            raise ImageNotFoundError(name, f"not a regular file ({_file_kind(status.st_mode)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except OSError as exc:
        os.close(fd)
        raise ImageNotFoundError(name, _reason(exc)) from exc
    except BaseException:
        os.close(fd)
        raise
    if status.st_size == 0:
        os.close(fd)
        raise ImageDecodeError(name, "empty file")
    return os.fdopen(fd, "rb")


# What Pillow calls the formats of IMAGE_SUFFIXES (MPO: a JPEG with several pictures).
_SERVABLE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "AVIF", "HEIF")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file that both its name and its content say is an
    image of a format this library reads (what may be handed out as "an image").

    Only the header is read: the file's name must end in one of :data:`IMAGE_SUFFIXES`
    and its first bytes must be recognized by Pillow as one of those formats (a HEIF or
    AVIF file by its ISO-BMFF brand). A FIFO, a device or a text file renamed ``.png``
    is not an image; nothing raises.
    """
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return False
    try:
        with _open_file(Path(name), name) as handle:
            if suffix in HEIF_SUFFIXES:
                return handle.read(12)[4:12] in _HEIF_BRAND_KINDS
            Image.init()
            formats = [kind for kind in _SERVABLE_FORMATS if kind in Image.OPEN]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(handle, formats=formats) as image:
                    return image.format in formats
    except Exception:  # noqa: BLE001 - unreadable, missing or not an image: all "no"
        return False


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


PNG_TEXT_CHUNK_BYTES = 16 << 20
"""The largest PNG text chunk (``tEXt``, ``zTXt``, ``iTXt``, decompressed) read.

Pillow's own limit (``PngImagePlugin.MAX_TEXT_CHUNK``, 1 MiB) refuses valid PNGs whose
software wrote a large description or XMP packet. ``MAX_TEXT_MEMORY`` (64 MiB by default)
still caps all the text of one file, so a compressed text bomb stays refused."""


@functools.cache
def allow_large_png_text() -> None:
    """Raise Pillow's PNG text-chunk limit to :data:`PNG_TEXT_CHUNK_BYTES` (never lower it).

    The limit is a module global of Pillow that its PNG reader reads while a file is
    opened, so it cannot be scoped to one call: images are opened on several threads at
    once, and setting and restoring it around each open would race. It is set once,
    when this library first opens an image (importing the library changes nothing),
    and only ever raised.
    """
    from PIL import PngImagePlugin

    PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, PNG_TEXT_CHUNK_BYTES)


@contextlib.contextmanager
def pillow_warnings_logged(name: str) -> Iterator[None]:
    """Turn Pillow's warnings about one image (damaged EXIF, odd chunks) into log records.

    Printed by Python, they are raw two-line messages on stderr that name no image;
    logged, they are one line each naming it (INFO: the image is read all the same).
    Pillow's decompression-bomb warning is dropped: the loader applies its own limit.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
    for warning in caught:
        logger.info("%s: %s (%s)", name, warning.message, warning.category.__name__)


def _text_chunk_too_large(exc: Exception) -> bool:
    return isinstance(exc, ValueError) and (
        "MAX_TEXT_CHUNK" in str(exc) or "MAX_TEXT_MEMORY" in str(exc)
    )


def _open(stream: BinaryIO, name: str) -> Image.Image:
    """Read the header only; the pixels are decoded later, by ``load``."""
    allow_large_png_text()
    try:
        with pillow_warnings_logged(name):
            return Image.open(stream)
    except Image.DecompressionBombError as exc:
        # Pillow's message ends in "...could be decompression bomb DOS attack."; say it plainly.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageTooLargeError(
            name, f"{size}, far over the limit (possible decompression bomb)"
        ) from exc
    except UnidentifiedImageError as exc:
        # Pillow names the stream object here, which helps nobody.
        raise ImageDecodeError(name, UNRECOGNIZED_FORMAT) from exc
    except Exception as exc:
        if _text_chunk_too_large(exc):
            raise ImageDecodeError(name, _TEXT_TOO_LARGE) from exc
        raise ImageDecodeError(name, f"not a recognized image format ({_reason(exc)})") from exc


_TEXT_TOO_LARGE = (
    f"a PNG whose text metadata is larger than {PNG_TEXT_CHUNK_BYTES >> 20} MiB a chunk or "
    "Pillow's total (refused as a possible decompression bomb)"
)


def _decode(
    image: Image.Image,
    name: str,
    max_pixels: int | None,
    draft_size: tuple[int, int] | None,
) -> Image.Image:
    # We apply our own pixel limit below; Pillow's other warnings become log records.
    with pillow_warnings_logged(name):
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                name,
                f"{width}x{height} is {width * height:,} pixels, over the limit of "
                f"{max_pixels:,} (possible decompression bomb)",
            )
        if width == 0 or height == 0:
            raise ImageDecodeError(name, "image has no pixels")
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
        image = _upright(image, name)
        return _to_rgb(image)


def _upright(image: Image.Image, name: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block should not lose the photo
        logger.warning("ignoring unreadable EXIF orientation of %s: %s", name, exc)
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        # Pillow's convert() clips 16-bit values at 255 (almost everything turns white);
        # scale the range down instead.
        # Row blocks of float64 at a time: a whole 16-bit image in float64 (and the
        # temporaries of each step) took 30 times the size of the file's pixels.
        values = np.asarray(image)
        top = float(values.max()) if values.size else 0.0
        gray = np.empty(values.shape, dtype=np.uint8)
        rows = max(1, _CONVERT_BLOCK // max(1, values.shape[1] if values.ndim > 1 else 1))
        for start in range(0, values.shape[0], rows):
            block = values[start : start + rows].astype(np.float64)
            if mode == "F" and top <= 1.0:
                block *= 255.0
            elif top > 255.0:
                block /= 257.0
            np.rint(block, out=block)
            np.clip(block, 0, 255, out=block)
            gray[start : start + rows] = block
        del values
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        # Composite on white: transparent pixels often hold garbage colour values.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def iter_loaded(
    sources: Iterable[Any],
    *,
    workers: int = 4,
    ahead: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Iterator[tuple[Any, Image.Image | ImageLoadError]]:
    """Decode images on worker threads, in input order, a bounded number ahead.

    Yields ``(source, image)`` for each source, or ``(source, error)`` where it could
    not be read, so the caller decides whether a bad image is fatal. Whatever goes wrong
    with one image (even ``MemoryError``) is that image's error, never the batch's.

    Args:
        sources: Any iterable of image sources; consumed lazily.
        workers: Decoding threads (Pillow releases the GIL while decoding).
        ahead: How many images may be decoded before they are consumed
            (default ``4 * workers``); bounds memory.
        max_pixels: See :func:`load_image`.
        draft_size: See :func:`load_image`.
    """
    limit = ahead if ahead is not None else 4 * max(workers, 1)

    def attempt(source: Any) -> Image.Image | ImageLoadError:
        try:
            return load_image(source, max_pixels=max_pixels, draft_size=draft_size)
        except ImageLoadError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - one image must not end a whole run
            return ImageDecodeError(describe_source(source), _reason(exc))

    if workers <= 0:
        for source in sources:
            yield source, attempt(source)
        return
    pending: deque[tuple[Any, Future[Image.Image | ImageLoadError]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zsv-decode") as pool:
        try:
            for source in sources:
                pending.append((source, pool.submit(attempt, source)))
                if len(pending) >= limit:
                    done_source, future = pending.popleft()
                    yield done_source, future.result()
            while pending:
                done_source, future = pending.popleft()
                yield done_source, future.result()
        finally:
            for _, future in pending:
                future.cancel()
