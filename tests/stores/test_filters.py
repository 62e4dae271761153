"""The shared filter language, on its own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zeroshot_vision._errors import InvalidFilterError
from zeroshot_vision.stores._filters import MAX_IN_VALUES, matches, validate_filter
from zeroshot_vision.testing._contract import BAD_FILTERS, FILTER_TABLE

RECORD = {"country": "Japan", "year": 2021, "tags": ["city", "night"], "featured": False}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, True),
        ({}, True),
        ({"country": "Japan"}, True),
        ({"country": "japan"}, False),  # case-sensitive, like Pinecone
        ({"year": 2021.0}, True),
        ({"year": {"$gt": 2020, "$lt": 2022}}, True),
        ({"year": {"$gt": 2021}}, False),
        ({"year": "2021"}, False),  # a string never equals a number
        ({"featured": 0}, False),  # a bool is never a number
        ({"featured": False}, True),
        ({"tags": "night"}, True),
        ({"tags": {"$nin": ["night"]}}, False),
        ({"tags": {"$gt": 3}}, False),
        ({"missing": {"$ne": "x"}}, True),
        ({"missing": {"$nin": ["x"]}}, True),
        ({"missing": {"$eq": "x"}}, False),
        ({"missing": {"$gte": 0}}, False),
        ({"missing": {"$exists": False}}, True),
        ({"$or": [{"country": "Peru"}, {"$and": [{"year": 2021}, {"tags": "city"}]}]}, True),
        ({"country": "Japan", "featured": True}, False),
    ],
)
def test_matches(flt, expected) -> None:
    validate_filter(flt)
    assert matches(flt, RECORD) is expected


def test_table_shared_with_contract_suite_is_consistent() -> None:
    from zeroshot_vision.testing._contract import _FILTER_RECORDS

    for flt, expected in FILTER_TABLE:
        validate_filter(flt)
        got = {i for i, meta in _FILTER_RECORDS.items() if matches(flt, meta)}
        assert got == expected, flt


@pytest.mark.parametrize("bad", [*BAD_FILTERS, [1], "country", {"": 1}, {"x": {"$in": [[1]]}}])
def test_invalid_filters(bad) -> None:
    with pytest.raises(InvalidFilterError):
        validate_filter(bad)


def test_error_names_the_typo() -> None:
    with pytest.raises(InvalidFilterError, match=r"\$gtee") as info:
        validate_filter({"year": {"$gtee": 3}})
    assert "filter.year" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_in_list_size_limit() -> None:
    validate_filter({"x": {"$in": list(range(MAX_IN_VALUES))}})
    with pytest.raises(InvalidFilterError, match="at most"):
        validate_filter({"x": {"$in": list(range(MAX_IN_VALUES + 1))}})


def test_non_finite_numbers_rejected() -> None:
    with pytest.raises(InvalidFilterError):
        validate_filter({"x": {"$gt": float("nan")}})
    with pytest.raises(InvalidFilterError):
        validate_filter({"x": float("inf")})


scalars = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "c"]), st.booleans())
records = st.dictionaries(
    st.sampled_from(["f", "g"]),
    st.one_of(scalars, st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)),
)


@given(record=records, value=scalars)
def test_ne_is_the_negation_of_eq(record, value) -> None:
    assert matches({"f": {"$ne": value}}, record) is not matches({"f": value}, record)


@given(record=records, values=st.lists(st.one_of(st.integers(-5, 5), st.sampled_from("abc"))))
def test_nin_is_the_negation_of_in(record, values) -> None:
    assert matches({"f": {"$nin": values}}, record) is not matches({"f": {"$in": values}}, record)


@given(record=records, a=scalars, b=scalars)
def test_and_or_agree_with_python(record, a, b) -> None:
    fa, fb = {"f": a}, {"g": b}
    both = matches(fa, record) and matches(fb, record)
    either = matches(fa, record) or matches(fb, record)
    assert matches({"$and": [fa, fb]}, record) is both
    assert matches({**fa, **fb}, record) is both
    assert matches({"$or": [fa, fb]}, record) is either
