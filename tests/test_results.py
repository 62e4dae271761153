"""SearchResults: list behaviour, conversions, a short repr and an HTML grid that escapes."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image
from tests.factories import memory_engine

from zeroshot_vision import InvalidInputError, SearchResult
from zeroshot_vision._progress import Tracker
from zeroshot_vision._results import SearchResults, flatten_metadata
from zeroshot_vision._types import Progress

INJECTION = "<img src=x onerror=alert(1)>"


def _results(photo_paths) -> SearchResults:
    return SearchResults(
        [
            SearchResult(
                id="a<b>",
                score=0.123456789,
                probability=0.5,
                metadata={
                    "path": str(photo_paths[2]),
                    "description": INJECTION,
                    "place": {"country": "Iceland", "city": "Vík"},
                    "tags": ["x", "y"],
                },
            ),
            SearchResult(id="b", score=-0.25, probability=None, metadata={}),
        ],
        query="'a cat'",
    )


def test_behaves_as_the_list_it_is(photo_paths) -> None:
    results = _results(photo_paths)
    assert isinstance(results, list) and len(results) == 2
    assert results == list(results) and results[1].id == "b"
    assert [r.id for r in results] == ["a<b>", "b"]
    assert SearchResults() == []


def test_to_dicts_flattens_metadata(photo_paths) -> None:
    rows = _results(photo_paths).to_dicts()
    assert rows[0]["rank"] == 1 and rows[0]["id"] == "a<b>"
    assert rows[0]["metadata.place.country"] == "Iceland"
    assert rows[0]["metadata.tags"] == ["x", "y"]
    assert rows[1] == {"rank": 2, "id": "b", "score": -0.25, "probability": None}
    assert flatten_metadata({"a": {}}) == {"metadata.a": {}}


def test_to_pandas_has_one_row_per_result(photo_paths) -> None:
    pytest.importorskip("pandas")
    frame = _results(photo_paths).to_pandas()
    assert list(frame["id"]) == ["a<b>", "b"]
    assert frame.loc[0, "metadata.place.city"] == "Vík"
    assert list(SearchResults().to_pandas().columns) == ["rank", "id", "score", "probability"]


def test_to_json_keeps_metadata_nested(photo_paths) -> None:
    data = json.loads(_results(photo_paths).to_json())
    assert data[0]["metadata"]["place"] == {"country": "Iceland", "city": "Vík"}
    assert data[1]["probability"] is None


def test_repr_is_short_and_readable(photo_paths) -> None:
    text = repr(_results(photo_paths))
    assert text.splitlines()[0] == "SearchResults(2 results for 'a cat')"
    assert "score=0.1235" in text and "p=0.5000" in text and "p=-" in text
    assert "0.123456789" not in text


def test_repr_html_escapes_every_text_and_embeds_thumbnails(photo_paths) -> None:
    page = _results(photo_paths)._repr_html_()
    assert INJECTION not in page and "onerror=alert(1)&gt;" in page
    assert "a&lt;b&gt;" in page and "<b>a<b>" not in page
    # Exactly one embedded image: the result with a readable path.
    thumbnails = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(thumbnails) == 1
    image = Image.open(io.BytesIO(base64.b64decode(thumbnails[0])))
    assert max(image.size) <= 160 and image.format == "JPEG"
    assert page.count("<img") == 1


def test_search_returns_search_results(tiny_encoder, photo_paths) -> None:
    engine = memory_engine(tiny_encoder)
    engine.index_images(photo_paths[:3])
    results = engine.search("a cat", k=2)
    assert isinstance(results, SearchResults) and len(results) == 2
    assert isinstance(engine.search_by_id(results[0].id, k=1), SearchResults)


# -- progress -------------------------------------------------------------------------------


def test_index_images_and_classify_many_report_one_progress_type(
    tiny_encoder, photo_paths, tmp_path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    engine = memory_engine(tiny_encoder)
    events: list[Progress] = []
    engine.index_images([*photo_paths[:3], bad], batch_size=2, progress=events.append)
    assert [(e.total, e.done, e.advanced, e.failed, e.task) for e in events] == [
        (4, 0, 0, 0, "index"),
        (4, 2, 2, 0, "index"),
        (4, 4, 2, 1, "index"),
    ]
    events.clear()
    report = engine.classify_many(
        [photo_paths[0], bad], "a cat,a dog", batch_size=1, progress=events.append
    )
    assert len(report.results) == 1 and len(report.failed) == 1
    assert events[-1] == Progress(total=2, done=2, advanced=1, indexed=1, failed=1, task="classify")


def test_progress_true_draws_a_tqdm_bar(capsys) -> None:
    with Tracker(True, task="export", total=3, unit="vec") as tracker:
        tracker.advance(3)
    assert "export" in capsys.readouterr().err


def test_progress_of_another_kind_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="progress must be"):
        Tracker("yes", task="index", total=1)  # type: ignore[arg-type]
