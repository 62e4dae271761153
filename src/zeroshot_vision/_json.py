"""JSON from users and files, parsed only within depth and size limits, and validated.

Python's ``json`` module recurses once per nesting level, so a document nested a few
thousand levels deep ends in ``RecursionError`` before any validation runs. Every JSON the
project parses from a user or a file goes through :func:`loads_bounded`, which measures
the size and the nesting first and turns either limit, and any syntax error, into one
line from the project's error tree.

Every JSON file the project reads back is read by :func:`read_model`: bounded, parsed
and validated against the file's pydantic model (strict types, a format version) in one
step, any damage described in one line naming the field and what was expected
(:func:`describe_problem`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zeroshot_vision._errors import InvalidInputError, ZeroshotVisionError
from zeroshot_vision._text import short_repr

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "check_bounds",
    "describe_problem",
    "format_matches",
    "format_problem",
    "json_depth",
    "loads_bounded",
    "read_model",
]

M = TypeVar("M", bound="pydantic.BaseModel")

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


def describe_problem(exc: pydantic.ValidationError) -> str:
    """A pydantic validation error in one line: the first field at fault and what it needs.

    ``field 'dim': Input should be a valid integer (got None)``, ``field 'count' is
    missing``, and ``(and 2 more problems)`` when there are several.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        text = f"field {where!r} is missing"
    elif where:
        text = f"field {where!r}: {first['msg']} (got {short_repr(first.get('input'), 60)})"
    else:
        text = str(first["msg"])
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return " ".join(text.split())


def read_model(
    path: Path,
    model: type[M],
    *,
    max_bytes: int,
    max_depth: int,
    damaged: Callable[[str], Exception],
    check: Callable[[Any], None] | None = None,
) -> M:
    """Read the JSON file ``path`` as an instance of ``model``, within limits.

    Args:
        path: The file.
        model: Its pydantic model (strict; the format version is one of its fields).
        max_bytes: Its largest acceptable size: more is damage, not read into memory.
        max_depth: Its deepest acceptable nesting.
        damaged: Builds the error to raise from a one-line description of the damage.
        check: For small files: called with the parsed JSON before validation, to raise
            a more telling error first (not this kind of file at all; a newer format
            version than this code reads).

    Raises:
        FileNotFoundError: There is no such file (callers decide what absence means).
        Exception: ``damaged(...)``: unreadable (a directory, an I/O error), too large,
            too deep, not UTF-8, not JSON, or not what ``model`` describes.
    """
    import pydantic

    try:
        # O_NONBLOCK: a FIFO in the file's place must not block the open itself.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would never end
                raise damaged("it is not a regular file")
            if status.st_size > max_bytes:
                raise damaged(
                    f"it is {status.st_size:,} bytes, more than the {max_bytes:,} allowed"
                )
            data = handle.read(status.st_size + 1)  # + 1: grown since, the check below sees it
    except FileNotFoundError:
        raise
    except OSError as exc:  # a directory in its place, permissions, an I/O error
        raise damaged(f"cannot read it ({exc.strerror or exc})") from exc
    if not data.strip():
        raise damaged("it is empty")
    try:
        # Size, UTF-8 and depth are checked before parsing; pydantic then parses and
        # validates in one pass.
        check_bounds(data, max_depth=max_depth, max_bytes=max_bytes)
    except InvalidInputError as exc:
        raise damaged(str(exc)) from exc
    if check is not None:
        try:
            parsed = json.loads(data)  # within the limits checked above
        except ValueError:
            pass  # not JSON: pydantic says what is wrong with it, below
        else:
            check(parsed)
    try:
        return model.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise damaged(describe_problem(exc)) from exc


def check_bounds(data: bytes, *, max_depth: int, max_bytes: int) -> None:
    """The checks of :func:`loads_bounded` without the parse (for pydantic to parse).

    Raises:
        InvalidInputError: Too large, not UTF-8, or nested too deeply.
    """
    if len(data) > max_bytes:
        size = f"{max_bytes:,}+" if len(data) == max_bytes + 1 else f"{len(data):,}"
        raise InvalidInputError(f"it is {size} bytes, more than the {max_bytes:,} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    depth = json_depth(text)
    if depth > max_depth:
        raise InvalidInputError(
            f"it nests JSON {depth} levels deep, more than the {max_depth} allowed"
        )


def format_matches(raw: object, expected: str) -> bool:
    """Whether parsed JSON is an object whose ``format`` field is ``expected``."""
    return isinstance(raw, dict) and raw.get("format") == expected


def format_problem(raw: object, expected: str) -> str:
    """Why :func:`format_matches` said no, naming the field: for a one-line message."""
    if not isinstance(raw, dict):
        kind = "null" if raw is None else type(raw).__name__
        return f"it holds a JSON {kind}, not an object"
    if "format" not in raw:
        return "field 'format' is missing"
    return f"field 'format' should be {expected!r}, got {short_repr(raw['format'], 60)}"
