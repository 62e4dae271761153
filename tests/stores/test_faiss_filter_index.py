"""The filter index of an ``"ivfpq"`` store's records file: equality, ``$in`` and ranges
on metadata fields are look-ups in an SQLite table keyed by (field, value, key), and
give what the Python filter gives, through saves, deltas, new generations and crashes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.helpers import one_faiss_thread  # noqa: F401 (an autouse fixture)

import zeroshot_vision.stores._faiss_records as records_module
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.stores import FaissStore, IvfPqSettings
from zeroshot_vision.stores._faiss_records import RecordFilter, RecordTable
from zeroshot_vision.stores._filters import compile_filter

DIM = 4
FIELDS = ["camera", "year", "tags", "odd name", 'q"uote']


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _untrained(**settings: Any) -> IvfPqSettings:
    """Settings of a store that stays flat (no training): only the records matter here."""
    return IvfPqSettings(train_size=100_000, **settings)


def _terms(path: Path) -> set[tuple[str, object, str]]:
    """The filter index of a records file as (field, value, id) triples."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT f.name, t.value, r.id FROM terms AS t JOIN fields AS f ON f.id = t.field "
            "JOIN records AS r ON r.key = t.key"
        ).fetchall()
    return {(name, value, item) for name, value, item in rows}


def _expected(table: RecordTable, where: dict[str, Any]) -> list[int]:
    passes = compile_filter(where)
    return sorted(key for _, key, meta in table.rows() if passes(meta))


def _base(store: FaissStore) -> Any:
    base = store._records._state.base
    assert base is not None
    return base


# -- random metadata against the Python filter ----------------------------------------

_SCALARS = st.sampled_from(["a", "b", "A", "", "1", 'x"y', "Ünï"]) | st.sampled_from(
    [0, 1, 1.0, 2.5, -3, 7, True, False, 2**60]
)
_VALUES = (
    _SCALARS
    | st.lists(_SCALARS, max_size=3)
    | st.just(None)
    | st.just({"nested": "a"})
    | st.integers(-5, 5)
)
_METADATA = st.dictionaries(st.sampled_from(FIELDS), _VALUES, max_size=4)
_OPERAND = st.sampled_from(["a", "b", "", "1", 'x"y', 0, 1, 1.0, 2.5, -3, 7, True, 2**60])
_NUMBER = st.sampled_from([0, 1, 1.0, 2.5, -3, 7, -0.5, 2**60])
_LIST = st.lists(st.sampled_from(["a", "b", "", "1", 0, 1, 2.5, -3]), max_size=3)
_CONDITION = st.one_of(
    _OPERAND,
    st.builds(lambda v: {"$eq": v}, _OPERAND),
    st.builds(lambda v: {"$ne": v}, _OPERAND),
    st.builds(lambda v: {"$in": v}, _LIST),
    st.builds(lambda v: {"$nin": v}, _LIST),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), _NUMBER, min_size=1),
)
_LEAF = st.dictionaries(st.sampled_from([*FIELDS, "absent"]), _CONDITION, min_size=1, max_size=2)
_FILTER = st.recursive(
    _LEAF,
    lambda inner: (
        st.builds(
            lambda op, subs: {op: subs},
            st.sampled_from(["$and", "$or"]),
            st.lists(inner, min_size=1, max_size=3),
        )
        | st.builds(lambda a, b: {**a, **b}, _LEAF, inner)
    ),
    max_leaves=5,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    metadata=st.lists(_METADATA, min_size=10, max_size=60),
    changes=st.lists(_METADATA, max_size=10),
    filters=st.lists(_FILTER, min_size=10, max_size=25),
    declared=st.sampled_from([None, ("camera", "tags"), ()]),
)
@example(  # two bounds met by different elements of a list; an $and inside an $or
    metadata=[{"year": [0, 7], "camera": "a"}, {"year": 1.5}, {"camera": "a", "tags": "b"}],
    changes=[{"year": [9, -1]}],
    filters=[
        {"year": {"$gt": 1, "$lt": 2}},
        {"$or": [{"$and": [{"camera": "a"}, {"year": 7}]}, {"tags": "zz"}]},
    ],
    declared=None,
)
def test_indexed_filters_give_what_the_python_filter_gives(
    tmp_path_factory: pytest.TempPathFactory,
    metadata: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    declared: tuple[str, ...] | None,
) -> None:
    """Over random metadata (lists of mixed kinds, bools beside 0 and 1, 1 beside 1.0,
    nulls, objects, quotes in field names) and random filters: from the records file
    alone, with an overlay of changes over it, and from the next generation's file."""
    folder = tmp_path_factory.mktemp("random")
    n = len(metadata)
    store = FaissStore.open(
        folder, dim=DIM, index="ivfpq", ivfpq=_untrained(indexed_fields=declared)
    )
    store.upsert([f"p{i}" for i in range(n)], _vectors(n), metadata)
    store._rewrite = True  # a new generation, not a delta
    store.commit()
    store = FaissStore.load(folder)
    assert _base(store).fields is not None
    steps = [("file", None)]
    if changes:
        steps += [("overlay", None), ("next generation", None)]
    for step, _ in steps:
        if step == "overlay":  # overwrite some, delete some, add new ids
            ids = [f"p{i * 7 % (n + 5)}" for i in range(len(changes))]
            store.upsert(ids, _vectors(len(ids), seed=1), changes)
            store.delete([f"p{i}" for i in range(0, n, 4)])
        if step == "next generation":
            store._rewrite = True
            store.commit()
            store = FaissStore.load(folder)
            assert store._records.overlay_size == 0
        table = store._records
        for where in filters:
            got = table.matching_keys(RecordFilter.of(where)).tolist()
            assert sorted(got) == _expected(table, where), (step, where)


# -- how the index is built and kept ---------------------------------------------------

_PHOTOS = [
    {"camera": ["X-T4", "Pixel 8", "iPhone"][i % 3], "taken": 1_600_000_000 + 3600 * i, "n": i}
    for i in range(300)
]


def _photo_store(folder: Path, **settings: Any) -> FaissStore:
    store = FaissStore.open(folder, dim=DIM, index="ivfpq", ivfpq=_untrained(**settings))
    store.upsert([f"p{i}" for i in range(300)], _vectors(300), _PHOTOS)
    store.commit()
    return FaissStore.load(folder)


def test_sqlite_uses_the_index_for_equality_in_and_ranges(tmp_path: Path) -> None:
    base = _base(_photo_store(tmp_path))
    plans = {
        "eq": base.explain(RecordFilter.of({"camera": "X-T4"})),
        "in": base.explain(RecordFilter.of({"camera": {"$in": ["X-T4", "iPhone"]}})),
        "range": base.explain(RecordFilter.of({"taken": {"$gte": 1, "$lt": 2}})),
    }
    assert "SEARCH terms USING PRIMARY KEY (field=? AND value=?)" in plans["eq"]
    assert "SEARCH terms USING PRIMARY KEY (field=? AND value=?)" in plans["in"]
    # One field that never holds a list: both bounds are one range of the index.
    assert "SEARCH terms USING PRIMARY KEY (field=? AND value>? AND value<?)" in plans["range"]
    assert not any(
        step.startswith("SCAN") and "terms" in step for p in plans.values() for step in p
    )


def test_queries_with_selective_filters_return_the_matching_photos(tmp_path: Path) -> None:
    store = _photo_store(tmp_path)
    start = 1_600_000_000 + 3600 * 100
    where = {"taken": {"$gte": start, "$lt": start + 3600 * 10}, "camera": "Pixel 8"}
    hits = store.query(_vectors(1, seed=5)[0], k=50, filter=where)
    assert {hit.id for hit in hits} == {
        f"p{i}" for i in range(100, 110) if _PHOTOS[i]["camera"] == "Pixel 8"
    }
    in_list = store.query(_vectors(1)[0], k=50, filter={"n": {"$in": [3, 5, 299, 1000]}})
    assert {hit.id for hit in in_list} == {"p3", "p5", "p299"}
    # A field no record has, under an index of every field: nothing, without a scan.
    assert store.query(_vectors(1)[0], k=5, filter={"lens": "35mm"}) == []


def test_a_new_generation_copies_the_index_and_adds_the_changes(tmp_path: Path) -> None:
    store = _photo_store(tmp_path)
    store.upsert(["p1", "new"], _vectors(2, seed=3), [{"camera": ["Leica", "X-T4"]}, {"lens": 35}])
    store.delete(["p2"])
    store._rewrite = True
    store.commit()  # generation 2, from generation 1's file plus the overlay
    copied = _terms(tmp_path / "records-2.sqlite")
    # The same records written from scratch (every row in RAM, no base to copy from).
    fresh = RecordTable()
    for item, key, meta in FaissStore.load(tmp_path)._records.rows():
        fresh.put(item, key, meta)
    fresh.write_sqlite(tmp_path / "scratch.sqlite", next_key=1000)
    assert copied == _terms(tmp_path / "scratch.sqlite")
    assert ("camera", "Leica", "p1") in copied and ("lens", 35, "new") in copied
    assert not any(item == "p2" for _, _, item in copied)
    loaded = FaissStore.load(tmp_path)
    assert _base(loaded).fields["camera"].lists  # the field now holds a list somewhere
    assert {hit.id for hit in loaded.query(_vectors(1)[0], k=5, filter={"lens": 35})} == {"new"}


def test_declared_fields_are_the_only_ones_indexed_and_are_kept(tmp_path: Path) -> None:
    store = _photo_store(tmp_path, indexed_fields=["camera"])
    assert set(_base(store).fields) == {"camera"}
    manifest = json.loads((tmp_path / "store.json").read_text())
    assert manifest["ivfpq"]["indexed_fields"] == ["camera"]
    assert store._index.settings.indexed_fields == ("camera",)
    # Filters on other fields are still exact, answered from the JSON.
    keys = store._records.matching_keys(RecordFilter.of({"n": {"$lt": 3}, "camera": "X-T4"}))
    assert keys.tolist() == [0]
    assert FaissStore.load(tmp_path).query(_vectors(1)[0], k=5, filter={"n": 7})[0].id == "p7"
    with pytest.raises(InvalidInputError, match="indexed_fields"):
        IvfPqSettings(indexed_fields="camera")  # type: ignore[arg-type]


def test_a_records_file_without_an_index_is_scanned_and_indexed_by_the_next_save(
    tmp_path: Path,
) -> None:
    _photo_store(tmp_path)
    with sqlite3.connect(tmp_path / "records-1.sqlite") as db:  # as written before the index
        db.executescript("DROP TABLE terms; DROP TABLE fields; DROP TABLE filter_index;")
    old = FaissStore.load(tmp_path)
    assert _base(old).fields is None
    hits = old.query(_vectors(1)[0], k=500, filter={"camera": "iPhone"})
    assert {hit.id for hit in hits} == {f"p{i}" for i in range(2, 300, 3)}
    old._rewrite = True
    old.upsert(["extra"], _vectors(1), [{"camera": "iPhone"}])
    old.commit()
    upgraded = FaissStore.load(tmp_path)
    assert _base(upgraded).fields is not None
    hits = upgraded.query(_vectors(1)[0], k=500, filter={"camera": "iPhone"})
    assert len(hits) == 101


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from zeroshot_vision.stores import FaissStore, IvfPqSettings

    store = FaissStore.open(sys.argv[1], dim=4, index="ivfpq",
                            ivfpq=IvfPqSettings(train_size=100_000))
    rng = np.random.default_rng(0)
    for batch in range(1000):
        ids = [f"b{batch}-{i}" for i in range(2000)]
        meta = [{"batch": batch, "camera": f"c{i % 50}", "tags": [f"t{i % 7}"]}
                for i in range(2000)]
        store.upsert(ids, rng.standard_normal((2000, 4)).astype(np.float32), meta)
        store._rewrite = True  # every commit writes a whole records file and its index
        store.commit()
        print(batch, flush=True)
    """
)


def test_sigkill_while_writing_the_index_leaves_the_previous_generation(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    for line in child.stdout:
        if int(line) >= 3 or time.monotonic() > deadline:
            break
    time.sleep(0.3)  # into the next save: most of a commit is writing the records file
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    store = FaissStore.load(folder)
    batches = len(store) // 2000
    assert batches >= 4 and len(store) == 2000 * batches
    assert _base(store).fields is not None
    for where in ({"camera": "c7"}, {"batch": {"$gte": 2}}, {"tags": "t3", "batch": 1}):
        keys = store._records.matching_keys(RecordFilter.of(where)).tolist()
        assert sorted(keys) == _expected(store._records, where), where
    store.upsert(["after"], _vectors(1), [{"camera": "c7"}])  # the writer goes on
    store.commit()
    assert len(FaissStore.load(folder).query(_vectors(1)[0], k=10**4, filter={"camera": "c7"})) == (
        40 * batches + 1
    )


def test_the_probe_picks_the_selective_term_to_drive(tmp_path: Path, monkeypatch) -> None:
    """With a broad and a narrow indexed term, the narrow one's keys drive the query and
    the broad one is checked on those rows only (a third of the records, not read)."""
    monkeypatch.setattr(records_module, "_PROBE_ROWS", 50)
    store = _photo_store(tmp_path)
    base = _base(store)
    seen: list[str] = []
    original = base._keys
    monkeypatch.setattr(
        base, "_keys", lambda sql, params: seen.append(sql) or original(sql, params)
    )
    where = {"camera": "X-T4", "n": {"$lt": 10}}
    assert store._records.matching_keys(RecordFilter.of(where)).tolist() == [0, 3, 6, 9]
    assert "INTERSECT" not in seen[-1] and "FROM records WHERE key IN" in seen[-1]


def test_the_key_selector_holds_exactly_the_allowed_keys() -> None:
    """The bitmap a filtered search hands FAISS (not a hash of every key): each key in,
    its neighbours out, across byte boundaries and at the ends."""
    from zeroshot_vision.stores._faiss_disk import key_selector

    allowed = np.array([0, 7, 8, 9, 15, 16, 1000, 123_457], dtype=np.int64)
    selector, bitmap = key_selector(allowed)
    assert len(bitmap) == 123_457 // 8 + 1
    members = {key for key in range(123_460) if selector.is_member(key)}
    assert members == set(allowed.tolist())
    empty, _ = key_selector(np.zeros(0, dtype=np.int64))
    assert not empty.is_member(0)


def test_ids_of_a_saved_store_stream_from_the_records_file(tmp_path: Path, monkeypatch) -> None:
    """``ids()`` of an ``"ivfpq"`` store reads the records file as it is iterated (ten
    million ids are not one list) and is still a snapshot: writes after it do not show."""
    monkeypatch.setattr(records_module, "_SCAN_ROWS", 64)  # many pages of the file
    store = _photo_store(tmp_path)
    store.upsert(["late"], _vectors(1), [{}])
    store.delete(["p0"])
    base = _base(store)
    pages: list[bool] = []  # the pages of rows read from the file so far
    read = base._all
    monkeypatch.setattr(
        base, "_all", lambda sql, *a: (pages.append("LIMIT" in sql), read(sql, *a))[1]
    )
    ids = store.ids()
    assert len(ids) == 300 and repr(ids).startswith("IdSnapshot(300 ids: 'p1', 'p2',")
    store.delete(["p1", "late"])  # after the snapshot: not seen
    store.upsert(["later"], _vectors(1), [{}])
    first = [next(ids) for _ in range(10)]
    assert first == [f"p{i}" for i in range(1, 11)] and len(ids) == 290
    assert sum(pages) == 1  # one page of 64 read so far, not a list of all 300 built up front
    rest = list(ids)
    assert first + rest == [f"p{i}" for i in range(1, 300)] + ["late"] and len(ids) == 0


def test_rebuilding_an_ivfpq_store_keeps_the_fields_it_indexes(tmp_path: Path) -> None:
    from zeroshot_vision.stores._faiss_rebuild import rebuild_store

    _photo_store(tmp_path, indexed_fields=["camera"])
    rebuild_store(tmp_path, "ivfpq")
    rebuilt = FaissStore.load(tmp_path)
    assert rebuilt._index.settings.indexed_fields == ("camera",)
    assert set(_base(rebuilt).fields) == {"camera"}
    assert len(rebuilt.query(_vectors(1)[0], k=500, filter={"camera": "X-T4"})) == 100
