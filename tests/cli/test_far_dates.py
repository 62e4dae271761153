"""Date bounds at the ends of the calendar (issue 29, item 6).

Every date the parser accepts works as a bound: ``--until 9999`` ends at the day after
9999-12-31, which is a valid number of Unix seconds though no ``datetime``; photos whose
EXIF says 9999 are stored, and selected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import save_with_exif

from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision._photos import date_bounds, photo_filter

DAY = 86_400


@pytest.mark.parametrize(
    ("text", "days"),
    [("9999", 365), ("9999-12", 31), ("9999-12-31", 1), ("2024", 366), ("2024-02", 29),
     ("2023-02", 28), ("2021-12", 31), ("0001", 365), ("0001-01-01", 1)],
)  # fmt: skip
def test_every_accepted_date_has_bounds(text: str, days: int) -> None:
    start, end = date_bounds(text)
    assert end - start == days * DAY


def test_bounds_at_year_9999() -> None:
    assert date_bounds("9999")[1] == 253_402_300_800  # 10000-01-01T00:00:00Z
    assert photo_filter(since="9999", until="9999-12-31") == {
        "taken": {"$gte": 253_370_764_800, "$lt": 253_402_300_800}
    }


@pytest.fixture(scope="module")
def far_library(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, photo_paths: list[Path]
) -> Path:
    root = tmp_path_factory.mktemp("far-dates")
    save_with_exif(photo_paths[0], root / "photos" / "future.jpg", taken="9999:12:31 23:59:59")
    save_with_exif(photo_paths[1], root / "photos" / "now.jpg", taken="2021:07:14 18:03:22")
    index = root / "index"
    argv = ["index", str(root / "photos"), "--index", str(index), "--model", str(tiny_model_dir)]
    assert main(argv) == EXIT_OK
    return index


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--since", "9999"], ["future.jpg"]),
        (["--since", "9999-12-31"], ["future.jpg"]),
        (["--until", "9999"], ["future.jpg", "now.jpg"]),
        (["--until", "9999-12-31"], ["future.jpg", "now.jpg"]),
        (["--since", "2021", "--until", "9998"], ["now.jpg"]),
    ],
)
def test_search_selects_photos_of_year_9999(
    far_library: Path,
    options: list[str],
    expected: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    argv = ["search", "a photo", "--index", str(far_library), "--json", "-k", "5", *options]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert sorted(hit["id"] for hit in json.loads(out)) == expected
