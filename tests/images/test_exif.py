"""Photo fields from EXIF: date taken, camera, lens, GPS, size; bad EXIF never fails a photo."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PIL import Image
from tests.helpers import save_with_exif

from zeroshot_vision._images.exif import PHOTO_FIELDS, photo_metadata
from zeroshot_vision._photos import date_bounds

DATETIME, DATETIME_DIGITIZED = 0x0132, 0x9004
OFFSET_TIME, OFFSET_TIME_ORIGINAL, OFFSET_TIME_DIGITIZED = 0x9010, 0x9011, 0x9012


def test_fields_of_a_camera_photo(photo_paths: list[Path], tmp_path: Path) -> None:
    photo = save_with_exif(
        photo_paths[2], tmp_path / "cat.jpg", taken="2021:07:14 18:03:22", make="Canon",
        model="Canon EOS R5\x00\x00", lens="RF24-105mm F4 L IS USM", gps=(64.1466, -21.9426),
    )  # fmt: skip
    with Image.open(photo_paths[2]) as original:
        width, height = original.size
    found = photo_metadata(photo)
    assert found == {
        "taken": 1626285802,
        "year": 2021,
        "month": 7,
        "camera_make": "Canon",
        "camera_model": "Canon EOS R5",
        "lens": "RF24-105mm F4 L IS USM",
        "latitude": found["latitude"],
        "longitude": found["longitude"],
        "width": width,
        "height": height,
    }
    assert abs(found["latitude"] - 64.1466) < 1e-4 and abs(found["longitude"] + 21.9426) < 1e-4
    assert set(found) <= set(PHOTO_FIELDS)


def test_a_quarter_turn_swaps_width_and_height(photo_paths: list[Path], tmp_path: Path) -> None:
    photo = save_with_exif(photo_paths[0], tmp_path / "turned.jpg", orientation=6)
    with Image.open(photo) as image:
        stored = image.size
    found = photo_metadata(photo)
    assert (found["width"], found["height"]) == (stored[1], stored[0])


def test_bad_exif_gives_what_can_be_read(photo_paths: list[Path], tmp_path: Path) -> None:
    nonsense = save_with_exif(
        photo_paths[1], tmp_path / "odd.jpg", taken="0000:00:00 00:00:00", make="\x00\x00 ",
        gps=(64.0, 20.0),
    )  # fmt: skip
    found = photo_metadata(nonsense)
    assert "taken" not in found and "camera_make" not in found and "width" in found
    # A damaged EXIF segment: the APP1 payload cut short and filled with garbage.
    data = bytearray(nonsense.read_bytes())
    start = data.find(b"Exif\x00\x00")
    data[start + 10 : start + 60] = b"\xff" * 50
    (tmp_path / "broken-exif.jpg").write_bytes(bytes(data))
    assert isinstance(photo_metadata(tmp_path / "broken-exif.jpg"), dict)
    (tmp_path / "not-an-image.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert photo_metadata(tmp_path / "not-an-image.jpg") == {}
    assert photo_metadata(tmp_path / "missing.jpg") == {}


def test_a_png_without_exif_has_its_size(photo_paths: list[Path]) -> None:
    with Image.open(photo_paths[0]) as image:
        assert photo_metadata(photo_paths[0]) == {"width": image.width, "height": image.height}


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.timezone.utc).timestamp())


@pytest.mark.parametrize(
    ("local", "offset", "instant", "calendar"),
    [
        ("2021:07:14 18:03:22", "+02:00", utc(2021, 7, 14, 16, 3, 22), (2021, 7)),
        ("2021:07:14 18:03:22", "-05:30", utc(2021, 7, 14, 23, 33, 22), (2021, 7)),
        ("2021:07:14 18:03:22", "Z", utc(2021, 7, 14, 18, 3, 22), (2021, 7)),
        ("2021:07:14 18:03:22", "+14:00\x00", utc(2021, 7, 14, 4, 3, 22), (2021, 7)),
        # Early on the first of a month east of UTC: the instant is still in the month before.
        ("2022:01:01 00:30:00", "+09:00", utc(2021, 12, 31, 15, 30), (2022, 1)),
    ],
)
def test_an_offset_makes_taken_the_true_instant_and_keeps_the_local_calendar(
    local: str,
    offset: str,
    instant: int,
    calendar: tuple[int, int],
    photo_paths: list[Path],
    tmp_path: Path,
) -> None:
    photo = save_with_exif(
        photo_paths[3], tmp_path / "zoned.jpg", taken=local,
        details_tags={OFFSET_TIME_ORIGINAL: offset},
    )  # fmt: skip
    found = photo_metadata(photo)
    assert (found["taken"], found["year"], found["month"]) == (instant, *calendar)


def test_each_date_uses_only_its_own_offset(photo_paths: list[Path], tmp_path: Path) -> None:
    # DateTimeOriginal with only DateTime's offset: the offset is of another date.
    original = save_with_exif(
        photo_paths[3], tmp_path / "original.jpg", taken="2021:07:14 18:03:22",
        modified="2021:07:20 09:00:00", details_tags={OFFSET_TIME: "+02:00"},
    )  # fmt: skip
    assert photo_metadata(original)["taken"] == utc(2021, 7, 14, 18, 3, 22)
    digitized = save_with_exif(
        photo_paths[3], tmp_path / "digitized.jpg",
        details_tags={DATETIME_DIGITIZED: "2021:07:14 18:03:22", OFFSET_TIME_DIGITIZED: "-03:00",
                      OFFSET_TIME_ORIGINAL: "+05:00"},
    )  # fmt: skip
    assert photo_metadata(digitized)["taken"] == utc(2021, 7, 14, 21, 3, 22)
    modified = save_with_exif(
        photo_paths[3], tmp_path / "modified.jpg", modified="2021:07:14 18:03:22",
        details_tags={OFFSET_TIME: "+01:00"},
    )  # fmt: skip
    assert photo_metadata(modified)["taken"] == utc(2021, 7, 14, 17, 3, 22)


@pytest.mark.parametrize(
    "offset",
    ["   :  ", "", "+25:00", "-14:30", "+02:75", "+0200", "+2:00", "02:00", "UTC+2",
     b"\xff\xfe\x00"],
)  # fmt: skip
def test_a_bad_offset_is_ignored(
    offset: str | bytes, photo_paths: list[Path], tmp_path: Path
) -> None:
    photo = save_with_exif(
        photo_paths[4], tmp_path / "odd-zone.jpg", taken="2021:07:14 18:03:22", make="Nikon",
        details_tags={OFFSET_TIME_ORIGINAL: offset},
    )  # fmt: skip
    found = photo_metadata(photo)
    # As without an offset: the local time read as UTC; the rest of the photo as usual.
    assert (found["taken"], found["year"], found["month"]) == (utc(2021, 7, 14, 18, 3, 22), 2021, 7)
    assert found["camera_make"] == "Nikon" and found["width"] > 0


def test_date_bounds_are_utc_so_an_offset_photo_near_midnight_can_fall_outside_its_month(
    photo_paths: list[Path], tmp_path: Path
) -> None:
    """The documented edge: ``--since 2022-01`` is 2022-01-01T00:00Z; month stays local."""
    photo = save_with_exif(
        photo_paths[3], tmp_path / "new-year.jpg", taken="2022:01:01 00:30:00",
        details_tags={OFFSET_TIME_ORIGINAL: "+09:00"},
    )  # fmt: skip
    found = photo_metadata(photo)
    start, end = date_bounds("2021-12")
    assert start <= found["taken"] < end and found["month"] == 1  # `month` filters local
    unzoned = save_with_exif(photo_paths[3], tmp_path / "plain.jpg", taken="2022:01:01 00:30:00")
    assert date_bounds("2022-01")[0] <= photo_metadata(unzoned)["taken"]
