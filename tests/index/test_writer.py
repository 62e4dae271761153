"""IndexWriter: the pending -> upsert -> indexed protocol, owned in one place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision import IndexLockedError, InvalidInputError
from zeroshot_vision._index import FileEntry, IndexFolder, IndexWriter
from zeroshot_vision.stores._faiss import FaissStore

DIM = 8


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _rows(folder: Path) -> dict[str, str]:
    with sqlite3.connect(folder / "state.sqlite") as db:
        return dict(db.execute("SELECT id, status FROM files").fetchall())


@pytest.fixture
def folder(tmp_path: Path) -> IndexFolder:
    return IndexFolder.create(tmp_path / "index", model="test-model", dim=DIM)


def _entries(*ids: str) -> list[FileEntry]:
    return [FileEntry(id=item, path=f"/photos/{item}", size=1, mtime_ns=2) for item in ids]


def test_ids_are_pending_before_the_store_sees_them(folder: IndexFolder) -> None:
    store = folder.open_store()
    seen_by_store: list[dict[str, str]] = []
    real_upsert = store.upsert

    def upsert(*args: object, **kwargs: object) -> None:
        seen_by_store.append(_rows(folder.path))  # what the state says at that moment
        real_upsert(*args, **kwargs)  # type: ignore[arg-type]

    store.upsert = upsert  # type: ignore[method-assign]
    writer = IndexWriter(store, folder)
    writer.write(_entries("a", "b"), _vectors(2), [{"n": 1}, None])
    assert seen_by_store == [{"a": "pending", "b": "pending"}]
    assert _rows(folder.path) == {"a": "pending", "b": "pending"}  # not indexed yet
    writer.commit()
    assert _rows(folder.path) == {"a": "indexed", "b": "indexed"}
    assert not writer.dirty
    writer.close()
    reopened = IndexFolder.open(folder.path).open_store()
    assert sorted(reopened.ids()) == ["a", "b"]
    assert reopened.fetch(["a"])["a"].metadata == {"n": 1}


def test_reserve_records_pending_ids_for_upserts_made_elsewhere(folder: IndexFolder) -> None:
    # The distributed indexer's workers upsert into a remote store themselves: the state
    # knows their ids first, and records what became of them at the next commit.
    store = folder.open_store()
    writer = IndexWriter(store, folder)
    writer.reserve(_entries("a", "b"))
    assert _rows(folder.path) == {"a": "pending", "b": "pending"}
    assert len(store) == 0  # nothing was written to the store by the writer
    store.upsert(["a"], _vectors(1), [None])  # the worker's upsert
    writer.record(_entries("a"))
    writer.commit()
    assert _rows(folder.path) == {"a": "indexed", "b": "pending"}  # b: never heard of
    writer.close()


def test_the_store_commits_before_the_state_records_indexed(folder: IndexFolder) -> None:
    store = folder.open_store()
    writer = IndexWriter(store, folder)
    writer.write(_entries("a"), _vectors(1), [None])

    def failing_commit() -> None:
        raise OSError(28, "No space left on device")

    store.commit = failing_commit  # type: ignore[method-assign]
    with pytest.raises(OSError, match="what was saved before is intact") as info:
        writer.commit()
    assert info.value.errno == 28
    assert _rows(folder.path) == {"a": "pending"}  # never "indexed" for an unsaved vector
    writer.close()


def test_delete_and_record_reach_the_state_at_commit(folder: IndexFolder) -> None:
    with IndexWriter(folder.open_store(), folder) as writer:
        writer.write(_entries("a", "b", "c"), _vectors(3), [None] * 3)
    store = folder.open_store()
    with IndexWriter(store, folder) as writer:
        writer.delete(["a"])
        writer.record(
            [FileEntry(id="c", path="/photos/c", size=1, mtime_ns=2, status="failed", reason="x")]
        )
        assert _rows(folder.path) == {"a": "indexed", "b": "indexed", "c": "indexed"}
    assert _rows(folder.path) == {"b": "indexed", "c": "failed"}
    assert sorted(IndexFolder.open(folder.path).open_store().ids()) == ["b", "c"]


def test_a_failed_block_commits_nothing_and_releases_the_lock(folder: IndexFolder) -> None:
    store = folder.open_store()
    with pytest.raises(RuntimeError), IndexWriter(store, folder) as writer:
        writer.write(_entries("a"), _vectors(1), [None])
        raise RuntimeError("boom")
    assert _rows(folder.path) == {"a": "pending"}  # reconciled by the next folder run
    assert not folder.locked
    assert IndexFolder.open(folder.path).open_store().ids() is not None
    with pytest.raises(InvalidInputError, match="closed"):
        writer.write(_entries("b"), _vectors(1), [None])


def test_the_first_write_takes_the_lock(folder: IndexFolder) -> None:
    first = IndexWriter(folder.open_store(), folder)
    assert not folder.locked  # creating a writer takes nothing
    first.write(_entries("a"), _vectors(1), [None])
    assert folder.locked
    other = IndexFolder.open(folder.path)
    with pytest.raises(IndexLockedError):
        IndexWriter(other.open_store(), other).write(_entries("b"), _vectors(1), [None])
    first.commit()
    first.close()
    assert not folder.locked
    with IndexWriter(other.open_store(), other) as second:
        second.write(_entries("b"), _vectors(1, seed=1), [None])
    assert _rows(folder.path) == {"a": "indexed", "b": "indexed"}


def test_without_a_folder_it_only_writes_the_store() -> None:
    store = FaissStore(dim=DIM)
    with IndexWriter(store) as writer:
        writer.write(_entries("a", "b"), _vectors(2), [None, {"k": "v"}])
        writer.delete(["a"])
    assert list(store.ids()) == ["b"]
    assert store.fetch(["b"])["b"].metadata == {"k": "v"}
