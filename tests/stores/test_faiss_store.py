"""FaissStore: the contract suite, plus persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroshot_vision.errors import IndexNotFoundError, StoreError
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


def test_save_leaves_one_generation_and_no_temp_files(tmp_path: Path) -> None:
    for _ in range(3):
        _filled().save(tmp_path)  # a fresh store each time: a whole new generation
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["index-3.faiss", "records-3.json", "store.json"]


def test_crash_mid_save_leaves_previous_version_loadable(tmp_path, monkeypatch) -> None:
    store = _filled()
    store.save(tmp_path)
    store.upsert(["extra"], [np.ones(6)])

    import zeroshot_vision.stores.faiss as faiss_module

    real_write = faiss_module.write_atomic

    def crash_on_manifest(path: Path, data: bytes) -> None:
        if path.name == "store.json":
            raise KeyboardInterrupt("simulated crash before the manifest swap")
        real_write(path, data)

    monkeypatch.setattr(faiss_module, "write_atomic", crash_on_manifest)
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
    import zeroshot_vision.stores.faiss as faiss_module

    monkeypatch.setattr(faiss_module, "MAX_DELTAS", 2)
    store = _filled()
    store.save(tmp_path)
    for i in range(3):
        store.upsert([f"n{i}"], [np.arange(6) + i])
        store.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["index-2.faiss", "records-2.json", "store.json"]
    assert _state(FaissStore.load(tmp_path)) == _state(store)


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
