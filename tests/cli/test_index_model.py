"""The model is part of the index: another --model or $ZSV_MODEL is refused, naming both."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._models import same_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_index(make_indexed_folder: Any) -> Path:
    return make_indexed_folder(2).index


@pytest.mark.parametrize("command", ["search", "index", "tag"])
def test_zsv_model_naming_another_model_is_one_line_naming_both(
    command: str,
    small_index: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZSV_MODEL", "google/siglip-so400m-patch14-384")
    argv = {
        "search": ["search", "a cat", "--index", str(small_index)],
        "index": ["index", str(small_index.parent / "photos"), "--index", str(small_index)],
        "tag": ["tag", str(small_index), "--labels", "a cat"],
    }[command]
    capsys.readouterr()
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zsv: error:")
    assert (
        str(tiny_model_dir) in err and "ZSV_MODEL asks for google/siglip-so400m-patch14-384" in err
    )


def test_the_index_model_in_zsv_model_or_a_copy_in_model_is_accepted(
    small_index: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ZSV_MODEL", str(tiny_model_dir))
    assert main(["search", "a cat", "--index", str(small_index)]) == EXIT_OK
    copy = tmp_path / "copy-of-the-model"
    shutil.copytree(tiny_model_dir, copy)
    monkeypatch.delenv("ZSV_MODEL")
    assert main(["search", "a cat", "--index", str(small_index), "--model", str(copy)]) == EXIT_OK
    assert same_checkpoint(str(copy), str(tiny_model_dir))
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(small_index), "--model", "tiny"]) == EXIT_ERROR
    assert "--model asks for tiny" in capsys.readouterr().err


def test_the_engine_refuses_another_model(small_index: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"was indexed with model .* not 'other/model'"):
        SearchEngine.open(small_index, model="other/model")
    with pytest.raises(InvalidInputError, match="not 'other/model'"):
        SearchEngine.create(small_index, model="other/model", exist_ok=True)


def test_demo_keeps_one_index_per_model() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import demo
    finally:
        sys.path.remove(str(ROOT / "examples"))
    names = {demo.index_name(m) for m in ("tiny", "google/siglip-so400m-patch14-384", "/m/siglip/")}
    assert names == {"index-tiny", "index-siglip-so400m-patch14-384", "index-siglip"}
