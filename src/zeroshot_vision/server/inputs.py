"""Turn what a request carries into texts and decoded images, within the server's limits.

An image arrives as a ``data:image/...;base64,`` URL or as bare base64 inside the JSON;
it is decoded with a pixel limit (a decompression bomb is refused before decoding) and
any failure becomes an :class:`~zeroshot_vision.errors.ImageLoadError` that names the
request field. Nothing here fetches a URL or opens a path: a ``http://`` URL or a file
name is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeroshot_vision._text import is_utf8
from zeroshot_vision.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    InvalidInputError,
)

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_text",
    "decode_image",
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
    from zeroshot_vision.images import UNRECOGNIZED_FORMAT, load_image

    data = image_bytes(value, field=field, limits=limits)
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
