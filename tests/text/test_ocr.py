"""Reading text in photos with the real RapidOCR models (no mocks), on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._images import load_image
from zeroshot_vision._lexical import OCR_LINES_FIELD, OcrLine
from zeroshot_vision._ocr import OcrEngine, OcrExtractor

pytest.importorskip("rapidocr", reason="the ocr extra is not installed")
pytest.importorskip("matplotlib", reason="the font comes with matplotlib")

from zeroshot_vision.testing._text_photos import render_text

SIGN = ["CAFE CENTRAL", "OPEN DAILY"]
RECEIPT = ["Invoice 4711", "Espresso 2.50", "Total 12.50 EUR"]
SLIDE = ["Quarterly results", "Revenue grew 12 percent"]


def _words(lines: list[OcrLine]) -> set[str]:
    return {word.lower() for line in lines for word in line.text.split()}


def _expected(lines: list[str]) -> set[str]:
    return {word.lower() for line in lines for word in line.split()}


@pytest.fixture(scope="module")
def ocr_engine():
    return OcrEngine(threads=1)


@pytest.fixture(scope="module")
def decoded_photos(photo_paths):
    return {path.stem: Image.open(path).convert("RGB") for path in photo_paths}


@pytest.fixture(scope="module")
def read(ocr_engine, decoded_photos):
    """Each test image read once (about a second of CPU each)."""
    astronaut, coffee, chelsea = (
        decoded_photos["astronaut"],
        decoded_photos["coffee"],
        decoded_photos["chelsea"],
    )
    images = {
        "sign": render_text(astronaut, SIGN, style="sign"),
        "receipt": render_text(coffee, RECEIPT, style="receipt"),
        "slide": render_text(chelsea, SLIDE, style="slide"),
        "plain": decoded_photos["rocket"],
    }
    return {name: ocr_engine.read(image) for name, image in images.items()}, images


@pytest.mark.parametrize(
    ("name", "lines"), [("sign", SIGN), ("receipt", RECEIPT), ("slide", SLIDE)]
)
def test_rendered_words_are_read_with_confidence_and_boxes(read, name, lines):
    found, images = read
    assert _expected(lines) <= _words(found[name])
    width, height = images[name].size
    for line in found[name]:
        assert 0.5 <= line.confidence <= 1.0
        assert len(line.box) == 4
        assert all(-1 <= x <= width + 1 and -1 <= y <= height + 1 for x, y in line.box)


def test_boxes_are_where_the_text_was_drawn(read):
    found, _ = read
    cafe = next(line for line in found["sign"] if "CAFE" in line.text)
    invoice = next(line for line in found["receipt"] if "4711" in line.text)
    # The sign is drawn near the top left, the receipt on the right half.
    assert max(y for _, y in cafe.box) < 200 and min(x for x, _ in cafe.box) < 100
    assert min(x for x, _ in invoice.box) > 300


def test_a_photo_without_text_gives_few_or_no_words(read):
    found, _ = read
    assert not _expected(SIGN + RECEIPT + SLIDE) & _words(found["plain"])


def test_the_extractor_gives_text_for_the_lexical_side_and_a_count_as_metadata(ocr_engine, read):
    _, images = read
    metadata, texts = OcrExtractor(ocr_engine).read(images["sign"])
    assert metadata["text_lines"] == len(texts["ocr"].splitlines()) >= 2
    assert "CAFE CENTRAL" in texts["ocr"]
    lines = [OcrLine.from_json(raw) for raw in json.loads(texts[OCR_LINES_FIELD])]
    assert [line.text for line in lines] == texts["ocr"].splitlines()
    metadata, texts = OcrExtractor(ocr_engine).read(Image.new("RGB", (64, 64), "white"))
    assert metadata == {"text_lines": 0} and texts == {}


def test_cmyk_and_16_bit_images_are_read(ocr_engine, decoded_photos, tmp_path):
    sign = render_text(decoded_photos["astronaut"], SIGN, style="sign")
    cmyk = tmp_path / "cmyk.jpg"
    sign.convert("CMYK").save(cmyk, quality=95)
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(np.asarray(sign.convert("L"), dtype=np.uint16) * 257).save(gray16)
    with Image.open(gray16) as check:
        assert check.mode.startswith("I")
    for path in (cmyk, gray16):
        assert {"cafe", "central"} <= _words(ocr_engine.read(load_image(path))), path.name


def test_tiny_and_huge_images_are_read_without_error(ocr_engine, decoded_photos):
    assert ocr_engine.read(Image.new("RGB", (1, 1), "black")) == []
    assert ocr_engine.read(Image.new("RGB", (7, 3000), "white")) == []
    assert ocr_engine.read(Image.new("RGB", (3000, 7), "white")) == []
    huge = render_text(decoded_photos["astronaut"], SIGN, style="sign", width=6000)
    assert {"cafe", "central"} <= _words(ocr_engine.read(huge))


def test_other_models_are_an_explicit_opt_in_to_downloads():
    with pytest.raises(InvalidInputError, match="allow_download=True"):
        OcrEngine(rapidocr_params={"Rec.lang_type": "latin"})
    OcrEngine(rapidocr_params={"Global.text_score": 0.6}, allow_download=True)
    with pytest.raises(InvalidInputError, match="threads"):
        OcrEngine(threads=0)
    with pytest.raises(InvalidInputError, match="min_confidence"):
        OcrEngine(min_confidence=1.5)
