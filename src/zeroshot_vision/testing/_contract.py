"""The store contract suite: the rules every ``VectorStore`` backend must pass.

A backend's test module subclasses :class:`VectorStoreContract` and overrides one
fixture, ``make_store``, which returns a factory for fresh, empty stores::

    from zeroshot_vision.stores import FaissStore
    from zeroshot_vision.testing import VectorStoreContract

    class TestFaissContract(VectorStoreContract):
        @pytest.fixture
        def make_store(self):
            return FaissStore

The suite checks cosine scoring and ordering against a numpy brute force, overwrite on
upsert, delete semantics, fetch, every filter operator on a fixed data set, rejection of
bad input without side effects, and a hypothesis state machine that runs random
sequences of upserts, overwrites, deletes and filtered queries against a plain-Python
model of the store. Metadata in these tests stays within what every backend accepts
(strings, numbers, bools, lists of strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from zeroshot_vision.stores._base import VectorStore
from zeroshot_vision.stores._filters import matches

__all__ = ["VectorStoreContract"]

StoreFactory = Callable[[int], VectorStore]

# A fixed data set for the filter table: every operator, list fields, missing fields.
_FILTER_RECORDS: dict[str, dict[str, Any]] = {
    "r1": {"country": "Iceland", "year": 2019, "tags": ["ice", "sea"], "featured": True},
    "r2": {"country": "Japan", "year": 2021, "tags": ["city", "night"], "featured": False},
    "r3": {"country": "Japan", "year": 2015.5, "tags": ["temple"]},
    "r4": {"country": "Chile", "year": 2023, "featured": True},
    "r5": {"year": 2019},
    "r6": {"country": "Iceland", "tags": ["night", "aurora"], "rating": 4},
}

FILTER_TABLE: list[tuple[dict[str, Any], set[str]]] = [
    ({"country": "Japan"}, {"r2", "r3"}),
    ({"country": {"$eq": "Iceland"}}, {"r1", "r6"}),
    ({"country": {"$ne": "Japan"}}, {"r1", "r4", "r5", "r6"}),
    ({"year": {"$gt": 2019}}, {"r2", "r4"}),
    ({"year": {"$gte": 2019}}, {"r1", "r2", "r4", "r5"}),
    ({"year": {"$lt": 2019}}, {"r3"}),
    ({"year": {"$lte": 2019}}, {"r1", "r3", "r5"}),
    ({"year": {"$gte": 2016, "$lt": 2022}}, {"r1", "r2", "r5"}),
    ({"year": 2019}, {"r1", "r5"}),
    ({"year": 2019.0}, {"r1", "r5"}),
    ({"country": {"$in": ["Chile", "Japan"]}}, {"r2", "r3", "r4"}),
    ({"country": {"$nin": ["Chile", "Japan"]}}, {"r1", "r5", "r6"}),
    ({"tags": "night"}, {"r2", "r6"}),
    ({"tags": {"$in": ["temple", "aurora"]}}, {"r3", "r6"}),
    ({"tags": {"$ne": "night"}}, {"r1", "r3", "r4", "r5"}),
    ({"tags": {"$nin": ["night", "ice"]}}, {"r3", "r4", "r5"}),
    ({"featured": True}, {"r1", "r4"}),
    ({"featured": False}, {"r2"}),
    ({"country": {"$exists": True}}, {"r1", "r2", "r3", "r4", "r6"}),
    ({"country": {"$exists": False}}, {"r5"}),
    ({"country": "Japan", "year": {"$gt": 2016}}, {"r2"}),
    ({"$and": [{"country": "Iceland"}, {"tags": "night"}]}, {"r6"}),
    ({"$or": [{"country": "Chile"}, {"year": {"$lt": 2016}}]}, {"r3", "r4"}),
    (
        {"$or": [{"rating": {"$gte": 4}}, {"$and": [{"featured": True}, {"year": 2019}]}]},
        {"r1", "r6"},
    ),
    ({"country": "Peru"}, set()),
]

BAD_FILTERS: list[dict[str, Any]] = [
    {"year": {"$gtee": 3}},
    {"$gt": 3},
    {"year": {"$gt": "2019"}},
    {"country": {"$in": "Japan"}},
    {"$and": []},
    {"$or": {"country": "Japan"}},
    {"country": {"$exists": "yes"}},
    {"country": None},
    {"country": {}},
]


def _rng_vectors(seed: int, n: int, dim: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _unit(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    unit: npt.NDArray[np.float64] = a / np.linalg.norm(a, axis=-1, keepdims=True)
    return unit


class VectorStoreContract:
    """Subclass this in a test module and override the ``make_store`` fixture.

    Attributes:
        DIM: Dimension of the stores the suite asks for.
        SCORE_TOLERANCE: How far a reported score may be from the exact cosine.
        VECTOR_TOLERANCE: How far a fetched vector's values may be from the unit vector
            stored (a store that quantizes vectors raises it).
        state_machine_settings: Hypothesis settings for the state machine; lower
            ``max_examples`` for a slow (remote) backend.
    """

    DIM: ClassVar[int] = 8
    SCORE_TOLERANCE: ClassVar[float] = 1e-4
    VECTOR_TOLERANCE: ClassVar[float] = 1e-5
    state_machine_settings: ClassVar[settings] = settings(
        max_examples=30,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        """Return a callable ``dim -> fresh empty store``. Backends override this."""
        raise NotImplementedError("override the make_store fixture in your test class")

    @pytest.fixture
    def open_durable(self) -> Callable[[], VectorStore]:
        """Return a callable that opens *the same* durable store each time it is called.

        Backends that persist (to files, or a remote service) override this so the suite
        can check that ``commit`` makes writes survive ``close`` and a reopen. The
        default skips those tests.
        """
        pytest.skip("this backend supplies no open_durable fixture")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> VectorStore:
        return make_store(self.DIM)

    @pytest.fixture
    def filled(self, store: VectorStore) -> VectorStore:
        ids = list(_FILTER_RECORDS)
        store.upsert(ids, _rng_vectors(1, len(ids), self.DIM), list(_FILTER_RECORDS.values()))
        return store

    # -- basics ------------------------------------------------------------------------

    def test_protocol_and_dim(self, store: VectorStore) -> None:
        assert isinstance(store, VectorStore)
        assert store.dim == self.DIM

    def test_commit_and_close_keep_contents(self, store: VectorStore) -> None:
        vectors = _rng_vectors(11, 3, self.DIM)
        store.upsert(["a", "b", "c"], vectors, [{"n": 1}, None, None])
        store.commit()
        store.commit()  # a commit with nothing new is harmless
        assert sorted(store.ids()) == ["a", "b", "c"]
        np.testing.assert_allclose(
            store.fetch(["a"])["a"].vector, _unit(vectors[0]), atol=self.VECTOR_TOLERANCE
        )
        store.close()
        store.close()  # closing twice is harmless

    def test_store_is_a_context_manager_that_closes(self, store: VectorStore) -> None:
        store.upsert(["a"], _rng_vectors(13, 1, self.DIM), None)
        store.commit()
        closed: list[bool] = []
        real_close = store.close

        def close() -> None:
            closed.append(True)
            real_close()

        store.close = close  # type: ignore[method-assign]
        with store as entered:
            assert entered is store
            assert list(entered.ids()) == ["a"]
            assert not closed
        assert closed, "leaving the with block must close the store"

    def test_committed_writes_survive_reopening(
        self, open_durable: Callable[[], VectorStore]
    ) -> None:
        vectors = _rng_vectors(12, 3, self.DIM)
        first = open_durable()
        first.upsert(["a", "b", "c"], vectors, [{"n": 1}, {"n": 2}, {"n": 3}])
        first.commit()
        first.close()
        second = open_durable()
        assert sorted(second.ids()) == ["a", "b", "c"]
        assert second.fetch(["b"])["b"].metadata == {"n": 2}
        np.testing.assert_allclose(
            second.fetch(["c"])["c"].vector, _unit(vectors[2]), atol=self.VECTOR_TOLERANCE
        )
        second.delete(["a"])
        second.upsert(["b"], vectors[:1], [{"n": 20}])
        second.commit()
        second.close()
        third = open_durable()
        assert sorted(third.ids()) == ["b", "c"]
        assert third.fetch(["b"])["b"].metadata == {"n": 20}
        third.close()

    def test_empty_store(self, store: VectorStore) -> None:
        assert len(store) == 0
        assert store.query(np.ones(self.DIM), k=5) == []
        assert store.fetch(["nope"]) == {}
        assert list(store.ids()) == []

    def test_query_matches_brute_force_cosine(self, store: VectorStore) -> None:
        vectors = _rng_vectors(2, 40, self.DIM) * 3.0  # not unit length on purpose
        ids = [f"v{i}" for i in range(40)]
        store.upsert(ids, vectors)
        query = _rng_vectors(3, 1, self.DIM)[0]
        hits = store.query(query, k=7)
        expected = _unit(vectors) @ _unit(query)
        order = np.argsort(-expected)[:7]
        assert [h.id for h in hits] == [ids[i] for i in order]
        for hit, i in zip(hits, order):
            assert math.isclose(hit.score, expected[i], abs_tol=self.SCORE_TOLERANCE)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)

    def test_identical_vector_scores_one(self, store: VectorStore) -> None:
        vectors = _rng_vectors(4, 5, self.DIM)
        store.upsert([f"v{i}" for i in range(5)], vectors)
        top = store.query(vectors[3] * 10, k=1)
        assert top[0].id == "v3"
        assert math.isclose(top[0].score, 1.0, abs_tol=self.SCORE_TOLERANCE)

    def test_k_larger_than_count_returns_no_placeholders(self, store: VectorStore) -> None:
        store.upsert(["a", "b"], _rng_vectors(5, 2, self.DIM))
        hits = store.query(np.ones(self.DIM), k=50)
        assert sorted(h.id for h in hits) == ["a", "b"]

    @pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
    def test_bad_k_raises_value_error(self, store: VectorStore, k: Any) -> None:
        store.upsert(["a"], _rng_vectors(6, 1, self.DIM))
        with pytest.raises(ValueError):
            store.query(np.ones(self.DIM), k=k)

    def test_upsert_overwrites_vector_and_metadata(self, store: VectorStore) -> None:
        first, second = _rng_vectors(7, 2, self.DIM)
        store.upsert(["a"], [first], [{"version": 1, "old": "yes"}])
        store.upsert(["a"], [second], [{"version": 2}])
        assert len(store) == 1
        record = store.fetch(["a"])["a"]
        np.testing.assert_allclose(record.vector, _unit(second), atol=self.VECTOR_TOLERANCE)
        assert dict(record.metadata) == {"version": 2}
        hit = store.query(second, k=1)[0]
        assert hit.id == "a" and dict(hit.metadata) == {"version": 2}

    def test_duplicate_ids_in_one_call_last_wins(self, store: VectorStore) -> None:
        vectors = _rng_vectors(8, 3, self.DIM)
        store.upsert(["a", "b", "a"], vectors, [{"n": 1}, {"n": 2}, {"n": 3}])
        assert len(store) == 2
        record = store.fetch(["a"])["a"]
        assert dict(record.metadata) == {"n": 3}
        np.testing.assert_allclose(record.vector, _unit(vectors[2]), atol=self.VECTOR_TOLERANCE)

    def test_fetch_returns_present_ids_only(self, store: VectorStore) -> None:
        vectors = _rng_vectors(9, 3, self.DIM)
        store.upsert(["a", "b", "c"], vectors, [{"x": "1"}, None, {"tags": ["p", "q"]}])
        got = store.fetch(["c", "missing", "a"])
        assert set(got) == {"a", "c"}
        assert got["a"].id == "a"
        assert dict(got["a"].metadata) == {"x": "1"}
        assert dict(got["c"].metadata) == {"tags": ["p", "q"]}
        assert got["c"].vector.dtype == np.float32
        np.testing.assert_allclose(got["c"].vector, _unit(vectors[2]), atol=self.VECTOR_TOLERANCE)

    def test_delete(self, store: VectorStore) -> None:
        store.upsert(["a", "b", "c"], _rng_vectors(10, 3, self.DIM))
        store.delete(["b", "never-stored"])
        store.delete([])
        assert len(store) == 2
        assert sorted(store.ids()) == ["a", "c"]
        assert "b" not in {h.id for h in store.query(np.ones(self.DIM), k=10)}
        store.delete(["b"])  # deleting twice is fine
        assert len(store) == 2

    def test_reinsert_after_delete(self, store: VectorStore) -> None:
        vectors = _rng_vectors(11, 2, self.DIM)
        store.upsert(["a"], vectors[:1])
        store.delete(["a"])
        store.upsert(["a"], vectors[1:])
        assert len(store) == 1
        np.testing.assert_allclose(
            store.fetch(["a"])["a"].vector, _unit(vectors[1]), atol=self.VECTOR_TOLERANCE
        )

    def test_numpy_scalars_in_metadata(self, store: VectorStore) -> None:
        store.upsert(
            ["a"], _rng_vectors(12, 1, self.DIM), [{"n": np.int64(3), "f": np.float32(0.5)}]
        )
        meta = store.fetch(["a"])["a"].metadata
        assert meta["n"] == 3 and math.isclose(meta["f"], 0.5)
        assert [h.id for h in store.query(np.ones(self.DIM), k=1, filter={"n": {"$gte": 3}})] == [
            "a"
        ]

    # -- filters -----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("filter", "expected"), FILTER_TABLE, ids=[str(f) for f, _ in FILTER_TABLE]
    )
    def test_filter_language(
        self, filled: VectorStore, filter: dict[str, Any], expected: set[str]
    ) -> None:
        hits = filled.query(np.ones(self.DIM), k=100, filter=filter)
        assert {h.id for h in hits} == expected
        for hit in hits:
            assert matches(filter, hit.metadata)

    def test_empty_filter_matches_everything(self, filled: VectorStore) -> None:
        assert len(filled.query(np.ones(self.DIM), k=100, filter={})) == len(_FILTER_RECORDS)

    @pytest.mark.parametrize("bad", BAD_FILTERS, ids=[str(f) for f in BAD_FILTERS])
    def test_malformed_filter_raises_value_error(
        self, filled: VectorStore, bad: dict[str, Any]
    ) -> None:
        with pytest.raises(ValueError):
            filled.query(np.ones(self.DIM), k=3, filter=bad)

    def test_filtered_query_returns_true_top_k(self, store: VectorStore) -> None:
        n = 120
        vectors = _rng_vectors(13, n, self.DIM)
        ids = [f"v{i}" for i in range(n)]
        metadata = [{"group": "rare" if i % 15 == 0 else "common"} for i in range(n)]
        store.upsert(ids, vectors, metadata)
        query = _rng_vectors(14, 1, self.DIM)[0]
        hits = store.query(query, k=5, filter={"group": "rare"})
        rare = [i for i in range(n) if i % 15 == 0]
        cosines = _unit(vectors[rare]) @ _unit(query)
        expected = [ids[rare[i]] for i in np.argsort(-cosines)[:5]]
        assert [h.id for h in hits] == expected

    # -- rejected input changes nothing ------------------------------------------------

    def _assert_unchanged(self, store: VectorStore) -> None:
        assert len(store) == 1
        assert dict(store.fetch(["keep"])["keep"].metadata) == {"ok": True}

    @pytest.fixture
    def one(self, store: VectorStore) -> VectorStore:
        store.upsert(["keep"], _rng_vectors(15, 1, self.DIM), [{"ok": True}])
        return store

    def test_rejects_wrong_dimension(self, one: VectorStore) -> None:
        with pytest.raises(ValueError, match="dimension"):
            one.upsert(["x"], np.ones((1, self.DIM + 1)))
        with pytest.raises(ValueError, match="dimension"):
            one.query(np.ones(self.DIM - 1), k=1)
        self._assert_unchanged(one)

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_rejects_non_finite_vectors(self, one: VectorStore, value: float) -> None:
        vectors = np.ones((2, self.DIM))
        vectors[1, 2] = value
        with pytest.raises(ValueError):
            one.upsert(["x", "y"], vectors)
        with pytest.raises(ValueError):
            one.query(vectors[1], k=1)
        self._assert_unchanged(one)

    def test_rejects_zero_vector(self, one: VectorStore) -> None:
        with pytest.raises(ValueError):
            one.upsert(["x"], np.zeros((1, self.DIM)))
        self._assert_unchanged(one)

    def test_rejects_length_mismatch(self, one: VectorStore) -> None:
        with pytest.raises(ValueError):
            one.upsert(["x", "y"], np.ones((1, self.DIM)))
        with pytest.raises(ValueError):
            one.upsert(["x"], np.ones((1, self.DIM)), [{}, {}])
        self._assert_unchanged(one)

    @pytest.mark.parametrize("bad_id", ["", 7, None, b"bytes"])
    def test_rejects_bad_ids(self, one: VectorStore, bad_id: Any) -> None:
        with pytest.raises(ValueError):
            one.upsert(["x", bad_id], np.ones((2, self.DIM)))
        self._assert_unchanged(one)

    def test_rejects_single_string_as_ids(self, one: VectorStore) -> None:
        with pytest.raises(ValueError):
            one.upsert("x", np.ones((1, self.DIM)))  # type: ignore[arg-type]
        self._assert_unchanged(one)

    @pytest.mark.parametrize(
        "bad_meta",
        [{"x": object()}, {"x": {1, 2}}, {"x": math.nan}, {3: "int key"}, "not a mapping"],
        ids=["object", "set", "nan", "int-key", "string"],
    )
    def test_rejects_non_json_metadata(self, one: VectorStore, bad_meta: Any) -> None:
        with pytest.raises(ValueError):
            one.upsert(["x"], np.ones((1, self.DIM)), [bad_meta])
        self._assert_unchanged(one)

    # -- random sequences against a model ----------------------------------------------

    def test_state_machine(self, make_store: StoreFactory) -> None:
        dim, tolerance, vector_tolerance = self.DIM, self.SCORE_TOLERANCE, self.VECTOR_TOLERANCE

        class Machine(_StoreMachine):
            def make(self) -> VectorStore:
                return make_store(dim)

        Machine.DIM = dim
        Machine.TOLERANCE = tolerance
        Machine.VECTOR_TOLERANCE = vector_tolerance
        run_state_machine_as_test(Machine, settings=self.state_machine_settings)


_IDS = st.sampled_from([f"id{i}" for i in range(12)])
_META = st.fixed_dictionaries(
    {"color": st.sampled_from(["red", "green", "blue"]), "n": st.integers(0, 5)},
    optional={"tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True)},
)
_FILTERS = st.sampled_from(
    [
        None,
        {"color": "red"},
        {"n": {"$gte": 3}},
        {"color": {"$in": ["red", "blue"]}, "n": {"$lt": 4}},
        {"tags": "a"},
        {"$or": [{"color": "green"}, {"tags": {"$exists": True}}]},
        {"color": {"$ne": "blue"}},
    ]
)


class _StoreMachine(RuleBasedStateMachine):
    """Random upserts, overwrites, deletes and queries, checked against a dict model."""

    DIM: ClassVar[int] = 8
    TOLERANCE: ClassVar[float] = 1e-4
    VECTOR_TOLERANCE: ClassVar[float] = 1e-5
    ids_seen = Bundle("ids_seen")

    def __init__(self) -> None:
        super().__init__()
        self.store = self.make()
        self.model: dict[str, tuple[npt.NDArray[np.float64], dict[str, Any]]] = {}

    def make(self) -> VectorStore:
        raise NotImplementedError

    @rule(
        target=ids_seen,
        items=st.lists(st.tuples(_IDS, st.integers(0, 2**31), _META), min_size=1, max_size=5),
    )
    def upsert(self, items: list[tuple[str, int, dict[str, Any]]]) -> str:
        ids = [i for i, _, _ in items]
        vectors = np.stack([_rng_vectors(seed, 1, self.DIM)[0] for _, seed, _ in items])
        self.store.upsert(ids, vectors, [m for _, _, m in items])
        for (item, _, meta), vector in zip(items, vectors):
            self.model[item] = (_unit(vector), meta)
        return ids[0]

    @rule(ids=st.lists(st.one_of(ids_seen, _IDS), max_size=4))
    def delete(self, ids: list[str]) -> None:
        self.store.delete(ids)
        for item in ids:
            self.model.pop(item, None)

    @rule(seed=st.integers(0, 2**31), k=st.integers(1, 15), filter=_FILTERS)
    def query(self, seed: int, k: int, filter: dict[str, Any] | None) -> None:
        query = _unit(_rng_vectors(seed, 1, self.DIM)[0])
        hits = self.store.query(query, k=k, filter=filter)
        allowed = {i: v for i, (v, m) in self.model.items() if matches(filter, m)}
        assert len(hits) == min(k, len(allowed))
        expected = sorted((float(v @ query) for v in allowed.values()), reverse=True)[:k]
        for hit, score in zip(hits, expected):
            assert hit.id in allowed
            assert math.isclose(hit.score, float(allowed[hit.id] @ query), abs_tol=self.TOLERANCE)
            assert math.isclose(hit.score, score, abs_tol=self.TOLERANCE)
            assert dict(hit.metadata) == self.model[hit.id][1]

    @rule(ids=st.lists(st.one_of(ids_seen, _IDS), max_size=4))
    def fetch(self, ids: list[str]) -> None:
        got = self.store.fetch(ids)
        assert set(got) == {i for i in ids if i in self.model}
        for item, record in got.items():
            np.testing.assert_allclose(
                record.vector, self.model[item][0], atol=self.VECTOR_TOLERANCE
            )
            assert dict(record.metadata) == self.model[item][1]

    @invariant()
    def count_matches(self) -> None:
        assert len(self.store) == len(self.model)
