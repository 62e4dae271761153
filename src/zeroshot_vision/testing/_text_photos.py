"""Real photos with real text on them: signs, receipts and slides, for OCR tests and benchmarks.

:func:`render_text` draws lines of text with a real TrueType font (matplotlib's DejaVu
Sans, which ships with matplotlib) onto a photo, the way text appears in real pictures: a
sign on a panel over the scene, a receipt as a paper strip, a slide as a bright panel
with a title. Needs matplotlib (the ``eval`` extra) for the font.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from zeroshot_vision._optional import require

__all__ = ["TextStyle", "dejavu_sans", "render_text"]

TextStyle = Literal["sign", "receipt", "slide"]


def dejavu_sans() -> Path:
    """The path of matplotlib's DejaVu Sans font.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    matplotlib = require("matplotlib", extra="eval", purpose="rendering text on photos")
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def render_text(
    photo: Image.Image,
    lines: Sequence[str],
    *,
    style: TextStyle = "sign",
    width: int = 640,
) -> Image.Image:
    """A copy of ``photo`` (scaled to ``width``) with ``lines`` drawn on it.

    Args:
        photo: The photo to write on.
        lines: The text, one line each.
        style: ``"sign"`` (large dark letters on a light panel near the top),
            ``"receipt"`` (small letters on a white strip down one side) or ``"slide"``
            (a title and smaller lines on a panel covering most of the picture).
        width: The width of the result in pixels (the height keeps the aspect ratio).
    """
    image = photo.convert("RGB")
    image = image.resize((width, max(1, round(image.height * width / image.width))))
    draw = ImageDraw.Draw(image)
    font_path = str(dejavu_sans())
    if style == "sign":
        size = max(18, width // 18)
        font = ImageFont.truetype(font_path, size)
        top, left = image.height // 10, width // 12
        height = len(lines) * int(size * 1.4) + size // 2
        longest = max((draw.textlength(line, font=font) for line in lines), default=0)
        draw.rectangle(
            (left - 12, top - 10, left + longest + 12, top + height), fill=(245, 240, 225)
        )
        for n, line in enumerate(lines):
            draw.text((left, top + n * int(size * 1.4)), line, font=font, fill=(20, 30, 90))
    elif style == "receipt":
        size = max(14, width // 34)
        font = ImageFont.truetype(font_path, size)
        strip = int(width * 0.45)
        left = width - strip - width // 20
        height = len(lines) * int(size * 1.5) + size
        draw.rectangle((left, 8, left + strip, 8 + height), fill=(255, 255, 255))
        for n, line in enumerate(lines):
            draw.text((left + 10, 8 + size // 2 + n * int(size * 1.5)), line, font=font, fill=0)
    else:
        title_font = ImageFont.truetype(font_path, max(20, width // 16))
        body_font = ImageFont.truetype(font_path, max(14, width // 30))
        margin = width // 14
        draw.rectangle(
            (margin, margin, width - margin, image.height - margin), fill=(250, 250, 250)
        )
        y = margin + 16
        for n, line in enumerate(lines):
            font = title_font if n == 0 else body_font
            draw.text((margin + 20, y), line, font=font, fill=(10, 10, 10))
            y += int(font.size * 1.6)
    return image
