"""``zsv eval classify`` and ``zsv eval retrieval`` end to end: real photos, tiny SigLIP
and tiny CLIP built offline, reports on disk, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from tests.helpers import photo_row, write_dataset

from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

LABELS = {
    "astronaut": "astronaut",
    "coffee": "coffee_cup",
    "chelsea": "cat",
    "rocket": "rocket",
    "hubble_deep_field": "galaxy",
    "motorcycle_left": "motorcycle",
}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory, photo_paths: list[Path]) -> Path:
    """One class per scikit-image photo, each with the photo and its mirror image."""
    root = tmp_path_factory.mktemp("eval") / "photos"
    for path in photo_paths:
        folder = root / LABELS[path.stem]
        folder.mkdir(parents=True)
        shutil.copy(path, folder / path.name)
        with Image.open(path) as image:
            ImageOps.mirror(image.convert("RGB")).save(folder / f"{path.stem}-mirror.jpg")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 200


def test_classify_compares_siglip_and_clip_side_by_side(
    photo_folder: Path,
    tiny_model_dir: Path,
    tiny_clip_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "report"
    code, out, err = run(
        capsys,
        "classify",
        "--data", str(photo_folder),
        "--model", str(tiny_model_dir),
        "--model", str(tiny_clip_dir),
        "--json",
        "--out", str(out_dir),
        "--precision", "0.5",
    )  # fmt: skip
    assert code == EXIT_OK, err
    data = json.loads(out)
    siglip, clip = data["models"]
    for result in (siglip, clip):
        assert result["n"] == 12
        assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
        assert len(result["per_class"]) == 6
        assert sum(row["n"] for row in result["per_class"]) == 12
    assert "coffee cup" in siglip["labels"]
    assert siglip["calibrated"] and siglip["calibration"]["pairs"] == 72
    assert siglip["calibration"]["target_precision"] == 0.5
    assert not clip["calibrated"] and clip["calibration"] is None
    assert len(siglip["templates"]) > 1  # the default ensemble
    assert json.loads((out_dir / "results.json").read_text()) == data
    report = (out_dir / "report.md").read_text()
    assert "| top-1 accuracy |" in report and "## Calibration: " in report
    assert "softmax over the labels" in report
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == [
        f"confusion-{tiny_clip_dir.name}.png",
        f"confusion-{tiny_model_dir.name}.png",
        "per_class_accuracy.png",
        f"reliability-{tiny_model_dir.name}.png",
    ]
    for png in out_dir.glob("*.png"):
        assert_png(png)
        assert f"]({png.name})" in report


def test_classify_table_with_bare_label_template(
    photo_folder: Path, tiny_clip_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "classify", "--data", str(photo_folder), "--model", str(tiny_clip_dir),
        "--template", "{}",
    )  # fmt: skip
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert lines[1].startswith("top-1") and lines[2].startswith("top-5")
    assert "n/a (not calibrated)" in out


def test_classify_reports_a_class_without_readable_images(
    photo_folder: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(photo_folder, folder)
    (folder / "broken").mkdir()
    (folder / "broken" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "empty").mkdir()
    code, out, err = run(
        capsys, "classify", "--data", str(folder), "--model", str(tiny_model_dir), "--json"
    )
    assert code == EXIT_OK
    assert "broken" not in json.loads(out)["labels"]
    assert f"zsv: skipped {folder / 'empty'}: no image files; class left out" in err
    assert f"zsv: skipped {folder / 'broken' / 'bad.jpg'}: " in err
    assert "zsv: skipped class 'broken': no readable image" in err


def test_retrieval_from_a_pairs_file(
    photo_folder: Path,
    tiny_model_dir: Path,
    tiny_clip_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = ["image\tcaption"]
    for image in sorted(photo_folder.rglob("*.*")):
        lines.append(f"{image}\ta photo of a {image.parent.name.replace('_', ' ')}")
    lines.append("missing/photo.jpg\ta photo that is not there")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_dir = tmp_path / "report"
    code, out, err = run(
        capsys, "retrieval", "--data", str(pairs), "--model", str(tiny_model_dir),
        "--model", str(tiny_clip_dir), "--out", str(out_dir),
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert (
        f"zsv: skipped {pairs}:14: image {tmp_path / 'missing' / 'photo.jpg'} does not exist" in err
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert rows["queries"] == ["6", "6"] and rows["images"] == ["12", "12"]
    assert set(rows) >= {"Recall@1", "Recall@5", "Recall@10", "MRR"}
    data = json.loads((out_dir / "results.json").read_text())
    for result in data["models"]:
        assert {"recall@1", "recall@5", "recall@10", "mrr", "n"} <= set(result)
        assert result["recall@1"] <= result["recall@5"] <= result["recall@10"] <= 1.0
        assert len(result["curve"]) == 12 and result["curve"][-1] == 1.0
    assert_png(out_dir / "recall_at_k.png")
    assert "| Recall@10 |" in (out_dir / "report.md").read_text()


def test_retrieval_from_unsplash_judgments(
    photo_paths: list[Path],
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = [f"p{i}" for i in range(len(photo_paths))]
    dataset_dir = write_dataset(
        tmp_path / "unsplash",
        [
            photo_row(i, "http://x", ai_description=f"a photo of {p.stem}")
            for i, p in zip(ids, photo_paths)
        ],
        keywords=[
            {"photo_id": i, "keyword": p.stem, "suggested_by_user": "t"}
            for i, p in zip(ids, photo_paths)
        ],
    )
    (dataset_dir / "conversions.tsv").write_text(
        "converted_at\tconversion_type\tkeyword\tphoto_id\n"
        + "".join(f"2020-01-01\tdownload\t{p.stem} photo\t{i}\n" for i, p in zip(ids, photo_paths)),
        encoding="utf-8",
    )
    images = tmp_path / "downloaded"
    images.mkdir()
    for photo_id, path in list(zip(ids, photo_paths))[:-1]:  # the last photo was never fetched
        with Image.open(path) as image:
            image.convert("RGB").save(images / f"{photo_id}.jpg")
    code, out, err = run(
        capsys, "retrieval", "--data", str(dataset_dir), "--images", str(images),
        "--model", str(tiny_model_dir), "--json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    data = json.loads(out)
    assert data["n_images"] == 5
    assert data["n"] == 15  # 5 queries, 5 keywords and 5 captions, all distinct
    assert set(data["by_source"]) == {"conversions", "keywords", "ai_description"}
    assert all(group["n"] == 5 for group in data["by_source"].values())
    assert "1 judgment names a photo not downloaded" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["classify", "--data", "{empty}"], EXIT_ERROR, "needs at least two class sub-folders"),
        (["classify", "--data", "{missing}"], EXIT_ERROR, "is not a folder"),
        (["classify", "--data", "{empty}", "--template", "a photo"], EXIT_USAGE, "has no {}"),
        (["classify", "--data", "{empty}", "--precision", "1.5"], EXIT_USAGE, "at most 1"),
        (["classify", "--data", "{empty}", "--batch-size", "0"], EXIT_USAGE, "positive"),
        (["retrieval", "--data", "{missing}"], EXIT_ERROR, "does not exist"),
        (["retrieval", "--data", "{pairs}"], EXIT_ERROR, "holds no usable (image, text) pair"),
        (["retrieval"], EXIT_USAGE, "--data"),
        ([], EXIT_USAGE, "KIND"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "pairs.tsv").write_text("gone.jpg\ta caption\n", encoding="utf-8")
    paths = {
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "pairs": tmp_path / "pairs.tsv",
    }
    filled = [arg.format(**paths) if arg.startswith("{") and arg != "{}" else arg for arg in argv]
    got, _, err = run(capsys, *filled, "--model", str(tiny_model_dir)) if argv else run(capsys)
    assert got == code
    assert message in err
    if code == EXIT_ERROR:
        assert err.count("\n") == 1 and err.startswith("zsv: error: ")
        assert "Traceback" not in err
