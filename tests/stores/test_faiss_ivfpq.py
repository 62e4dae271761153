"""FaissStore's ``"ivfpq"`` kind: the contract suite (untrained and trained), recall with
exact re-ranking, streaming to disk, fallback before training, damaged files, crashes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import one_faiss_thread  # noqa: F401 (an autouse fixture)

import zeroshot_vision.stores._faiss_disk as disk_module
from zeroshot_vision._errors import IndexDamagedError
from zeroshot_vision.stores import FaissStore, IvfPqSettings
from zeroshot_vision.testing import VectorStoreContract

# float16 rows: a unit vector's values are off by up to 2**-12, a cosine by about 5e-4.
F16_SCORE = 2e-3
F16_VECTOR = 1e-3


class TestIvfPqUntrainedContract(VectorStoreContract):
    """Below its training size the kind is flat and exact over its float16 vectors."""

    SCORE_TOLERANCE = F16_SCORE
    VECTOR_TOLERANCE = F16_VECTOR

    @pytest.fixture
    def make_store(self):
        return lambda dim: FaissStore(dim, index="ivfpq")

    @pytest.fixture
    def open_durable(self, tmp_path: Path):
        return lambda: FaissStore.open(tmp_path / "store", dim=self.DIM, index="ivfpq")


class TestIvfPqTrainedContract(VectorStoreContract):
    """Codes trained from the 16th vector on: every query goes through the inverted file
    and the exact re-ranking."""

    SCORE_TOLERANCE = F16_SCORE
    VECTOR_TOLERANCE = F16_VECTOR

    @pytest.fixture
    def make_store(self, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(disk_module, "MIN_TRAIN", 1)
        settings = IvfPqSettings(train_size=16)
        return lambda dim: FaissStore(dim, index="ivfpq", ivfpq=settings)

    @pytest.fixture
    def open_durable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(disk_module, "MIN_TRAIN", 1)
        settings = IvfPqSettings(train_size=16)
        return lambda: FaissStore.open(
            tmp_path / "store", dim=self.DIM, index="ivfpq", ivfpq=settings
        )


def _clustered(n: int, dim: int, seed: int, clusters: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return _clustered(4000, 64, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _clustered(40, 64, seed=2)


def _fill(store: FaissStore, data: np.ndarray, batch: int = 500) -> None:
    for start in range(0, len(data), batch):  # in batches, as an indexing run adds them
        ids = [f"v{i}" for i in range(start, min(start + batch, len(data)))]
        store.upsert(ids, data[start : start + batch], [{"bucket": int(i[1:]) % 100} for i in ids])


def test_recall_and_exact_scores_after_training(tmp_path, data, queries) -> None:
    settings = IvfPqSettings(train_size=1500, nprobe=8, code_bytes=16)
    store = FaissStore.open(tmp_path, dim=64, index="ivfpq", ivfpq=settings)
    _fill(store, data)
    assert store._index.is_trained
    found = 0
    for query in queries:
        exact = np.argsort(-(data @ query))[:10]
        hits = store.query(query, k=10)
        found += len({f"v{i}" for i in exact} & {h.id for h in hits})
        for hit in hits:  # the scores are the true cosines, not the codes' estimates
            assert abs(hit.score - float(data[int(hit.id[1:])] @ query)) < F16_SCORE
    assert found / (10 * len(queries)) >= 0.95
    where = {"bucket": {"$lt": 30}}
    for query in queries[:5]:
        hits = store.query(query, k=10, filter=where)
        assert len(hits) == 10 and all(h.metadata["bucket"] < 30 for h in hits)


def test_too_few_vectors_fall_back_to_flat_with_a_warning(caplog, data) -> None:
    store = FaissStore(64, index="ivfpq", ivfpq=IvfPqSettings(train_size=1000))
    with caplog.at_level(logging.WARNING):
        store.upsert([f"v{i}" for i in range(100)], data[:100])
    assert "fewer than the 1000 it trains on" in caplog.text
    assert not store._index.is_trained
    hits = store.query(data[7], k=3)  # queries before training are exact
    assert hits[0].id == "v7" and hits[0].score > 0.999
    store.upsert([f"v{i}" for i in range(100, 1000)], data[100:1000])
    assert store._index.is_trained


def test_vectors_stream_to_the_folder_and_survive_reload(tmp_path, monkeypatch, data) -> None:
    monkeypatch.setattr(disk_module, "SPILL_ROWS", 256)
    store = FaissStore.open(tmp_path, dim=64, index="ivfpq", ivfpq=IvfPqSettings(train_size=1000))
    _fill(store, data[:2000])
    # Most rows left RAM for the file before any commit: a build never holds them all.
    assert store._index.vectors.ram_bytes < 2000 * 64 * 2
    assert (tmp_path / "vectors-1.f16").stat().st_size >= 1536 * 64 * 2
    store.commit()
    store.delete(["v1"])
    store.upsert(["v2"], data[3:4])
    store.commit()  # a delta
    loaded = FaissStore.load(tmp_path)
    assert len(loaded) == 1999 and loaded.index_type == "ivfpq"
    assert loaded.query(data[3], k=2)[0].id in {"v2", "v3"}
    np.testing.assert_allclose(loaded.fetch(["v2"])["v2"].vector, data[3], atol=F16_VECTOR)
    manifest = json.loads((tmp_path / "store.json").read_text())
    assert manifest["vectors"] == "vectors-1.f16" and manifest["version"] == 5
    assert manifest["records"].endswith(".sqlite")  # the records stay on disk


def test_saving_elsewhere_copies_the_vectors(tmp_path, data) -> None:
    store = FaissStore(64, index="ivfpq", ivfpq=IvfPqSettings(train_size=500))
    _fill(store, data[:800])
    store.save(tmp_path / "a")
    store.save(tmp_path / "b")
    for folder in ("a", "b"):
        loaded = FaissStore.load(tmp_path / folder)
        assert len(loaded) == 800 and loaded.query(data[5], k=1)[0].id == "v5"


def _saved(tmp_path: Path, data: np.ndarray) -> Path:
    store = FaissStore.open(tmp_path, dim=64, index="ivfpq", ivfpq=IvfPqSettings(train_size=500))
    _fill(store, data[:800])
    store.commit()
    return tmp_path


@pytest.mark.parametrize("announce", [True, False], ids=["announced", "not-announced"])
def test_a_few_rows_are_read_one_by_one_and_equal_the_mapped_ones(
    tmp_path, monkeypatch, data, announce
) -> None:
    """Re-ranking reads a few hundred rows scattered over the vectors file: they are
    announced to the kernel (where it takes announcements) and read one by one, in any
    key order, and are the rows the memory map gives; a file cut short under a reader is
    an error naming it, not rows of garbage."""
    if not announce:  # as on macOS, which has no posix_fadvise
        monkeypatch.setattr(disk_module, "_ANNOUNCE", None)
    announced: list[int] = []
    if announce and disk_module._ANNOUNCE is not None:
        real = disk_module._ANNOUNCE

        def spy(fd: int, offset: int, length: int, advice: int) -> None:
            announced.append(offset)
            real(fd, offset, length, advice)

        monkeypatch.setattr(disk_module, "_ANNOUNCE", spy)
    folder = _saved(tmp_path, data)
    vectors = FaissStore.load(folder)._index.vectors
    keys = np.random.default_rng(5).permutation(800)[:300].astype(np.int64)
    read = vectors.rows(keys)
    if announce and hasattr(os, "posix_fadvise"):
        assert sorted(announced) == sorted((keys * 64 * 2).tolist())
    monkeypatch.setattr(disk_module, "PARALLEL_READ_ROWS", 0)  # through the map instead
    np.testing.assert_array_equal(read, vectors.rows(keys))
    np.testing.assert_allclose(read, data[keys], atol=F16_VECTOR)
    monkeypatch.setattr(disk_module, "PARALLEL_READ_ROWS", 1024)
    os.truncate(folder / "vectors-1.f16", 100 * 64 * 2)
    with pytest.raises(IndexDamagedError, match=r"vectors-1\.f16 is truncated"):
        vectors.rows(np.asarray([5, 700], dtype=np.int64))


def test_truncated_vectors_file_names_the_file(tmp_path, data) -> None:
    folder = _saved(tmp_path, data)
    vectors = folder / "vectors-1.f16"
    os.truncate(vectors, vectors.stat().st_size // 2)
    with pytest.raises(IndexDamagedError, match=r"vectors-1\.f16 is truncated") as caught:
        FaissStore.load(folder)
    assert "zsv index" in str(caught.value)


def test_truncated_codes_file_names_the_file_and_the_repair(tmp_path, data) -> None:
    folder = _saved(tmp_path, data)
    codes = folder / "index-1.faiss"
    os.truncate(codes, codes.stat().st_size // 2)
    with pytest.raises(IndexDamagedError, match=r"index-1\.faiss is damaged") as caught:
        FaissStore.load(folder)
    assert "--rebuild-store ivfpq" in str(caught.value)


_BUILD = """
import sys
import numpy as np
from zeroshot_vision.stores import FaissStore, IvfPqSettings
folder, start = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(start)
import faiss
faiss.omp_set_num_threads(1)
store = FaissStore.open(folder, dim=32, index="ivfpq", ivfpq=IvfPqSettings(train_size=300))
for batch in range(start, 10_000):
    rows = rng.standard_normal((50, 32)).astype(np.float32)
    store.upsert([f"{batch}-{i}" for i in range(50)], rows)
    store.commit()
    print(batch, flush=True)
"""


def test_sigkill_during_a_build_leaves_a_store_that_opens_and_continues(tmp_path) -> None:
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(_BUILD))
    folder = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, str(script), str(folder), "0"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    for line in child.stdout:  # past training (300), deltas and generations being written
        if int(line) >= 8 or time.monotonic() > deadline:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    store = FaissStore.open(folder, dim=32, index="ivfpq")
    count = len(store)
    assert count >= 9 * 50 and count % 50 == 0
    assert store._index.is_trained
    first = next(iter(store.ids()))
    assert store.query(store.fetch([first])[first].vector, k=1)[0].id == first
    store.upsert(["after"], np.ones((1, 32), np.float32))  # the writer goes on after a crash
    store.commit()
    assert len(FaissStore.load(folder)) == count + 1
