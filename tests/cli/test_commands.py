"""The ``zsv`` command line: output, JSON, exit codes and one-line errors."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import PhotoServer, make_jpeg, photo_row, write_dataset

from zeroshot_vision import _cli as cli
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from zeroshot_vision._cli.output import columns, one_line
from zeroshot_vision._cli.search import results_table


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lite_index(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """An index of six photos (with Unsplash metadata) built through ``zsv index``."""
    root = tmp_path_factory.mktemp("cli")
    rows = [
        photo_row(f"p{i}", "http://x", photo_location_country="Iceland" if i < 2 else "Japan")
        for i in range(6)
    ]
    write_dataset(root / "lite", rows)
    for i in range(6):
        (root / "lite" / f"p{i}.jpg").write_bytes(make_jpeg(i, (40, 40)))
    assert main(["index", str(root / "lite"), "--index", str(root / "index"),
                 "--model", str(tiny_model_dir)]) == EXIT_OK  # fmt: skip
    return root / "index"


def test_index_json_summary_and_listed_failures(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "photos"
    source.mkdir()
    for i in range(3):
        (source / f"{i}.jpg").write_bytes(make_jpeg(i))
    (source / "bad.png").write_bytes(b"\x89PNG broken")
    index = str(tmp_path / "index")
    code, out, err = run(
        capsys, "index", str(source), "--index", index, "--model", str(tiny_model_dir), "--json"
    )
    assert code == EXIT_OK
    summary = json.loads(out)
    assert (summary["indexed"], summary["skipped"], summary["count"]) == (3, 0, 3)
    assert [Path(f["source"]).name for f in summary["failed"]] == ["bad.png"]

    code, out, err = run(capsys, "index", str(source), "--index", index)
    assert code == EXIT_OK
    assert out.startswith("indexed 0, skipped 3, removed 0, failed 0, 1 known bad; 3 in the index")
    assert "zsv: skipped" in err and "bad.png" in err


def test_index_workers_and_compile_reach_the_encoder(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zeroshot_vision import Encoder

    source = tmp_path / "photos"
    source.mkdir()
    for i in range(5):
        (source / f"{i}.jpg").write_bytes(make_jpeg(i))
    loads: list[dict[str, object]] = []
    real = Encoder.from_pretrained.__func__  # type: ignore[attr-defined]

    def recording(cls: type, name: object = None, **options: object) -> Encoder:
        loads.append({"name": name, **options})
        options["compile"] = False  # compiling is tested in tests/test_input_path.py
        return real(cls, name, **options)

    monkeypatch.setattr(Encoder, "from_pretrained", classmethod(recording))
    index = str(tmp_path / "index")
    argv = ["index", str(source), "--index", index, "--batch-size", "2"]
    assert main([*argv, "--model", str(tiny_model_dir), "--workers", "2"]) == EXIT_OK
    # a re-run with --compile loads the index's own model
    (source / "5.jpg").write_bytes(make_jpeg(5))
    assert main([*argv, "--workers", "0", "--compile"]) == EXIT_OK
    assert [(x["workers"], x["compile"]) for x in loads] == [(2, False), (0, True)]
    assert loads[1]["name"] == str(tiny_model_dir.resolve())
    from zeroshot_vision import IndexFolder

    assert IndexFolder.open(index).counts()["indexed"] == 6


def test_search_table_and_json(lite_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "search", "a photo of a dog", "--index", str(lite_index), "-k", "3")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "id", "score", "prob", "path/description"]
    assert len(lines) == 4 and lines[1].split()[0] == "1"
    assert "description of p" in out

    code, out, _ = run(
        capsys, "search", "a dog", "--index", str(lite_index), "--json",
        "--filter", '{"country": "Iceland"}',
    )  # fmt: skip
    results = json.loads(out)
    assert code == EXIT_OK and [r["rank"] for r in results] == [1, 2]
    assert {r["id"] for r in results} == {"p0", "p1"}
    assert all(0 <= r["probability"] <= 1 for r in results)
    assert results[0]["score"] >= results[1]["score"]


def test_search_min_probability_can_leave_nothing(
    lite_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "search", "a dog", "--index", str(lite_index), "--min-probability", "1"
    )
    assert code == EXIT_OK and out.strip() == "no results"


def test_info(lite_index: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "--index", str(lite_index), "--json")
    info = json.loads(out)
    assert code == EXIT_OK
    assert (info["count"], info["dim"], info["store"]) == (6, 32, "faiss")
    assert info["model"] == str(tiny_model_dir.resolve()) and info["size_bytes"] > 0
    assert info["encoder"]["backend"] == "torch" and info["encoder"]["recorded"] is True
    assert info["encoder"]["precision"] in {"float32", "bfloat16", "float16"}
    code, out, _ = run(capsys, "info", "--index", str(lite_index))
    assert "count:      6" in out and "store:      faiss" in out
    assert f"encoder:    torch {info['encoder']['precision']}" in out


def test_info_of_an_index_without_a_recorded_route(
    lite_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    older = tmp_path / "older"
    shutil.copytree(lite_index, older)
    manifest = json.loads((older / "settings.json").read_text())
    del manifest["encoder"]  # as written before routes were recorded
    (older / "settings.json").write_text(json.dumps(manifest))
    code, out, _ = run(capsys, "info", "--index", str(older), "--json")
    assert code == EXIT_OK
    assert json.loads(out)["encoder"] == {"backend": "torch", "precision": None, "recorded": False}
    code, out, _ = run(capsys, "info", "--index", str(older))
    assert "encoder:    torch (route not recorded" in out


def test_classify(
    tiny_model_dir: Path, photo_paths: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(photo_paths[0])
    code, out, _ = run(
        capsys, "classify", image, "--labels", "a dog, a cat,a car", "--model", str(tiny_model_dir),
        "--json",
    )  # fmt: skip
    scores = json.loads(out)
    assert code == EXIT_OK and sorted(s["label"] for s in scores) == ["a car", "a cat", "a dog"]
    probabilities = [s["probability"] for s in scores]
    assert probabilities == sorted(probabilities, reverse=True)

    code, out, _ = run(
        capsys, "classify", image, "--labels", "a dog,a cat", "--model", str(tiny_model_dir),
        "--softmax",
    )  # fmt: skip
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].split() == ["label", "prob", "score"]
    total = sum(float(line.split()[-2]) for line in lines[1:])
    assert total == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "--index", "<missing>"], "no index at"),
        (["info", "--index", "<missing>"], "no index at"),
        (["search", "x", "--index", "<index>", "--filter", "{bad"], "--filter is not valid JSON"),
        (["search", "x", "--index", "<index>", "--filter", "[1]"], "must be a JSON object"),
        (["search", "x", "--index", "<index>", "--filter", '{"a": {"$near": 1}}'], "$near"),
        (["search", "x", "--index", "<index>", "--model", "<missing>"], "does not exist"),
        (["classify", "<photo>", "--labels", "a", "--model", "<missing>"], "does not exist"),
        (["classify", "<missing>", "--labels", "a"], "is not a file"),
        (["classify", "<photo>", "--labels", " , "], "at least one label"),
        (["index", "<missing>", "--index", "<tmp>/new", "--model", "<model>"], "not a folder"),
        (["index", "<tmp>", "--index", "<tmp>/new", "--namespace", "n"], "need --store pinecone"),
        (["download", "<tmp>", "--out", "<tmp>/out"], "no photos table"),
    ],
)
def test_expected_problems_are_one_line_without_traceback(
    argv: list[str],
    message: str,
    lite_index: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = {
        "missing": str(tmp_path / "missing"),
        "index": str(lite_index),
        "photo": str(photo_paths[0]),
        "tmp": str(tmp_path),
        "model": str(tiny_model_dir),
    }
    filled = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace(f"<{key}>", value)
        filled.append(arg)
    code, out, err = run(capsys, *filled)
    assert code == EXIT_ERROR
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zsv: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "--index", "i", "-k", "0"], "argument -k: must be a positive integer"),
        (["search", "x", "--index", "i", "-k", "two"], "argument -k: invalid int value"),
        (["search", "x", "--index", "i", "--min-probability", "2"], "must be a probability"),
        (["download", "d", "--out", "o", "--timeout", "0"], "--timeout: must be a positive"),
        (["download", "d", "--out", "o", "--timeout", "nan"], "--timeout: must be"),
        (["download", "d", "--out", "o", "--retries", "-1"], "--retries: must be 0 or more"),
        (["download", "d", "--out", "o", "--workers", "0"], "--workers: must be a positive"),
        (["index", "s", "--index", "i", "--batch-size", "0"], "--batch-size: must be a positive"),
        (["index", "s", "--index", "i", "--commit-every", "nan"], "--commit-every: must be 0"),
        (["index", "s", "--index", "i", "--store", "nope"], "invalid choice: 'nope'"),
        (["index", "s", "--index", "i", "--workers", "-1"], "--workers: must be 0 or more"),
        (["app", "--index", "i", "--port", "-1"], "--port: must be a positive"),
    ],
)
def test_bad_numbers_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE and out == ""
    assert message in err and "Traceback" not in err


def test_a_full_disk_while_indexing_is_one_clear_line(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zeroshot_vision.stores._faiss import FaissStore

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(FaissStore, "commit", full)
    source = tmp_path / "photos"
    source.mkdir()
    (source / "a.jpg").write_bytes(make_jpeg(1))
    index = tmp_path / "index"
    code, out, err = run(capsys, "index", str(source), "--index", str(index),
                         "--model", str(tiny_model_dir))  # fmt: skip
    assert code == EXIT_ERROR and out == ""
    assert err == (
        f"zsv: error: cannot save the index in {index}: No space left on device; what was "
        "saved before is intact, so fix this and run again to continue\n"
    )


def test_index_into_a_folder_that_is_not_an_index_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    # Refused before any model is loaded: no --model is needed to see the error.
    code, out, err = run(capsys, "index", str(tmp_path), "--index", str(tmp_path))
    assert code == EXIT_ERROR and out == ""
    assert "is not empty and holds no index" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unknown_hub_model_offline_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "a.jpg"
    image.write_bytes(make_jpeg(1))
    code, _, err = run(capsys, "classify", str(image), "--labels", "a", "--model", "nobody/none")
    assert code == EXIT_ERROR and "cannot load model 'nobody/none'" in err
    assert err.count("zsv: error:") == 1 and "Traceback" not in err


def test_wide_characters_keep_the_search_table_aligned() -> None:
    from zeroshot_vision._types import SearchResult

    results = [
        SearchResult(id="café ☕.png", score=0.5, probability=0.25, metadata={}),
        SearchResult(id="写真/猫.jpg", score=0.4, probability=0.2, metadata={}),
        SearchResult(id="plain.jpg", score=0.3, probability=0.1, metadata={}),
    ]
    lines = results_table(results)
    # The score column starts at the same terminal column on every line.
    starts = [columns(line[: line.index(" 0.")]) for line in lines[1:]]
    assert len(set(starts)) == 1
    assert columns(one_line("猫" * 30, 9)) <= 9


def test_verbose_flag_also_works_after_the_subcommand(
    lite_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", "--index", str(lite_index), "-v")
    assert code == EXIT_OK and "count:" in out
    help_text = cli.build_parser().format_help()
    assert "130 interrupted" in help_text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert main(["search", "x"]) == EXIT_USAGE  # --index is required
    assert main(["--help"]) == EXIT_OK
    assert "download" in capsys.readouterr().out


@pytest.fixture
def photo_server() -> Iterator[PhotoServer]:
    with PhotoServer(slow_seconds=1.0) as running:
        yield running


def test_download_exit_codes_and_summary(
    photo_server: PhotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [photo_row(f"d{i}", photo_server.url) for i in range(4)]
    dataset = write_dataset(tmp_path / "lite", rows, variant="tsv000")
    out = tmp_path / "images"
    photo_server.faults["d3"] = "404"
    code, stdout, _ = run(capsys, "download", str(dataset), "--out", str(out), "--retries", "0")
    assert code == EXIT_PARTIAL
    assert stdout.startswith("downloaded 3, skipped 0, failed 1 (")
    assert "failures listed in" in stdout and len(stdout.strip().splitlines()) == 1

    photo_server.faults.clear()
    code, stdout, _ = run(capsys, "download", str(dataset), "--out", str(out), "--json")
    summary = json.loads(stdout)
    assert code == EXIT_OK and (summary["downloaded"], summary["skipped"]) == (1, 3)
    assert summary["failed"] == []


def test_download_limit_and_width(
    photo_server: PhotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [photo_row(f"w{i}", photo_server.url) for i in range(4)]
    dataset = write_dataset(tmp_path / "lite", rows, variant="csv000")
    code, _, _ = run(
        capsys, "download", str(dataset), "--out", str(tmp_path / "o"), "--limit", "2",
        "--width", "320", "--workers", "1",
    )  # fmt: skip
    assert code == EXIT_OK and sorted(photo_server.requests) == ["w0", "w1"]
    assert photo_server.queries["w0"].startswith("w=320&")


def test_subcommands_register_through_small_functions() -> None:
    def add_hello_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = commands.add_parser("hello")
        parser.set_defaults(handler=lambda args: 7)

    cli.COMMANDS.append(add_hello_command)
    try:
        assert main(["hello"]) == 7
    finally:
        cli.COMMANDS.remove(add_hello_command)


def test_console_module_runs_without_a_traceback(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "zeroshot_vision._cli", "info", "--index", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == EXIT_ERROR
    assert finished.stderr.startswith("zsv: error: no index at")
    assert "Traceback" not in finished.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_tag_folder_example_embeds_the_library(
    tmp_path: Path, tiny_encoder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tag_folder", EXAMPLES / "tag_folder.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "tag_folder", module)
    spec.loader.exec_module(module)
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(make_jpeg(i))
    (tmp_path / "1a-bad.jpg").write_bytes(b"nope")
    report = module.tag_folder(tmp_path, ["a dog", "a cat"], encoder=tiny_encoder, batch_size=2)
    assert [Path(r.source).name for r in report.results] == ["0.jpg", "1.jpg", "2.jpg"]
    assert all(len(r.likely(0.0)) == 2 for r in report.results)
    assert [Path(f.source).name for f in report.failed] == ["1a-bad.jpg"]
    assert "truncated" in report.failed[0].reason or "not" in report.failed[0].reason

    photos = tmp_path
    finished = subprocess.run(
        [sys.executable, str(EXAMPLES / "tag_folder.py"), str(photos), "--labels", "a,b",
         "--threshold", "0"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ZSV_MODEL": "tiny", "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert len(finished.stdout.splitlines()) == 4 and "unreadable" in finished.stdout


@pytest.mark.slow
def test_unsplash_walkthrough_example_runs(photo_server: PhotoServer, tmp_path: Path) -> None:
    rows = [photo_row(f"e{i}", photo_server.url, photo_submitted_at="2021-01-01") for i in range(5)]
    dataset = write_dataset(tmp_path / "lite", rows)
    finished = subprocess.run(
        [sys.executable, str(EXAMPLES / "unsplash_lite.py"), str(dataset),
         "--work", str(tmp_path / "work"), "--limit", "4"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "ZSV_MODEL": "tiny", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert "download: downloaded 4, skipped 0, failed 0" in finished.stdout
    assert "index: indexed 4" in finished.stdout
    assert "'a happy golden retriever puppy'" in finished.stdout
    assert "classify e0.jpg:" in finished.stdout
