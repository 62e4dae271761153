"""numpy images everywhere images go, and HEIC/HEIF/AVIF photos through their extra."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features
from tests.factories import memory_engine

from zeroshot_vision import ImageLoadError, SearchEngine, load_image
from zeroshot_vision._images import IMAGE_SUFFIXES
from zeroshot_vision._images import loading as images


@pytest.fixture
def photo(photo_paths) -> Image.Image:
    with Image.open(photo_paths[1]) as opened:  # coffee.png, RGB
        return opened.convert("RGB")


def test_uint8_rgb_array_is_the_same_image(photo: Image.Image) -> None:
    loaded = load_image(np.asarray(photo))
    assert loaded.mode == "RGB" and np.array_equal(np.asarray(loaded), np.asarray(photo))


def test_float_gray_and_rgba_arrays(photo: Image.Image) -> None:
    pixels = np.asarray(photo)
    as_float = load_image(pixels.astype(np.float64) / 255.0)
    assert np.array_equal(np.asarray(as_float), pixels)
    gray = load_image(pixels[:, :, 0])
    assert gray.mode == "RGB" and np.array_equal(np.asarray(gray)[:, :, 2], pixels[:, :, 0])
    single = load_image(pixels[:, :, :1])
    assert np.array_equal(np.asarray(single), np.asarray(gray))
    rgba = np.dstack([pixels, np.zeros(pixels.shape[:2], np.uint8)])  # fully transparent
    assert (np.asarray(load_image(rgba)) == 255).all()  # composited on white
    mask = load_image(np.eye(4, dtype=bool))
    assert np.asarray(mask)[0, 0, 0] == 255 and np.asarray(mask)[0, 1, 0] == 0


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((2, 4, 4, 3), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.full((4, 4), 2.0), r"values in \[0, 1\]"),
        (np.full((4, 4), np.nan), r"values in \[0, 1\]"),
        (np.zeros((4, 4), np.int64), "uint8 or float"),
        (np.zeros((0, 4), np.uint8), "no pixels"),
    ],
)
def test_bad_arrays_are_clear_errors(array: np.ndarray, message: str) -> None:
    with pytest.raises(ImageLoadError, match=message):
        load_image(array)


def test_arrays_work_for_indexing_search_and_classify(tiny_encoder, photo) -> None:
    pixels = np.asarray(photo)
    engine = memory_engine(tiny_encoder)
    assert engine.index_images(pixels, ids=["coffee"]).indexed == ("coffee",)
    assert engine.search_by_image(pixels, k=1)[0].id == "coffee"
    labels = engine.classify(pixels, "a cup,a cat")
    assert {s.label for s in labels} == {"a cup", "a cat"}
    report = engine.classify([pixels, np.zeros((3, 3, 2), np.uint8)], "a cup")
    assert len(report.results) == 1 and "HxWx3" in report.failed[0].reason


# -- HEIC / HEIF / AVIF ---------------------------------------------------------------------


def test_heic_and_avif_are_image_suffixes() -> None:
    assert {".heic", ".heif", ".avif"} <= IMAGE_SUFFIXES


def test_heic_photos_load_with_pillow_heif(tmp_path: Path, photo: Image.Image) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "iphone.heic"
    pillow_heif.from_pillow(photo).save(path, quality=90)
    loaded = load_image(path)
    assert loaded.size == photo.size and loaded.mode == "RGB"
    assert load_image(path.read_bytes()).size == photo.size  # bytes are recognized too


def test_avif_photos_load(tmp_path: Path, photo: Image.Image) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow was built without AVIF")
    path = tmp_path / "photo.avif"
    photo.save(path, format="AVIF")
    assert load_image(path).size == photo.size


def test_without_pillow_heif_heic_files_fail_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_encoder
) -> None:
    monkeypatch.setattr(images, "register_heif", lambda: False)
    path = tmp_path / "photos" / "iphone.heic"
    path.parent.mkdir()
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32)
    with pytest.raises(ImageLoadError, match=r'pip install "zeroshot-vision\[heif\]"'):
        load_image(path)
    # A folder run reports the file and goes on. Decoding on threads of this process
    # (workers=0): the monkeypatch above cannot reach decoder processes forked earlier.
    Image.new("RGB", (8, 8), "red").save(path.parent / "ok.png")
    from zeroshot_vision import Encoder

    encoder = Encoder.from_pretrained(tiny_encoder.model_name, device="cpu", workers=0)
    with encoder, SearchEngine.create(tmp_path / "index", encoder=encoder) as engine:
        report = engine.index_folder(path.parent, places=False)
    assert report.indexed == ("ok.png",)
    assert [Path(f.source).name for f in report.failed] == ["iphone.heic"]
    assert "heif" in report.failed[0].reason


def test_register_heif_says_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_heif(name: str, *args, **kwargs):
        if name == "pillow_heif":
            raise ImportError("no pillow_heif")
        return real_import(name, *args, **kwargs)

    images.register_heif.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_heif)
    try:
        assert images.register_heif() is False
    finally:
        images.register_heif.cache_clear()
    assert "zeroshot-vision[heif]" in caplog.text


def test_png_bytes_are_not_taken_for_heif() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).size == (4, 4)  # PNG bytes are untouched


def _png_with_text(text_bytes: int, *, chunk: str) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    text = "photo description " * (text_bytes // 18)
    if chunk == "zTXt":
        info.add_text("Description", text, zip=True)
    else:
        info.add_itxt("XML:com.adobe.xmp", text, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 30, 30)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("chunk", ["zTXt", "iTXt"])
def test_a_png_with_a_2_mb_text_chunk_loads(chunk: str, tmp_path: Path) -> None:
    """Issue 29, item 12: valid PNGs with a large description or XMP packet are photos."""
    data = _png_with_text(2 << 20, chunk=chunk)
    image = load_image(data)
    assert image.size == (24, 16) and image.getpixel((0, 0)) == (200, 30, 30)
    path = tmp_path / "described.png"
    path.write_bytes(data)
    from zeroshot_vision._images.exif import photo_metadata

    assert photo_metadata(path)["width"] == 24  # the metadata reader opens it too


def test_a_png_text_bomb_is_named_as_such() -> None:
    data = _png_with_text(images.PNG_TEXT_CHUNK_BYTES + (1 << 20), chunk="zTXt")
    assert len(data) < 200_000  # compressed: a bomb, not a big file
    with pytest.raises(ImageLoadError, match="text metadata is larger than 16 MiB") as caught:
        load_image(data)
    assert images.UNRECOGNIZED_FORMAT not in str(caught.value)


def test_damaged_exif_is_a_log_record_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 29, item 15 (library side): Pillow's warning becomes an INFO record."""
    import logging

    path = tmp_path / "bad-exif.jpg"
    Image.new("RGB", (32, 32), (10, 200, 10)).save(path, "JPEG", exif=_truncated_exif())
    with caplog.at_level(logging.INFO, logger="zeroshot_vision._images"):
        assert load_image(path).size == (32, 32)
    assert any(
        str(path) in record.getMessage() and "UserWarning" in record.getMessage()
        for record in caplog.records
    ), caplog.text


def _truncated_exif() -> bytes:
    """An EXIF block whose out-of-line values are cut short (Pillow warns reading it)."""
    exif = Image.Exif()
    exif[0x010F] = "M" * 40  # Make
    exif[0x0110] = "X" * 40  # Model
    return exif.tobytes()[:-30]
