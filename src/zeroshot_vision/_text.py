"""Text that is safe to show: on a terminal, in a one-line message.

Names and descriptions come from file systems and datasets, so they may hold terminal
escape sequences (which can retitle or clear a terminal), newlines (which break a
one-line message), bidi overrides (which make text read differently than it is) or lone
surrogates (which cannot even be written to a UTF-8 stream).
"""

from __future__ import annotations

import re

__all__ = ["is_utf8", "printable", "printable_json", "short_repr"]

# C0 and C1 controls (ESC, CSI as 0x9b, BEL, newline, ...), DEL, the Arabic letter mark,
# left-to-right/right-to-left marks, line and paragraph separators, bidi embeddings,
# overrides and isolates, and lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)

# The same but C0: json.dumps escapes those inside strings, and its own newlines (indent)
# are the document's structure.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]


def printable(text: str) -> str:
    """``text`` with every control character shown as a visible escape such as ``\\x1b``.

    Ordinary text of any script, emoji included, is left as it is.
    """
    return _UNSAFE.sub(_escape, text)


def printable_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) that is safe to show.

    ``json.dumps`` escapes C0 controls but writes C1 controls (``\\x9b`` starts a CSI
    sequence on many terminals), bidi overrides and lone surrogates as they are. They can
    only occur inside JSON strings, where ``\\uXXXX`` escapes them; the result is still
    valid JSON and decodes to the same value.
    """
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate).

    ``os.walk`` and ``sys.argv`` turn bytes that are not UTF-8 into lone surrogates; such
    a string is a valid ``str`` but cannot be saved to a file or sent over the network.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for error messages.

    Never raises: an int of too many digits for Python to turn into a string, or a value
    nested too deeply to represent, is described by its type instead.
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
