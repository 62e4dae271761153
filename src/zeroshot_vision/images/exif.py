"""What a photo file says about itself: date taken, camera, lens, place and size (EXIF).

:func:`photo_metadata` reads a file's header with Pillow (no pixels are decoded) and
returns the fields a folder index stores with each vector, under these names:

============  ========  ===========================================================
field         type      meaning
============  ========  ===========================================================
``taken``     int       when the photo was taken, as Unix seconds (``DateTimeOriginal``,
                        else ``DateTimeDigitized``, else ``DateTime``; EXIF holds local
                        time without a zone, so it is read as UTC)
``year``      int       the year it was taken
``month``     int       the month it was taken, 1 to 12
``camera_make``  str    the camera's maker (``Make``)
``camera_model`` str    the camera's model (``Model``)
``lens``      str       the lens (``LensModel``)
``latitude``  float     degrees north (negative: south), from the GPS block
``longitude`` float     degrees east (negative: west)
``width``     int       the image's width in pixels, as displayed (EXIF rotation applied)
``height``    int       its height in pixels, as displayed
============  ========  ===========================================================

A field is absent when the file does not hold it (or holds nonsense: a date in year 0,
a latitude of 200 degrees). Bad EXIF never fails an image: whatever cannot be read is
left out, and the image is indexed like any other.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PHOTO_FIELDS", "photo_metadata"]

logger = logging.getLogger(__name__)

PHOTO_FIELDS = (
    "taken",
    "year",
    "month",
    "camera_make",
    "camera_model",
    "lens",
    "latitude",
    "longitude",
    "width",
    "height",
)
"""The metadata fields :func:`photo_metadata` may set."""

# EXIF tag numbers (the EXIF 2.3 specification; Pillow's ExifTags has the same values).
_MAKE, _MODEL, _DATETIME, _ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _LENS_MODEL = 0x9003, 0x9004, 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_MAX_TEXT = 200


def photo_metadata(path: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The photo fields of an image file, or of its bytes (see the module's table).

    ``{}`` if none. Never raises for a file's content: an unreadable header gives ``{}``.
    """
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else Path(path)) as image:
            width, height = image.size
            exif = image.getexif()
            found = _from_exif(exif)
    except Exception as exc:  # noqa: BLE001 - a photo's metadata must never fail it
        logger.debug("no photo metadata from %s: %s", path, exc)
        return {}
    orientation = found.pop("orientation", 1)
    if orientation in (5, 6, 7, 8):  # rotated a quarter turn: displayed the other way up
        width, height = height, width
    if width > 0 and height > 0:
        found.update(width=int(width), height=int(height))
    return found


def _from_exif(exif: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        details: Mapping[int, Any] = exif.get_ifd(_EXIF_IFD) or {}
    except Exception:  # noqa: BLE001 - a damaged sub-block: use the rest
        details = {}
    try:
        gps: Mapping[int, Any] = exif.get_ifd(_GPS_IFD) or {}
    except Exception:  # noqa: BLE001
        gps = {}
    for tag in (_DATETIME_ORIGINAL, _DATETIME_DIGITIZED):
        taken = _exif_time(details.get(tag))
        if taken is not None:
            break
    else:
        taken = _exif_time(exif.get(_DATETIME))
    if taken is not None:
        found.update(taken=int(taken.timestamp()), year=taken.year, month=taken.month)
    for key, value in (
        ("camera_make", exif.get(_MAKE)),
        ("camera_model", exif.get(_MODEL)),
        ("lens", details.get(_LENS_MODEL)),
    ):
        text = _text(value)
        if text:
            found[key] = text
    latitude = _coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S", limit=90)
    longitude = _coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W", limit=180)
    if latitude is not None and longitude is not None:
        found.update(latitude=latitude, longitude=longitude)
    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, int):
        found["orientation"] = orientation
    return found


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    # Cameras pad with NULs and spaces; a text field must stay printable and short.
    cleaned = " ".join(value.replace("\x00", " ").split())
    cleaned = "".join(c for c in cleaned if c.isprintable())
    return cleaned[:_MAX_TEXT] or None


def _exif_time(value: object) -> dt.datetime | None:
    """``"2021:07:14 18:03:22"`` (EXIF's form) as an aware datetime in UTC, or None."""
    text = _text(value)
    if text is None:
        return None
    for layout in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d"):
        try:
            parsed = dt.datetime.strptime(text[:19], layout)
        except ValueError:
            continue
        if parsed.year < 1826:  # before the first photograph: a camera with no clock set
            return None
        return parsed.replace(tzinfo=dt.timezone.utc)
    return None


def _coordinate(value: object, reference: object, negative: str, *, limit: float) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals and N/S or E/W."""
    try:
        degrees, minutes, seconds = (float(part) for part in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(result) or not 0 <= result <= limit:
        return None
    if _text(reference) == negative:
        result = -result
    return round(result, 7)
