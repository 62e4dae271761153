"""``zsv search --preview``: thumbnails inline, in terminals that show images.

Three protocols cover the terminals that can: kitty's graphics protocol (kitty, Ghostty,
Konsole), iTerm2's inline images (iTerm2, WezTerm, Tabby) and sixel (foot, mlterm, xterm
with ``-ti vt340``, Windows Terminal). No maintained Python library writes all three and
works with current Pillow (term-image needs Pillow below 11 and has no sixel), so the
escape sequences are written here; each is a few lines over the protocols' published
specifications. Elsewhere (a pipe, an unknown terminal) the plain table is printed.

Which protocol: ``$ZSV_PREVIEW`` (``kitty``, ``iterm2``, ``sixel`` or ``none``) when set,
else what the terminal announces in its environment.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from zeroshot_vision._cli.output import say

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._types import SearchResult

__all__ = ["PROTOCOLS", "detect_protocol", "image_escape", "print_previews"]

PROTOCOLS = ("kitty", "iterm2", "sixel")
THUMBNAIL = 160
"""Thumbnail size in pixels (its longer side)."""


def detect_protocol(env: Mapping[str, str] | None = None, *, tty: bool | None = None) -> str | None:
    """The inline image protocol of this terminal, or ``None`` for plain text."""
    env = os.environ if env is None else env
    chosen = env.get("ZSV_PREVIEW", "").strip().lower()
    if chosen in PROTOCOLS:
        return chosen
    if chosen == "none" or not (sys.stdout.isatty() if tty is None else tty):
        return None
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if term == "xterm-kitty" or "KITTY_WINDOW_ID" in env or program == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm", "Tabby") or "ITERM_SESSION_ID" in env:
        return "iterm2"
    if term.startswith(("foot", "mlterm")) or "sixel" in term:
        return "sixel"
    return None


def _kitty(png: bytes) -> str:
    # Payload in chunks of at most 4096 base64 bytes; m=1 on every chunk but the last.
    data = base64.standard_b64encode(png).decode("ascii")
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)] or [""]
    parts = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        control = f"a=T,f=100,m={more}" if n == 0 else f"m={more}"
        parts.append(f"\x1b_G{control};{chunk}\x1b\\")
    return "".join(parts)


def _iterm2(png: bytes) -> str:
    data = base64.standard_b64encode(png).decode("ascii")
    return f"\x1b]1337;File=inline=1;size={len(png)};preserveAspectRatio=1:{data}\a"


def _sixel(image: Image.Image) -> str:
    """Sixel: a palette, then bands of six pixel rows, one run of characters per colour."""
    from PIL import Image as PILImage

    paletted = image.convert("RGB").quantize(colors=64, method=PILImage.Quantize.MEDIANCUT)
    palette = paletted.getpalette() or []
    width, height = paletted.size
    pixels = paletted.load()
    assert pixels is not None
    out = ['\x1bPq"1;1;' + f"{width};{height}"]
    colours = len(palette) // 3
    for index in range(colours):
        r, g, b = palette[3 * index : 3 * index + 3]
        out.append(f"#{index};2;{r * 100 // 255};{g * 100 // 255};{b * 100 // 255}")
    for top in range(0, height, 6):
        rows = range(top, min(top + 6, height))
        used: dict[int, list[int]] = {}
        for x in range(width):
            for bit, y in enumerate(rows):
                colour = int(pixels[x, y])  # type: ignore[arg-type]
                used.setdefault(colour, [0] * width)[x] |= 1 << bit
        for colour, bits in used.items():
            out.append(f"#{colour}" + _run_length("".join(chr(63 + v) for v in bits)) + "$")
        out.append("-")
    out.append("\x1b\\")
    return "".join(out)


def _run_length(line: str) -> str:
    """Sixel's repeat introducer: ``!<count><char>`` for runs longer than three."""
    out, start = [], 0
    while start < len(line):
        end = start
        while end < len(line) and line[end] == line[start]:
            end += 1
        count = end - start
        out.append(f"!{count}{line[start]}" if count > 3 else line[start] * count)
        start = end
    return "".join(out)


def image_escape(path: str, protocol: str) -> str | None:
    """The escape sequence that shows a thumbnail of ``path``; ``None`` if unreadable."""
    from zeroshot_vision._errors import ImageLoadError
    from zeroshot_vision._images import load_image

    try:
        image = load_image(path, draft_size=(THUMBNAIL, THUMBNAIL))
    except ImageLoadError:
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    if protocol == "sixel":
        return _sixel(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return _kitty(buffer.getvalue()) if protocol == "kitty" else _iterm2(buffer.getvalue())


def print_previews(
    results: Sequence[SearchResult],
    table: Sequence[str],
    *,
    protocol: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """The results table with each row followed by its thumbnail (the table alone in
    terminals without an image protocol)."""
    stream = stream or sys.stdout
    protocol = protocol or detect_protocol()
    say(table[0], stream)
    for result, line in zip(results, table[1:]):
        say(line, stream)
        path = result.metadata.get("path")
        if protocol is None or not isinstance(path, str):
            continue
        escape = image_escape(path, protocol)
        if escape is not None:
            # Written raw: say() would escape the very control characters that draw it.
            stream.write(escape + "\n")
    stream.flush()
