"""The parts of the benchmark scripts that run anywhere: report helper and GPU script."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from benchmarks import gpu_bench

_report = gpu_bench._report  # the module object the scripts themselves use


def test_machine_names_cpu_cores_and_native_bf16() -> None:
    info = _report.machine()
    assert info["cpu"] and isinstance(info["cores"], int)
    assert isinstance(info["amx"], bool) and isinstance(info["avx512_bf16"], bool)
    assert "cores" in _report.describe(info)


def test_interleaved_runs_candidates_in_turn() -> None:
    calls: list[str] = []
    seconds = _report.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: (calls.append("b"), 0.25)[1]}, rounds=3
    )
    assert calls == ["a", "b"] * 3
    assert len(seconds["a"]) == 3 and all(s >= 0 for s in seconds["a"])
    assert seconds["b"] == [0.25, 0.25, 0.25]  # a candidate's own measurement wins


def test_percentile_and_ratio() -> None:
    assert _report.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert _report.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert math.isnan(_report.percentile([], 0.5))
    assert _report.ratio(3.0, 1.5) == 2.0
    assert math.isnan(_report.ratio(1.0, 0.0))


def test_written_json_has_machine_date_arguments_and_no_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _report.table("t", ["route", "images/s", "ratio"], [["naive", 2.0, float("nan")]])
    assert "naive" in capsys.readouterr().out
    path = _report.write("demo", [table], arguments={"images": 4}, folder=tmp_path)
    assert path == tmp_path / "demo.json"
    document = json.loads(path.read_text())  # strict JSON: no NaN
    assert document["benchmark"] == "demo"
    assert document["date"].startswith("20")
    assert {"cpu", "cores", "amx", "avx512_bf16", "gpu"} <= set(document["machine"])
    assert document["arguments"] == {"images": 4}
    assert document["tables"][0]["rows"] == [{"route": "naive", "images/s": 2.0, "ratio": None}]


def test_gpu_bench_arguments(tmp_path: Path) -> None:
    args = gpu_bench.parse_args(["--images", "64", "--out", str(tmp_path / "x.json")])
    assert (args.images, args.model_batch, args.naive_batch) == (64, 128, 64)
    assert args.encoder_batch is None and args.preset == "so400m"
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--images", "0"])


def test_gpu_bench_fails_clearly_without_cuda(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "gpu.json"
    assert gpu_bench.main(["--images", "4", "--out", str(out)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_gpu_bench_runs_end_to_end_as_a_cpu_smoke_test(tmp_path: Path) -> None:
    """The whole script on the tiny model and the CPU: every step and the JSON it writes."""
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--preset", "tiny", "--images", "6", "--naive-images", "3",
            "--model-batch", "4", "--encoder-batch", "2", "--model-batches", "1",
            "--naive-batch", "2", "--text-queries", "2", "--workers", "2", "--skip-compile",
            "--out", str(out)]  # fmt: skip
    assert gpu_bench.main(argv) == 0
    document = json.loads(out.read_text())
    titles = [table["title"] for table in document["tables"]]
    assert not any("failed" in title for title in titles), document["tables"][-1]
    images, agreement, text, setup = document["tables"]
    routes = [row["route"] for row in images["rows"]]
    assert [route.split(",")[0] for route in routes] == [
        "model alone",
        "model alone",
        "naive loop: open + processor + model",
        "Encoder.encode_images",
        "Encoder.encode_images",
        "zsv index (index_folder + FAISS commits)",
        "input path alone (worker processes",
        "Encoder.encode_images",
    ]
    assert all(row["images/s"] > 0 for row in images["rows"])
    shares = [row["share of model alone, same batch"] for row in images["rows"]]
    assert shares == [None] * 3 + [shares[3], shares[4], shares[5], None, shares[7]]
    assert all(share > 0 for share in shares[3:6] + shares[7:])
    assert {row["route"] for row in agreement["rows"]} == {"default", "CPU processes"}
    assert all(row["min cosine"] > 0.99 for row in agreement["rows"])
    assert text["rows"][0]["queries"] == 2
    assert {row["step"] for row in setup["rows"]} >= {"build model s", "Encoder load s"}


def test_cli_server_routes_name_a_backend_precision_and_server_environment() -> None:
    from benchmarks import bench_cli_server

    route = bench_cli_server.Route.parse("torch,OMP_WAIT_POLICY=ACTIVE,OMP_NUM_THREADS=1")
    assert (route.backend, route.precision) == ("torch", None)
    assert route.env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
    onnx = bench_cli_server.Route.parse("onnx/int8")
    assert (onnx.backend, onnx.precision, onnx.env) == ("onnx", "int8", {})
    with pytest.raises(SystemExit, match="torch or onnx"):
        bench_cli_server.Route.parse("openvino/int8")
