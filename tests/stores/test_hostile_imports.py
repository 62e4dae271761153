"""Hostile vectors files: a specific error before anything is written, every time.

Each file is imported three ways (``import_store`` into a store, ``import_index`` into a
new and into an existing index folder, and ``zsv import``); whatever is wrong with it,
the store stays as it was, no folder is created, and ``zsv`` prints one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zeroshot_vision import DimensionMismatchError, IndexFolder, InvalidInputError
from zeroshot_vision._cli import EXIT_ERROR, main
from zeroshot_vision.ingest._exchange import export_index, import_index
from zeroshot_vision.stores._faiss import FaissStore
from zeroshot_vision.stores._parquet import (
    MAX_IMPORT_ID_BYTES,
    MAX_ROW_METADATA_BYTES,
    SCHEMA_KEY,
    import_store,
)

DIM = 4


def _table(ids: list[Any], vectors: list[list[float]], **columns: Any) -> pa.Table:
    vector = pa.array(vectors, pa.list_(pa.float32(), DIM))
    return pa.table({"id": ids, "vector": vector, **columns})


GOOD = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]
INT_IDS = pa.table({"id": [1, 2], "vector": pa.array(GOOD[:2], pa.list_(pa.float32(), DIM))})
WIDE = pa.table({"id": ["a"], "vector": pa.array([[1.0] * 8], pa.list_(pa.float32(), 8))})
HUGE_METADATA = json.dumps({"t": "y" * MAX_ROW_METADATA_BYTES})
HOSTILE: dict[str, tuple[pa.Table | None, str]] = {
    "NaN in the last row": (_table(["a", "b", "c"], [*GOOD[:2], [math.nan, 0, 0, 0]]),
                            "row 2's vector holds NaN"),
    "infinity": (_table(["a", "b"], [GOOD[0], [0, math.inf, 0, 0]]), "row 1's vector holds"),
    "an all-zero vector": (_table(["a", "b"], [GOOD[0], [0, 0, 0, 0]]), "row 1's vector is all"),
    "duplicate ids": (_table(["a", "b", "a"], GOOD), "rows 0 and 2 have the same id 'a'"),
    "integer ids": (INT_IDS, "row 0's id is a int, not a string"),
    "a giant id": (_table(["a", "x" * (MAX_IMPORT_ID_BYTES + 1)], GOOD[:2]), "longer than 4,096"),
    "giant metadata": (_table(["a"], GOOD[:1], metadata=[HUGE_METADATA]), "row 0's metadata is"),
    "deep metadata": (_table(["a"], GOOD[:1], metadata=['{"a":' * 2_500 + "1" + "}" * 2_500]),
                      "nests JSON 2500 levels deep"),
    "a wrong dimension": (WIDE, "holds 8-d vectors"),
    "a schema that lies about its dimension": (
        _table(["a"], GOOD[:1]).replace_schema_metadata({SCHEMA_KEY: b'{"format": 1, "dim": 16}'}),
        "says dimension 16, but its vector column holds 4-d"),
    "schema metadata of the wrong type": (
        _table(["a"], GOOD[:1]).replace_schema_metadata({SCHEMA_KEY: b'{"dim": "4"}'}),
        "field 'dim'"),
    "deep schema metadata": (
        _table(["a"], GOOD[:1]).replace_schema_metadata({SCHEMA_KEY: b"[" * 3_000 + b"]" * 3_000}),
        "levels deep"),
    "a newer format": (
        _table(["a"], GOOD[:1]).replace_schema_metadata({SCHEMA_KEY: b'{"format": 99}'}),
        "newer zeroshot-vision"),
    "a truncated file": (None, "not a Parquet file"),
}  # fmt: skip


def _write(name: str, table: pa.Table | None, folder: Path) -> Path:
    path = folder / "hostile.parquet"
    if table is None:  # half of a good file
        pq.write_table(_table(["a", "b", "c"], GOOD), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        pq.write_table(table, path, row_group_size=1)  # one row group per row: many batches
    return path


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_is_a_specific_error_and_writes_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, message = HOSTILE[name]
    path = _write(name, table, tmp_path)
    expected = DimensionMismatchError if name == "a wrong dimension" else InvalidInputError
    store = FaissStore(DIM)
    store.upsert(["kept"], np.eye(1, DIM, dtype=np.float32), [None])
    with pytest.raises(expected, match=message) as exc:
        import_store(path, store, batch_size=1)
    assert "\n" not in str(exc.value)
    assert list(store.ids()) == ["kept"]  # nothing written, not even the good rows first

    if name != "a wrong dimension":  # which a new folder would simply take on
        new = tmp_path / "new-index"
        with pytest.raises(expected, match=message):
            import_index(path, new, model="m", batch_size=1)
        assert not new.exists()  # a bad file creates no folder

    existing = tmp_path / "index"
    IndexFolder.create(existing, model="m", dim=DIM)
    with pytest.raises(expected, match=message):
        import_index(path, existing, batch_size=1)
    folder = IndexFolder.open(existing)
    assert folder.counts() == {"indexed": 0, "failed": 0, "pending": 0}
    assert not (existing / "store").exists()

    code = main(["import", str(path), "--index", str(existing), "--batch-size", "1"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and err.count("\n") == 1 and "Traceback" not in err


def test_zero_rows_import_nothing_and_a_good_file_round_trips(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(_table([], []), empty)
    assert import_store(empty, FaissStore(DIM)) == 0
    good = tmp_path / "good.parquet"
    pq.write_table(_table(["a", "b", "c"], GOOD, metadata=['{"n": 1}', None, "{}"]), good)
    assert import_index(good, tmp_path / "index", model="m", batch_size=2) == 3
    assert export_index(tmp_path / "index", tmp_path / "back.parquet") == 3
    assert pq.read_table(tmp_path / "back.parquet").column("id").to_pylist() == ["a", "b", "c"]


def test_a_damaged_page_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "damaged.parquet"
    pq.write_table(_table(["a", "b", "c"], GOOD, metadata=['{"n": 1}'] * 3), path,
                   compression="none", row_group_size=1)  # fmt: skip
    data = bytearray(path.read_bytes())
    for i in range(20, 60):  # the first data page, past the magic bytes
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    store = FaissStore(DIM)
    with pytest.raises(InvalidInputError, match=r"damaged\.parquet is damaged after row 0"):
        import_store(path, store)
    assert len(store) == 0


def _recording(model: str | None, folder: Path, name: str) -> Path:
    """A good vectors file whose schema records ``model`` (``None``: another tool's)."""
    table = _table(["a", "b", "c"], GOOD)
    if model is not None:
        record = {"format": 1, "dim": DIM, "model": model}
        table = table.replace_schema_metadata({SCHEMA_KEY: json.dumps(record).encode()})
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    return path


def _count(index: Path) -> int:
    with IndexFolder.open(index).open_store() as store:
        return len(list(store.ids()))


def test_import_into_an_index_refuses_vectors_of_another_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29, item 5: the recorded model and --model are checked, not ignored."""
    index = tmp_path / "index"
    assert import_index(_recording("org/model-a", tmp_path, "a"), index) == 3
    other = _recording("org/model-b", tmp_path, "b")
    with pytest.raises(InvalidInputError, match=r"model org/model-a.*model org/model-b"):
        import_index(other, index)
    with pytest.raises(InvalidInputError, match=r"--model says model org/model-b"):
        import_index(_recording("org/model-a", tmp_path, "a2"), index, model="org/model-b")
    capsys.readouterr()
    assert main(["import", str(other), "--index", str(index)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "org/model-a" in err and "org/model-b" in err
    argv = ["import", str(tmp_path / "a.parquet"), "--index", str(index), "--model", "org/b"]
    assert main(argv) == EXIT_ERROR
    assert "--model says model org/b" in capsys.readouterr().err
    assert _count(index) == 3 and IndexFolder.open(index).manifest.model == "org/model-a"
    # The same model, or a file that records none (another tool's), imports as before.
    assert import_index(_recording("org/model-a", tmp_path, "same"), index) == 3
    assert import_index(_recording(None, tmp_path, "unknown"), index) == 3


def test_a_local_copy_of_the_index_model_is_the_same_model(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import shutil

    index = tmp_path / "index"
    assert import_index(_recording(str(tiny_model_dir), tmp_path, "a"), index) == 3
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copied-model")
    assert import_index(_recording(str(copy), tmp_path, "b"), index) == 3
