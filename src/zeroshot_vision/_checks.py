"""Small policies written once: number checks, batching, label lists.

Each rule here used to exist in several copies that drifted apart; every module now calls
these. (The default model, once here, is :func:`zeroshot_vision.models.default_model`.)
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from zeroshot_vision.errors import InvalidInputError

T = TypeVar("T")


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


def require_iterable(value: object, name: str) -> None:
    """Refuse ``None`` (or anything else that cannot be iterated) where a collection is
    expected, with the project's error instead of Python's ``TypeError``.

    Raises:
        InvalidInputError: Naming ``name`` and what was given.
    """
    if value is None or not isinstance(value, Iterable):
        raise InvalidInputError(f"{name} must be a list (or other iterable), got {value!r}")


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
        require_iterable(labels, "labels")
        parts = list(labels)
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
    require_iterable(labels, "labels")
    return len(labels)
