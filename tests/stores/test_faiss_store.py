"""FaissStore: the contract suite, plus persistence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroshot_vision._errors import IndexNotFoundError, InvalidInputError, StoreError
from zeroshot_vision.stores import FaissStore
from zeroshot_vision.testing import VectorStoreContract


class TestFaissContract(VectorStoreContract):
    @pytest.fixture
    def make_store(self):
        return FaissStore

    @pytest.fixture
    def open_durable(self, tmp_path: Path):
        return lambda: FaissStore.open(tmp_path / "store", dim=self.DIM)


def _filled(n: int = 20, dim: int = 6) -> FaissStore:
    store = FaissStore(dim)
    rng = np.random.default_rng(0)
    store.upsert(
        [f"p{i}" for i in range(n)],
        rng.standard_normal((n, dim)),
        [{"i": i, "name": f"photo {i}", "tags": ["x"]} for i in range(n)],
    )
    return store


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = _filled()
    store.delete(["p3"])
    store.save(tmp_path / "idx")
    loaded = FaissStore.load(tmp_path / "idx")
    assert len(loaded) == 19 and loaded.dim == 6
    query = np.arange(6, dtype=np.float32) + 1
    assert loaded.query(query, k=5) == store.query(query, k=5)
    # A loaded store keeps working: new ids do not collide with old FAISS ids.
    loaded.upsert(["new"], [query])
    assert loaded.query(query, k=1)[0].id == "new"
    assert len(loaded) == 20


def test_save_keeps_the_previous_generation_only_and_no_temp_files(tmp_path: Path) -> None:
    for _ in range(3):
        _filled().save(tmp_path)  # a fresh store each time: a whole new generation
    names = sorted(p.name for p in tmp_path.iterdir())
    # Generation 2 stays for readers that read the manifest just before the last swap.
    assert names == [
        "index-2.faiss",
        "index-3.faiss",
        "records-2.json",
        "records-3.json",
        "store.json",
    ]


def test_crash_mid_save_leaves_previous_version_loadable(tmp_path, monkeypatch) -> None:
    store = _filled()
    store.save(tmp_path)
    store.upsert(["extra"], [np.ones(6)])

    import zeroshot_vision.stores._faiss_files as files_module

    real_write = files_module.write_atomic

    def crash_on_manifest(path: Path, data: bytes) -> None:
        if path.name == "store.json":
            raise KeyboardInterrupt("simulated crash before the manifest swap")
        real_write(path, data)

    monkeypatch.setattr(files_module, "write_atomic", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        store.save(tmp_path)
    monkeypatch.undo()
    assert len(FaissStore.load(tmp_path)) == 20  # the old version, whole
    store.save(tmp_path)  # the next save succeeds and cleans the orphans up
    assert len(FaissStore.load(tmp_path)) == 21
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_load_missing_folder_raises_index_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        FaissStore.load(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):  # also the builtin
        FaissStore.load(tmp_path)


def test_load_damaged_files_raises_store_error(tmp_path: Path) -> None:
    _filled().save(tmp_path)
    (tmp_path / "records-1.json").write_text("{not json")
    with pytest.raises(StoreError):
        FaissStore.load(tmp_path)


def test_load_refuses_other_formats(tmp_path: Path) -> None:
    (tmp_path / "store.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(StoreError, match="not a FaissStore"):
        FaissStore.load(tmp_path)


def test_no_pickle_on_disk(tmp_path: Path) -> None:
    _filled().save(tmp_path)
    for path in tmp_path.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"


@pytest.mark.parametrize("dim", [0, -3, 2.5, True])
def test_bad_dim(dim) -> None:
    with pytest.raises(ValueError):
        FaissStore(dim)


def test_saved_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    _filled().save(tmp_path)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


# -- incremental saves -------------------------------------------------------------------


def _state(store: FaissStore) -> dict[str, tuple[tuple[float, ...], dict]]:
    records = store.fetch(list(store.ids()))
    return {i: (tuple(np.round(r.vector, 6)), dict(r.metadata)) for i, r in sorted(records.items())}


def test_saving_again_writes_only_a_delta(tmp_path: Path) -> None:
    store = _filled(200)
    store.save(tmp_path)
    index_bytes = (tmp_path / "index-1.faiss").read_bytes()
    rng = np.random.default_rng(5)
    store.upsert(["p1", "new-a", "new-b"], rng.standard_normal((3, 6)), [{"v": 2}, {}, {"x": "y"}])
    store.delete(["p7", "new-b", "never-there"])
    store.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "delta-1-1.f32",
        "delta-1-1.json",
        "index-1.faiss",
        "records-1.json",
        "store.json",
    ]
    assert (tmp_path / "index-1.faiss").read_bytes() == index_bytes  # untouched
    assert (tmp_path / "delta-1-1.f32").stat().st_size == 2 * 6 * 4  # p1 and new-a only
    loaded = FaissStore.load(tmp_path)
    assert _state(loaded) == _state(store)
    assert len(loaded) == 200 and "p7" not in set(loaded.ids())
    query = np.ones(6)
    assert loaded.query(query, k=5) == store.query(query, k=5)


def test_saving_unchanged_store_writes_nothing(tmp_path: Path) -> None:
    store = _filled()
    store.save(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    store.save(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_loaded_store_continues_with_deltas(tmp_path: Path) -> None:
    _filled().save(tmp_path)
    loaded = FaissStore.load(tmp_path)
    loaded.upsert(["extra"], [np.ones(6)])
    loaded.save(tmp_path)
    assert (tmp_path / "delta-1-1.json").exists()
    again = FaissStore.load(tmp_path)
    again.delete(["extra", "p0"])
    again.save(tmp_path)
    final = FaissStore.load(tmp_path)
    assert len(final) == 19 and "extra" not in set(final.ids())
    assert json.loads((tmp_path / "store.json").read_text())["deltas"] == [
        "delta-1-1.json",
        "delta-1-2.json",
    ]


def test_deltas_roll_over_into_a_new_generation(tmp_path: Path, monkeypatch) -> None:
    import zeroshot_vision.stores._faiss_files as files_module

    monkeypatch.setattr(files_module, "MAX_DELTAS", 2)
    store = _filled()
    store.save(tmp_path)
    for i in range(3):
        store.upsert([f"n{i}"], [np.arange(6) + i])
        store.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "delta-1-1.f32",
        "delta-1-1.json",
        "delta-1-2.f32",
        "delta-1-2.json",
        "index-1.faiss",  # generation 1 and its deltas stay until generation 3
        "index-2.faiss",
        "records-1.json",
        "records-2.json",
        "store.json",
    ]
    assert _state(FaissStore.load(tmp_path)) == _state(store)
    store.upsert([f"bulk{i}" for i in range(300)], np.ones((300, 6)))
    store.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "index-2.faiss",
        "index-3.faiss",
        "records-2.json",
        "records-3.json",
        "store.json",
    ]


def test_a_large_change_rewrites_the_generation(tmp_path: Path) -> None:
    store = _filled(20)
    store.save(tmp_path)
    rng = np.random.default_rng(6)
    store.upsert([f"bulk{i}" for i in range(300)], rng.standard_normal((300, 6)))
    store.save(tmp_path)
    assert (tmp_path / "index-2.faiss").exists() and not list(tmp_path.glob("delta-*"))
    assert len(FaissStore.load(tmp_path)) == 320


def test_another_writer_forces_a_whole_save(tmp_path: Path) -> None:
    first = _filled()
    first.save(tmp_path)
    other = _filled(5)
    other.save(tmp_path)  # generation 2, written by someone else
    first.upsert(["mine"], [np.ones(6)])
    first.save(tmp_path)  # must not lay a delta on top of the other writer's generation
    assert (tmp_path / "index-3.faiss").exists()
    assert _state(FaissStore.load(tmp_path)) == _state(first)


def test_damaged_delta_raises_store_error(tmp_path: Path) -> None:
    store = _filled()
    store.save(tmp_path)
    store.upsert(["x"], [np.ones(6)])
    store.save(tmp_path)
    (tmp_path / "delta-1-1.f32").write_bytes(b"\x00" * 7)
    with pytest.raises(StoreError, match="damaged"):
        FaissStore.load(tmp_path)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.integers(0, 9), min_size=1, max_size=4)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 9), max_size=3)),
        st.tuples(st.just("save"), st.just([])),
        st.tuples(st.just("reload"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 1000))
def test_saves_and_reloads_agree_with_a_model(ops, seed) -> None:
    import tempfile

    rng = np.random.default_rng(seed)
    model: dict[str, tuple[np.ndarray, dict]] = {}
    saved: dict[str, tuple[np.ndarray, dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = FaissStore(4)
        for op, numbers in ops:
            if op == "upsert":
                ids = [f"id{n}" for n in numbers]
                vectors = rng.standard_normal((len(ids), 4)) + 0.1
                metas = [{"n": n, "tag": f"t{rng.integers(3)}"} for n in numbers]
                store.upsert(ids, vectors, metas)
                for i, v, m in zip(ids, vectors, metas):
                    model[i] = (v / np.linalg.norm(v), m)
            elif op == "delete":
                ids = [f"id{n}" for n in numbers]
                store.delete(ids)
                for i in ids:
                    model.pop(i, None)
            elif op == "save":
                store.save(folder)
                saved = dict(model)
            elif saved or Path(folder, "store.json").exists():
                store = FaissStore.load(folder)
                model = dict(saved)
            got = store.fetch(list(model))
            assert set(store.ids()) == set(model)
            for i, (vector, meta) in model.items():
                np.testing.assert_allclose(got[i].vector, vector, atol=1e-5)
                assert dict(got[i].metadata) == meta


# -- concurrency ---------------------------------------------------------------------------

# Run in a child process: a data race inside FAISS kills the process with a segfault or
# "double free", which must fail this test, not take pytest down with it.
_STRESS = r"""
import sys, tempfile, threading, time
import numpy as np
import zeroshot_vision.stores._faiss as faiss_module
from zeroshot_vision.stores import FaissStore

index, seconds = sys.argv[1], float(sys.argv[2])
faiss_module.SQ8_TRAIN_SIZE = 50  # quantize and build the graph from the start
faiss_module.EXACT_SEARCH_LIMIT = 0  # and search through the graph, tombstones and all
dim, core = 16, [f"c{i}" for i in range(100)]
store = FaissStore(dim, index=index)
tolerance = 0.05 if index == "hnsw-sq8" else 1e-4
rng = np.random.default_rng(0)
store.upsert(core, rng.standard_normal((100, dim)), [{"id": i, "kind": "core"} for i in core])
folder = tempfile.mkdtemp()
deadline = time.monotonic() + seconds
failures, counts = [], {"read": 0, "write": 0}

def check(condition, what):
    if not condition:
        failures.append(what)

def reader(seed):
    rng = np.random.default_rng(seed)
    while time.monotonic() < deadline:
        hits = store.query(rng.standard_normal(dim), k=10)
        check(len(hits) == 10, f"{len(hits)} hits")
        check([h.score for h in hits] == sorted((h.score for h in hits), reverse=True), "order")
        check(all(h.metadata["id"] == h.id for h in hits), "metadata of another record")
        core_hits = store.query(rng.standard_normal(dim), k=5, filter={"kind": "core"})
        check([h.id[0] for h in core_hits] == ["c"] * 5, "filter")
        got = store.fetch(core[:20])
        check(sorted(got) == sorted(core[:20]), "fetch")
        check(all(abs(np.linalg.norm(r.vector) - 1) < tolerance for r in got.values()), "vector")
        listed = list(store.ids())
        check(len(listed) == len(set(listed)) and set(core) <= set(listed), "ids")
        check(len(store) >= 100, "len")
        counts["read"] += 1

def writer(seed):
    rng = np.random.default_rng(seed)
    while time.monotonic() < deadline:
        ids = [f"w{n}" for n in rng.integers(0, 300, 20)]
        store.upsert(ids, rng.standard_normal((20, dim)), [{"id": i, "kind": "w"} for i in ids])
        store.delete([f"w{n}" for n in rng.integers(0, 300, 10)])
        again = core[:3]  # overwrite records that readers expect to find
        metas = [{"id": i, "kind": "core"} for i in again]
        store.upsert(again, rng.standard_normal((3, dim)), metas)
        if rng.random() < 0.2:
            store.save(folder)
        counts["write"] += 1

def guarded(target, seed):
    try:
        target(seed)
    except BaseException as exc:
        failures.append(repr(exc))

threads = [threading.Thread(target=guarded, args=(reader, s)) for s in range(4)]
threads += [threading.Thread(target=guarded, args=(writer, s)) for s in (10, 11)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
store.save(folder)
loaded = FaissStore.load(folder)
check(sorted(loaded.ids()) == sorted(store.ids()), "saved state")
assert not failures, failures[:5]
assert counts["read"] > 0 and counts["write"] > 0, counts
print("ok", counts)
"""


def _run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("index", ["flat", "hnsw", "hnsw-sq8"])
def test_concurrent_readers_and_writers_do_not_crash(index: str) -> None:
    finished = _run_child(_STRESS, index, "2")
    assert finished.returncode == 0, (finished.returncode, finished.stderr[-2000:])
    assert finished.stdout.startswith("ok")


# A second process saving in a loop, as `zsv index` does while `zsv search` loads.
_SAVER = r"""
import sys
import numpy as np
from zeroshot_vision.stores import FaissStore

folder, saves = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
for n in range(saves):
    store = FaissStore(8)  # a fresh store each time: a whole new generation
    store.upsert([f"g{n}-{i}" for i in range(2000)], rng.standard_normal((2000, 8)))
    store.save(folder)
    store.upsert([f"d{n}"], rng.standard_normal((1, 8)))
    store.save(folder)  # and a delta on top of it
"""


def test_load_while_another_process_saves(tmp_path: Path) -> None:
    _filled(2000, 8).save(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path), "60"], env=env)
    loads, failures = 0, []
    deadline = time.monotonic() + 30
    try:
        while writer.poll() is None and time.monotonic() < deadline:
            try:
                store = FaissStore.load(tmp_path)
            except Exception as exc:  # counting every failure is the point
                failures.append(repr(exc))
            else:
                assert len(store) in (2000, 2001)
            loads += 1
    finally:
        writer.kill()
        writer.wait()
    assert loads > 20
    assert failures == [], f"{len(failures)} of {loads} loads failed: {failures[:3]}"


def test_load_reads_the_manifest_again_when_its_files_vanish(tmp_path: Path, monkeypatch) -> None:
    _filled(5).save(tmp_path)
    real_load = FaissStore._load.__func__  # type: ignore[attr-defined]
    generations: list[int] = []

    def racing_load(cls, folder: Path, manifest: Any) -> FaissStore:
        if not generations:  # between reading the manifest and its files, a writer saves
            _filled(7).save(tmp_path)  # twice: generation 1 is deleted
            _filled(9).save(tmp_path)
        generations.append(manifest.generation)
        return real_load(cls, folder, manifest)

    monkeypatch.setattr(FaissStore, "_load", classmethod(racing_load))
    assert len(FaissStore.load(tmp_path)) == 9
    assert generations == [1, 3]


def test_a_missing_file_under_an_unchanged_manifest_is_damage(tmp_path: Path) -> None:
    _filled().save(tmp_path)
    (tmp_path / "index-1.faiss").unlink()
    with pytest.raises(StoreError, match="No such file"):
        FaissStore.load(tmp_path)


# -- temp files left by killed saves --------------------------------------------------------

_KILLED_SAVE = r"""
import os, signal, sys
from pathlib import Path
import numpy as np
from zeroshot_vision.stores import FaissStore

folder = sys.argv[1]
store = FaissStore.load(folder)
store.upsert([f"big{i}" for i in range(400)], np.random.default_rng(2).standard_normal((400, 6)))
# Die the way a killed process does: in the middle of write_atomic, before its rename.
Path.replace = lambda self, target: os.kill(os.getpid(), signal.SIGKILL)
store.save(folder)
"""


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_next_save_removes_temp_files_of_a_killed_save(tmp_path: Path) -> None:
    _filled().save(tmp_path)
    usage = FaissStore.disk_usage(tmp_path)
    assert _run_child(_KILLED_SAVE, str(tmp_path)).returncode == -signal.SIGKILL
    assert len(_temp_files(tmp_path)) == 1
    assert FaissStore.disk_usage(tmp_path) == usage  # leftovers are not the store's size
    store = FaissStore.load(tmp_path)
    assert len(store) == 20  # the killed saves changed nothing
    store.save(tmp_path)  # nothing changed: writes nothing, but still cleans up
    assert _temp_files(tmp_path) == []
    assert FaissStore.disk_usage(tmp_path) == sum(p.stat().st_size for p in tmp_path.iterdir())


@pytest.mark.parametrize("index", ["flat", "hnsw"])
@pytest.mark.parametrize("search_filter", [None, {"i": {"$lt": 7}}, {"i": -1}])
def test_query_many_matches_single_queries(index: str, search_filter: Any) -> None:
    store = FaissStore(6, index=index)
    rng = np.random.default_rng(3)
    store.upsert(
        [f"p{i}" for i in range(30)], rng.standard_normal((30, 6)), [{"i": i} for i in range(30)]
    )
    queries = rng.standard_normal((5, 6))
    many = store.query_many(queries, k=4, filter=search_filter)
    single = [store.query(row, k=4, filter=search_filter) for row in queries]
    assert [[h.id for h in hits] for hits in many] == [[h.id for h in hits] for hits in single]
    for mine, theirs in zip(many, single):
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-6)
        assert [h.metadata for h in mine] == [h.metadata for h in theirs]
    with pytest.raises(InvalidInputError):
        store.query_many(queries[0], k=4)


def test_ids_show_what_they_hold() -> None:
    store = FaissStore(2)
    store.upsert([f"p{i}" for i in range(7)], np.eye(2)[[i % 2 for i in range(7)]])
    ids = store.ids()
    assert repr(ids) == "IdSnapshot(7 ids: 'p0', 'p1', 'p2', 'p3', 'p4', ...)"
    assert next(ids) == "p0" and len(ids) == 6
    store.delete(["p1"])  # a snapshot: writing does not change what is iterated
    assert list(ids) == ["p1", "p2", "p3", "p4", "p5", "p6"] and repr(ids) == "IdSnapshot(0 ids)"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_a_delta_vector_file_of_nan_is_damage_not_hidden_records(
    tmp_path: Path, value: float
) -> None:
    """Issue 29 (extra): such a file used to load, its records then never found."""
    from zeroshot_vision._errors import IndexDamagedError

    folder = tmp_path / "store"
    store = FaissStore.open(folder, dim=4)
    store.upsert(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    store.commit()
    store.upsert(["c"], np.ones((1, 4), dtype=np.float32))
    store.commit()
    store.close()
    (vectors,) = folder.glob("delta-*.f32")
    vectors.write_bytes(np.full(4, value, dtype="<f4").tobytes())
    with pytest.raises(IndexDamagedError, match=r"delta-.*\.f32 is damaged.*NaN, infinity"):
        FaissStore.open(folder, dim=4)
