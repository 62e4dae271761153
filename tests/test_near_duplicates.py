"""Near-duplicates: copies found (resized, re-encoded, cropped), different photos not."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from tests.factories import memory_engine
from tests.helpers import make_copies

from zeroshot_vision import (
    DEFAULT_DUPLICATE_THRESHOLD,
    DuplicateGroup,
    DuplicatePair,
    FaissStore,
    InvalidInputError,
    SearchEngine,
)
from zeroshot_vision._near_duplicates import find_duplicates, group_pairs

# With the tiny random model, these four photos' copies score above every cross pair
# (measured: copies >= 0.994, different photos <= 0.982); astronaut and motorcycle are
# left out because their crops fall below chelsea-vs-coffee. Real models separate far
# better; the test checks the plumbing, with the threshold taken from measured scores.
PHOTOS = ("coffee", "chelsea", "rocket", "hubble_deep_field")


@pytest.fixture(scope="module")
def copies_engine(tiny_encoder, photo_paths, tmp_path_factory) -> SearchEngine:
    folder = tmp_path_factory.mktemp("copies")
    chosen = [p for p in photo_paths if p.stem in PHOTOS]
    assert len(chosen) == len(PHOTOS)
    paths = [copy for photo in chosen for copy in make_copies(photo, folder)]
    engine = memory_engine(tiny_encoder)
    assert engine.index_images(paths, root=folder).ok
    return engine


def _pair_scores(engine: SearchEngine) -> tuple[list[float], list[float]]:
    ids = sorted(engine.store.ids())
    records = engine.store.fetch(ids)
    same, different = [], []
    for a, b in combinations(ids, 2):
        score = float(records[a].vector @ records[b].vector)
        (same if a.split("-")[0] == b.split("-")[0] else different).append(score)
    return same, different


def test_copies_are_grouped_and_different_photos_are_not(copies_engine) -> None:
    same, different = _pair_scores(copies_engine)
    assert min(same) > max(different), "the tiny model no longer separates these copies"
    threshold = (min(same) + max(different)) / 2
    groups = copies_engine.duplicates(threshold=threshold)
    assert [group.ids[0].split("-")[0] for group in groups] == sorted(
        PHOTOS, key=lambda stem: f"{stem}-cropped.png"
    )
    for group in groups:
        stem = group.ids[0].split("-")[0]
        assert group.ids == tuple(
            sorted(
                f"{stem}-{kind}" for kind in ("original.png", "half.png", "cropped.png", "q40.jpg")
            )
        )
        assert len(group.pairs) == 6  # every copy matches every other copy
        assert [p.score for p in group.pairs] == sorted(
            (p.score for p in group.pairs), reverse=True
        )
        assert all(p.first < p.second and p.score >= threshold for p in group.pairs)
    # Below every cross-photo score, everything is one group.
    assert len(copies_engine.duplicates(threshold=min(different) - 1e-3)) == 1
    # Above every score, nothing is.
    top = max(same)
    if top < 1.0 - 1e-4:
        assert copies_engine.duplicates(threshold=top + 1e-4) == []


def test_exact_against_brute_force_with_more_duplicates_than_neighbours() -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(5, 16))
    vectors = [centres[i % 5] + rng.normal(scale=0.05, size=16) for i in range(60)]
    vectors += list(rng.normal(size=(40, 16)))
    store = FaissStore(16)
    ids = [f"v{i:03d}" for i in range(len(vectors))]
    store.upsert(ids, np.array(vectors))
    stored = store.fetch(ids)
    threshold = 0.95
    expected = {
        (a, b)
        for a, b in combinations(ids, 2)
        if float(stored[a].vector @ stored[b].vector) >= threshold
    }
    # Each cluster has 12 members: far more than the 3 neighbours asked for at first.
    groups = find_duplicates(store, threshold=threshold, neighbours=3, batch_size=7)
    found = {(p.first, p.second) for g in groups for p in g.pairs}
    assert found == expected
    assert sorted(len(g.ids) for g in groups)[-5:] == [12] * 5


def test_group_pairs_is_union_find() -> None:
    pairs = [
        DuplicatePair(first="a", second="b", score=0.99),
        DuplicatePair(first="b", second="c", score=0.995),
        DuplicatePair(first="x", second="y", score=0.999),
    ]
    assert group_pairs(pairs) == [
        DuplicateGroup(ids=("a", "b", "c"), pairs=(pairs[1], pairs[0])),
        DuplicateGroup(ids=("x", "y"), pairs=(pairs[2],)),
    ]
    assert group_pairs([]) == []
    assert group_pairs(pairs)[0].score == 0.995
    assert group_pairs(pairs)[1].to_json() == {"ids": ["x", "y"], "pairs": [["x", "y", 0.999]]}


def test_small_stores_have_no_duplicates() -> None:
    assert find_duplicates(FaissStore(4)) == []
    store = FaissStore(4)
    store.upsert(["a"], [[1, 0, 0, 0]])
    assert find_duplicates(store) == []


@pytest.mark.parametrize("threshold", [0, -0.5, 1.5, math.nan, "0.9", True])
def test_bad_thresholds_are_refused(threshold: object) -> None:
    with pytest.raises(InvalidInputError, match=r"threshold must be a cosine in \(0, 1\]"):
        find_duplicates(FaissStore(4), threshold=threshold)  # type: ignore[arg-type]


def test_default_threshold_is_immichs() -> None:
    assert DEFAULT_DUPLICATE_THRESHOLD == 0.99  # 1 - Immich's maxDistance of 0.01


def test_duplicates_progress(copies_engine) -> None:
    events = []
    copies_engine.duplicates(threshold=0.999, batch_size=5, progress=events.append)
    assert events[0].total == 16 and events[-1].done == 16
    assert {e.task for e in events} == {"duplicates"}
