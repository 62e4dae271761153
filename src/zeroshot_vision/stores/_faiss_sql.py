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
from dataclasses import dataclass
from typing import Any

from zeroshot_vision.stores._filters import is_number, validate_filter

__all__ = ["IndexedField", "filter_parts", "keyset_sql", "sql_filter"]

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


# -- the filter index ------------------------------------------------------------------
#
# A records file may carry an index of its metadata values (written by
# ``_faiss_records``): one row per (field, value, key) in a table whose primary key is
# that triple, so that the keys of the records where a field equals a value, or falls in
# a range, are one B-tree range of it, not a scan of every record's JSON::
#
#     CREATE TABLE fields (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
#                          lists INTEGER NOT NULL);
#     CREATE TABLE terms (field INTEGER NOT NULL, value NOT NULL, key INTEGER NOT NULL,
#                         PRIMARY KEY (field, value, key)) WITHOUT ROWID;
#
# ``value`` has no type affinity: a text stays text and a number a number, and SQLite
# orders every number before every text, so equality is by kind as the filter language
# wants (``"1"`` never equals ``1``; ``1`` equals ``1.0``). A field holding a list has a
# row per element that is a text or a number. Bools, nulls and objects have no rows: a
# condition on them is answered from the JSON.


@dataclass(frozen=True)
class IndexedField:
    """A field of the filter index.

    Attributes:
        id: Its number in ``terms.field``.
        lists: Whether some record holds a list in it (then two bounds on the field may
            hold for different elements, and a range is two look-ups, not one).
    """

    id: int
    lists: bool


def filter_parts(filter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The terms of the filter's top-level *and*: one field each, ``$and`` flattened."""
    parts: list[dict[str, Any]] = []
    for key, value in filter.items():
        if key == "$and":
            for sub in value:
                parts.extend(filter_parts(sub))
        else:
            parts.append({key: value})
    return parts


def keyset_sql(
    filter: Mapping[str, Any], fields: Mapping[str, IndexedField]
) -> tuple[str, tuple[Any, ...]] | None:
    """A ``SELECT key`` over the filter index giving every key that passes ``filter``
    (a key may come more than once), or None if a part of it needs the JSON.

    ``fields`` are the indexed fields; an ``$and`` is an ``INTERSECT``, an ``$or`` a
    ``UNION ALL``. ``$ne``, ``$nin``, ``$exists``, bools and fields not indexed are not
    answered from the index. The filter must be valid (:func:`validate_filter`).
    """
    params: list[Any] = []
    try:
        sql = _keys_of_object(filter, fields, params)
    except _Unsayable:
        return None
    return sql, tuple(params)


def _compound(selects: list[str], operator: str) -> str:
    if len(selects) == 1:
        return selects[0]
    return f" {operator} ".join(f"SELECT key FROM ({select})" for select in selects)


def _keys_of_object(
    node: Mapping[str, Any], fields: Mapping[str, IndexedField], params: list[Any]
) -> str:
    selects: list[str] = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            subs = [_keys_of_object(sub, fields, params) for sub in value]
            selects.append(_compound(subs, "INTERSECT" if key == "$and" else "UNION ALL"))
        else:
            conditions = value.items() if isinstance(value, Mapping) else (("$eq", value),)
            selects.extend(_keys_of_field(key, dict(conditions), fields, params))
    if not selects:  # {}: every record, which the index cannot list (no fields)
        raise _Unsayable(node)
    return _compound(selects, "INTERSECT")


_LOWER = {"$gt": ">", "$gte": ">="}
_UPPER = {"$lt": "<", "$lte": "<="}


def _keys_of_field(
    name: str,
    conditions: Mapping[str, Any],
    fields: Mapping[str, IndexedField],
    params: list[Any],
) -> list[str]:
    field = fields.get(name)
    if field is None:
        raise _Unsayable(name)
    selects: list[str] = []
    bounds: list[tuple[str, Any]] = []
    for op, operand in conditions.items():
        if op in ("$eq", "$in"):
            values = operand if op == "$in" else [operand]
            if any(isinstance(v, bool) for v in values):
                raise _Unsayable(operand)
            values = [v if isinstance(v, str) else _number(v) for v in values]
            if not values:
                selects.append("SELECT key FROM terms WHERE 0")
            elif len(values) == 1:
                selects.append("SELECT key FROM terms WHERE field = ? AND value = ?")
                params.extend([field.id, values[0]])
            else:
                selects.append(
                    "SELECT key FROM terms WHERE field = ? AND value IN "
                    "(SELECT v.value FROM json_each(?) AS v)"
                )
                params.extend([field.id, json.dumps(values)])
        elif op in _LOWER or op in _UPPER:
            bounds.append((op, _number(operand)))
        else:  # $ne, $nin, $exists: true for records without the field, or by absence
            raise _Unsayable(op)
    # On a field that never holds a list, a lower and an upper bound are one range;
    # otherwise each bound may hold for another element, and each is its own range.
    groups = [bounds] if not field.lists else [[bound] for bound in bounds]
    for group in groups:
        if not group:
            continue
        terms = ["field = ?"]
        params.append(field.id)
        for op, bound in group:
            terms.append(f"value {_LOWER.get(op) or _UPPER[op]} ?")
            params.append(bound)
        if not any(op in _UPPER for op, _ in group):
            terms.append("value < ''")  # numbers only: every text sorts after them
        selects.append(f"SELECT key FROM terms WHERE {' AND '.join(terms)}")
    return selects
