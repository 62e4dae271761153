"""Where an ``"ivfpq"`` FaissStore keeps ids and metadata: an SQLite records file read in
place under a small overlay of changes, not Python dicts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import one_faiss_thread  # noqa: F401 (an autouse fixture)

import zeroshot_vision.stores._faiss_records as records_module
from zeroshot_vision._errors import IndexDamagedError
from zeroshot_vision.stores import FaissStore, IvfPqSettings

DIM = 16


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _store(folder: Path, n: int = 600) -> tuple[FaissStore, np.ndarray]:
    store = FaissStore.open(folder, dim=DIM, index="ivfpq", ivfpq=IvfPqSettings(train_size=300))
    data = _vectors(n)
    ids = [f"p{i}" for i in range(n)]
    store.upsert(ids, data, [{"group": i % 3, "name": f"photo {i}"} for i in range(n)])
    store.commit()
    return store, data


def _matching(store: FaissStore, where: dict[str, object]) -> set[str]:
    hits = store.query(np.ones(DIM, np.float32), k=10_000, filter=where)
    return {hit.id for hit in hits}


def test_a_loaded_store_reads_its_records_from_sqlite_not_ram(tmp_path: Path) -> None:
    _store(tmp_path)
    manifest = json.loads((tmp_path / "store.json").read_text())
    assert manifest["records"] == "records-1.sqlite" and manifest["version"] == 5
    with sqlite3.connect(tmp_path / manifest["records"]) as db:  # plain SQLite, readable as such
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 600
        meta = db.execute("SELECT meta FROM records WHERE id = 'p7'").fetchone()[0]
    assert json.loads(meta) == {"group": 1, "name": "photo 7"}
    loaded = FaissStore.load(tmp_path)
    assert loaded._records.overlay_size == 0  # nothing of the 600 records in Python dicts
    assert len(loaded) == 600
    assert loaded.fetch(["p7"])["p7"].metadata == {"group": 1, "name": "photo 7"}
    assert _matching(loaded, {"group": 2}) == {f"p{i}" for i in range(600) if i % 3 == 2}


def test_changes_over_the_records_file_are_seen_at_once_and_after_reload(tmp_path: Path) -> None:
    store, data = _store(tmp_path)
    store = FaissStore.load(tmp_path)
    store.upsert(["p1"], data[1:2], [{"group": 2, "name": "moved"}])  # overwrite a file row
    store.delete(["p2", "p5"])
    store.upsert(["new"], _vectors(1, seed=9), [{"group": 2}])
    expected = {f"p{i}" for i in range(600) if i % 3 == 2} - {"p2", "p5"} | {"p1", "new"}
    for view in ("live", "delta", "generation"):
        if view == "delta":
            store.commit()
            assert json.loads((tmp_path / "store.json").read_text())["deltas"]
            store = FaissStore.load(tmp_path)
        if view == "generation":
            store.save(tmp_path / "copy")
            store = FaissStore.load(tmp_path / "copy")
            assert store._records.overlay_size == 0
        assert len(store) == 599, view
        assert _matching(store, {"group": 2}) == expected, view
        assert store.fetch(["p1"])["p1"].metadata["name"] == "moved", view
        assert not store.fetch(["p2", "p5"]), view
        assert store.query(data[1], k=1)[0].id == "p1", view
        assert "p2" not in set(store.ids()) and "new" in set(store.ids()), view


def test_the_overlay_in_ram_stays_under_its_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(records_module, "OVERLAY_LIMIT", 100)
    store, _ = _store(tmp_path)
    for round_ in range(5):  # small commits: deltas until the overlay passes the limit
        ids = [f"r{round_}-{i}" for i in range(40)]
        store.upsert(ids, _vectors(40, seed=round_ + 1), [{"round": round_}] * 40)
        store.commit()
        assert store._records.overlay_size <= 100
    manifest = json.loads((tmp_path / "store.json").read_text())
    assert manifest["generation"] > 1
    assert len(FaissStore.load(tmp_path)) == 800


def test_a_version_4_store_with_json_records_still_opens(tmp_path: Path) -> None:
    store, data = _store(tmp_path)
    # Turn the folder into what version 4 wrote: the same records as JSON.
    rows = [[item, key, meta] for item, key, meta in store._records.rows()]
    (tmp_path / "records-1.json").write_text(json.dumps({"next_key": 600, "records": rows}))
    (tmp_path / "records-1.sqlite").unlink()
    manifest = json.loads((tmp_path / "store.json").read_text())
    manifest.update(version=4, records="records-1.json")
    (tmp_path / "store.json").write_text(json.dumps(manifest))
    old = FaissStore.open(tmp_path, dim=DIM)
    assert len(old) == 600 and old.fetch(["p3"])["p3"].metadata["name"] == "photo 3"
    assert old.query(data[3], k=1)[0].id == "p3"
    old.save(tmp_path / "upgraded")  # the next generation moves the records to SQLite
    upgraded = json.loads((tmp_path / "upgraded" / "store.json").read_text())
    assert upgraded["records"].endswith(".sqlite") and upgraded["version"] == 5


def test_a_damaged_records_file_names_the_file(tmp_path: Path) -> None:
    _store(tmp_path)
    (tmp_path / "records-1.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexDamagedError, match=r"records-1\.sqlite is damaged") as caught:
        FaissStore.load(tmp_path)
    assert caught.value.path == str(tmp_path / "records-1.sqlite")


def test_damaged_metadata_in_the_records_file_names_the_file(tmp_path: Path) -> None:
    _store(tmp_path)
    with sqlite3.connect(tmp_path / "records-1.sqlite") as db:
        db.execute("UPDATE records SET meta = '{\"group\": 1,' WHERE id = 'p4'")
    store = FaissStore.load(tmp_path)  # the rows are read when asked for, not at load
    assert store.fetch(["p5"])["p5"].metadata["group"] == 2
    with pytest.raises(IndexDamagedError, match=r"records-1\.sqlite is damaged"):
        store.fetch(["p4"])
    with pytest.raises(IndexDamagedError, match=r"records-1\.sqlite is damaged"):
        # $ne reads every row's JSON (equality would be answered by the filter index)
        store.query(np.ones(DIM, np.float32), k=5, filter={"group": {"$ne": 0}})


def test_filters_over_the_records_file_match_those_over_ram(tmp_path: Path) -> None:
    """SQLite skips rows without a filter's strings before parsing them: never a row
    that would pass (strings inside lists, escapes, $and, $or, empty metadata)."""
    n = 400
    data = _vectors(n)
    cameras = ["X-T4", 'Nikon "Z"', "Ünïcode ✓", "X-T4 II"]
    metadata = [
        {}
        if i % 7 == 0
        else {"camera": cameras[i % 4], "tags": ["dog", "beach"][: i % 3], "n": i % 5}
        for i in range(n)
    ]
    ids = [f"p{i}" for i in range(n)]
    in_ram = FaissStore(DIM, index="ivfpq", ivfpq=IvfPqSettings(train_size=300))
    in_ram.upsert(ids, data, metadata)
    in_ram.save(tmp_path)
    on_disk = FaissStore.load(tmp_path)
    assert on_disk._records.overlay_size == 0
    in_ram = FaissStore(DIM, index="ivfpq", ivfpq=IvfPqSettings(train_size=10_000))  # all RAM
    in_ram.upsert(ids, data, metadata)
    filters = [
        {"camera": "X-T4"},
        {"camera": {"$eq": 'Nikon "Z"'}},
        {"camera": "Ünïcode ✓", "n": {"$gte": 2}},
        {"tags": "beach"},
        {"$and": [{"tags": "dog"}, {"camera": "X-T4 II"}]},
        {"$or": [{"camera": "X-T4"}, {"n": 0}]},
        {"camera": {"$ne": "X-T4"}},
        {"camera": {"$exists": False}},
    ]
    for where in filters:
        expected = _matching(in_ram, where)
        assert expected, where  # each filter matches something: the comparison means something
        assert _matching(on_disk, where) == expected, where


def _random_value(rng: np.random.Generator) -> object:
    pick = int(rng.integers(0, 12))
    scalars: list[object] = [
        "Japan",
        "japan",
        "1",
        "Ünïcode ✓",
        'say "hi"',
        "",
        1,
        1.0,
        2.5,
        -3,
        True,
        False,
        0,
        2**60,  # beyond float precision: such filters fall back to Python
        2**64 - 1,
    ]
    if pick < 7:
        return scalars[int(rng.integers(0, len(scalars)))]
    if pick < 10:
        size = int(rng.integers(0, 4))
        return [scalars[int(rng.integers(0, len(scalars)))] for _ in range(size)]
    if pick == 10:
        return {"nested": "Japan"}
    return None


def _random_filter(rng: np.random.Generator, fields: list[str], depth: int = 0) -> dict:
    if depth < 2 and rng.random() < 0.25:
        op = "$and" if rng.random() < 0.5 else "$or"
        return {
            op: [_random_filter(rng, fields, depth + 1) for _ in range(int(rng.integers(1, 3)))]
        }
    field = fields[int(rng.integers(0, len(fields)))]
    op = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "bare"][
        int(rng.integers(0, 10))
    ]
    scalars: list[object] = ["Japan", "1", "", 1, 1.0, 2.5, -3, True, False, 0, 2**60, 'say "hi"']
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {field: {op: [1, 2.5, -3, 0, 1.0, 2**60][int(rng.integers(0, 6))]}}
    if op in ("$in", "$nin"):
        pool = [s for s in scalars if not isinstance(s, bool)]
        size = int(rng.integers(0, 4))
        return {field: {op: [pool[int(rng.integers(0, len(pool)))] for _ in range(size)]}}
    if op == "$exists":
        return {field: {"$exists": bool(rng.random() < 0.5)}}
    value = scalars[int(rng.integers(0, len(scalars)))]
    return {field: value} if op == "bare" else {field: {op: value}}


def test_filters_run_as_sql_give_what_the_python_filter_gives(tmp_path: Path) -> None:
    """Each filter becomes one SQL expression over the records file (no row parsed in
    Python); over random metadata (lists of mixed kinds, bools beside 1 and 0, 1 beside
    1.0, nulls, objects, odd field names) and random filters, the keys it finds are those
    the Python filter finds, and the filters SQL cannot say exactly fall back to Python."""
    from zeroshot_vision.stores._faiss_records import RecordFilter
    from zeroshot_vision.stores._faiss_sql import sql_filter
    from zeroshot_vision.stores._filters import compile_filter
    from zeroshot_vision.testing._contract import _FILTER_RECORDS, FILTER_TABLE

    rng = np.random.default_rng(7)
    fields = ["country", "year", "a.b", "sp ace", "ünï", "c[0]", 'q"uote', "dollar$"]
    metadata: list[dict] = [dict(meta) for meta in _FILTER_RECORDS.values()]
    for _ in range(400):
        chosen = rng.choice(len(fields), int(rng.integers(0, 4)), replace=False)
        metadata.append({fields[int(i)]: _random_value(rng) for i in chosen})
    n = len(metadata)
    store = FaissStore(DIM, index="ivfpq", ivfpq=IvfPqSettings(train_size=300))
    store.upsert([f"p{i}" for i in range(n)], _vectors(n), metadata)
    store.save(tmp_path)
    table = FaissStore.load(tmp_path)._records
    assert table.overlay_size == 0
    filters = [where for where, _ in FILTER_TABLE]
    filters += [_random_filter(rng, fields) for _ in range(400)]
    in_sql = fell_back = 0
    for where in filters:
        compiled = RecordFilter.of(where)
        expected = {i for i, meta in enumerate(metadata) if compile_filter(where)(meta)}
        assert set(table.matching_keys(compiled).tolist()) == expected, where
        if compiled.sql is None:
            fell_back += 1
        else:
            in_sql += 1
    assert in_sql > 300 and fell_back > 10  # both paths were really compared
    assert sql_filter({'q"uote': 1}) is None and sql_filter({"n": {"$gt": 2**53}}) is None
    assert sql_filter({}) == ("1", ())
