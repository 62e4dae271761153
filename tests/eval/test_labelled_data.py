"""Image-folder and pairs readers: labels, skips with reasons, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.helpers import make_jpeg, photo_row, write_dataset, write_solid_png

from zeroshot_vision._errors import DatasetNotFoundError, InvalidInputError
from zeroshot_vision.eval import read_image_folder, read_pairs, read_pairs_tsv, read_unsplash_pairs

RED = (255, 0, 0)


def test_image_folder_labels_images_and_skips(tmp_path: Path) -> None:
    write_solid_png(tmp_path / "golden_retriever" / "a.png", RED)
    write_solid_png(tmp_path / "golden_retriever" / "deeper" / "b.png", RED)
    write_solid_png(tmp_path / "cat" / "c.png", RED)
    write_solid_png(tmp_path / "cat" / ".hidden.png", RED)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "stray.png").write_bytes(b"")  # files at the top are not a class
    dataset = read_image_folder(tmp_path)
    assert dataset.labels == ("cat", "golden retriever")
    assert [(p.path.name, p.label) for p in dataset.images] == [
        ("c.png", 0),
        ("a.png", 1),
        ("b.png", 1),
    ]
    assert [(Path(s.source).name, s.reason) for s in dataset.skipped] == [
        ("empty", "no image files; class left out")
    ]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        read_image_folder(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match=r"at least two class sub-folders.*found none"):
        read_image_folder(tmp_path)
    write_solid_png(tmp_path / "cat" / "a.png", RED)
    with pytest.raises(InvalidInputError, match="found only 'cat'"):
        read_image_folder(tmp_path)
    write_solid_png(tmp_path / "red_car" / "a.png", RED)
    write_solid_png(tmp_path / "red car" / "a.png", RED)
    with pytest.raises(InvalidInputError, match="both give the label 'red car'"):
        read_image_folder(tmp_path)


def test_pairs_file_resolves_paths_and_skips_bad_lines(tmp_path: Path) -> None:
    image = write_solid_png(tmp_path / "img" / "a.png", RED)
    (tmp_path / "pairs.tsv").write_text(
        "image\tcaption\n"
        "img/a.png\ta red square\n"
        f"{image}\tabsolute path\n"
        "img/missing.png\tgone\n"
        "img/a.png\t  \n"
        "img/a.png\tone\ttoo many\n"
        "\n",
        encoding="utf-8",
    )
    dataset = read_pairs_tsv(tmp_path / "pairs.tsv")
    assert [(p.image, p.text, p.source) for p in dataset.pairs] == [
        (tmp_path / "img" / "a.png", "a red square", "tsv"),
        (image, "absolute path", "tsv"),
    ]
    reasons = [(s.source.rsplit(":", 1)[1], s.reason) for s in dataset.skipped]
    assert reasons == [
        ("4", f"image {tmp_path / 'img' / 'missing.png'} does not exist"),
        ("5", "empty caption"),
        ("6", "expected 2 tab-separated fields, got 3"),
    ]


def test_pairs_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        read_pairs_tsv(tmp_path / "nope.tsv")
    (tmp_path / "pairs.tsv").write_text("missing.png\ta caption\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"no usable .* pair .*1 skipped.*does not exist"):
        read_pairs_tsv(tmp_path / "pairs.tsv")
    with pytest.raises(InvalidInputError, match="--images is for an Unsplash folder"):
        read_pairs(tmp_path / "pairs.tsv", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="without an Unsplash photos table"):
        read_pairs(tmp_path)


def _write_conversions(folder: Path, rows: list[tuple[str, str]]) -> None:
    with (folder / "conversions.tsv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(
            ["converted_at", "conversion_type", "keyword", "photo_id", "anonymous_user_id"]
        )
        for keyword, photo_id in rows:
            writer.writerow(["2020-01-01 00:00:00", "download", keyword, photo_id, "u1"])


def test_unsplash_judgments_from_conversions_keywords_and_captions(tmp_path: Path) -> None:
    dataset_dir = write_dataset(
        tmp_path / "unsplash",
        [
            photo_row("p1", "http://x", ai_description="a dog on a beach"),
            photo_row("p2", "http://x", ai_description=""),
            photo_row("p3", "http://x", ai_description="never downloaded"),
        ],
        keywords=[
            {"photo_id": "p1", "keyword": "dog", "suggested_by_user": "t"},
            {
                "photo_id": "p1",
                "keyword": "sand",
                "suggested_by_user": "f",
                "ai_service_1_confidence": "99",
            },
            {"photo_id": "p2", "keyword": "city", "suggested_by_user": "t"},
        ],
    )
    _write_conversions(
        dataset_dir, [("puppy", "p1"), ("night city", "p2"), ("x", "p3"), ("y", "gone")]
    )
    images = tmp_path / "photos"
    images.mkdir()
    for photo_id in ("p1", "p2"):
        (images / f"{photo_id}.jpg").write_bytes(make_jpeg(1))
    dataset = read_unsplash_pairs(dataset_dir, images)
    got = [(p.source, p.image.name, p.text) for p in dataset.pairs]
    assert got == [
        ("conversions", "p1.jpg", "puppy"),
        ("conversions", "p2.jpg", "night city"),
        ("keywords", "p1.jpg", "dog"),  # AI keywords ("sand") are not judgments
        ("keywords", "p2.jpg", "city"),
        ("ai_description", "p1.jpg", "a dog on a beach"),
    ]
    assert dataset.sources == ("conversions", "keywords", "ai_description")
    assert [(s.source, s.reason) for s in dataset.skipped] == [
        (f"{dataset_dir} (conversions)", f"1 judgment names a photo not downloaded in {images}"),
        (f"{dataset_dir} (ai_description)", f"1 judgment names a photo not downloaded in {images}"),
    ]
    only = read_unsplash_pairs(dataset_dir, images, sources=["keywords"])
    assert {p.source for p in only.pairs} == {"keywords"}
    assert read_pairs(dataset_dir, images).pairs == dataset.pairs


def test_unsplash_with_nothing_downloaded_is_an_error(tmp_path: Path) -> None:
    dataset_dir = write_dataset(tmp_path / "unsplash", [photo_row("p1", "http://x")])
    with pytest.raises(InvalidInputError, match=r"no usable .* not downloaded"):
        read_unsplash_pairs(dataset_dir, tmp_path)
    with pytest.raises(InvalidInputError, match="unknown Unsplash source"):
        read_unsplash_pairs(dataset_dir, tmp_path, sources=["tags"])  # type: ignore[list-item]


def test_a_pairs_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"a.jpg\t\xff\xfe caption\n")
    with pytest.raises(InvalidInputError, match="not UTF-8 text") as exc:
        read_pairs_tsv(path)
    assert "\n" not in str(exc.value)
