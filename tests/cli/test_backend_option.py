"""``zsv index --backend onnx --precision int8``: recorded in the index, honoured by queries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from zeroshot_vision import SearchEngine
from zeroshot_vision._backends import PROBE_TEXTS, decode_probes, encode_probes
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._errors import BackendMismatchError


@pytest.fixture
def onnx_index(
    tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("ZSV_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in photo_paths[:4]:
        shutil.copy(photo, photos / photo.name)
    argv = ["index", str(photos), "--index", str(tmp_path / "index"),
            "--model", str(tiny_model_dir), "--backend", "onnx", "--precision", "int8"]  # fmt: skip
    assert main(argv) == EXIT_OK
    return tmp_path / "index"


def test_the_route_and_its_probe_vectors_are_recorded(
    onnx_index: Path, tiny_encoder: object
) -> None:
    record = json.loads((onnx_index / "settings.json").read_text())["encoder"]
    assert (record["backend"], record["precision"]) == ("onnx", "int8")
    probes = decode_probes(record["probes"], 32)
    reference = tiny_encoder.encode_texts(list(PROBE_TEXTS))  # type: ignore[attr-defined]
    assert np.sum(probes * reference, axis=1).min() > 0.99


def test_queries_use_the_recorded_route_and_accept_an_agreeing_one(
    onnx_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SearchEngine.open(onnx_index) as engine:
        assert str(engine.encoder.route) == "onnx/int8"
        onnx_hits = [r.id for r in engine.search("a cat", k=4)]
    with SearchEngine.open(onnx_index, backend="torch", dtype="float32") as engine:
        assert engine.encoder.backend == "torch"
        assert len(engine.search("a cat", k=4)) == 4
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(onnx_index), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert [hit["id"] for hit in shown] == onnx_hits


def test_a_disagreeing_route_is_refused_naming_the_backend_to_use(
    onnx_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((onnx_index / "settings.json").read_text())
    probes = decode_probes(manifest["encoder"]["probes"], 32)
    manifest["encoder"]["probes"] = encode_probes(np.roll(probes, 1, axis=1))
    (onnx_index / "settings.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendMismatchError, match=r"backend='onnx', precision='int8'"):
        SearchEngine.open(onnx_index, backend="torch")
    capsys.readouterr()
    argv = ["search", "a cat", "--index", str(onnx_index), "--backend", "torch"]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "--backend onnx --precision int8" in err and err.count("\n") == 1
