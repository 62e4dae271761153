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
any store sees it; :func:`matches` evaluates a filter against one record's metadata, and
:func:`compile_filter` turns a filter into a fast predicate for scanning many records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from zeroshot_vision.errors import InvalidFilterError

__all__ = [
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_IN_VALUES",
    "compile_filter",
    "is_number",
    "matches",
    "validate_filter",
]

FIELD_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
LOGICAL_OPERATORS = frozenset({"$and", "$or"})
MAX_IN_VALUES = 10_000
"""Pinecone refuses ``$in``/``$nin`` lists longer than this; so do we, everywhere."""

Filter = Mapping[str, Any]


def is_number(value: object) -> bool:
    """A number in the filter language: an int or a float, never a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, bool)) or is_number(value)


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
        if not is_number(operand) or not math.isfinite(float(operand)):  # type: ignore[arg-type]
            raise InvalidFilterError(f"{where}: {op} takes a finite number, got {operand!r}")
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidFilterError(f"{where}: {op} takes a list, got {operand!r}")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilterError(
                f"{where}: {op} takes at most {MAX_IN_VALUES} values, got {len(operand)}"
            )
        for item in operand:
            if not (isinstance(item, str) or is_number(item)):
                raise InvalidFilterError(f"{where}: {op} takes strings or numbers, got {item!r}")
    elif op == "$exists" and not isinstance(operand, bool):
        raise InvalidFilterError(f"{where}: $exists takes true or false, got {operand!r}")


_MISSING = object()

Predicate = Callable[[Mapping[str, Any]], bool]


def matches(filter: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a record with ``metadata`` passes ``filter``.

    The filter is assumed valid (see :func:`validate_filter`). To test many records
    against one filter, compile it once with :func:`compile_filter`.
    """
    return compile_filter(filter)(metadata)


def compile_filter(filter: Filter | None) -> Predicate:
    """Turn a (valid) filter into a function ``metadata -> bool``.

    Equality and membership tests become set look-ups, so ``$in`` with thousands of values
    costs no more per record than ``$eq``.
    """
    if not filter:
        return _always
    parts: list[Predicate] = []
    for key, value in filter.items():
        if key in ("$and", "$or"):
            parts.append(_combine([compile_filter(sub) for sub in value], every=key == "$and"))
        else:
            conditions = value.items() if isinstance(value, Mapping) else (("$eq", value),)
            parts.extend(_field_predicate(key, op, operand) for op, operand in conditions)
    return parts[0] if len(parts) == 1 else _combine(parts, every=True)


def _combine(parts: list[Predicate], *, every: bool) -> Predicate:
    if every:
        return lambda m: all(p(m) for p in parts)
    return lambda m: any(p(m) for p in parts)


def _always(metadata: Mapping[str, Any]) -> bool:
    return True


def _key(value: object) -> tuple[str, object] | None:
    """A hashable identity under the language's equality: 1 == 1.0, True != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None  # lists, objects, None: equal to no filter value


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _field_predicate(field: str, op: str, operand: Any) -> Predicate:
    if op == "$exists":
        return lambda m: (field in m) is operand
    if op in ("$eq", "$ne", "$in", "$nin"):
        wanted = frozenset(_key(o) for o in (operand if op in ("$in", "$nin") else [operand]))
        positive = op in ("$eq", "$in")

        def member(m: Mapping[str, Any]) -> bool:
            value = m.get(field, _MISSING)
            if value is _MISSING:
                return not positive  # $ne and $nin match a missing field
            values = value if isinstance(value, list) else (value,)
            found = any(_key(v) in wanted for v in values)
            return found is positive

        return member
    compare = _ORDER[op]

    def order(m: Mapping[str, Any]) -> bool:
        value = m.get(field, _MISSING)
        values = value if isinstance(value, list) else (value,)
        return any(is_number(v) and compare(v, operand) for v in values)

    return order
