"""read_conversions: Unsplash's (search query, downloaded photo) judgments."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import photo_row, write_dataset

from zeroshot_vision._errors import DatasetNotFoundError, InvalidInputError
from zeroshot_vision.unsplash._lite import read_conversions


def test_reads_query_and_photo_in_table_order(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [photo_row("p1", "http://x")])
    (folder / "conversions.tsv").write_text(
        "converted_at\tconversion_type\tkeyword\tphoto_id\tanonymous_user_id\n"
        "2020-01-01\tdownload\t dog \tp1\tu\n"
        "2020-01-02\tdownload\t\tp1\tu\n"  # no query: skipped
        '2020-01-03\tdownload\t"a ""quoted""\tquery"\tp2\tu\n'
        "2020-01-04\tdownload\tdog\tp1\tu\n",
        encoding="utf-8",
    )
    assert list(read_conversions(folder)) == [
        ("dog", "p1"),
        ('a "quoted"\tquery', "p2"),
        ("dog", "p1"),
    ]


def test_missing_table_or_columns(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [photo_row("p1", "http://x")])
    with pytest.raises(DatasetNotFoundError, match="no conversions table"):
        list(read_conversions(folder))
    (folder / "conversions.tsv").write_text("photo_id\tquery\np1\tdog\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="lacks the column keyword"):
        list(read_conversions(folder))
