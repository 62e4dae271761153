"""load_image and iter_loaded on real photos and on every kind of bad file."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
)
from zeroshot_vision._images import describe_source, iter_loaded, load_image


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_real_photos_load_as_rgb(photo_paths, extra_photo_paths) -> None:
    for path in [*photo_paths, *extra_photo_paths]:
        image = load_image(path)
        assert image.mode == "RGB"
        assert image.width > 0 and image.height > 0


def test_sources_path_str_bytes_and_pil_agree(photo_paths) -> None:
    path = photo_paths[1]
    from_path = np.asarray(load_image(path))
    assert np.array_equal(from_path, np.asarray(load_image(str(path))))
    assert np.array_equal(from_path, np.asarray(load_image(path.read_bytes())))
    assert np.array_equal(from_path, np.asarray(load_image(Image.open(path))))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not an image"), "not a recognized image"),
        (lambda p: p.write_bytes(b"<html><body>404 Not Found</body></html>"), "not a recognized"),
    ],
    ids=["zero-bytes", "text-named-jpg", "html-page"],
)
def test_not_an_image(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(ImageLoadError, match=reason) as info:
        load_image(path)
    assert info.value.source == str(path)
    assert isinstance(info.value, ValueError)
    assert "object at 0x" not in str(info.value)  # no Pillow internals in the message


def test_truncated_jpeg(tmp_path: Path, photo_paths) -> None:
    data = photo_paths[3].read_bytes()  # rocket.jpg
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageLoadError, match="unsupported source"):
        load_image(12345)


def test_decompression_bomb_refused_before_decoding() -> None:
    # 50,000 x 50,000 claims 2.5 billion pixels: Pillow's own guard refuses it on open.
    with pytest.raises(ImageLoadError, match="decompression bomb") as info:
        load_image(_png_header_only(50_000, 50_000))
    assert (
        info.value.reason
        == "2,500,000,000 pixels, far over the limit (possible decompression bomb)"
    )
    # 10,000 x 10,000 is over our default limit but under Pillow's hard one.
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(_png_header_only(10_000, 10_000))


def test_pixel_limit_is_configurable(photo_paths) -> None:
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(photo_paths[0], max_pixels=100)  # astronaut is 512 x 512
    assert load_image(photo_paths[0], max_pixels=None).size == (512, 512)


def test_cmyk_jpeg() -> None:
    data = _save(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG")  # red in CMYK
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (20, 10)
    r, g, b = image.getpixel((10, 5))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    data = _save(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    image = load_image(data)
    assert image.mode == "RGB"
    assert 120 <= image.getpixel((3, 3))[0] <= 135  # a naive convert() gives 255


def test_rgba_composited_on_white() -> None:
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    pixels[0, 0] = (0, 0, 255, 255)  # one opaque blue pixel
    image = load_image(_save(Image.fromarray(pixels, "RGBA"), "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 255)


def test_palette_and_grayscale_and_bilevel() -> None:
    for mode in ("P", "L", "1", "LA"):
        image = load_image(_save(Image.new(mode, (6, 6)), "PNG"))
        assert image.mode == "RGB"


def test_palette_with_transparency() -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 1)
    data = _save(palette, "PNG", transparency=0)
    image = load_image(data)
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert image.getpixel((2, 2)) == (255, 255, 255)


def test_animated_gif_takes_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    image = load_image(buffer.getvalue())
    r, _, b = image.getpixel((5, 5))
    assert r > 200 and b < 60


def test_exif_orientation_applied() -> None:
    wide = Image.new("RGB", (40, 20), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _save(wide, "JPEG", exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (40, 20)
    assert load_image(data).size == (20, 40)


def test_describe_source() -> None:
    assert describe_source("a/b.jpg") == "a/b.jpg"
    assert describe_source(b"1234") == "<4 bytes>"
    assert "PIL image 3x2" in describe_source(Image.new("RGB", (3, 2)))


def test_iter_loaded_keeps_order_and_reports_failures(tmp_path: Path, photo_paths) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    sources = [photo_paths[0], bad, photo_paths[1], photo_paths[2]]
    out = list(iter_loaded(sources, workers=3))
    assert [s for s, _ in out] == sources
    assert isinstance(out[1][1], ImageLoadError)
    assert all(isinstance(image, Image.Image) for i, (_, image) in enumerate(out) if i != 1)


def test_iter_loaded_is_lazy_and_bounded(photo_paths) -> None:
    consumed = 0
    lock = threading.Lock()

    def sources():
        nonlocal consumed
        for _ in range(100):
            with lock:
                consumed += 1
            yield photo_paths[1]

    stream = iter_loaded(sources(), workers=2, ahead=3)
    next(stream)
    assert consumed <= 4  # never more than `ahead` images in flight
    stream.close()


def test_iter_loaded_without_threads(photo_paths) -> None:
    out = list(iter_loaded(photo_paths[:2], workers=0))
    assert len(out) == 2 and all(isinstance(i, Image.Image) for _, i in out)


# Each failure is one of three leaves, so callers can tell "missing" from "broken" from
# "too big" without reading messages.


def test_failures_are_the_matching_leaf_errors(tmp_path: Path, photo_paths) -> None:
    (tmp_path / "notes.jpg").write_text("not a picture")
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = photo_paths[3].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    cases = {
        tmp_path / "missing.jpg": ImageNotFoundError,
        tmp_path: ImageNotFoundError,
        tmp_path / "notes.jpg": ImageDecodeError,
        tmp_path / "empty.jpg": ImageDecodeError,
        tmp_path / "cut.jpg": ImageDecodeError,
        _png_header_only(10_000, 10_000): ImageTooLargeError,
        _png_header_only(50_000, 50_000): ImageTooLargeError,
        12345: ImageDecodeError,
    }
    for source, leaf in cases.items():
        with pytest.raises(leaf):
            load_image(source)


def test_an_unreadable_file_is_not_found(tmp_path: Path, photo_paths) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret.jpg"
    path.write_bytes(photo_paths[0].read_bytes())
    path.chmod(0)
    with pytest.raises(ImageNotFoundError, match="PermissionError"):
        load_image(path)


HUGE_FILE_SCRIPT = """
import resource, sys, time
from pathlib import Path
# Far less memory than the file's size: reading it whole would fail with MemoryError.
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
from zeroshot_vision._errors import ImageDecodeError
from zeroshot_vision._images import iter_loaded, load_image

huge, good = Path(sys.argv[1]), Path(sys.argv[2])
started = time.monotonic()
try:
    load_image(huge)
except ImageDecodeError as exc:
    print("refused:", exc.reason)
results = [type(r).__name__ for _, r in iter_loaded([huge, good], workers=2)]
print("batch:", results)
print("seconds:", round(time.monotonic() - started, 2))
"""


def test_a_huge_file_named_jpg_fails_alone_without_being_read_whole(
    tmp_path: Path, photo_paths
) -> None:
    import subprocess
    import sys

    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: 3 GiB long, no disk used
    result = subprocess.run(
        [sys.executable, "-c", HUGE_FILE_SCRIPT, str(huge), str(photo_paths[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: not a recognized image format" in result.stdout
    assert "batch: ['ImageDecodeError', 'Image']" in result.stdout
    seconds = float(result.stdout.split("seconds:")[1])
    assert seconds < 10


@pytest.mark.parametrize("error", [MemoryError, NotImplementedError, OSError, RecursionError])
def test_any_exception_while_decoding_is_that_images_failure(
    monkeypatch: pytest.MonkeyPatch, photo_paths, error: type[Exception]
) -> None:
    from PIL import ImageFile

    real_load = ImageFile.ImageFile.load
    sizes = []
    for path in photo_paths[:3]:
        with Image.open(path) as image:
            sizes.append(image.size)
    poisoned = sizes[1]
    assert sizes.count(poisoned) == 1

    def load(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        if self.size == poisoned:
            raise error("decoder gave up")
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(ImageDecodeError, match="decoder gave up"):
        load_image(photo_paths[1])
    kinds = [type(r).__name__ for _, r in iter_loaded(photo_paths[:3], workers=2)]
    assert kinds == ["Image", "ImageDecodeError", "Image"]


def test_iter_loaded_survives_a_failure_outside_the_decoder(
    monkeypatch: pytest.MonkeyPatch, photo_paths
) -> None:
    import zeroshot_vision._images.loading as images

    real = images.load_image

    def flaky(source, **options):  # type: ignore[no-untyped-def]
        if source == photo_paths[0]:
            raise MemoryError
        return real(source, **options)

    monkeypatch.setattr(images, "load_image", flaky)
    for workers in (0, 2):
        results = [r for _, r in iter_loaded(photo_paths[:2], workers=workers)]
        assert isinstance(results[0], ImageDecodeError)
        assert results[0].reason == "MemoryError"
        assert isinstance(results[1], Image.Image)
