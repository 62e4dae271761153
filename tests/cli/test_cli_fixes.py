"""Regressions of issue 21's bugs: classify's image separator and the known-bad count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import make_jpeg

from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision._types import FolderReport, ImageFailure


def test_classify_separates_images_with_a_blank_line_not_an_escape(
    tiny_model_dir: Path, photo_paths: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = (str(p) for p in photo_paths[:2])
    code = main(
        ["classify", first, second, "--labels", "a dog,a cat", "--model", str(tiny_model_dir)]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "\\n" not in out
    lines = out.splitlines()
    # image, header, two labels, blank, image, header, two labels
    assert lines[0] == first and lines[4] == "" and lines[5] == second
    assert lines[1].split() == lines[6].split() == ["label", "prob", "score"]


def test_a_no_op_rerun_counts_failures_as_json_does(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "photos"
    source.mkdir()
    for i in range(2):
        (source / f"{i}.jpg").write_bytes(make_jpeg(i))
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    index = str(tmp_path / "index")
    assert main(["index", str(source), "--index", index, "--model", str(tiny_model_dir)]) == 0
    first = capsys.readouterr().out
    assert "failed 1;" in first

    assert main(["index", str(source), "--index", index]) == EXIT_OK
    text, err = capsys.readouterr()
    assert main(["index", str(source), "--index", index, "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == [] and len(summary["known_failed"]) == 1
    assert text.startswith("indexed 0, skipped 2, removed 0, failed 0, 1 known bad;")
    assert "broken.jpg" in err and "unchanged since it failed" in err


def test_folder_report_repr_shows_counts_not_every_id() -> None:
    report = FolderReport(
        indexed=tuple(f"{i}.jpg" for i in range(500)),
        skipped=3,
        known_failed=(ImageFailure(source="bad.jpg", reason="truncated"),),
        count=503,
        seconds=1.5,
    )
    assert repr(report) == (
        "FolderReport(indexed=500, skipped=3, removed=0, failed=0, known_failed=1, "
        "unreadable=0, count=503, seconds=1.50)"
    )
    assert (
        str(report) == "indexed 500, skipped 3, removed 0, failed 0, 1 known bad; 503 in the index"
    )
