"""Parquet export and import: bit-identical round trips, clear errors for wrong files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision import (
    DimensionMismatchError,
    FaissStore,
    InvalidInputError,
    SearchEngine,
)
from zeroshot_vision._index import IndexFolder
from zeroshot_vision.ingest._exchange import export_index, import_index
from zeroshot_vision.stores import export_store, import_store
from zeroshot_vision.stores._parquet import ParquetVectors

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _filled(dim: int = 8, count: int = 2_500) -> FaissStore:
    rng = np.random.default_rng(3)
    store = FaissStore(dim)
    metadata = [
        {"n": i, "place": {"country": "Ísland", "tags": ["a", "b"]}, "score": 0.1 * i}
        if i % 3
        else None
        for i in range(count)
    ]
    store.upsert([f"id-{i}" for i in range(count)], rng.normal(size=(count, dim)), metadata)
    return store


def _assert_same(a: FaissStore, b: FaissStore) -> None:
    ids = sorted(a.ids())
    assert sorted(b.ids()) == ids
    left, right = a.fetch(ids), b.fetch(ids)
    for item in ids:
        assert left[item].vector.tobytes() == right[item].vector.tobytes(), item
        assert left[item].metadata == right[item].metadata, item


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    source = _filled()
    path = tmp_path / "vectors.parquet"
    events = []
    assert export_store(source, path, model="m", batch_size=700, progress=events.append) == 2_500
    assert events[-1].done == 2_500 and events[-1].task == "export"
    assert ParquetVectors.open(path) == ParquetVectors(path=path, rows=2_500, dim=8, model="m")
    assert pq.ParquetFile(path).metadata.num_row_groups == 4  # streamed, one per batch
    target = FaissStore(8)
    assert import_store(path, target, batch_size=999) == 2_500
    _assert_same(source, target)
    # And back out again: the same file content.
    again = tmp_path / "again.parquet"
    export_store(target, again, model="m")
    assert pq.read_table(again).sort_by("id").equals(pq.read_table(path).sort_by("id"))


def test_the_file_is_readable_by_other_tools(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "vectors.parquet"
    export_store(_filled(count=4), path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["id", "vector", "metadata"]
    assert pd.isna(frame["metadata"].iloc[0])
    assert json.loads(frame["metadata"].iloc[1])["place"]["country"] == "Ísland"
    assert len(frame["vector"].iloc[0]) == 8


def test_files_from_other_tools_import(tmp_path: Path) -> None:
    path = tmp_path / "theirs.parquet"
    table = pa.table(
        {
            "id": ["x", "y"],
            "vector": [[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]],  # list<double>
            "metadata": [{"k": "v"}, {"k": "w"}],  # a struct column
        }
    )
    pq.write_table(table, path)
    store = FaissStore(4)
    assert import_store(path, store) == 2
    assert store.fetch(["y"])["y"].metadata == {"k": "w"}
    assert store.query([0, 1, 0, 0], k=1)[0].id == "y"


def test_wrong_dimension_is_a_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "vectors.parquet"
    export_store(_filled(dim=8, count=10), path)
    store = FaissStore(16)
    with pytest.raises(DimensionMismatchError, match="holds 8-d vectors, but the index holds 16-d"):
        import_store(path, store)
    assert len(store) == 0
    variable = tmp_path / "variable.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "vector": [[1.0] * 16, [1.0] * 15]}), variable)
    with pytest.raises(DimensionMismatchError, match="row 1 holds a 15-d vector") as info:
        import_store(variable, store)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"id": ["a"]}, "no 'vector' column"),
        ({"vector": [[1.0, 2.0]]}, "no 'id' column"),
        ({"id": ["a"], "vector": ["text"]}, "not lists"),
        ({"id": [""], "vector": [[1.0, 2.0]]}, "row 0 has no id"),
        ({"id": ["a"], "vector": [[1.0, 2.0]], "metadata": ["{bad"]}, "not valid JSON"),
        ({"id": ["a"], "vector": [[1.0, 2.0]], "metadata": ["[1]"]}, "not a JSON object"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, columns, message: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(InvalidInputError, match=message):
        import_store(path, FaissStore(2))


def test_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "vectors.parquet"
    path.write_text("id,vector\n")
    with pytest.raises(InvalidInputError, match="is not a Parquet file"):
        import_store(path, FaissStore(2))
    with pytest.raises(FileNotFoundError):
        import_store(tmp_path / "missing.parquet", FaissStore(2))


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    class Broken(FaissStore):
        def fetch(self, ids):
            raise RuntimeError("disk gone")

    store = Broken(2)
    store.upsert(["a"], [[1, 0]])
    path = tmp_path / "vectors.parquet"
    with pytest.raises(RuntimeError):
        export_store(store, path)
    assert list(tmp_path.iterdir()) == []


def test_index_folders_round_trip(tmp_path: Path, tiny_encoder, photo_paths) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:3], metadata=[{"n": i} for i in range(3)])
    path = tmp_path / "vectors.parquet"
    assert export_index(tmp_path / "index", path) == 3
    assert ParquetVectors.open(path).model == IndexFolder.open(tmp_path / "index").manifest.model
    assert import_index(path, tmp_path / "copy") == 3
    copy = IndexFolder.open(tmp_path / "copy")
    assert copy.manifest.dim == tiny_encoder.dim
    assert copy.counts()["indexed"] == 3
    original = IndexFolder.open(tmp_path / "index").open_store()
    imported = copy.open_store()
    try:
        _assert_same(original, imported)  # type: ignore[arg-type]
    finally:
        original.close()
        imported.close()
    # The copy searches like the original.
    with SearchEngine.open(tmp_path / "copy", encoder=tiny_encoder) as engine:
        assert len(engine.search("a cat", k=3)) == 3
