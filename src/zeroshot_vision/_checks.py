"""Small policies written once: number checks, batching, label lists.

Each rule here used to exist in several copies that drifted apart; every module now calls
these. (The default model, once here, is :func:`zeroshot_vision._models.default_model`.)
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._text import is_utf8, short_repr

T = TypeVar("T")

MAX_ID_BYTES = 4_096
"""The longest id, in UTF-8 bytes, that any entry accepts: ids are names, not payloads.

One rule for every way in (``index_images``, the stores' upsert, the server, LangChain,
LlamaIndex, datasets, ``zsv import``), so whatever ``zsv export`` writes imports again.
"""


def check_id(item: object, name: str = "the id") -> str:
    """``item`` if it is a usable record id: a non-empty string of valid UTF-8 of at most
    :data:`MAX_ID_BYTES` bytes.

    Raises:
        InvalidInputError: Naming ``name`` and what is wrong.
    """
    if not isinstance(item, str) or not item:
        raise InvalidInputError(f"{name} must be a non-empty string, got {short_repr(item)}")
    if not is_utf8(item):
        raise InvalidInputError(
            f"{name} is not valid UTF-8 (a lone surrogate, as from a file name that is not "
            f"UTF-8): {short_repr(item)}"
        )
    # UTF-8 takes at most 4 bytes a character: most ids skip the encoding.
    if len(item) * 4 > MAX_ID_BYTES and len(item.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{name} is longer than {MAX_ID_BYTES:,} bytes ({short_repr(item, 40)}); ids are "
            "names, not payloads: keep long text in the metadata"
        )
    return item


def positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` if it is a positive integer, else an error.

    numpy integers count (through ``__index__``); bools and floats do not.

    Raises:
        InvalidInputError: Naming ``name`` and the bad value.
    """
    number = _integer(value)
    if number is None or number <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return number


def non_negative_int(value: object, name: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 0 (numpy integers count, bools not).

    Raises:
        InvalidInputError: Naming ``name`` and the bad value.
    """
    number = _integer(value)
    if number is None or number < 0:
        raise InvalidInputError(f"{name} must be 0 or more, got {value!r}")
    return number


def _integer(value: object) -> int | None:
    """``value`` as an ``int`` through ``__index__`` (numpy integers too); bools are not."""
    if isinstance(value, bool):
        return None
    with contextlib.suppress(TypeError):
        return operator.index(value)  # type: ignore[arg-type]
    return None


def non_negative_seconds(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number of seconds >= 0 (nan refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value < math.inf:  # also refuses nan
        raise InvalidInputError(f"{name} must be 0 or more seconds, got {value}")
    return float(value)


def probability(value: object, name: str) -> float:
    """``value`` as a float if it lies in [0, 1] (nan refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_iterable(values: object, name: str) -> None:
    """Refuse ``values`` unless it is a collection (or any iterable) of items.

    ``None`` or a number where a list belongs is the caller's mistake, said in one line
    naming the argument, rather than Python's ``'NoneType' object is not iterable``.
    Nothing is consumed: a generator stays lazy.

    Raises:
        InvalidInputError: ``values`` is not iterable.
    """
    if not isinstance(values, Iterable):
        raise InvalidInputError(f"{name} must be a list, got {type(values).__name__}")


def item_list(values: object, name: str) -> list[Any]:
    """``values`` as a list, after :func:`check_iterable`.

    Raises:
        InvalidInputError: ``values`` is not iterable.
    """
    check_iterable(values, name)
    assert isinstance(values, Iterable)  # for the type checker: check_iterable ensured it
    return list(values)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last one shorter), read lazily from ``items``."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def clean_labels(labels: str | Sequence[str]) -> list[str]:
    """Labels to classify against: stripped, blanks and repeats dropped, order kept.

    A single string is split on commas and line breaks ("a dog, a cat").

    Raises:
        InvalidInputError: A label is not a string, or no label is left.
    """
    if isinstance(labels, str):
        parts = [part for line in labels.splitlines() for part in line.split(",")]
    else:
        parts = item_list(labels, "labels")
    cleaned: dict[str, None] = {}  # keeps first-seen order; a repeat costs O(1)
    for i, label in enumerate(parts):
        if not isinstance(label, str):
            raise InvalidInputError(f"labels[{i}] must be a string, got {type(label).__name__}")
        label = label.strip()
        if label:
            cleaned.setdefault(label, None)
    if not cleaned:
        raise InvalidInputError("give at least one label to classify against, e.g. 'a dog,a cat'")
    return list(cleaned)


def label_parts(labels: str | Sequence[str]) -> int:
    """How many labels :func:`clean_labels` reads from ``labels``, blanks and repeats
    included: what a limit on the number of labels counts (linear, no list built for a
    sequence)."""
    if isinstance(labels, str):
        return sum(line.count(",") + 1 for line in labels.splitlines())
    return len(labels)
