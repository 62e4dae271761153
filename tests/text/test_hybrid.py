"""Hybrid search: the vector and lexical rankings fused, over the tiny SigLIP and real photos."""

from __future__ import annotations

import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._hybrid import reciprocal_rank_fusion
from zeroshot_vision._lexical import LexicalIndex
from zeroshot_vision.stores import FaissStore

TEXTS = {
    "astronaut": ({"city": "Lisbon", "country_code": "PT"}, "CAFE CENTRAL\nOPEN DAILY"),
    "coffee": ({"city": "Porto", "country_code": "PT"}, "Invoice 4711\nTotal 12.50 EUR"),
    "chelsea": ({"city": "Madrid", "country_code": "ES"}, "Quarterly results"),
    "rocket": ({"city": "Lisbon", "country_code": "PT"}, ""),
}


@pytest.fixture
def engine(tiny_encoder, photo_paths, tmp_path):
    paths = {p.stem: p for p in photo_paths}
    store = FaissStore(tiny_encoder.dim)
    lexical = LexicalIndex(tmp_path / "text.sqlite", create=True)
    engine = SearchEngine(tiny_encoder, store, text_index=lexical)
    names = list(TEXTS)
    engine.index_images([paths[n] for n in names], ids=names, metadata=[TEXTS[n][0] for n in names])
    # Other images only the vector side knows (no text written for them).
    others = [p for p in photo_paths if p.stem not in TEXTS]
    engine.index_images(others, ids=[p.stem for p in others])
    lexical.write(names, [{"metadata": TEXTS[n][0], "texts": {"ocr": TEXTS[n][1]}} for n in names])
    lexical.commit()
    yield engine
    engine.close()


def test_rrf_orders_by_summed_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], [1.0, 1.0])
    assert [item for item, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    heavier = reciprocal_rank_fusion([["a", "b"], ["b"]], [1.0, 3.0])
    assert heavier[0][0] == "b"


def test_quoted_words_find_the_photo_that_shows_them(engine):
    results = engine.search("invoice 4711", k=3)
    top = results[0]
    assert top.id == "coffee"
    assert "text" in top.found_by
    assert top.snippet is not None and "[Invoice]" in top.snippet and "[4711]" in top.snippet
    assert top.fused_score is not None
    assert -1.0 <= top.score <= 1.0


def test_probability_stays_the_vector_sides(engine):
    vector = {r.id: r for r in engine.search("invoice 4711", k=20, mode="vector")}
    for result in engine.search("invoice 4711", k=20, mode="hybrid"):
        if "vector" in result.found_by:
            assert result.probability == pytest.approx(vector[result.id].probability)
            assert result.score == pytest.approx(vector[result.id].score)
        else:
            assert result.probability is None


def test_text_mode_returns_lexical_hits_only_without_probability(engine):
    results = engine.search("Lisbon", k=10, mode="text")
    assert {r.id for r in results} == {"astronaut", "rocket"}
    assert all(r.found_by == ("text",) and r.probability is None for r in results)
    assert all("[Lisbon]" in (r.snippet or "") for r in results)
    assert engine.search("zebra unicorn", mode="text") == []


def test_vector_mode_is_unchanged(engine):
    results = engine.search("invoice 4711", k=5, mode="vector")
    assert all(r.found_by == ("vector",) and r.snippet is None for r in results)
    assert all(r.probability is not None for r in results)


def test_filters_apply_to_both_sides(engine):
    results = engine.search("cafe central", k=10, filter={"country_code": "PT"})
    assert results and all(r.metadata.get("country_code") == "PT" for r in results)
    assert engine.search("quarterly results", filter={"city": "Madrid"}, mode="text")[0].id == (
        "chelsea"
    )
    assert engine.search("quarterly", filter={"city": "Porto"}, mode="text") == []


def test_default_mode_is_hybrid_with_a_lexical_side(engine, tiny_encoder):
    assert "text" in engine.search("cafe central", k=1)[0].found_by
    plain = SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim))
    with pytest.raises(InvalidInputError, match="lexical side"):
        plain.search("x", mode="hybrid")


@pytest.mark.parametrize(
    "query", ['"invoice', "4711*", "invoice NEAR 4711", "invoice AND", "-4711", "ocr:4711"]
)
def test_fts_syntax_is_plain_words_in_hybrid_search(engine, query):
    assert engine.search(query, k=3)[0].id == "coffee"


@pytest.mark.parametrize("query", ['"', "*", "-", ":", "()", "NEAR", '"""'])
def test_queries_of_syntax_only_never_raise(engine, query):
    results = engine.search(query, k=3)
    assert len(results) == 3  # the vector side still answers


def test_bad_modes_and_weights_are_refused(engine):
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        engine.search("x", mode="lexical")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="text_weight"):
        engine.search("x", text_weight=-1)


def test_the_text_weight_moves_lexical_hits(engine):
    light = engine.search("quarterly results", k=10, text_weight=0.0)
    heavy = engine.search("quarterly results", k=10, text_weight=5.0)
    assert heavy[0].id == "chelsea"
    assert [r.id for r in light] == [
        r.id for r in engine.search("quarterly results", k=10, mode="vector")
    ]
