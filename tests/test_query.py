"""Batched and combined queries: one result list per query, exact scores, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.factories import memory_engine

from zeroshot_vision import (
    FaissStore,
    ImageLoadError,
    InvalidInputError,
    Query,
    QueryPart,
    SearchEngine,
    SearchResults,
)
from zeroshot_vision.stores._batch import query_many


@pytest.fixture(scope="module")
def indexed(tiny_encoder, photo_paths) -> SearchEngine:
    engine = memory_engine(tiny_encoder)
    assert engine.index_images(photo_paths, root=photo_paths[0].parent).ok
    return engine


def _vectors(engine: SearchEngine) -> dict[str, np.ndarray]:
    ids = list(engine.store.ids())
    return {item: record.vector for item, record in engine.store.fetch(ids).items()}


# -- Query values ---------------------------------------------------------------------------


def test_query_arithmetic_keeps_parts_and_signs() -> None:
    query = Query.text("beach") + Query.image("ref.jpg", weight=0.5) - Query.text("people")
    assert [(p.text, p.image, p.weight) for p in query.parts] == [
        ("beach", None, 1.0),
        (None, "ref.jpg", 0.5),
        ("people", None, -1.0),
    ]
    assert str(query) == "'beach' + 0.5 * image(ref.jpg) - 'people'"
    assert (2 * Query.text("a")).parts[0].weight == 2.0
    assert query.main_text == QueryPart(text="beach")
    assert Query(parts=[QueryPart(text="x")]).parts == (QueryPart(text="x"),)


@pytest.mark.parametrize("weight", [math.nan, math.inf, 0, "1", True])
def test_bad_weights_are_refused(weight: object) -> None:
    with pytest.raises(InvalidInputError, match="weight must be a"):
        Query.text("beach", weight=weight)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Query(parts=()), "at least one part"),
        (lambda: QueryPart(), "either a text or an image"),
        (lambda: QueryPart(text="a", image="b.jpg"), "either a text or an image"),
        (lambda: Query.text("  "), "some words"),
        (lambda: Query.image(""), "empty"),
        (lambda: Query(parts=["beach"]), "must be a QueryPart"),
    ],
)
def test_malformed_queries_are_refused(build, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()


def test_a_query_of_negative_parts_only_is_refused(indexed) -> None:
    with pytest.raises(InvalidInputError, match="positive weight"):
        indexed.search(-Query.text("people"))


# -- batches --------------------------------------------------------------------------------


def test_a_batch_of_texts_equals_one_search_per_text(indexed) -> None:
    batch = indexed.search(["a cat", "a rocket", Query.text("coffee")], k=3)
    assert isinstance(batch, list) and len(batch) == 3
    assert all(isinstance(results, SearchResults) for results in batch)
    for query, results in zip(["a cat", "a rocket", "coffee"], batch):
        alone = indexed.search(query, k=3)
        # Texts embedded together may differ from one-by-one in the last float bits.
        assert [r.id for r in results] == [r.id for r in alone]
        assert [r.score for r in results] == pytest.approx([r.score for r in alone], abs=1e-5)


def test_a_batch_of_images_equals_one_search_per_image(indexed, photo_paths) -> None:
    as_array = np.asarray(Image.open(photo_paths[1]).convert("RGB"))
    batch = indexed.search_by_image([photo_paths[0], as_array], k=2)
    assert [r.id for r in batch[0]] == [r.id for r in indexed.search_by_image(photo_paths[0], k=2)]
    assert batch[1][0].id == photo_paths[1].name  # the array is that photo
    assert batch[1][0].score == pytest.approx(1.0, abs=1e-5)
    assert all(r.probability is None for results in batch for r in results)


def test_empty_batches_are_refused(indexed) -> None:
    with pytest.raises(InvalidInputError, match="batch of queries is empty"):
        indexed.search([])
    with pytest.raises(InvalidInputError, match="batch of images is empty"):
        indexed.search_by_image([])


def test_an_unreadable_image_query_is_a_one_line_error(indexed, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageLoadError, match=r"broken\.jpg") as info:
        indexed.search(Query.text("a cat") + Query.image(broken))
    assert "\n" not in str(info.value)
    with pytest.raises(ImageLoadError, match=r"missing\.png"):
        indexed.search_by_image([tmp_path / "missing.png"])


def test_query_many_runs_single_queries_on_a_bounded_pool_for_remote_stores() -> None:
    class RemoteStore(FaissStore):
        remote = True
        query_many = None  # a store with single queries only, like Pinecone

        def __init__(self, dim: int) -> None:
            super().__init__(dim)
            self.calls = 0

        def query(self, vector, k=10, filter=None):
            self.calls += 1
            return super().query(vector, k=k, filter=filter)

    store = RemoteStore(4)
    store.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    hits = query_many(store, np.eye(4)[:2], k=1)
    assert [h[0].id for h in hits] == ["a", "b"] and store.calls == 2
    with pytest.raises(InvalidInputError, match="empty"):
        query_many(store, np.zeros((0, 4)))


def test_query_many_prefers_a_stores_own_batched_query() -> None:
    class BatchedStore(FaissStore):
        def query_many(self, vectors, k=10, filter=None):
            return [[] for _ in vectors]

    assert query_many(BatchedStore(4), np.eye(4), k=1) == [[], [], [], []]


# -- combined queries: exact scores ---------------------------------------------------------


def test_combined_query_scores_and_probability_follow_the_docs(indexed, photo_paths) -> None:
    encoder = indexed.encoder
    query = Query.text("a cat") + Query.image(photo_paths[0], weight=0.5) - Query.text("people")
    results = indexed.search(query, k=6)
    text, negative = encoder.encode_texts(["a cat", "people"])
    image = encoder.encode_images([photo_paths[0]])[0]
    positive = text + 0.5 * image
    positive = positive / np.linalg.norm(positive)
    direction = text + 0.5 * image - negative
    stored = _vectors(indexed)
    # Ranked by the whole direction (negative included)...
    ranking = sorted(stored, key=lambda item: -float(stored[item] @ direction))
    assert [r.id for r in results] == ranking
    for result in results:
        # ... scored against the positive parts, with the text part's probability.
        assert result.score == pytest.approx(float(stored[result.id] @ positive), abs=1e-5)
        cosine = float(stored[result.id] @ text)
        assert result.probability == pytest.approx(encoder.probability(cosine), abs=1e-6)


def test_negative_keyword_equals_the_query_form(indexed) -> None:
    old = indexed.search("a cat", k=6, negative="a rocket", negative_weight=0.5)
    new = indexed.search(Query.text("a cat") - Query.text("a rocket", weight=0.5), k=6)
    assert [(r.id, r.score, r.probability) for r in old] == [
        (r.id, r.score, r.probability) for r in new
    ]
    with pytest.raises(InvalidInputError, match="negative_weight must be a finite"):
        indexed.search("a cat", negative="people", negative_weight=math.nan)


def test_image_query_has_no_probability_and_refuses_min_probability(indexed, photo_paths) -> None:
    results = indexed.search(Query.image(photo_paths[2]), k=3)
    assert results[0].id == photo_paths[2].name and results[0].probability is None
    with pytest.raises(InvalidInputError, match="calibrated only for text"):
        indexed.search(Query.image(photo_paths[2]), min_probability=0.1)


def test_search_rejects_other_query_types(indexed, photo_paths) -> None:
    with (
        Image.open(photo_paths[0]) as image,
        pytest.raises(InvalidInputError, match=r"search_by_image or Query\.image"),
    ):
        indexed.search(image)  # type: ignore[call-overload]


# -- hostile combinations (issue 20) --------------------------------------------------------


def test_parts_that_cancel_out_are_a_clear_error(indexed: SearchEngine) -> None:
    with pytest.raises(InvalidInputError, match="cancel out: its parts sum to no direction"):
        indexed.search(Query.text("a dog") - Query.text("a dog"), k=3)


@pytest.mark.parametrize("weight", [1e308, 1e-300, 1e-320])
def test_weights_near_the_float_limits_combine_without_overflow(
    indexed: SearchEngine, weight: float
) -> None:
    # Before: a RuntimeWarning (an error under this suite's settings) and NaN vectors.
    query = Query.text("a dog", weight=weight) + Query.text("a cat", weight=weight)
    plain = indexed.search(Query.text("a dog") + Query.text("a cat"), k=3)
    assert [r.id for r in indexed.search(query, k=3)] == [r.id for r in plain]
    mixed = Query.text("a dog", weight=weight) - Query.text("a cat", weight=weight / 2)
    assert len(indexed.search(mixed, k=3)) == 3


@pytest.mark.parametrize("weight", [math.nan, math.inf, -math.inf, 0.0])
def test_non_finite_or_zero_weights_are_refused(weight: float) -> None:
    with pytest.raises(InvalidInputError, match="finite non-zero"):
        Query.text("a dog", weight=weight)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_bad_k_is_refused_and_huge_k_returns_everything(indexed: SearchEngine, k: object) -> None:
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        indexed.search("a dog", k=k)  # type: ignore[arg-type]
    assert len(indexed.search("a dog", k=10**12)) == len(indexed.store)


def test_in_lists_beyond_the_filter_limit_are_refused(indexed: SearchEngine) -> None:
    from zeroshot_vision import InvalidFilterError
    from zeroshot_vision.stores._filters import MAX_IN_VALUES

    with pytest.raises(InvalidFilterError, match=f"at most {MAX_IN_VALUES} values"):
        indexed.search("a dog", k=1, filter={"id": {"$in": list(range(MAX_IN_VALUES + 1))}})


def test_compose_builds_the_search_forms_query() -> None:
    from zeroshot_vision._query import IMAGE_WEIGHT, NEGATIVE_WEIGHT, compose

    query = compose("a beach", ["ref.jpg"], ["people", "boats"])
    assert [(p.text, p.image, p.weight) for p in query.parts] == [
        ("a beach", None, 1.0),
        (None, "ref.jpg", IMAGE_WEIGHT),
        ("people", None, -NEGATIVE_WEIGHT),
        ("boats", None, -NEGATIVE_WEIGHT),
    ]
    # An image alone is the whole query; an explicit weight wins over the default.
    assert [p.weight for p in compose(None, ["ref.jpg"]).parts] == [1.0]
    assert [p.weight for p in compose("x", ["a.jpg", "b.jpg"], image_weight=0.2).parts] == [
        1.0,
        0.2,
        0.2,
    ]


def test_compose_without_words_or_images_is_an_error() -> None:
    from zeroshot_vision._query import compose

    with pytest.raises(InvalidInputError, match="words to look for or an image"):
        compose(None, [], ["people"])
