"""Turn what a request carries into texts and decoded images, within the server's limits.

An image arrives as a ``data:image/...;base64,`` URL or as bare base64 inside the JSON;
it is decoded with a pixel limit (a decompression bomb is refused before decoding) and
any failure becomes an :class:`~zeroshot_vision._errors.ImageLoadError` that names the
request field. Nothing here fetches a URL or opens a path: a ``http://`` URL or a file
name is refused.

Memory is bounded whatever the images' bit depth or mode (:func:`decoded_images`):
before any pixel is decoded, each image's header says what decoding it takes; a request
whose images would need more than ``max_request_decoded_bytes`` is refused (413), and
the request holds its share of the server's ``max_decoded_bytes``
(:class:`DecodeBudget`) until it is answered. The images are decoded one at a time and
each is resized to the model's input at once, so the full-size pixels are released
before the next image is decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageLoadError,
    ImageTooLargeError,
    InvalidInputError,
    ServerBusyError,
)
from zeroshot_vision._text import is_utf8

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._images.pixels import PixelSpec

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeBudget",
    "Limits",
    "RequestTooLargeError",
    "check_text",
    "decode_image",
    "decoded_images",
    "image_bytes",
    "is_image_item",
]

_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+(?:;[^,;]*)*;base64,", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one request may ask of the server.

    Attributes:
        max_body_bytes: Largest request body.
        max_inputs: Most items in one ``/v1/embeddings`` request (or images in one
            ``/v1/classify``).
        max_text_chars: Longest text item (the model reads 64 tokens of it anyway).
        max_image_bytes: Largest image, after base64 decoding.
        max_image_pixels: Most pixels of an image; more is refused as a decompression
            bomb before anything is decoded.
        max_k: Most results one search may ask for.
        max_labels: Most labels one ``/v1/classify`` or ``/v1/tag`` request may give,
            counted before blanks and repeats are dropped (a comma-separated string
            counts its parts).
        max_json_depth: Deepest nesting of arrays and objects in a request body
            (room for the deepest filter and metadata the stores accept).
        max_request_decoded_bytes: Most bytes that the decoded pixels of one request's
            images may take, each image counted at its full decoded size (as Pillow
            holds it, whatever its bit depth or mode) before anything is decoded.
        max_decoded_bytes: Most bytes of decoded pixels the whole server holds at once,
            over all requests in flight; a request that would pass it waits a moment,
            then gets a 503.
    """

    max_body_bytes: int = 32 * 2**20
    max_inputs: int = 2048
    max_text_chars: int = 10_000
    max_image_bytes: int = 10 * 2**20
    max_image_pixels: int = 40_000_000
    max_k: int = 1000
    max_labels: int = 1000
    max_json_depth: int = 100
    max_request_decoded_bytes: int = 512 * 2**20
    max_decoded_bytes: int = 1024 * 2**20


DEFAULT_LIMITS = Limits()
"""The limits ``zsv serve`` uses unless told otherwise."""


def is_image_item(text: str) -> bool:
    """Whether a string item of ``input`` is an image (a ``data:image/`` URL)."""
    return text[:11].lower() == "data:image/"


def image_bytes(value: str, *, field: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of an image given as a ``data:image/...;base64,`` URL or bare base64.

    Raises:
        ImageDecodeError: Another kind of URL, not base64, or empty.
        ImageTooLargeError: More bytes than ``limits.max_image_bytes``.
    """
    if not isinstance(value, str):
        raise ImageDecodeError(field, "an image must be a data URL or base64 text")
    payload = value.strip()
    if payload[:5].lower() == "data:":
        match = _DATA_URL.match(payload)
        if match is None:
            raise ImageDecodeError(
                field, "only data:image/...;base64, URLs are accepted (the server fetches nothing)"
            )
        payload = payload[match.end() :]
    elif "://" in payload[:16]:
        raise ImageDecodeError(field, "the server fetches no URL; send the image as base64")
    if len(payload) > (limits.max_image_bytes * 4) // 3 + 4:
        raise ImageTooLargeError(
            field, f"it is over the limit of {limits.max_image_bytes / 2**20:g} MiB"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError(field, "it is not valid base64") from None
    if not data:
        raise ImageDecodeError(field, "the image is empty")
    if len(data) > limits.max_image_bytes:
        raise ImageTooLargeError(
            field, f"it is over the limit of {limits.max_image_bytes / 2**20:g} MiB"
        )
    return data


def decode_image(
    value: str,
    *,
    field: str,
    draft_size: tuple[int, int] | None,
    limits: Limits = DEFAULT_LIMITS,
) -> Image.Image:
    """An image item decoded to RGB, as the encoder would decode the same file.

    ``draft_size`` is the encoder's: a big JPEG then decodes at the same reduced size as
    ``zsv search --image FILE`` decodes it, so the vectors are the same.

    Raises:
        ImageDecodeError: Not an image, truncated or corrupt.
        ImageTooLargeError: Too many bytes or pixels.
    """
    data = image_bytes(value, field=field, limits=limits)
    return _decode_bytes(data, field=field, draft_size=draft_size, limits=limits)


def _decode_bytes(
    data: bytes, *, field: str, draft_size: tuple[int, int] | None, limits: Limits
) -> Image.Image:
    from zeroshot_vision._images import UNRECOGNIZED_FORMAT, load_image

    try:
        return load_image(data, max_pixels=limits.max_image_pixels, draft_size=draft_size)
    except ImageTooLargeError:
        raise ImageTooLargeError(
            field,
            f"it claims more than {limits.max_image_pixels:,} pixels, too many to decode "
            "safely (possible decompression bomb)",
        ) from None
    except ImageDecodeError as exc:
        reason = (
            "it is not an image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"
            if exc.reason == UNRECOGNIZED_FORMAT
            else exc.reason
        )
        raise ImageDecodeError(field, reason) from None


def check_text(text: str, *, field: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """``text`` if the model can take it.

    Raises:
        InvalidInputError: Empty, too long, or not valid UTF-8 (a lone surrogate).
    """
    if not text.strip():
        raise InvalidInputError(f"{field} is empty; give some words")
    if len(text) > limits.max_text_chars:
        raise InvalidInputError(
            f"{field} has {len(text):,} characters; the limit is {limits.max_text_chars:,}"
        )
    if not is_utf8(text):
        raise InvalidInputError(f"{field} is not valid UTF-8 text (it holds a lone surrogate)")
    return text


class RequestTooLargeError(InvalidInputError):
    """A request's images would take more memory once decoded than one request may
    (answered 413 ``decoded_bytes_too_large``).

    Attributes:
        param: The request field of the images.
    """

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class DecodeBudget:
    """Bytes of decoded pixels the whole server may hold at once, shared by the requests
    (their worker threads).

    A request takes its share before decoding and gives it back once answered; when the
    budget is in use it waits up to ``wait_seconds`` for others to finish, then gives up
    with :class:`~zeroshot_vision._errors.ServerBusyError` (503, ``Retry-After``).

    Args:
        max_bytes: The budget.
        wait_seconds: How long a request may wait for its share.
    """

    def __init__(self, max_bytes: int, *, wait_seconds: float = 10.0) -> None:
        self.max_bytes = max_bytes
        self.wait_seconds = wait_seconds
        self._used = 0
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        """Bytes held now."""
        with self._changed:
            return self._used

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the duration of the ``with`` block.

        Raises:
            RequestTooLargeError: More than the whole budget.
            ServerBusyError: Not free within ``wait_seconds``.
        """
        if nbytes > self.max_bytes:
            raise RequestTooLargeError(
                f"the images would take {_mib(nbytes)} once decoded, more than this server "
                f"holds at once ({_mib(self.max_bytes)})",
                param="images",
            )
        deadline = time.monotonic() + self.wait_seconds
        with self._changed:
            while self._used + nbytes > self.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerBusyError(
                        "the server is decoding as many images as its memory budget allows; "
                        "try again shortly"
                    )
                self._changed.wait(left)
            self._used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._changed.notify_all()


@contextmanager
def decoded_images(
    items: Sequence[tuple[str, str]],
    *,
    draft_size: tuple[int, int] | None,
    spec: PixelSpec | None,
    limits: Limits = DEFAULT_LIMITS,
    budget: DecodeBudget | None = None,
) -> Iterator[list[Image.Image | ImageLoadError]]:
    """A request's images, decoded within its memory limits, for the ``with`` block.

    Each image is decoded, turned upright, converted to RGB and, where the model has a
    fixed input size (``spec``), resized to it exactly as the encoder would (so the
    vectors are the same as for the original), before the next one is decoded.

    Args:
        items: ``(field, value)`` of each image (a data URL or base64).
        draft_size: The encoder's JPEG draft size.
        spec: The encoder's :class:`~zeroshot_vision._images.pixels.PixelSpec`, if any.
        limits: The byte, pixel and decoded-bytes limits.
        budget: The server's :class:`DecodeBudget`, held until the block ends.

    Yields:
        One decoded image, or the error that refused it, per item, in order.

    Raises:
        RequestTooLargeError: The images would need more than
            ``limits.max_request_decoded_bytes`` (checked from their headers, before
            anything is decoded).
        ServerBusyError: The server's budget stays in use.
    """
    from zeroshot_vision._images import decode_cost

    payloads: list[bytes | ImageLoadError] = []
    largest = kept = 0
    for field, value in items:
        try:
            data = image_bytes(value, field=field, limits=limits)
            cost = decode_cost(data, draft_size=draft_size)
        except ImageLoadError as exc:
            payloads.append(_in_field(exc, field, limits))
            continue
        payloads.append(data)
        largest = max(largest, cost.peak_bytes)
        # What stays held until the request is answered: the model-size copy.
        width, height = (spec.width, spec.height) if spec is not None else (cost.width, cost.height)
        kept += 4 * width * height
    needed = largest + kept
    if needed > limits.max_request_decoded_bytes:
        raise RequestTooLargeError(
            f"the images would take {_mib(needed)} once decoded; the limit is "
            f"{_mib(limits.max_request_decoded_bytes)} per request (send fewer or smaller "
            "images)",
            param="images" if len(items) > 1 else items[0][0] if items else "images",
        )
    held = budget.hold(needed) if budget is not None and needed else _nothing()
    with held:
        decoded: list[Image.Image | ImageLoadError] = []
        for (field, _), payload in zip(items, payloads):
            if isinstance(payload, ImageLoadError):
                decoded.append(payload)
                continue
            try:
                image = _decode_bytes(payload, field=field, draft_size=draft_size, limits=limits)
            except ImageLoadError as exc:
                decoded.append(exc)
                continue
            if spec is not None and image.size != (spec.width, spec.height):
                image = image.resize((spec.width, spec.height), resample=spec.resample)
            decoded.append(image)
        yield decoded


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f} MiB"


def _in_field(exc: ImageLoadError, field: str, limits: Limits) -> ImageLoadError:
    """An error from reading an image's header, told as :func:`decode_image` tells it."""
    from zeroshot_vision._images import UNRECOGNIZED_FORMAT

    if exc.source == field:
        return exc
    if isinstance(exc, ImageTooLargeError):
        return ImageTooLargeError(
            field,
            f"it claims more than {limits.max_image_pixels:,} pixels, too many to decode "
            "safely (possible decompression bomb)",
        )
    reason = (
        "it is not an image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"
        if exc.reason == UNRECOGNIZED_FORMAT
        else exc.reason
    )
    return ImageDecodeError(field, reason)
