"""Reading Unsplash tables: the three file-name variants, shards, CSV quoting, keywords."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import VARIANTS, photo_row, write_dataset

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.unsplash._lite import (
    DatasetNotFoundError,
    UnsplashPhoto,
    image_url,
    is_unsplash_dir,
    iter_table,
    read_keywords,
    read_photos,
    table_files,
)

TRICKY_DESCRIPTION = 'a "quoted"\tdescription\nover two lines'


def rows() -> list[dict[str, str]]:
    return [
        photo_row("aaa111", "http://img", photo_description=TRICKY_DESCRIPTION),
        photo_row("bbb222", "http://img", photographer_first_name="", photographer_last_name=""),
        photo_row("ccc333", "http://img", photo_location_country="", photo_submitted_at=""),
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_naming_variant_reads_the_same_photos(tmp_path: Path, variant: str) -> None:
    folder = write_dataset(tmp_path / variant, rows(), variant=variant)
    photos = list(read_photos(folder))
    assert [p.photo_id for p in photos] == ["aaa111", "bbb222", "ccc333"]
    assert is_unsplash_dir(folder)


@pytest.mark.parametrize("variant", ["tsv000", "csv000"])
def test_shards_are_read_in_order_each_with_its_header(tmp_path: Path, variant: str) -> None:
    many = [photo_row(f"p{i:03d}", "http://img") for i in range(7)]
    folder = write_dataset(tmp_path, many, variant=variant, shards=3)
    assert len(table_files(folder)) == 3
    assert [p.photo_id for p in read_photos(folder)] == [f"p{i:03d}" for i in range(7)]


def test_quoted_fields_keep_tabs_and_newlines(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, rows(), variant="tsv000")
    first = next(read_photos(folder))
    assert first.description == TRICKY_DESCRIPTION
    assert first.ai_description == "a photo numbered aaa111"


def test_fields_are_parsed_by_header_name(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, rows())
    a, b, c = read_photos(folder)
    assert a == UnsplashPhoto(
        photo_id="aaa111",
        image_url="http://img/photo-aaa111",
        page_url="https://unsplash.com/photos/aaa111",
        description=TRICKY_DESCRIPTION,
        ai_description="a photo numbered aaa111",
        photographer="Ada Lovelace",
        photographer_username="user_aaa111",
        location="Reykjavik, Iceland",
        country="Iceland",
        city="Reykjavik",
        year=2019,
        width=4000,
        height=3000,
    )
    assert b.photographer == "user_bbb222"  # no name: the username stands in
    assert c.country is None and c.year is None
    assert "country" not in c.metadata() and "year" not in c.metadata()


def test_older_versions_missing_columns_still_read(tmp_path: Path) -> None:
    (tmp_path / "photos.tsv000").write_text(
        "photo_id\tphoto_image_url\tphoto_description\nxyz\thttp://img/xyz\thello\n",
        encoding="utf-8",
    )
    (photo,) = read_photos(tmp_path)
    assert (photo.photo_id, photo.description, photo.ai_description) == ("xyz", "hello", None)


def test_limit_and_rows_without_an_id(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [photo_row("", "http://img"), *rows()])
    assert [p.photo_id for p in read_photos(folder, limit=2)] == ["aaa111", "bbb222"]


def test_byte_order_mark_and_crlf_line_ends(tmp_path: Path) -> None:
    # A table re-saved by a spreadsheet on Windows: BOM first, CRLF after every row.
    folder = write_dataset(tmp_path, rows())
    table = folder / "photos.tsv"
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes().replace(b"\n", b"\r\n"))
    photos = list(read_photos(folder))
    assert [p.photo_id for p in photos] == ["aaa111", "bbb222", "ccc333"]
    assert photos[1].image_url == "http://img/photo-bbb222"  # no stray carriage return
    assert photos[2].ai_description == "a photo numbered ccc333"


def test_a_table_without_the_id_columns_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "photos.tsv").write_text("photo_id,photo_image_url\nxyz,http://img/x\n")
    with pytest.raises(
        InvalidInputError, match=r"lacks the columns photo_id, photo_image_url .*tab-separated"
    ):
        list(read_photos(tmp_path))


def test_header_only_table_has_no_photos(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [])
    assert list(read_photos(folder)) == [] and is_unsplash_dir(folder)


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"photos\.tsv"):
        list(read_photos(tmp_path))
    with pytest.raises(FileNotFoundError):
        table_files(tmp_path / "absent")
    assert not is_unsplash_dir(tmp_path)


def test_keywords_rank_user_suggestions_then_confidence(tmp_path: Path) -> None:
    keywords = [
        {"photo_id": "aaa111", "keyword": "dog", "ai_service_1_confidence": "90.5"},
        {"photo_id": "aaa111", "keyword": "grass", "ai_service_2_confidence": "60"},
        {"photo_id": "aaa111", "keyword": "blurry", "ai_service_1_confidence": "12"},
        {"photo_id": "aaa111", "keyword": "golden retriever", "suggested_by_user": "t"},
        {"photo_id": "bbb222", "keyword": "night\tcity", "ai_service_1_confidence": "70"},
        {"photo_id": "zzz999", "keyword": "other", "suggested_by_user": "t"},
    ]
    folder = write_dataset(tmp_path, rows(), variant="csv000", keywords=keywords)
    found = read_keywords(folder, photo_ids=["aaa111", "bbb222"])
    assert found == {"aaa111": ["golden retriever", "dog", "grass"], "bbb222": ["night\tcity"]}
    assert read_keywords(folder, max_per_photo=1)["aaa111"] == ["golden retriever"]
    assert "zzz999" in read_keywords(folder)


def test_no_keywords_table_means_no_keywords(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, rows())
    (folder / "keywords.tsv").unlink()
    assert read_keywords(folder) == {}


def test_metadata_for_the_store(tmp_path: Path) -> None:
    (photo, *_) = read_photos(write_dataset(tmp_path, rows()))
    meta = photo.metadata(["dog"])
    assert meta["keywords"] == ["dog"]
    assert meta["photographer"] == "Ada Lovelace" and meta["year"] == 2019
    assert all(value is not None for value in meta.values())


def test_iter_table_gives_header_keyed_dicts(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, rows(), variant="tsv")
    first = next(iter_table(folder, "photos"))
    assert first["photo_id"] == "aaa111" and first["photo_featured"] == "t"


def test_image_url_adds_resize_parameters() -> None:
    assert image_url("https://images.unsplash.com/photo-1") == (
        "https://images.unsplash.com/photo-1?w=640&fit=max&fm=jpg&q=80"
    )
    assert image_url("https://x/p?ixid=abc", width=320, params={"fm": "webp"}) == (
        "https://x/p?ixid=abc&w=320&fm=webp"
    )


def test_a_table_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "photos.tsv000").write_bytes(b"photo_id\tphoto_image_url\n\xff\xfe\tx\n")
    with pytest.raises(InvalidInputError, match="is not UTF-8 text") as exc:
        list(read_photos(tmp_path))
    assert "\n" not in str(exc.value)
