"""copy_store: moving records between stores without re-encoding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from zeroshot_vision._errors import DimensionMismatchError, InvalidInputError, PartialWriteError
from zeroshot_vision.stores._faiss import FaissStore
from zeroshot_vision.stores._transfer import copy_store


def _filled_faiss(n: int, dim: int = 8) -> FaissStore:
    store = FaissStore(dim)
    vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    metadata = [{"n": i, "kind": "even" if i % 2 == 0 else "odd", "tags": ["t"]} for i in range(n)]
    store.upsert([f"img-{i:04d}" for i in range(n)], vectors, metadata)
    return store


def _assert_same_records(source: Any, target: Any) -> None:
    ids = sorted(source.ids())
    assert sorted(target.ids()) == ids
    want, got = source.fetch(ids), target.fetch(ids)
    for item in ids:
        np.testing.assert_allclose(got[item].vector, want[item].vector, atol=1e-6)
        assert dict(got[item].metadata) == dict(want[item].metadata)


def test_copies_everything_in_batches_with_progress() -> None:
    source, target = _filled_faiss(250), FaissStore(8)
    target.upsert(["other"], np.ones((1, 8)))
    steps: list[int] = []
    assert copy_store(source, target, batch_size=100, progress=steps.append) == 250
    assert steps == [100, 100, 50]
    assert len(target) == 251  # records the target already had are kept
    target.delete(["other"])
    _assert_same_records(source, target)


def test_overwrites_and_is_safe_to_rerun() -> None:
    source, target = _filled_faiss(30), FaissStore(8)
    target.upsert(["img-0000"], np.ones((1, 8)), [{"stale": True}])
    copy_store(source, target)
    copy_store(source, target)
    _assert_same_records(source, target)


def test_empty_source_copies_nothing() -> None:
    assert copy_store(FaissStore(4), FaissStore(4)) == 0


def test_refuses_a_dimension_mismatch() -> None:
    with pytest.raises(DimensionMismatchError):
        copy_store(_filled_faiss(3, dim=8), FaissStore(4))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_refuses_bad_batch_size(batch_size: Any) -> None:
    with pytest.raises(InvalidInputError):
        copy_store(FaissStore(4), FaissStore(4), batch_size=batch_size)


class _FailingStore(FaissStore):
    """A FaissStore whose second upsert stores half its batch and then fails."""

    calls = 0

    def upsert(self, ids: Any, vectors: Any, metadata: Any = None) -> None:
        self.calls += 1
        if self.calls == 2:
            half = len(ids) // 2
            super().upsert(ids[:half], vectors[:half], metadata[:half])
            raise PartialWriteError("injected", written_ids=ids[:half], failed_ids=ids[half:])
        super().upsert(ids, vectors, metadata)


def test_partial_failure_lists_everything_copied_and_everything_left() -> None:
    source, target = _filled_faiss(100), _FailingStore(8)
    with pytest.raises(PartialWriteError) as caught:
        copy_store(source, target, batch_size=30)
    written, failed = caught.value.written_ids, caught.value.failed_ids
    assert len(written) == 45 and set(written) == set(target.ids())
    assert sorted([*written, *failed]) == sorted(source.ids())
    # Resuming with only the failed ids completes the copy.
    assert copy_store(source, target, ids=failed, batch_size=30) == len(failed)
    _assert_same_records(source, target)


def test_copies_only_the_ids_asked_for() -> None:
    source, target = _filled_faiss(10), FaissStore(8)
    wanted = ["img-0003", "missing", "img-0001", "img-0003"]
    assert copy_store(source, target, ids=wanted) == 2
    assert sorted(target.ids()) == ["img-0001", "img-0003"]
    with pytest.raises(InvalidInputError, match="one string"):
        copy_store(source, target, ids="img-0001")


def test_a_source_changing_during_the_copy() -> None:
    """Deleted before its batch: skipped. Changed before its batch: copied as changed."""

    class Changing(FaissStore):
        def fetch(self, ids: Any) -> Any:
            if "img-0000" in ids:  # the first batch: meanwhile, later records change
                self.delete(["img-0015"])
                self.upsert(["img-0012"], np.ones((1, 8)), [{"changed": True}])
                self.upsert(["new"], np.ones((1, 8)))
            return super().fetch(ids)

    source = Changing(8)
    original = _filled_faiss(20)
    records = original.fetch(list(original.ids()))
    source.upsert(
        list(records),
        np.stack([r.vector for r in records.values()]),
        [r.metadata for r in records.values()],
    )
    target = FaissStore(8)
    assert copy_store(source, target, batch_size=10) == 19
    assert "img-0015" not in set(target.ids()) and "new" not in set(target.ids())
    assert target.fetch(["img-0012"])["img-0012"].metadata == {"changed": True}
    assert copy_store(source, target) == 20  # copying again catches up
    assert "new" in set(target.ids())


# -- FAISS -> Pinecone, through the real SDK -------------------------------------------


@pytest.fixture
def pinecone_index() -> Iterator[tuple[Any, Any]]:
    pinecone = pytest.importorskip("pinecone")
    from zeroshot_vision.testing._pinecone_server import PineconeTestServer

    server = PineconeTestServer(dimension=8)
    index = pinecone.Index(host=server.start(), api_key="transfer-test")
    yield server, index
    index.close()
    server.stop()


def test_faiss_to_pinecone_and_back(pinecone_index: tuple[Any, Any]) -> None:
    from zeroshot_vision.stores._pinecone import PineconeStore

    server, index = pinecone_index
    source = _filled_faiss(2_300)
    pinecone_store = PineconeStore(index, namespace="moved")
    assert copy_store(source, pinecone_store, batch_size=1_000) == 2_300
    assert len(pinecone_store) == 2_300
    assert server.stored_ids("moved") == set(source.ids())
    query = np.random.default_rng(5).standard_normal(8)
    for flt in (None, {"kind": "odd", "n": {"$lt": 500}}):
        want = source.query(query, k=5, filter=flt)
        got = pinecone_store.query(query, k=5, filter=flt)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
    back = FaissStore(8)
    assert copy_store(pinecone_store, back, batch_size=700) == 2_300
    _assert_same_records(source, back)


def test_faiss_to_pinecone_refuses_metadata_pinecone_cannot_hold(
    pinecone_index: tuple[Any, Any],
) -> None:
    from zeroshot_vision.stores._pinecone import PineconeStore

    server, index = pinecone_index
    source = FaissStore(8)
    source.upsert(["a", "b"], np.eye(2, 8), [{"ok": 1}, {"nested": {"x": 1}}])
    with pytest.raises(InvalidInputError, match="nested"):
        copy_store(source, PineconeStore(index, dim=8))
    assert server.requests_for("upsert") == []
