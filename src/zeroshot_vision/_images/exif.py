"""What a photo file says about itself: date taken, camera, lens, place and size (EXIF).

:func:`photo_metadata` reads a file's header with Pillow (no pixels are decoded) and
returns the fields a folder index stores with each vector, under these names:

============  ========  ===========================================================
field         type      meaning
============  ========  ===========================================================
``taken``     int       when the photo was taken, as Unix seconds (``DateTimeOriginal``,
                        else ``DateTimeDigitized``, else ``DateTime``): the true instant
                        when the date's own offset tag says which zone the camera's
                        clock was in, else the camera's local time read as UTC
``year``      int       the year it was taken, on the camera's local calendar
``month``     int       the month it was taken, 1 to 12, on the camera's local calendar
``camera_make``  str    the camera's maker (``Make``)
``camera_model`` str    the camera's model (``Model``)
``lens``      str       the lens (``LensModel``)
``latitude``  float     degrees north (negative: south), from the GPS block
``longitude`` float     degrees east (negative: west)
``width``     int       the image's width in pixels, as displayed (EXIF rotation applied)
``height``    int       its height in pixels, as displayed
============  ========  ===========================================================

EXIF dates are the camera's local time, without a zone. EXIF 2.31 added one offset tag
per date: ``OffsetTimeOriginal`` for ``DateTimeOriginal``, ``OffsetTimeDigitized`` for
``DateTimeDigitized`` and ``OffsetTime`` for ``DateTime``, written ``"+02:00"`` or
``"-05:30"`` (``"Z"`` is read as ``"+00:00"``). Only the offset of the date used counts.
With it, ``2021:07:14 18:03:22`` and ``+02:00`` give ``taken`` = 16:03:22 UTC, and ``year``
and ``month`` stay those the camera showed, so near midnight at the turn of a month
``taken`` may lie in the month before or after them. Without it (cameras older than
EXIF 2.31, of 2016), or with a blank or impossible one (``"   :  "``, ``"+25:00"``), the
local time is read as if it were UTC: ``taken`` is then off by the camera's offset from
UTC, but its UTC calendar date is the local one.

A field is absent when the file does not hold it (or holds nonsense: a date in year 0,
a latitude of 200 degrees). Bad EXIF never fails an image: whatever cannot be read is
left out, and the image is indexed like any other.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
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
# In the EXIF block, even the one of DateTime (which lives in the main block).
_OFFSET_TIME, _OFFSET_TIME_ORIGINAL, _OFFSET_TIME_DIGITIZED = 0x9010, 0x9011, 0x9012
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_MAX_TEXT = 200
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")
# The zones in use run from UTC-12:00 to UTC+14:00; anything further is not a clock's.
_MAX_OFFSET = dt.timedelta(hours=14)


def photo_metadata(path: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The photo fields of an image file, or of its bytes (see the module's table).

    ``{}`` if none. Never raises for a file's content: an unreadable header gives ``{}``.
    """
    import io

    from PIL import Image

    from zeroshot_vision._images.loading import allow_large_png_text, pillow_warnings_logged

    allow_large_png_text()
    name = f"<{len(path):,} bytes>" if isinstance(path, bytes) else os.fspath(path)
    try:
        with (
            pillow_warnings_logged(name),
            Image.open(io.BytesIO(path) if isinstance(path, bytes) else Path(path)) as image,
        ):
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
    for date, offset in (
        (details.get(_DATETIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL)),
        (details.get(_DATETIME_DIGITIZED), details.get(_OFFSET_TIME_DIGITIZED)),
        (exif.get(_DATETIME), details.get(_OFFSET_TIME)),
    ):
        local = _exif_time(date)
        if local is not None:
            zone = _exif_offset(offset) or dt.timezone.utc
            taken = int(local.replace(tzinfo=zone).timestamp())
            found.update(taken=taken, year=local.year, month=local.month)
            break
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
    """``"2021:07:14 18:03:22"`` (EXIF's form) as a naive datetime (local time), or None."""
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
        return parsed
    return None


def _exif_offset(value: object) -> dt.timezone | None:
    """``"+02:00"``, ``"-05:30"`` or ``"Z"`` (an EXIF offset tag) as a zone, or None if bad."""
    text = _text(value)
    if text == "Z":
        return dt.timezone.utc
    found = _OFFSET.fullmatch(text or "")
    if found is None:  # absent, blank ("   :  ", cameras that do not know), or malformed
        return None
    sign, hours, minutes = found.groups()
    if int(minutes) >= 60:
        return None
    offset = dt.timedelta(hours=int(hours), minutes=int(minutes))
    if offset > _MAX_OFFSET:
        return None
    return dt.timezone(-offset if sign == "-" else offset)


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
