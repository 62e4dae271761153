"""``zsv search`` on a photo library: --since/--until/--under/--sort, --format paths,
--preview, and the hint for a filter on a field no record has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import save_with_exif

from zeroshot_vision._cli import EXIT_OK, main

DATES = {
    "2019/beach.jpg": "2019:08:01 10:00:00",
    "2021/trip/cat.jpg": "2021:07:14 18:03:22",
    "2021/trip/rocket.jpg": "2021:03:02 09:30:00",
    "2023/coffee.jpg": "2023:12:31 23:59:59",
    "undated.jpg": None,
}


def make_library(root: Path, photos: list[Path]) -> Path:
    for (name, taken), photo in zip(DATES.items(), photos):
        save_with_exif(photo, root / name, taken=taken, make="FUJIFILM", model="X-T4")
    return root


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, photo_paths: list[Path]
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("library")
    photos = make_library(root / "photos", photo_paths)
    index = root / "index"
    assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir)]) == 0
    return photos, index


def search(capsys: pytest.CaptureFixture[str], index: Path, *options: str) -> tuple[list[str], str]:
    capsys.readouterr()
    code = main(["search", "a photo", "--index", str(index), "-k", "10", "--json", *options])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    return [hit["id"] for hit in json.loads(out)], err


def test_folder_records_hold_the_photo_fields(library: tuple[Path, Path]) -> None:
    from zeroshot_vision import SearchEngine

    photos, index = library
    with SearchEngine.open(index) as engine:
        record = engine.store.fetch(["2021/trip/cat.jpg"])["2021/trip/cat.jpg"]
    meta = record.metadata
    assert (meta["year"], meta["month"], meta["camera_make"], meta["camera_model"]) == (
        2021, 7, "FUJIFILM", "X-T4",
    )  # fmt: skip
    assert meta["folders"] == [str(photos), str(photos / "2021"), str(photos / "2021" / "trip")]
    assert meta["width"] > 0 and meta["height"] > 0


def test_since_until_and_under(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    ids, _ = search(capsys, index, "--since", "2021")
    assert sorted(ids) == ["2021/trip/cat.jpg", "2021/trip/rocket.jpg", "2023/coffee.jpg"]
    ids, _ = search(capsys, index, "--since", "2021-04", "--until", "2021")
    assert ids == ["2021/trip/cat.jpg"]
    ids, _ = search(capsys, index, "--until", "2019-08-01")
    assert ids == ["2019/beach.jpg"]
    ids, _ = search(capsys, index, "--under", str(photos / "2021"))
    assert sorted(ids) == ["2021/trip/cat.jpg", "2021/trip/rocket.jpg"]
    ids, _ = search(capsys, index, "--under", str(photos / "2019"), "--under", str(photos / "2023"))
    assert sorted(ids) == ["2019/beach.jpg", "2023/coffee.jpg"]
    ids, _ = search(capsys, index, "--under", str(photos / "2021"), "--filter", '{"month": 3}')
    assert ids == ["2021/trip/rocket.jpg"]


def test_sort_by_date_taken_after_the_cut(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, index = library
    ids, _ = search(capsys, index, "--sort", "taken")
    assert ids == [
        "2019/beach.jpg", "2021/trip/rocket.jpg", "2021/trip/cat.jpg", "2023/coffee.jpg",
        "undated.jpg",
    ]  # fmt: skip


def test_bad_dates_are_one_line_errors(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, index = library
    for argv in (
        ["--since", "July"],
        ["--since", "2021-13"],
        ["--since", "2022", "--until", "2021"],
    ):
        capsys.readouterr()
        assert main(["search", "a", "--index", str(index), *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("zsv: error:") and err.count("\n") == 1


def test_a_filter_on_a_field_no_record_has_gets_a_hint(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, index = library
    ids, err = search(capsys, index, "--filter", '{"country": "Iceland"}')
    assert ids == []
    assert "hint: no record in this index has the field 'country'" in err
    assert "camera_model" in err and err.count("\n") == 1
    ids, err = search(capsys, index, "--filter", '{"year": 1990}')  # the field exists
    assert ids == [] and err == ""


def test_format_paths_prints_one_path_per_line(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    photos, index = library
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(index), "--format", "paths", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(Path(line).is_file() for line in lines)
    assert all(Path(line).is_relative_to(photos) for line in lines)


@pytest.mark.parametrize(
    ("protocol", "start"),
    [("kitty", "\x1b_Ga=T,f=100"), ("iterm2", "\x1b]1337;File="), ("sixel", "\x1bPq")],
)
def test_preview_draws_thumbnails_with_the_terminal_protocol(
    protocol: str,
    start: str,
    library: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, index = library
    monkeypatch.setenv("ZSV_PREVIEW", protocol)
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(index), "--preview", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(start) == 2
    assert out.splitlines()[0].split()[:2] == ["rank", "id"]


def test_preview_is_plain_text_outside_a_terminal(
    library: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zeroshot_vision._cli.preview import detect_protocol

    _, index = library
    monkeypatch.delenv("ZSV_PREVIEW", raising=False)
    monkeypatch.setenv("TERM", "xterm-kitty")
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(index), "--preview", "-k", "2"]) == 0
    assert "\x1b" not in capsys.readouterr().out  # captured output is not a terminal
    assert detect_protocol({"TERM": "xterm-kitty"}, tty=True) == "kitty"
    assert detect_protocol({"TERM_PROGRAM": "WezTerm"}, tty=True) == "iterm2"
    assert detect_protocol({"TERM": "foot"}, tty=True) == "sixel"
    assert detect_protocol({"TERM": "xterm-256color"}, tty=True) is None


def test_under_works_on_pinecone(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pinecone")
    from zeroshot_vision.testing import PineconeTestServer

    photos = make_library(tmp_path / "photos", photo_paths)
    monkeypatch.setenv("PINECONE_API_KEY", "test")
    with PineconeTestServer(dimension=32) as host:
        index = tmp_path / "index"
        assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir),
                     "--store", "pinecone", "--pinecone-host", host]) == 0  # fmt: skip
        ids, _ = search(capsys, index, "--under", str(photos / "2021"), "--since", "2021-07")
    assert ids == ["2021/trip/cat.jpg"]
