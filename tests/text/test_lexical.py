"""The lexical index: BM25 over FTS5, accents and CJK, query escaping, staging and damage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroshot_vision._errors import IndexDamagedError
from zeroshot_vision._lexical import (
    REPAIR_COMMAND,
    LexicalIndex,
    OcrLine,
    match_expression,
    space_cjk,
    unspace_cjk,
)

DOCS = {
    "receipts/cafe.jpg": (
        {"city": "Lisbon", "country": "Portugal", "country_code": "PT"},
        {"ocr": "CAFÉ CENTRAL\nInvoice 4711\nTotal 12.50 EUR"},
    ),
    "signs/stop.png": ({"city": "Porto", "country_code": "PT"}, {"ocr": "STOP"}),
    "slides/talk.png": ({}, {"ocr": "Quarterly results\n咖啡店 東京"}),
    "unsplash/abc": (
        {"description": "A red bicycle against a wall", "keywords": ["bicycle", "street"]},
        {},
    ),
}


@pytest.fixture
def lexical(tmp_path):
    index = LexicalIndex(tmp_path / "text.sqlite", create=True)
    ids = list(DOCS)
    index.write(ids, [{"metadata": DOCS[i][0], "texts": DOCS[i][1]} for i in ids])
    index.commit()
    yield index
    index.close()


def test_finds_words_in_ocr_text_folding_case_and_accents(lexical):
    hits = lexical.search("cafe central")
    assert hits[0].id == "receipts/cafe.jpg"
    assert hits[0].field == "ocr"
    assert "[CAFÉ]" in hits[0].snippet and "[CENTRAL]" in hits[0].snippet
    assert lexical.search("invoice 4711")[0].id == "receipts/cafe.jpg"


def test_documents_with_every_word_come_before_those_with_some(lexical):
    hits = lexical.search("stop invoice 4711")
    # No image holds all three words: the OR pass finds both, the one with two first.
    assert [h.id for h in hits][:2] == ["receipts/cafe.jpg", "signs/stop.png"]


def test_places_descriptions_keywords_and_file_names_are_searchable(lexical):
    assert {h.id for h in lexical.search("Lisbon")} == {"receipts/cafe.jpg"}
    assert lexical.search("lisbon")[0].field == "place"
    assert lexical.search("bicycle wall")[0].id == "unsplash/abc"
    assert lexical.search("street")[0].field == "keywords"
    assert lexical.search("talk")[0].id == "slides/talk.png"


def test_cjk_words_are_found_inside_longer_lines(lexical):
    hits = lexical.search("咖啡")
    assert [h.id for h in hits] == ["slides/talk.png"]
    assert hits[0].snippet == "Quarterly results\n[咖啡]店 東京"
    assert lexical.search("東京")[0].id == "slides/talk.png"
    assert lexical.search("咖京") == []  # not adjacent: no phrase match
    assert unspace_cjk(space_cjk("咖啡店 東京 in Tokyo")) == "咖啡店 東京 in Tokyo"


def test_filters_apply_to_the_lexical_side(lexical):
    assert [h.id for h in lexical.search("stop invoice", filter={"city": "Porto"})] == [
        "signs/stop.png"
    ]
    assert lexical.search("invoice", filter={"country_code": "ES"}) == []


def test_a_selective_filter_pages_through_many_ranked_matches(tmp_path):
    """A filter that keeps one image in 25: the hits are the best-ranked images that pass,
    in BM25 order, as a search without a filter ranks them; two words and one word."""
    index = LexicalIndex(tmp_path / "text.sqlite", create=True)
    ids = [f"harbour/IMG_{i:04d}.jpg" for i in range(1000)]
    extras = []
    for i, _ in enumerate(ids):
        # Repetitions vary the BM25 score; every image holds "harbour" in its file name too.
        ocr = " ".join(["harbour"] * (1 + i % 7) + ["crane"] * (i % 3) + [f"w{i}"])
        city = "Porto" if i % 25 == 0 else "Lisbon"
        extras.append({"metadata": {"city": city, "n": i}, "texts": {"ocr": ocr}})
    index.write(ids, extras)
    index.commit()
    try:
        for query in ("harbour crane", "harbour"):
            everything = index.search(query, k=1000)
            assert len(everything) == 1000
            expected = [h.id for h in everything if h.metadata["city"] == "Porto"]
            assert len(expected) == 40
            for k in (5, 40, 60):
                got = index.search(query, k=k, filter={"city": "Porto"})
                assert [h.id for h in got] == expected[:k]
                assert all(h.metadata["city"] == "Porto" for h in got)
            # Other kinds of filter: a range, and an $or.
            ranged = index.search(query, k=3, filter={"n": {"$gte": 990}})
            assert [h.id for h in ranged] == [h.id for h in everything if h.metadata["n"] >= 990][
                :3
            ]
            either = index.search(query, k=100, filter={"$or": [{"n": 7}, {"n": 993}]})
            assert sorted(h.id for h in either) == [ids[7], ids[993]]
    finally:
        index.close()


def test_fts_syntax_in_queries_is_searched_as_words(lexical):
    for query in ['"stop', "stop*", "STOP NEAR invoice", "stop AND", "-stop", "text:stop"]:
        assert "signs/stop.png" in {h.id for h in lexical.search(query)}, query
    for query in ["", "   ", '"""', "*", "-:()^", "NEAR(", "AND OR NOT"]:
        lexical.search(query)  # never raises
    assert lexical.search('"*-:') == []
    assert match_expression("-:*", every=True) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_query_is_answered_without_raising(tmp_path_factory, query):
    index = _SHARED.get("index")
    if index is None:
        index = LexicalIndex(tmp_path_factory.mktemp("prop") / "text.sqlite", create=True)
        index.write(["a"], [{"texts": {"ocr": "NEAR AND OR NOT stop 咖啡 café"}}])
        index.commit()
        _SHARED["index"] = index
    hits = index.search(query, k=3)
    assert all(hit.id == "a" for hit in hits)


_SHARED: dict[str, LexicalIndex] = {}


def test_staged_changes_are_invisible_until_commit_and_deletes_remove_text(lexical):
    lexical.write(["new.jpg"], [{"texts": {"ocr": "zebra crossing"}}])
    assert lexical.search("zebra") == []
    lexical.commit()
    assert [h.id for h in lexical.search("zebra")] == ["new.jpg"]
    lexical.delete(["new.jpg", "not-there.jpg"])
    lexical.commit()
    assert lexical.search("zebra") == []
    assert "new.jpg" not in set(lexical.ids())
    lexical.write(["other.jpg"], [{"texts": {"ocr": "staged then dropped"}}])
    lexical.discard()
    lexical.commit()
    assert lexical.search("dropped") == []


def test_rewriting_an_image_replaces_its_text(lexical):
    lexical.write(["signs/stop.png"], [{"texts": {"ocr": "GO"}}])
    lexical.commit()
    assert [h.field for h in lexical.search("stop")] == ["name"]  # its file name only
    assert lexical.search("go")[0].id == "signs/stop.png"


def test_ocr_lines_are_kept_with_confidence_and_box(tmp_path):
    line = OcrLine(text="STOP", confidence=0.98, box=((1, 2), (30, 2), (30, 12), (1, 12)))
    with LexicalIndex(tmp_path / "t.sqlite", create=True) as index:
        index.write(["a"], [{"texts": {"ocr": "STOP"}, "lines": [line]}])
        index.commit()
        assert index.lines("a") == [line]
        assert index.lines("b") == []
        assert index.texts("a")["ocr"] == "STOP"


def test_missing_or_damaged_database_names_the_repair_command(tmp_path):
    with pytest.raises(IndexDamagedError, match=REPAIR_COMMAND):
        LexicalIndex(tmp_path / "missing.sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexDamagedError, match="rebuild-text"):
        LexicalIndex(bad)
    good = tmp_path / "good.sqlite"
    with LexicalIndex(good, create=True) as index:
        index.write(
            [f"id{i}" for i in range(300)], [{"texts": {"ocr": f"w{i} " * 50}} for i in range(300)]
        )
        index.commit()
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 3])
    with pytest.raises(IndexDamagedError, match="rebuild-text"):
        index = LexicalIndex(good)
        index.search("w1")
        len(index)
