"""Photo fields from EXIF: date taken, camera, lens, GPS, size; bad EXIF never fails a photo."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from zeroshot_vision.images.exif import PHOTO_FIELDS, photo_metadata


def save_with_exif(
    source: Path,
    target: Path,
    *,
    taken: str | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    gps: tuple[float, float] | None = None,
    orientation: int | None = None,
) -> Path:
    """A real photo re-saved as JPEG with the EXIF fields given (as a camera writes them)."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if orientation:
        exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    if taken:
        details[0x9003] = taken
    if lens:
        details[0xA434] = lens
    if gps:
        block = exif.get_ifd(0x8825)
        lat, lon = gps
        block[1], block[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        for tag, value in ((2, abs(lat)), (4, abs(lon))):
            degrees = int(value)
            minutes = int((value - degrees) * 60)
            seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
            block[tag] = (float(degrees), float(minutes), seconds)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").save(target, format="JPEG", exif=exif)
    return target


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
