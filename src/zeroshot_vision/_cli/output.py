"""What ``zsv`` prints, and how: every line it writes goes through these helpers.

File names, ids and descriptions come from file systems and datasets: an escape sequence
in one could retitle or clear the terminal, and a newline would break a one-line message,
so control characters are shown as escapes. Nothing here imports torch, transformers or
faiss: output stays cheap for commands that load no model.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any, TextIO

from zeroshot_vision._text import printable, printable_json

__all__ = [
    "columns",
    "error",
    "human_size",
    "interactive",
    "one_line",
    "os_error_message",
    "pad",
    "print_json",
    "progress_bar",
    "say",
]


def say(message: str, stream: TextIO | None = None) -> None:
    """Print one line; control characters in it (newlines too) are shown as escapes."""
    print(printable(message), file=stream or sys.stdout)


def error(message: str) -> None:
    """Print ``zsv: error: <message>`` on stderr, on one line whatever the message holds."""
    print(f"zsv: error: {printable(' '.join(message.split()))}", file=sys.stderr)


def os_error_message(exc: OSError) -> str:
    """What went wrong and where, for a file-system error, without the errno noise."""
    # "[Errno 28] No space left on device" says neither what nor where; the strerror and
    # the file name do.
    if not exc.strerror:
        return str(exc) or type(exc).__name__
    if exc.filename is None:
        return exc.strerror
    return f"{exc.filename}: {exc.strerror}"


def progress_bar(total: int, *, unit: str, desc: str) -> Any:
    """A tqdm bar on a terminal, ``None`` otherwise (logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, smoothing=0.1)


def interactive() -> bool:
    """Whether to draw progress (bars, the model loading): only on a terminal."""
    return sys.stderr.isatty()


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with control characters escaped."""
    # Still valid JSON: what json.dumps leaves raw is escaped as \uXXXX inside its strings.
    print(printable_json(json.dumps(value, ensure_ascii=False, indent=2)))


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes once printed (see :func:`say`): wide (CJK,
    emoji) characters take two, control characters their escapes."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in printable(text)
    )


def one_line(text: str, width: int) -> str:
    """``text`` on one line, control characters escaped, cut with an ellipsis to at most
    ``width`` terminal columns."""
    flat = printable(" ".join(text.split()))
    if columns(flat) <= width:
        return flat
    kept = ""
    for char in flat:
        if columns(kept + char) > max(width - 1, 0):
            break
        kept += char
    return kept + "…"


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(width - columns(text), 0)


def human_size(size: float) -> str:
    """A byte count as ``512 B``, ``1.5 KiB``, ... ``2.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
