"""``zsv index --memory-budget`` / ``--rebuild-store`` and ``zsv info``'s RAM and disk per
million vectors, on a real index of real photos made through the CLI with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from zeroshot_vision.stores import FaissStore


def _index(tmp_path: Path, photo_paths: list[Path], model: Path, *extra: str) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths:
        (photos / path.name).write_bytes(path.read_bytes())
    index = tmp_path / "index"
    code = main(["index", str(photos), "--index", str(index), "--model", str(model), *extra])
    assert code == EXIT_OK
    return index


def test_memory_budget_says_what_it_picked_and_builds_it(
    tmp_path: Path, photo_paths: list[Path], tiny_model_dir: Path, capsys
) -> None:
    index = _index(tmp_path, photo_paths, tiny_model_dir, "--memory-budget", "1GB",
                   "--capacity", "2000000")  # fmt: skip
    err = capsys.readouterr().err
    assert "memory budget 1GB: ivfpq" in err and "expected recall@10" in err
    assert FaissStore.load(index / "store").index_type == "ivfpq"
    assert main(["info", "--index", str(index), "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["index_type"] == "ivfpq"
    assert info["ram_bytes_per_million"] > 0 and info["disk_bytes_per_million"] > 0


def test_a_budget_too_small_names_the_smallest(
    tmp_path: Path, photo_paths: list[Path], tiny_model_dir: Path, capsys
) -> None:
    code = main(["index", str(photo_paths[0].parent), "--index", str(tmp_path / "i"),
                 "--memory-budget", "10MB", "--capacity", "10000000"])  # fmt: skip
    assert code == EXIT_ERROR
    assert "give at least" in capsys.readouterr().err


def test_rebuild_store_moves_the_index_to_another_kind(
    tmp_path: Path, photo_paths: list[Path], tiny_model_dir: Path, capsys
) -> None:
    index = _index(tmp_path, photo_paths, tiny_model_dir)
    before = len(FaissStore.load(index / "store"))
    assert main(["index", "--index", str(index), "--rebuild-store", "ivfpq"]) == EXIT_OK
    assert "is now FaissStore" in capsys.readouterr().err
    store = FaissStore.load(index / "store")
    assert store.index_type == "ivfpq" and len(store) == before
    assert main(["info", "--index", str(index)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "kind:       ivfpq" in out and "per 1M:" in out
    assert "store:      faiss index=ivfpq" in out  # the manifest says what the store now is
    settings = json.loads((index / "settings.json").read_text())
    assert settings["store"]["options"] == {"index": "ivfpq"}
    # A run that asks for the old kind is refused; one that names the new kind goes on.
    code = main(["index", str(tmp_path / "photos"), "--index", str(index), "--ann", "hnsw"])
    assert code == EXIT_ERROR and "index': 'ivfpq'" in capsys.readouterr().err
    # The index still searches and updates through the rebuilt store.
    assert main(["search", "a photo", "--index", str(index), "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) > 0
    assert main(["index", "--index", str(index), "--rebuild-store", "nope"]) == EXIT_USAGE


@pytest.mark.parametrize("argv", [["index", "--index", "x"]])
def test_index_without_source_or_rebuild_is_a_usage_error(argv, capsys) -> None:
    assert main(argv) == EXIT_ERROR
    assert "SOURCE" in capsys.readouterr().err
