"""Metadata filters as SQL over an ``"ivfpq"`` store's records file.

:func:`sql_filter` turns a filter of the shared language
(:mod:`~zeroshot_vision.stores._filters`) into one SQLite ``WHERE`` expression over the
``meta`` JSON column, built from SQLite's JSON functions (``json_type``, ``json_extract``,
``json_each``), so that a filtered query over ten million records is one SQL scan instead
of ten million JSON parses in Python. Its result is the same as
:func:`~zeroshot_vision.stores._filters.compile_filter`'s predicate, rule by rule:

* a field is a top-level key of the metadata; missing (``json_type`` is NULL) matches
  only ``$ne``, ``$nin`` and ``$exists: false``;
* equality is by kind: a string equals only a string (byte for byte), a number only a
  number (``1 == 1.0``), a bool only a bool (``json_type`` tells ``true`` from ``1``);
* a field holding a list matches ``$eq``/``$in`` (and the comparisons) when one of its
  elements does, and ``$ne``/``$nin`` when none does; objects match neither;
* SQL's NULL (a missing field) counts as false everywhere, also under ``NOT``.

Filters SQL cannot say exactly fall back (``None``), and the caller evaluates them in
Python: a field name holding ``"``, ``\\`` or a control character (a JSON path cannot
name it), and numbers of magnitude ``2**53`` or more (SQLite turns integers beyond 64
bits into floats, and compares floats and integers that large differently from Python).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from zeroshot_vision.stores._filters import is_number, validate_filter

__all__ = ["sql_filter"]

_EXACT = 2**53  # integers below this are exact as floats: SQLite and Python agree on them
_NUMBER = "IN ('integer', 'real')"


class _Unsayable(Exception):
    """The filter holds a part SQL cannot say exactly."""


def sql_filter(filter: Mapping[str, Any] | None) -> tuple[str, tuple[Any, ...]] | None:
    """``(expression, parameters)`` for ``SELECT ... WHERE expression``, or None.

    None means the filter is one SQL cannot say exactly (see the module); an empty
    filter is ``("1", ())``.

    Raises:
        InvalidFilterError: If the filter is malformed.
    """
    validate_filter(filter)
    params: list[Any] = []
    try:
        sql = _object(filter or {}, params)
    except _Unsayable:
        return None
    return sql, tuple(params)


def _object(node: Mapping[str, Any], params: list[Any]) -> str:
    parts: list[str] = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_object(sub, params) for sub in value) + ")")
        else:
            conditions = value.items() if isinstance(value, Mapping) else (("$eq", value),)
            parts.extend(_condition(key, op, operand, params) for op, operand in conditions)
    return "(" + " AND ".join(parts) + ")" if parts else "1"


def _path(field: str) -> str:
    if any(ch in field for ch in '"\\') or any(ord(ch) < 0x20 for ch in field):
        raise _Unsayable(field)
    return f'$."{field}"'


def _number(value: Any) -> Any:
    if abs(value) >= _EXACT:
        raise _Unsayable(value)
    return value


def _condition(field: str, op: str, operand: Any, params: list[Any]) -> str:
    path = _path(field)
    if op == "$exists":
        params.append(path)
        return f"(json_type(meta, ?) IS {'NOT ' if operand else ''}NULL)"
    if op in ("$eq", "$ne", "$in", "$nin"):
        values = operand if op in ("$in", "$nin") else [operand]
        found = _member(path, values, params)
        # NULL (a missing field) is false: NOT must see 0, not NULL.
        return found if op in ("$eq", "$in") else f"(NOT coalesce({found}, 0))"
    compare = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    bound = _number(operand)
    params.extend([path, path, bound, path, path, bound])
    return (
        f"((json_type(meta, ?) {_NUMBER} AND json_extract(meta, ?) {compare} ?) OR "
        f"(json_type(meta, ?) = 'array' AND EXISTS (SELECT 1 FROM json_each(meta, ?) AS e "
        f"WHERE e.type {_NUMBER} AND e.value {compare} ?)))"
    )


def _member(path: str, values: Sequence[Any], params: list[Any]) -> str:
    """True when the field, or an element of it if it is a list, equals one of ``values``."""
    texts = [v for v in values if isinstance(v, str)]
    numbers = [_number(v) for v in values if is_number(v)]
    bools = sorted({"true" if v else "false" for v in values if isinstance(v, bool)})
    scalar: list[str] = []
    element: list[str] = []
    scalar_params: list[Any] = []
    element_params: list[Any] = []
    for kinds, group in (("= 'text'", texts), (_NUMBER, numbers)):
        if not group:
            continue
        # One value: '= ?'; more: 'IN' over a JSON array bound as one parameter (no limit
        # on how many values a statement binds).
        test, bound = ("= ?", group[0]) if len(group) == 1 else (_IN, json.dumps(group))
        scalar.append(f"(json_type(meta, ?) {kinds} AND json_extract(meta, ?) {test})")
        scalar_params.extend([path, path, bound])
        element.append(f"(e.type {kinds} AND e.value {test})")
        element_params.append(bound)
    if bools:
        quoted = ", ".join(f"'{kind}'" for kind in bools)  # only 'true' / 'false'
        scalar.append(f"(json_type(meta, ?) IN ({quoted}))")
        scalar_params.append(path)
        element.append(f"(e.type IN ({quoted}))")
    if not scalar:  # an empty $in: nothing equals none of no values
        return "0"
    params.extend(scalar_params)
    params.extend([path, path, *element_params])
    return (
        f"({' OR '.join(scalar)} OR (json_type(meta, ?) = 'array' AND EXISTS "
        f"(SELECT 1 FROM json_each(meta, ?) AS e WHERE {' OR '.join(element)})))"
    )


_IN = "IN (SELECT v.value FROM json_each(?) AS v)"
