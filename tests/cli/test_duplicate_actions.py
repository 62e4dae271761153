"""``zsv duplicates --keep --move-to [--apply]`` and ``--undo LOG``: moved, never deleted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main


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


def apply_moves(
    library: tuple[Path, Path], aside: Path, capsys: pytest.CaptureFixture[str]
) -> Path:
    """Move the duplicates aside; the log of the run (at least two moves)."""
    _, index = library
    argv = ["duplicates", "--index", str(index), "--threshold", "0.97", "--keep", "largest",
            "--move-to", str(aside), "--apply"]  # fmt: skip
    assert main(argv) == EXIT_OK
    capsys.readouterr()
    (log,) = aside.glob("zsv-duplicates-*.jsonl")
    assert len(log.read_text(encoding="utf-8").splitlines()) >= 3  # header + 2 moves
    return log


def photos_on_disk(photos: Path) -> list[str]:
    return sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png"))


@pytest.mark.parametrize("damage", ["first move edited", "last line cut short"])
def test_undo_checks_the_log_first_and_undoes_every_whole_line(
    damage: str, library: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29, item 7: a damaged line costs only its own move, and files and index agree.

    Before, an edited line was a traceback after other files had moved back (disk and
    index disagreeing), and a cut-short last line (a full disk) refused the whole log.
    """
    photos, index = library
    before = ids_of(index)
    log = apply_moves(library, tmp_path / "aside", capsys)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    if damage == "first move edited":
        damaged_line = 2
        entry = json.loads(lines[1])
        entry["vector"] = "not base64 at all!"
        lines[1] = json.dumps(entry) + "\n"
    else:
        damaged_line = len(lines)
        lines[-1] = lines[-1][: len(lines[-1]) // 2]  # no newline: the write stopped here
    log.write_text("".join(lines), encoding="utf-8")

    code = main(["duplicates", "--index", str(index), "--undo", str(log)])
    out, err = capsys.readouterr()
    assert code == EXIT_PARTIAL, err
    assert f"line {damaged_line} of {log} is damaged" in err and "Traceback" not in err
    assert f"moved {len(lines) - 2} files back" in out
    # Every whole line is undone; the damaged one's file stays aside, out of the index.
    assert len(ids_of(index)) == len(before) - 1
    assert photos_on_disk(photos) == ids_of(index)  # disk and index agree


def test_undo_refuses_a_vector_of_another_dimension_before_moving_anything(
    library: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    photos, index = library
    log = apply_moves(library, tmp_path / "aside", capsys)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    entry = json.loads(lines[-1])
    entry["vector"] = base64.b64encode(b"\0\0\x80\x3f" * 3).decode()  # 3-d: [1, 1, 1]
    lines[-1] = json.dumps(entry) + "\n"
    log.write_text("".join(lines), encoding="utf-8")
    assert main(["duplicates", "--index", str(index), "--undo", str(log)]) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert f"line {len(lines)} of {log} is damaged" in err and "dim" in err
    assert photos_on_disk(photos) == ids_of(index)


def test_a_log_without_its_header_is_refused_whole(
    library: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    log = apply_moves(library, tmp_path / "aside", capsys)
    on_disk = photos_on_disk(photos)
    log.write_text(log.read_text(encoding="utf-8")[5:], encoding="utf-8")
    assert main(["duplicates", "--index", str(index), "--undo", str(log)]) == EXIT_ERROR
    assert "is not a log of zsv duplicates --apply" in capsys.readouterr().err
    assert photos_on_disk(photos) == on_disk  # nothing moved
