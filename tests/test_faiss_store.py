"""FaissStore: the contract suite, plus persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision.errors import IndexNotFoundError, StoreError
from zeroshot_vision.stores import FaissStore
from zeroshot_vision.testing import VectorStoreContract


class TestFaissContract(VectorStoreContract):
    @pytest.fixture
    def make_store(self):
        return FaissStore


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
    store = _filled()
    for _ in range(3):
        store.save(tmp_path)
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
