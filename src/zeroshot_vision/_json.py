"""JSON from users and files, parsed only within depth and size limits.

Python's ``json`` module recurses once per nesting level, so a document nested a few
thousand levels deep ends in ``RecursionError`` before any validation runs. Every JSON the
project parses from a user or a file goes through :func:`loads_bounded`, which measures
the size and the nesting first and turns either limit, and any syntax error, into one
line from the project's error tree.
"""

from __future__ import annotations

import json
import re
from typing import Any

from zeroshot_vision.errors import InvalidInputError, ZeroshotVisionError

__all__ = ["json_depth", "loads_bounded"]

# A JSON string, escapes included: brackets inside strings do not nest anything.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENING = frozenset("[{")
_NUMPY_FROM = 100_000
"""Bracket counts from which numpy's cumulative sum beats a Python loop."""


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (0 for a scalar), without parsing it.

    Measured on the brackets outside strings, so it is cheap (regular expressions and,
    for long documents, numpy) and never recurses. Malformed text gets a number too; the
    parser then reports what is wrong with it.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) < _NUMPY_FROM:
        depth = deepest = 0
        for char in brackets:
            if char in _OPENING:
                depth += 1
                deepest = max(deepest, depth)
            else:
                depth -= 1
        return deepest
    import numpy as np

    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


def loads_bounded(
    text: str | bytes,
    *,
    max_depth: int,
    max_bytes: int,
    what: str,
    error: type[ZeroshotVisionError] = InvalidInputError,
) -> Any:
    """Parse ``text`` as JSON if it is at most ``max_bytes`` long and ``max_depth`` deep.

    Args:
        text: The JSON document (bytes are decoded as UTF-8).
        max_depth: The deepest nesting of arrays and objects allowed.
        max_bytes: The largest size allowed, in bytes of UTF-8.
        what: What the text is, for messages (``"--filter"``, a file's path).
        error: The error class to raise; it takes one message argument.

    Raises:
        ZeroshotVisionError: ``error`` (default :class:`InvalidInputError`), in one
            line: too large, nested too deep, not UTF-8, or not valid JSON.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise error(f"{what} is {size:,} bytes of JSON, more than the {max_bytes:,} allowed")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    depth = json_depth(text)
    if depth > max_depth:
        raise error(f"{what} nests JSON {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    except RecursionError as exc:  # cannot happen under the depth check; never escapes
        raise error(f"{what} nests JSON too deeply to parse") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise error(f"{what} cannot be parsed: {' '.join(str(exc).split())}") from exc
