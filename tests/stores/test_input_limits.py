"""Input a store could not save, or a filter could not evaluate, is refused up front.

Whatever the shape of metadata or of a filter, a store either accepts it (and then
saves and loads it back unchanged) or refuses it with an error of the project's tree:
never a ``UnicodeEncodeError`` at the next save, a ``RecursionError`` or an
``OverflowError``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroshot_vision._errors import (
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    ZeroshotVisionError,
)
from zeroshot_vision.stores import FaissStore
from zeroshot_vision.stores._base import MAX_METADATA_DEPTH, check_ids, clean_metadata
from zeroshot_vision.stores._filters import (
    INT_RANGE,
    MAX_FILTER_DEPTH,
    compile_filter,
    matches,
    validate_filter,
)

DIM = 4
VECTOR = np.ones((1, DIM), dtype=np.float32)


def nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def nested_or(depth: int) -> dict[str, Any]:
    flt: dict[str, Any] = {"x": 1}
    for _ in range(depth):
        flt = {"$or": [flt]}
    return flt


def assert_one_line(exc: BaseException) -> None:
    message = str(exc)
    assert message and "\n" not in message and len(message) < 500, message


@pytest.mark.parametrize(
    "ids",
    [["\udcff"], ["ok", "photo-\ud800.jpg"]],
    ids=["lone-surrogate", "surrogate-in-second-id"],
)
def test_ids_that_are_not_utf8_are_refused_at_upsert_and_nothing_changes(
    ids: list[str], tmp_path: Path
) -> None:
    store = FaissStore(DIM)
    with pytest.raises(InvalidInputError) as caught:
        store.upsert(ids, np.ones((len(ids), DIM)))
    assert_one_line(caught.value)
    assert len(store) == 0
    store.save(tmp_path / "idx")  # still saves
    with pytest.raises(InvalidInputError):
        check_ids(["\udcff"])


@pytest.mark.parametrize(
    "meta",
    [
        {"name": "\udcff.jpg"},
        {"\udcff": "key not UTF-8"},
        {"tags": ["ok", "\ud800"]},
        {"big": 10**5000},  # more digits than Python will turn into a string
        {"big": 2**64},
        {"small": -(2**63) - 1},
        {"deep": nested_list(MAX_METADATA_DEPTH + 1)},
        {"deeper": nested_list(sys.getrecursionlimit() + 100)},
    ],
    ids=[
        "surrogate-value",
        "surrogate-key",
        "surrogate-in-list",
        "int-5000-digits",
        "int-2**64",
        "int-below-64-bit",
        "nested-past-limit",
        "nested-past-recursion-limit",
    ],
)
def test_metadata_a_store_cannot_save_is_refused_at_upsert(
    meta: dict[str, Any], tmp_path: Path
) -> None:
    store = FaissStore(DIM)
    store.upsert(["kept"], VECTOR, [{"a": 1}])
    with pytest.raises(InvalidMetadataError) as caught:
        store.upsert(["x"], VECTOR, [meta])
    assert_one_line(caught.value)
    assert list(store.ids()) == ["kept"]
    store.save(tmp_path / "idx")
    assert list(FaissStore.load(tmp_path / "idx").ids()) == ["kept"]


def test_metadata_at_the_limits_is_kept_exactly(tmp_path: Path) -> None:
    low, high = INT_RANGE
    meta = {"low": low, "high": high, "deep": nested_list(MAX_METADATA_DEPTH - 1)}
    assert clean_metadata(meta) == meta
    store = FaissStore(DIM)
    store.upsert(["x"], VECTOR, [meta])
    store.save(tmp_path / "idx")
    assert FaissStore.load(tmp_path / "idx").fetch(["x"])["x"].metadata == meta


@pytest.mark.parametrize(
    "flt",
    [
        nested_or(MAX_FILTER_DEPTH + 1),
        nested_or(sys.getrecursionlimit() + 100),
        {"year": {"$gt": 10**400}},  # too big for a float
        {"year": {"$lt": -(10**400)}},
        {"year": 10**5000},  # too long to turn into a string
        {"year": {"$in": [1, 10**5000]}},
        {"year": {"$eq": 2**64}},
        {"name": "\udcff"},
        {"\udcff": 1},
        {"tags": {"$in": ["a", "\ud800"]}},
    ],
    ids=[
        "nested-past-limit",
        "nested-past-recursion-limit",
        "int-overflows-float",
        "negative-int-overflows-float",
        "int-5000-digits",
        "int-5000-digits-in-list",
        "int-2**64",
        "surrogate-value",
        "surrogate-field",
        "surrogate-in-list",
    ],
)
def test_filters_beyond_the_limits_are_invalid_everywhere(flt: dict[str, Any]) -> None:
    for check in (validate_filter, compile_filter, lambda f: matches(f, {"year": 1})):
        with pytest.raises(InvalidFilterError) as caught:
            check(flt)
        assert_one_line(caught.value)
    store = FaissStore(DIM)
    store.upsert(["x"], VECTOR, [{"year": 1}])
    with pytest.raises(InvalidFilterError):
        store.query(VECTOR, k=1, filter=flt)


def test_filters_at_the_limits_work() -> None:
    low, high = INT_RANGE
    assert matches(nested_or(MAX_FILTER_DEPTH - 1), {"x": 1})
    assert matches({"n": {"$gte": low, "$lte": high}}, {"n": 5})


# Fuzzing: shapes that mix valid values with every kind of trouble above.
_TEXT = st.text(alphabet=st.characters(codec=None), max_size=6) | st.sampled_from(
    ["\udcff", "\ud800x", "", "$or", "$gt", "a\nb"]
)
# Huge ints are built, not listed: Hypothesis cannot print an int of 5,000 digits.
_INTS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
    | st.sampled_from([400, -400, 5000]).map(lambda d: 10 ** abs(d) * (1 if d > 0 else -1))
)
_SCALARS = (
    st.none()
    | st.booleans()
    | _INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TEXT
    | st.sampled_from([b"bytes", object(), {1, 2}, np.float32(1.5), np.int64(7)])
)


def _deep(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = {"k": value} if depth % 2 else [value]
    return value


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_TEXT | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=10,
) | st.builds(_deep, _SCALARS, st.sampled_from([MAX_METADATA_DEPTH - 1, MAX_METADATA_DEPTH, 5000]))

_METADATA = st.dictionaries(_TEXT, _VALUES, max_size=4)

_OPERATORS = st.sampled_from(
    ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$bad", "$and"]
)
_FILTERS = st.recursive(
    st.dictionaries(_TEXT, _VALUES | st.dictionaries(_OPERATORS, _VALUES, max_size=2), max_size=2),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or", "field"]), st.lists(inner, max_size=2) | inner, max_size=2
    ),
    max_leaves=6,
) | st.builds(nested_or, st.sampled_from([MAX_FILTER_DEPTH, MAX_FILTER_DEPTH + 1, 5000]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=_METADATA, flt=_FILTERS)
def test_fuzzed_metadata_and_filters_round_trip_or_are_refused(
    meta: dict[str, Any], flt: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = FaissStore(DIM)
    try:
        store.upsert(["x"], VECTOR, [meta])
    except ZeroshotVisionError as exc:
        assert isinstance(exc, InvalidInputError)
        assert_one_line(exc)
        assert len(store) == 0
    else:
        folder = tmp_path_factory.mktemp("idx")
        store.save(folder)
        loaded = FaissStore.load(folder).fetch(["x"])["x"].metadata
        expected = json.loads(json.dumps(clean_metadata(meta)))
        assert loaded == expected
    try:
        store.query(VECTOR, k=1, filter=flt)
    except ZeroshotVisionError as exc:
        assert isinstance(exc, InvalidFilterError)
        assert_one_line(exc)
    for check in (validate_filter, compile_filter, lambda f: matches(f, meta)):
        try:
            check(flt)
        except ZeroshotVisionError as exc:
            assert isinstance(exc, InvalidFilterError)
            assert_one_line(exc)
