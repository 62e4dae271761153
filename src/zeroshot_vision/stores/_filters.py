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
import operator
from collections.abc import Callable, Mapping
from typing import Any

from zeroshot_vision._constants import MAX_FILTER_DEPTH
from zeroshot_vision._errors import InvalidFilterError
from zeroshot_vision._text import is_utf8, short_repr

__all__ = [
    "FIELD_OPERATORS",
    "INT_RANGE",
    "LOGICAL_OPERATORS",
    "MAX_FILTER_DEPTH",
    "MAX_IN_VALUES",
    "compile_filter",
    "int_in_range",
    "is_number",
    "matches",
    "validate_filter",
]

FIELD_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
LOGICAL_OPERATORS = frozenset({"$and", "$or"})
MAX_IN_VALUES = 10_000
"""Pinecone refuses ``$in``/``$nin`` lists longer than this; so do we, everywhere."""
# MAX_FILTER_DEPTH (from _constants): how deeply filter objects may nest (through
# $and/$or); deeper ones are refused. Far beyond any real query, and far below the depth at
# which Python's recursion fails.
INT_RANGE = (-(2**63), 2**64 - 1)
"""The integers metadata and filters may hold: those of a signed or unsigned 64-bit type.

Every backend can store them (Pinecone's JSON encoder cannot write larger ones), they
compare exactly with floats, and their text is short. Store larger numbers as strings.
"""

Filter = Mapping[str, Any]


def is_number(value: object) -> bool:
    """A number in the filter language: an int or a float, never a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, bool)) or is_number(value)


def int_in_range(value: int) -> bool:
    """Whether an int lies in :data:`INT_RANGE` (cheap even for a huge one)."""
    return INT_RANGE[0] <= value <= INT_RANGE[1]


def validate_filter(filter: Filter | None) -> None:
    """Check that ``filter`` is well formed.

    Args:
        filter: A filter in the language described in this module, or ``None``.

    Raises:
        InvalidFilterError: Naming the offending part of the filter.
    """
    if filter is None:
        return
    _validate_object(filter, path="filter", depth=1)


def _validate_object(node: object, *, path: str, depth: int) -> None:
    if not isinstance(node, Mapping):
        raise InvalidFilterError(f"{path} must be an object, got {type(node).__name__}")
    if depth > MAX_FILTER_DEPTH:
        raise InvalidFilterError(
            f"{path} nests filters more than {MAX_FILTER_DEPTH} deep; flatten the $and/$or"
        )
    for key, value in node.items():
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(
                f"{path} has a key that is not a non-empty string: {short_repr(key)}"
            )
        if not is_utf8(key):
            raise InvalidFilterError(
                f"{path} has a field name that is not valid UTF-8: {short_repr(key)}"
            )
        # A name with a newline or an escape sequence would break a one-line message.
        where = f"{path}.{key}" if key.isprintable() else f"{path}[{short_repr(key)}]"
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{where} must be a non-empty list of filters")
            for i, sub in enumerate(value):
                _validate_object(sub, path=f"{where}[{i}]", depth=depth + 1)
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
            f"unknown operator {short_repr(op)} at {where}; use one of "
            f"{', '.join(sorted(FIELD_OPERATORS))}"
        )
    if op in ("$eq", "$ne"):
        if not _is_scalar(operand):
            raise InvalidFilterError(
                f"{where}: {op} takes a number, string or bool, got {short_repr(operand)}"
            )
        _validate_value(op, operand, where=where)
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if not is_number(operand):
            raise InvalidFilterError(
                f"{where}: {op} takes a finite number, got {short_repr(operand)}"
            )
        _validate_value(op, operand, where=where)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidFilterError(f"{where}: {op} takes a list, got {short_repr(operand)}")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilterError(
                f"{where}: {op} takes at most {MAX_IN_VALUES} values, got {len(operand)}"
            )
        for item in operand:
            if not (isinstance(item, str) or is_number(item)):
                raise InvalidFilterError(
                    f"{where}: {op} takes strings or numbers, got {short_repr(item)}"
                )
            _validate_value(op, item, where=where)
    elif op == "$exists" and not isinstance(operand, bool):
        raise InvalidFilterError(f"{where}: $exists takes true or false, got {short_repr(operand)}")


def _validate_value(op: str, value: object, *, where: str) -> None:
    """Refuse a scalar no stored value can equal, or that cannot be compared safely."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not int_in_range(value):
        # Comparing it with a float would overflow, and its text may be too long to make.
        raise InvalidFilterError(
            f"{where}: {op} got an integer of {value.bit_length()} bits, outside the 64-bit "
            "range metadata can hold"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"{where}: {op} takes a finite number, got {value!r}")
    if isinstance(value, str) and not is_utf8(value):
        raise InvalidFilterError(
            f"{where}: {op} got text that is not valid UTF-8: {short_repr(value)}"
        )


_MISSING = object()

Predicate = Callable[[Mapping[str, Any]], bool]


def matches(filter: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a record with ``metadata`` passes ``filter``.

    To test many records against one filter, compile it once with :func:`compile_filter`.

    Raises:
        InvalidFilterError: If the filter is malformed (see :func:`validate_filter`).
    """
    return compile_filter(filter)(metadata)


def compile_filter(filter: Filter | None) -> Predicate:
    """Turn a filter into a function ``metadata -> bool``.

    Equality and membership tests become set look-ups, so ``$in`` with thousands of values
    costs no more per record than ``$eq``.

    Raises:
        InvalidFilterError: If the filter is malformed (see :func:`validate_filter`).
    """
    # Validated here too, so that no filter can reach the compiler's recursion or its
    # float comparisons unchecked.
    validate_filter(filter)
    return _compile(filter)


def _compile(filter: Filter | None) -> Predicate:
    if not filter:
        return _always
    parts: list[Predicate] = []
    for key, value in filter.items():
        if key in ("$and", "$or"):
            parts.append(_combine([_compile(sub) for sub in value], every=key == "$and"))
        else:
            conditions = value.items() if isinstance(value, Mapping) else (("$eq", value),)
            bounds = [(op, operand) for op, operand in conditions if op in _ORDER]
            if bounds:  # all of a field's bounds in one predicate: one look-up per record
                parts.append(_range_predicate(key, bounds))
            parts.extend(
                _field_predicate(key, op, operand) for op, operand in conditions if op not in _ORDER
            )
    return parts[0] if len(parts) == 1 else _combine(parts, every=True)


def _combine(parts: list[Predicate], *, every: bool) -> Predicate:
    if len(parts) == 2:  # the common pair, without a generator: filters run per record
        first, second = parts
        if every:
            return lambda m: first(m) and second(m)
        return lambda m: first(m) or second(m)
    if every:
        return lambda m: all(p(m) for p in parts)
    return lambda m: any(p(m) for p in parts)


def _always(metadata: Mapping[str, Any]) -> bool:
    return True


def _key(value: object) -> tuple[str, object] | None:
    """A hashable identity under the language's equality: 1 == 1.0, True != 1."""
    kind = _KINDS.get(type(value))
    if kind is not None:  # exact built-in types, the common case, in one look-up
        return (kind, value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None  # lists, objects, None: equal to no filter value


_KINDS: dict[type, str] = {str: "string", int: "number", float: "number", bool: "bool"}


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _range_predicate(field: str, bounds: list[tuple[str, Any]]) -> Predicate:
    """The field's order conditions together: a number meets every bound; a list meets
    each bound with one of its numbers (not necessarily the same one)."""
    tests = [(_ORDER[op], operand) for op, operand in bounds]

    def within(m: Mapping[str, Any]) -> bool:
        value = m.get(field, _MISSING)
        kind = type(value)
        if kind is int or kind is float:  # the common case, without a generator
            return all(compare(value, operand) for compare, operand in tests)
        values = value if kind is list else (value,)
        return all(
            any(is_number(v) and compare(v, operand) for v in values) for compare, operand in tests
        )

    return within


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
            if isinstance(value, list):
                found = any(_key(v) in wanted for v in value)
            else:  # the common case, without a generator: filters run per record
                found = _key(value) in wanted
            return found is positive

        return member
    compare = _ORDER[op]

    def order(m: Mapping[str, Any]) -> bool:
        value = m.get(field, _MISSING)
        values = value if isinstance(value, list) else (value,)
        return any(is_number(v) and compare(v, operand) for v in values)

    return order
