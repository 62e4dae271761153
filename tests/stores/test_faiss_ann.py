"""FaissStore with approximate (HNSW) indexes: the contract suite, recall, tombstones, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zeroshot_vision.stores._faiss as faiss_module
from zeroshot_vision._errors import InvalidInputError, StoreError
from zeroshot_vision.stores import FaissStore
from zeroshot_vision.testing import VectorStoreContract


class TestHnswContract(VectorStoreContract):
    """The whole contract through the graph: exact search of small stores is turned off."""

    @pytest.fixture
    def make_store(self, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(faiss_module, "EXACT_SEARCH_LIMIT", 0)
        return lambda dim: FaissStore(dim, index="hnsw")

    @pytest.fixture
    def open_durable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(faiss_module, "EXACT_SEARCH_LIMIT", 0)
        return lambda: FaissStore.open(tmp_path / "store", dim=self.DIM, index="hnsw")


class TestHnswSq8Contract(VectorStoreContract):
    """Quantized from the first vector on (8 bits over [-1, 1] at this size), tombstones
    kept up to 90% of the graph: scores and vectors are off by up to 2/255 per value."""

    SCORE_TOLERANCE = 0.02
    VECTOR_TOLERANCE = 0.01

    @pytest.fixture
    def make_store(self, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(faiss_module, "EXACT_SEARCH_LIMIT", 0)
        monkeypatch.setattr(faiss_module, "SQ8_TRAIN_SIZE", 1)
        monkeypatch.setattr(faiss_module, "REBUILD_FRACTION", 0.9)
        return lambda dim: FaissStore(dim, index="hnsw-sq8")

    @pytest.fixture
    def open_durable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(faiss_module, "SQ8_TRAIN_SIZE", 1)
        return lambda: FaissStore.open(tmp_path / "store", dim=self.DIM, index="hnsw-sq8")


# -- recall on clustered data ----------------------------------------------------------------


def _clustered(n: int, dim: int, seed: int, clusters: int = 40) -> np.ndarray:
    """Unit vectors around a few centres, like image embeddings of a photo collection."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _recall(store: FaissStore, data: np.ndarray, queries: np.ndarray, allowed=None, **kw) -> float:
    found = 0
    candidates = np.arange(len(data)) if allowed is None else np.asarray(allowed)
    for query in queries:
        exact = candidates[np.argsort(-(data[candidates] @ query))[:10]]
        hits = store.query(query, k=10, **kw)
        assert len(hits) == 10
        found += len({f"v{i}" for i in exact} & {h.id for h in hits})
    return found / (10 * len(queries))


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return _clustered(2000, 64, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _clustered(50, 64, seed=2)


@pytest.mark.parametrize("index", ["hnsw", "hnsw-sq8"])
def test_recall_at_10_against_exact_search(index: str, data, queries) -> None:
    store = FaissStore(64, index=index)
    for start in range(0, len(data), 250):  # in batches, as an indexing run adds them
        ids = [f"v{i}" for i in range(start, start + 250)]
        store.upsert(ids, data[start : start + 250])
    assert store._is_graph  # sq8 learnt its range from the first 1,000 and built its graph
    assert _recall(store, data, queries) >= 0.95
    assert _recall(store, data, queries, ef_search=200) >= 0.95


@pytest.mark.parametrize("index", ["hnsw", "hnsw-sq8"])
@pytest.mark.parametrize("share", [3, 40])  # exact below EXACT_SEARCH_LIMIT, graph above
def test_filtered_recall_and_exactness(index: str, share: int, data, queries) -> None:
    store = FaissStore(64, index=index)
    ids = [f"v{i}" for i in range(len(data))]
    store.upsert(ids, data, [{"bucket": i % 100} for i in range(len(data))])
    allowed = [i for i in range(len(data)) if i % 100 < share]
    where = {"bucket": {"$lt": share}}
    assert _recall(store, data, queries, allowed=allowed, filter=where) >= 0.95
    for query in queries[:10]:
        assert all(h.metadata["bucket"] < share for h in store.query(query, k=10, filter=where))


def test_a_narrow_search_falls_back_to_exact_rather_than_return_too_few(data) -> None:
    store = FaissStore(64, index="hnsw", ef_search=1)
    store.upsert([f"v{i}" for i in range(len(data))], data, [{"i": i} for i in range(len(data))])
    hits = store.query(data[0], k=50, filter={"i": {"$gte": 1900}}, ef_search=1)
    assert len(hits) == 50 and all(h.metadata["i"] >= 1900 for h in hits)


def test_ef_search_is_checked_and_kept() -> None:
    store = FaissStore(4, index="hnsw", ef_search=32)
    assert store.ef_search == 32
    store.ef_search = 100
    assert store.ef_search == 100
    store.upsert(["a"], [[1, 0, 0, 0]])
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError):
            store.query([1, 0, 0, 0], ef_search=bad)
        with pytest.raises(ValueError):
            FaissStore(4, index="hnsw", ef_search=bad)
    with pytest.raises(InvalidInputError, match="index must be one of"):
        FaissStore(4, index="ivf")


# -- tombstones --------------------------------------------------------------------------------


def test_overwritten_and_deleted_vectors_never_come_back(data) -> None:
    store = FaissStore(64, index="hnsw")
    ids = [f"v{i}" for i in range(1500)]
    store.upsert(ids, data[:1500])
    store.delete(ids[:100])
    store.upsert(ids[100:200], data[1500:1600])  # new vectors under old ids
    assert store._index.ntotal == 1600 and len(store._tombstones) == 200  # below the threshold
    assert len(store) == 1400
    for i in range(0, 200, 7):
        hits = store.query(data[i], k=5)  # the old vector itself: its id must not answer
        assert f"v{i}" not in {h.id for h in hits} or i >= 100
        if i >= 100:  # overwritten: found again through its new vector only
            assert store.query(data[1400 + i], k=1)[0].id == f"v{i}"
    np.testing.assert_allclose(store.fetch(["v150"])["v150"].vector, data[1550], atol=1e-6)


def test_tombstones_past_the_threshold_rebuild_the_graph(data) -> None:
    store = FaissStore(64, index="hnsw-sq8")
    ids = [f"v{i}" for i in range(2000)]
    store.upsert(ids, data)
    before = store.fetch(ids[1000:1010])
    store.delete(ids[:400])  # 20%: kept as tombstones
    assert store._index.ntotal == 2000
    store.delete(ids[400:600])  # 30%: the graph is rebuilt from the live vectors
    assert store._index.ntotal == 1400 and not store._tombstones
    after = store.fetch(ids[1000:1010])
    for item in before:  # decoded and re-encoded: the quantized vectors are unchanged
        np.testing.assert_array_equal(after[item].vector, before[item].vector)
    assert {h.id for h in store.query(data[0], k=50)}.isdisjoint(ids[:600])


# -- persistence -------------------------------------------------------------------------------


def _contents(store: FaissStore) -> dict[str, tuple[tuple[float, ...], str]]:
    got = store.fetch(list(store.ids()))
    return {i: (tuple(np.round(r.vector, 5)), json.dumps(r.metadata)) for i, r in got.items()}


@pytest.mark.parametrize("index", ["hnsw", "hnsw-sq8"])
def test_save_and_load_with_tombstones_and_deltas(index: str, tmp_path: Path, data) -> None:
    store = FaissStore.open(tmp_path, dim=64, index=index, ef_search=40)
    store.upsert([f"v{i}" for i in range(1200)], data[:1200], [{"i": i} for i in range(1200)])
    store.delete([f"v{i}" for i in range(50)])
    store.commit()  # a generation with tombstones in its index
    store.upsert(["v60", "new"], data[1500:1502], [{"i": -1}, {"i": -2}])  # overwrite + insert
    store.delete(["v61"])
    store.commit()  # a delta
    assert json.loads((tmp_path / "store.json").read_text())["deltas"] == ["delta-1-1.json"]
    loaded = FaissStore.open(tmp_path, dim=64)
    assert loaded.index_type == index and loaded.ef_search == 40
    assert _contents(loaded) == _contents(store)
    assert loaded._tombstones == store._tombstones
    for query in data[1500:1510]:
        assert loaded.query(query, k=10) == store.query(query, k=10)
    loaded.upsert(["v70"], data[1600:1601])  # keeps working: new keys do not collide
    assert loaded.query(data[1600], k=1)[0].id == "v70"


def test_manifest_versions(tmp_path: Path) -> None:
    FaissStore(4).save(tmp_path / "flat")
    FaissStore(4, index="hnsw").save(tmp_path / "hnsw")
    # Flat stores stay readable by the version-2 code that knows no other kind.
    assert json.loads((tmp_path / "flat" / "store.json").read_text())["version"] == 2
    assert json.loads((tmp_path / "hnsw" / "store.json").read_text())["version"] == 3


def test_a_version_2_store_loads_as_flat(tmp_path: Path) -> None:
    store = FaissStore(4)
    store.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    store.save(tmp_path)
    manifest = json.loads((tmp_path / "store.json").read_text())
    del manifest["index_type"], manifest["ef_search"]  # as version 2 wrote it
    (tmp_path / "store.json").write_text(json.dumps(manifest))
    loaded = FaissStore.open(tmp_path, dim=4)
    assert loaded.index_type == "flat" and sorted(loaded.ids()) == ["a", "b"]


def test_open_refuses_another_index_type(tmp_path: Path) -> None:
    store = FaissStore.open(tmp_path, dim=4, index="hnsw")
    store.upsert(["a"], [[1, 0, 0, 0]])
    store.commit()
    with pytest.raises(InvalidInputError, match="'hnsw' index, not 'flat'"):
        FaissStore.open(tmp_path, dim=4, index="flat")
    assert FaissStore.open(tmp_path, dim=4, index="hnsw").index_type == "hnsw"


def test_building_the_sq8_graph_forces_a_whole_save(tmp_path: Path, data) -> None:
    store = FaissStore.open(tmp_path, dim=64, index="hnsw-sq8")
    store.upsert([f"v{i}" for i in range(900)], data[:900])
    store.commit()
    store.upsert([f"v{i}" for i in range(900, 1100)], data[900:1100])  # crosses 1,000
    store.commit()  # small enough for a delta, but the index changed kind: a generation
    assert json.loads((tmp_path / "store.json").read_text())["generation"] == 2
    loaded = FaissStore.load(tmp_path)
    assert loaded._is_graph and _contents(loaded) == _contents(store)


def test_a_graph_index_under_a_flat_manifest_is_damage(tmp_path: Path) -> None:
    FaissStore(4, index="hnsw").save(tmp_path)
    manifest = json.loads((tmp_path / "store.json").read_text())
    manifest["index_type"] = "flat"
    (tmp_path / "store.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="inconsistent"):
        FaissStore.load(tmp_path)
