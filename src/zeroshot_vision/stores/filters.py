"""The metadata filter language shared by every store.

It is Pinecone's filter language (itself a subset of MongoDB's), so that code moves
between backends unchanged:

| operator | matches when the field ... | value |
| --- | --- | --- |
| ``$eq`` | equals the value | number, string or bool |
| ``$ne`` | does not equal the value (or is missing) | number, string or bool |
| ``$gt`` ``$gte`` ``$lt`` ``$lte`` | compares so with the value | number |
| ``$in`` | equals one of the values | list of numbers or strings |
| ``$nin`` | equals none of the values (or is missing) | list of numbers or strings |
| ``$exists`` | is present (``true``) or absent (``false``) | bool |

A bare value means ``$eq``: ``{"country": "Iceland"}``. Several keys in one object are
combined with *and*, as are several operators on one field. ``$and`` and ``$or`` take a
non-empty list of filters. A field holding a list of strings matches ``$eq``/``$in`` when
any element matches, and ``$ne``/``$nin`` when no element does. Numbers compare as
numbers (``1 == 1.0``); a bool is never a number. An empty filter (``{}``) or ``None``
matches everything.

:func:`validate_filter` rejects a malformed filter with :class:`InvalidFilterError` before
any store sees it; :func:`matches` evaluates a filter against one record's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from zeroshot_vision.errors import InvalidFilterError

__all__ = ["FIELD_OPERATORS", "LOGICAL_OPERATORS", "MAX_IN_VALUES", "matches", "validate_filter"]

FIELD_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
LOGICAL_OPERATORS = frozenset({"$and", "$or"})
MAX_IN_VALUES = 10_000
"""Pinecone refuses ``$in``/``$nin`` lists longer than this; so do we, everywhere."""

Filter = Mapping[str, Any]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def validate_filter(filter: Filter | None) -> None:
    """Check that ``filter`` is well formed.

    Args:
        filter: A filter in the language described in this module, or ``None``.

    Raises:
        InvalidFilterError: Naming the offending part of the filter.
    """
    if filter is None:
        return
    _validate_object(filter, path="filter")


def _validate_object(node: object, *, path: str) -> None:
    if not isinstance(node, Mapping):
        raise InvalidFilterError(f"{path} must be an object, got {type(node).__name__}")
    for key, value in node.items():
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"{path} has a key that is not a non-empty string: {key!r}")
        where = f"{path}.{key}"
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{where} must be a non-empty list of filters")
            for i, sub in enumerate(value):
                _validate_object(sub, path=f"{where}[{i}]")
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown or misplaced operator {key!r} at {path}; field operators "
                f"({', '.join(sorted(FIELD_OPERATORS))}) go under a field name, and only "
                "$and and $or may stand at the top"
            )
        elif isinstance(value, Mapping):
            if not value:
                raise InvalidFilterError(f"{where} has no operator")
            for op, operand in value.items():
                _validate_condition(op, operand, where=where)
        else:
            _validate_condition("$eq", value, where=where)


def _validate_condition(op: object, operand: object, *, where: str) -> None:
    if op not in FIELD_OPERATORS:
        raise InvalidFilterError(
            f"unknown operator {op!r} at {where}; use one of {', '.join(sorted(FIELD_OPERATORS))}"
        )
    if op in ("$eq", "$ne"):
        if not _is_scalar(operand):
            raise InvalidFilterError(
                f"{where}: {op} takes a number, string or bool, got {operand!r}"
            )
        if isinstance(operand, float) and not math.isfinite(operand):
            raise InvalidFilterError(f"{where}: {op} takes a finite number, got {operand!r}")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if not _is_number(operand) or not math.isfinite(float(operand)):  # type: ignore[arg-type]
            raise InvalidFilterError(f"{where}: {op} takes a finite number, got {operand!r}")
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidFilterError(f"{where}: {op} takes a list, got {operand!r}")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilterError(
                f"{where}: {op} takes at most {MAX_IN_VALUES} values, got {len(operand)}"
            )
        for item in operand:
            if not (isinstance(item, str) or _is_number(item)):
                raise InvalidFilterError(f"{where}: {op} takes strings or numbers, got {item!r}")
    elif op == "$exists" and not isinstance(operand, bool):
        raise InvalidFilterError(f"{where}: $exists takes true or false, got {operand!r}")


_MISSING = object()


def matches(filter: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a record with ``metadata`` passes ``filter``.

    The filter is assumed valid (see :func:`validate_filter`).
    """
    if not filter:
        return True
    for key, value in filter.items():
        if key == "$and":
            if not all(matches(sub, metadata) for sub in value):
                return False
        elif key == "$or":
            if not any(matches(sub, metadata) for sub in value):
                return False
        else:
            field = metadata.get(key, _MISSING)
            conditions = value.items() if isinstance(value, Mapping) else (("$eq", value),)
            if not all(_check(op, operand, field) for op, operand in conditions):
                return False
    return True


def _equal(a: object, b: object) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _compare(test: Callable[[float, float], bool]) -> Callable[[object, object], bool]:
    def check(field: object, operand: object) -> bool:
        return _is_number(field) and test(field, operand)  # type: ignore[arg-type]

    return check


_ORDER: dict[str, Callable[[object, object], bool]] = {
    "$gt": _compare(lambda a, b: a > b),
    "$gte": _compare(lambda a, b: a >= b),
    "$lt": _compare(lambda a, b: a < b),
    "$lte": _compare(lambda a, b: a <= b),
}


def _check(op: str, operand: Any, field: object) -> bool:
    if op == "$exists":
        return (field is not _MISSING) is operand
    if field is _MISSING:
        return op in ("$ne", "$nin")
    values = field if isinstance(field, list) else [field]
    if op == "$eq":
        return any(_equal(v, operand) for v in values)
    if op == "$ne":
        return not any(_equal(v, operand) for v in values)
    if op == "$in":
        return any(_equal(v, o) for v in values for o in operand)
    if op == "$nin":
        return not any(_equal(v, o) for v in values for o in operand)
    return any(_ORDER[op](v, operand) for v in values)
