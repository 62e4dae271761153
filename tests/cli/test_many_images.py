"""``zsv search --image/--not``, ``zsv tag``, ``zsv duplicates``, ``zsv export``/``import``."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from tests.helpers import make_copies

from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, photo_paths) -> Path:
    folder = tmp_path_factory.mktemp("cli-many") / "photos"
    folder.mkdir()
    for path in photo_paths[:4]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def index(photos: Path, tiny_model_dir: Path) -> Path:
    index = photos.parent / "index"
    assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir)]) == 0
    return index


# -- search ---------------------------------------------------------------------------------


def test_search_by_image_alone(capsys, index: Path, photos: Path) -> None:
    code, out, _ = run(capsys, "search", "--image", str(photos / "chelsea.png"), "--index",
                       str(index), "-k", "2", "--json")  # fmt: skip
    assert code == EXIT_OK
    results = json.loads(out)
    assert results[0]["id"] == "chelsea.png" and results[0]["probability"] is None
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_search_combines_words_images_and_nots(capsys, index: Path, photos: Path) -> None:
    coffee = str(photos / "coffee.png")
    code, out, _ = run(capsys, "search", "a cat", "--image", coffee, "--not", "people",
                       "--not", "a rocket", "--index", str(index), "--json")  # fmt: skip
    assert code == EXIT_OK
    results = json.loads(out)
    assert len(results) == 4 and all(r["probability"] is not None for r in results)
    code, out, _ = run(capsys, "search", "a cat", "--negative", "people", "--index", str(index))
    assert code == EXIT_OK and out.splitlines()[0].startswith("rank")


def test_an_image_path_as_query_is_refused_with_a_hint(capsys, index: Path, photos: Path) -> None:
    image = str(photos / "chelsea.png")
    code, out, err = run(capsys, "search", image, "--index", str(index))
    assert code == EXIT_ERROR and out == ""
    assert (
        err
        == f"zsv: error: {image} is an image file; to find images like it, use --image {image}\n"
    )


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ([], EXIT_ERROR, "give words to look for"),
        (["  "], EXIT_ERROR, "the query is empty"),
        (["a", "--image", "missing.jpg"], EXIT_ERROR, "--image missing.jpg: no such file"),
        (["a", "--image-weight", "nan"], EXIT_USAGE, "finite non-zero number"),
        (["a", "--image-weight", "0"], EXIT_USAGE, "finite non-zero number"),
    ],
)
def test_bad_searches_are_one_line_errors(capsys, index: Path, argv, code, message) -> None:
    result, out, err = run(capsys, "search", *argv, "--index", str(index))
    assert result == code and out == "" and message in err
    if code == EXIT_ERROR:
        assert err.count("\n") == 1


def test_an_unreadable_image_query_is_a_one_line_error(capsys, index: Path, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    code, _, err = run(capsys, "search", "--image", str(broken), "--index", str(index))
    assert code == EXIT_ERROR and err.count("\n") == 1
    assert err.startswith(f"zsv: error: cannot read image {broken}")


# -- tag ------------------------------------------------------------------------------------


def test_tag_a_folder_as_csv(capsys, photos: Path, tiny_model_dir: Path) -> None:
    (photos.parent / "with-bad").mkdir(exist_ok=True)
    folder = photos.parent / "with-bad"
    shutil.copy(photos / "coffee.png", folder / "coffee.png")
    (folder / "bad.jpg").write_bytes(b"nope")
    code, out, err = run(capsys, "tag", str(folder), "--labels", "a cup,a cat",
                         "--min-probability", "0", "--model", str(tiny_model_dir))  # fmt: skip
    assert code == EXIT_PARTIAL and "skipped" in err and "bad.jpg" in err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["image", "labels", "probabilities"]
    assert Path(rows[1][0]).name == "coffee.png"
    assert sorted(rows[1][1].split(";")) == ["a cat", "a cup"]  # both at p >= 0
    assert all(0 <= float(p) <= 1 for p in rows[1][2].split(";"))


def test_tag_an_index_uses_stored_vectors(
    capsys, index: Path, photos: Path, tiny_model_dir
) -> None:
    code, out, _ = run(capsys, "tag", str(index), "--labels", "a cup,a cat", "--format", "json",
                       "--min-probability", "1")  # fmt: skip
    assert code == EXIT_OK
    rows = json.loads(out)
    assert sorted(Path(r["image"]).name for r in rows) == sorted(p.name for p in photos.iterdir())
    assert all(r["labels"] == [] for r in rows)  # nothing reaches probability 1
    # The same probabilities as encoding the files (up to float noise).
    _, from_index, _ = run(capsys, "tag", str(index), "--labels", "a cup", "--format", "json",
                           "--min-probability", "0")  # fmt: skip
    _, from_files, _ = run(capsys, "tag", str(photos), "--labels", "a cup", "--format", "json",
                           "--min-probability", "0", "--model", str(tiny_model_dir))  # fmt: skip
    by_file = {Path(r["image"]).name: r["labels"][0]["probability"] for r in json.loads(from_files)}
    for row in json.loads(from_index):
        assert row["labels"][0]["probability"] == pytest.approx(
            by_file[Path(row["image"]).name], abs=1e-5
        )


def test_tag_refuses_what_is_neither_folder_nor_index(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "tag", str(tmp_path / "nothing"), "--labels", "a")
    assert code == EXIT_ERROR and "neither a folder of images nor an index" in err


# -- duplicates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def copies_index(tmp_path_factory, photo_paths, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("dupes")
    (root / "photos").mkdir()
    for path in photo_paths:
        if path.stem in ("coffee", "rocket"):
            make_copies(path, root / "photos")
    assert main(["index", str(root / "photos"), "--index", str(root / "index"),
                 "--model", str(tiny_model_dir)]) == EXIT_OK  # fmt: skip
    return root / "index"


def test_duplicates_text_and_json(capsys, copies_index: Path) -> None:
    # coffee and rocket copies score >= 0.994 with the tiny model, across < 0.9.
    code, out, _ = run(capsys, "duplicates", "--index", str(copies_index), "--threshold", "0.99")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "group 1: 4 images" and lines[-1] == "2 groups, 8 images (threshold 0.99)"
    code, out, _ = run(capsys, "duplicates", "--index", str(copies_index), "--threshold", "0.99",
                       "--json")  # fmt: skip
    groups = json.loads(out)
    assert [g["ids"][0] for g in groups] == ["coffee-cropped.png", "rocket-cropped.png"]
    assert all(len(g["pairs"]) == 6 and len(g["paths"]) == 4 for g in groups)
    assert all(Path(p).exists() for g in groups for p in g["paths"])


def test_duplicates_none_and_bad_threshold(capsys, copies_index: Path) -> None:
    code, out, _ = run(capsys, "duplicates", "--index", str(copies_index), "--threshold", "1")
    assert code == EXIT_OK and out == "no near-duplicates at threshold 1.0\n"
    code, _, err = run(capsys, "duplicates", "--index", str(copies_index), "--threshold", "2")
    assert code == EXIT_USAGE and "threshold must be a cosine in (0, 1]" in err


# -- export / import ------------------------------------------------------------------------


def test_export_and_import_round_trip(capsys, index: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out_file = tmp_path / "vectors.parquet"
    code, out, _ = run(capsys, "export", "--index", str(index), "--out", str(out_file))
    assert (code, out) == (EXIT_OK, f"exported 4 vectors to {out_file}\n")
    code, out, _ = run(capsys, "import", str(out_file), "--index", str(tmp_path / "copy"))
    assert (code, out) == (EXIT_OK, f"imported 4 vectors into {tmp_path / 'copy'}\n")
    code, out, _ = run(capsys, "info", "--index", str(tmp_path / "copy"), "--json")
    assert json.loads(out)["count"] == 4
    # Search the copy: the same results as the original.
    _, original, _ = run(capsys, "search", "a cat", "--index", str(index), "--json")
    _, copied, _ = run(capsys, "search", "a cat", "--index", str(tmp_path / "copy"), "--json")
    assert [r["id"] for r in json.loads(original)] == [r["id"] for r in json.loads(copied)]


def test_import_of_the_wrong_dimension_is_a_one_line_error(capsys, index, tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "wide.parquet"
    pq.write_table(
        pa.table({"id": ["a"], "vector": pa.array([[0.5] * 768], pa.list_(pa.float32(), 768))}),
        path,
    )
    code, out, err = run(capsys, "import", str(path), "--index", str(index))
    assert code == EXIT_ERROR and out == ""
    assert err == (
        f"zsv: error: {path} holds 768-d vectors, but the index holds 32-d vectors "
        "(made by another model?)\n"
    )


# -- index --exclude ------------------------------------------------------------------------


def test_index_exclude_leaves_out_names_paths_and_globs(
    capsys, tmp_path: Path, photo_paths, tiny_model_dir: Path
) -> None:
    source = tmp_path / "photos"
    for relative in ["keep.png", "raw/skip.png", "trips/2019/skip.png", "trips/2021/keep.png"]:
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo_paths[1], source / relative)
    shutil.copy(photo_paths[3], source / "anim.jpg")
    index = str(tmp_path / "index")
    code, out, _ = run(capsys, "index", str(source), "--index", index, "--model",
                       str(tiny_model_dir), "--exclude", "raw", "--exclude", "trips/2019/*",
                       "--exclude", "*.jpg", "--json")  # fmt: skip
    assert code == EXIT_OK and json.loads(out)["count"] == 2
    code, out, _ = run(capsys, "tag", str(index), "--labels", "a", "--format", "json",
                       "--min-probability", "0")  # fmt: skip
    assert sorted(Path(r["image"]).relative_to(source).as_posix() for r in json.loads(out)) == [
        "keep.png",
        "trips/2021/keep.png",
    ]
