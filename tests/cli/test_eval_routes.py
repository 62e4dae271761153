"""``zsv eval --route``: one checkpoint through several encoder routes, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from tests.cli.test_eval import photo_folder  # noqa: F401 - the shared fixture

from zeroshot_vision._cli import EXIT_OK, main


def test_classify_compares_torch_and_onnx_int8_on_the_same_photos(
    photo_folder: Path,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZSV_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    argv = ["eval", "classify", "--data", str(photo_folder), "--model", str(tiny_model_dir),
            "--route", "torch", "--route", "onnx/int8", "--dtype", "float32", "--json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    torch_result, onnx_result = json.loads(capsys.readouterr().out)["models"]
    assert torch_result["model"].endswith("+torch-float32")
    assert onnx_result["model"].endswith("+onnx-int8")
    assert torch_result["n"] == onnx_result["n"] == 12
    # The int8 route keeps the float32 ranking on these photos: the same accuracy.
    assert abs(torch_result["top1"] - onnx_result["top1"]) <= 1 / 12
