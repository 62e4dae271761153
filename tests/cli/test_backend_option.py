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


def test_info_shows_the_recorded_route(
    onnx_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["info", "--index", str(onnx_index), "--json"]) == EXIT_OK
    route = json.loads(capsys.readouterr().out)["encoder"]
    assert route == {"backend": "onnx", "precision": "int8", "recorded": True}
    assert main(["info", "--index", str(onnx_index)]) == EXIT_OK
    assert "encoder:    onnx int8" in capsys.readouterr().out


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


def _classify_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    shown: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return shown


def _scores(rows: list[dict[str, object]]) -> dict[tuple[str, str], float]:
    return {
        (str(row["image"]), str(label["label"])): float(label["score"])  # type: ignore[index]
        for row in rows
        for label in row["labels"]  # type: ignore[attr-defined]
    }


def test_classify_runs_the_onnx_route_at_torch_float32_parity(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZSV_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    base = ["classify", *map(str, photo_paths[:3]), "--labels", "a dog,a cat,a rocket,a coin",
            "--model", str(tiny_model_dir), "--json"]  # fmt: skip
    torch_rows = _classify_json(capsys, [*base, "--dtype", "float32"])
    onnx_rows = _classify_json(capsys, [*base, "--backend", "onnx", "--precision", "float32"])
    assert any((tmp_path / "onnx-cache").iterdir())  # the export was made
    reference, got = _scores(torch_rows), _scores(onnx_rows)
    assert reference.keys() == got.keys() and len(got) == 12
    assert max(abs(reference[key] - got[key]) for key in got) < 1e-3
    for torch_row, onnx_row in zip(torch_rows, onnx_rows):  # the same order of labels
        assert [s["label"] for s in torch_row["labels"]] == [  # type: ignore[attr-defined]
            s["label"]
            for s in onnx_row["labels"]  # type: ignore[attr-defined]
        ]
    int8_rows = _classify_json(capsys, [*base, "--backend", "onnx", "--precision", "int8"])
    int8 = _scores(int8_rows)
    assert max(abs(reference[key] - int8[key]) for key in int8) < 0.05
    assert int8 != got  # the int8 route really ran: its scores are not float32's


def _tag_rows(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_tag_a_folder_through_onnx_agrees_with_torch_float32(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZSV_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in photo_paths[:4]:
        shutil.copy(photo, photos / photo.name)
    base = ["tag", str(photos), "--labels", "a dog,a cat,a rocket", "--model",
            str(tiny_model_dir), "--format", "json", "--min-probability", "0"]  # fmt: skip
    reference = _tag_rows(capsys, [*base, "--dtype", "float32"])
    got = _tag_rows(capsys, [*base, "--backend", "onnx", "--precision", "float32"])
    assert [row["image"] for row in got] == [row["image"] for row in reference]
    assert len(got) == 4
    for ref_row, got_row in zip(reference, got):
        ref = {s["label"]: s["probability"] for s in ref_row["labels"]}  # type: ignore[attr-defined]
        new = {s["label"]: s["probability"] for s in got_row["labels"]}  # type: ignore[attr-defined]
        assert ref.keys() == new.keys() == {"a dog", "a cat", "a rocket"}
        assert max(abs(ref[label] - new[label]) for label in ref) < 1e-4


def test_tag_an_onnx_index_uses_its_recorded_route(
    onnx_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tag", str(onnx_index), "--labels", "a dog,a cat", "--format", "json",
            "--min-probability", "0"]  # fmt: skip

    def probabilities(rows: list[dict[str, object]]) -> dict[tuple[str, str], float]:
        return {
            (str(row["image"]), str(s["label"])): float(s["probability"])  # type: ignore[index]
            for row in rows
            for s in row["labels"]  # type: ignore[attr-defined]
        }

    recorded = probabilities(_tag_rows(capsys, argv))
    with SearchEngine.open(onnx_index) as engine:  # the recorded onnx/int8 route
        assert str(engine.encoder.route) == "onnx/int8"
        report = engine.classify_indexed(["a dog", "a cat"])
    expected = {
        (str(result.source), s.label): s.probability
        for result in report.results
        for s in result.labels
    }
    assert len(recorded) == 8
    assert max(abs(recorded[key] - expected[key]) for key in recorded) < 1e-6
    through_torch = probabilities(
        _tag_rows(capsys, [*argv, "--backend", "torch", "--dtype", "float32"])
    )
    assert through_torch.keys() == recorded.keys() and through_torch != recorded
    assert max(abs(recorded[key] - through_torch[key]) for key in recorded) < 0.05


def test_backend_options_with_a_server_are_refused(
    tiny_model_dir: Path, photo_paths: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["classify", str(photo_paths[0]), "--labels", "a dog,a cat", "--server",
            "http://127.0.0.1:9", "--backend", "onnx"]  # fmt: skip
    assert main(argv) != EXIT_OK
    assert "with --server the server's own route is used" in capsys.readouterr().err
