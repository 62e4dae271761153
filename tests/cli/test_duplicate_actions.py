"""``zsv duplicates --keep --move-to [--apply]`` and ``--undo LOG``: moved, never deleted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from zeroshot_vision import SearchEngine
from zeroshot_vision.cli import EXIT_ERROR, EXIT_OK, main


@pytest.fixture
def library(tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]) -> tuple[Path, Path]:
    photos = tmp_path / "photos"
    (photos / "old").mkdir(parents=True)
    coffee = next(p for p in photo_paths if p.name == "coffee.png")
    shutil.copy(coffee, photos / "coffee.png")
    with Image.open(coffee) as image:
        image.resize((image.width // 2, image.height // 2)).save(photos / "old" / "coffee-half.png")
    shutil.copy(coffee, photos / "old" / "coffee-copy.png")
    os.utime(photos / "old" / "coffee-copy.png", (1_500_000_000, 1_500_000_000))
    for photo in photo_paths[:2]:
        shutil.copy(photo, photos / photo.name)
    index = tmp_path / "index"
    assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir)]) == 0
    return photos, index


def ids_of(index: Path) -> list[str]:
    with SearchEngine.open(index) as engine:
        return sorted(engine.store.ids())


def test_dry_run_apply_and_undo(
    library: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    aside = tmp_path / "aside"
    before = ids_of(index)
    capsys.readouterr()
    argv = ["duplicates", "--index", str(index), "--threshold", "0.97", "--keep", "largest",
            "--move-to", str(aside)]  # fmt: skip
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "dry run" in out and "would move" in out
    assert not aside.exists() and ids_of(index) == before  # nothing touched

    assert main([*argv, "--apply"]) == EXIT_OK
    out = capsys.readouterr().out
    assert (photos / "coffee.png").is_file()  # the largest (a full-size copy) stays
    moved = sorted(p.relative_to(aside).as_posix() for p in aside.rglob("*.png"))
    assert "photos/old/coffee-half.png" in moved
    assert len(moved) == len(before) - len(ids_of(index))  # the index followed the moves
    assert all(not (photos / Path(m).relative_to("photos")).exists() for m in moved)
    logs = list(aside.glob("zsv-duplicates-*.jsonl"))
    assert len(logs) == 1 and f"--undo {logs[0]}" in out

    capsys.readouterr()
    assert main(["search", "a cup", "--index", str(index), "-k", "10", "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == len(ids_of(index))

    assert main(["duplicates", "--index", str(index), "--undo", str(logs[0])]) == EXIT_OK
    assert ids_of(index) == before
    assert (photos / "old" / "coffee-half.png").is_file()
    assert not list(aside.rglob("*.png"))
    # The index is whole again, without re-encoding: a re-run has nothing to do.
    capsys.readouterr()
    assert main(["index", str(photos), "--index", str(index), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["indexed"], summary["removed"]) == (0, 0)


def test_keep_oldest_keeps_the_oldest_file(
    library: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    argv = ["duplicates", "--index", str(index), "--threshold", "0.97", "--keep", "oldest",
            "--move-to", str(tmp_path / "aside"), "--apply"]  # fmt: skip
    assert main(argv) == EXIT_OK
    assert (photos / "old" / "coffee-copy.png").is_file()
    assert not (photos / "coffee.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep", "largest"], "go together"),
        (["--apply"], "--apply needs --keep"),
        (["--keep", "largest", "--move-to", "<photos>/dupes"], "inside"),
    ],
)
def test_refusals(
    extra: list[str], message: str, library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    extra = [part.replace("<photos>", str(photos)) for part in extra]
    capsys.readouterr()
    assert main(["duplicates", "--index", str(index), *extra]) == EXIT_ERROR
    assert message in capsys.readouterr().err
