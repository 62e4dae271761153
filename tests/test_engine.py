"""SearchEngine end to end: real photos, the tiny model loaded from a folder, FaissStore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.factories import memory_engine

from zeroshot_vision import (
    DimensionMismatchError,
    FaissStore,
    ImageLoadError,
    InvalidFilterError,
    InvalidInputError,
    RecordNotFoundError,
    SearchEngine,
)
from zeroshot_vision._engine import file_id
from zeroshot_vision._types import Progress


@pytest.fixture
def engine(tiny_encoder) -> SearchEngine:
    return memory_engine(tiny_encoder)


@pytest.fixture
def indexed(engine, photo_paths) -> SearchEngine:
    metadata = [
        {"kind": "space" if "hubble" in p.name or "rocket" in p.name else "earth"}
        for p in photo_paths
    ]
    report = engine.index_images(photo_paths, metadata=metadata, root=photo_paths[0].parent)
    assert report.ok
    return engine


def test_dimension_mismatch_on_construction(tiny_encoder) -> None:
    with pytest.raises(DimensionMismatchError, match=r"build the store with dim=encoder\.dim"):
        SearchEngine(tiny_encoder, FaissStore(tiny_encoder.dim + 1))


def test_index_report_and_ids_relative_to_root(indexed, photo_paths) -> None:
    assert len(indexed.store) == len(photo_paths)
    assert sorted(indexed.store.ids()) == sorted(p.name for p in photo_paths)
    record = indexed.store.fetch(["astronaut.png"])["astronaut.png"]
    assert record.metadata["path"] == str(photo_paths[0])
    assert record.metadata["kind"] == "earth"


def test_file_id_is_one_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    absolute = (tmp_path / "photos" / "sub" / "x.jpg").as_posix()
    assert file_id("photos/sub/x.jpg") == absolute
    assert file_id("photos/./sub/../sub/x.jpg") == absolute
    assert file_id(tmp_path / "photos/sub/x.jpg", "photos") == "sub/x.jpg"
    assert file_id("photos/sub/x.jpg", tmp_path / "photos") == "sub/x.jpg"
    assert file_id("elsewhere/y.jpg", "photos") == (tmp_path / "elsewhere/y.jpg").as_posix()
    # A folder reached through a link gives the same ids as the folder itself.
    (tmp_path / "link").symlink_to(tmp_path / "photos")
    assert file_id("link/sub/x.jpg", tmp_path / "photos") == "sub/x.jpg"
    assert file_id("photos/sub/x.jpg", tmp_path / "link") == "sub/x.jpg"


def test_the_same_file_indexed_twice_keeps_one_vector(engine, photo_paths, monkeypatch) -> None:
    # The report: a relative path, then a glob of absolute ones, gave two ids.
    monkeypatch.chdir(photo_paths[0].parent.parent)
    relative = Path(photo_paths[2].parent.name) / photo_paths[2].name
    engine.index_images([relative])
    engine.index_images(photo_paths[0].parent.glob("chelsea.*"))
    assert list(engine.store.ids()) == [file_id(photo_paths[2])]
    assert engine.search_by_image(photo_paths[2], k=5)[0].id == file_id(photo_paths[2])
    assert len(engine.search_by_image(photo_paths[2], k=5)) == 1


def test_a_folder_is_not_a_list_of_images(engine, photo_paths) -> None:
    with pytest.raises(InvalidInputError, match="index_folder"):
        engine.index_images(str(photo_paths[0].parent))
    assert engine.index_images(str(photo_paths[0])).indexed == (file_id(photo_paths[0]),)


def test_bad_files_are_skipped_and_named(engine, photo_paths, tmp_path) -> None:
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo_paths[3].read_bytes()[:2000])
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    missing = tmp_path / "missing.png"
    progress: list[Progress] = []
    report = engine.index_images(
        [photo_paths[0], truncated, text, missing, photo_paths[1]],
        batch_size=2,
        progress=progress.append,
    )
    assert report.indexed == (file_id(photo_paths[0]), file_id(photo_paths[1]))
    assert {f.source for f in report.failed} == {str(truncated), str(text), str(missing)}
    reasons = {f.source: f.reason for f in report.failed}
    assert "truncated" in reasons[str(truncated)]
    assert "not found" in reasons[str(missing)]
    assert not report.ok and "failed 3" in str(report)
    # One Progress before the first batch, then one per batch (the type index_folder uses).
    # Batches: [photo, truncated], [notes, missing], [photo].
    assert [(p.done, p.advanced, p.failed) for p in progress] == [
        (0, 0, 0),
        (2, 2, 1),
        (4, 2, 3),
        (5, 1, 3),
    ]
    assert len(engine.store) == 2


def test_bytes_and_pil_need_ids(engine, photo_paths) -> None:
    with pytest.raises(InvalidInputError, match="ids="):
        engine.index_images([photo_paths[0].read_bytes()])
    report = engine.index_images(
        [photo_paths[0].read_bytes(), Image.open(photo_paths[1])], ids=["b", "p"]
    )
    assert report.indexed == ("b", "p")
    assert engine.store.fetch(["b"])["b"].metadata == {}


def test_mismatched_lengths(engine, photo_paths) -> None:
    with pytest.raises(InvalidInputError):
        engine.index_images(photo_paths[:2], ids=["one"])
    with pytest.raises(InvalidInputError):
        engine.index_images(photo_paths[:2], metadata=[{}])


def test_search_by_image_finds_itself_first(indexed, photo_paths) -> None:
    for path in photo_paths:
        results = indexed.search_by_image(path, k=3)
        assert results[0].id == path.name
        assert results[0].score == pytest.approx(1.0, abs=1e-4)
        assert results[0].probability is None


def test_search_by_id_excludes_itself(indexed) -> None:
    results = indexed.search_by_id("coffee.png", k=3)
    assert len(results) == 3 and "coffee.png" not in [r.id for r in results]
    with pytest.raises(KeyError) as info:
        indexed.search_by_id("no-such-photo")
    assert isinstance(info.value, RecordNotFoundError) and info.value.id == "no-such-photo"
    assert str(info.value) == "no image with id 'no-such-photo' in the store"


def test_text_search_scores_and_probabilities(indexed) -> None:
    results = indexed.search("a rocket launching into the sky", k=4)
    assert len(results) == 4
    text = indexed.encoder.encode_texts(["a rocket launching into the sky"])[0]
    for result in results:
        stored = indexed.store.fetch([result.id])[result.id].vector
        assert result.score == pytest.approx(float(stored @ text), abs=1e-5)
        assert result.probability == pytest.approx(indexed.encoder.probability(result.score))
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_search_with_filter_and_min_probability(indexed) -> None:
    space = indexed.search("stars", k=10, filter={"kind": "space"})
    assert {r.id for r in space} == {"rocket.jpg", "hubble_deep_field.jpg"}
    everything = indexed.search("stars", k=10)
    cut = sorted(r.probability for r in everything)[len(everything) // 2]
    kept = indexed.search("stars", k=10, min_probability=cut)
    assert kept and all(r.probability >= cut for r in kept)
    assert len(kept) < len(everything)


def test_negative_prompt_reports_positive_scores(indexed) -> None:
    results = indexed.search("a cat", k=6, negative="a rocket")
    text = indexed.encoder.encode_texts(["a cat"])[0]
    for result in results:
        stored = indexed.store.fetch([result.id])[result.id].vector
        assert result.score == pytest.approx(float(stored @ text), abs=1e-5)
    plain = indexed.search("a cat", k=6)
    assert {r.id for r in results} == {r.id for r in plain}  # k covers everything


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_empty_query(indexed, query) -> None:
    with pytest.raises(ValueError, match="empty"):
        indexed.search(query)


@pytest.mark.parametrize("k", [0, -2])
def test_bad_k(indexed, k) -> None:
    with pytest.raises(ValueError, match="k must be"):
        indexed.search("a cat", k=k)
    with pytest.raises(ValueError, match="k must be"):
        indexed.search_by_id("coffee.png", k=k)


def test_bad_filter_and_probability(indexed) -> None:
    with pytest.raises(InvalidFilterError):
        indexed.search("a cat", filter={"kind": {"$eqq": "space"}})
    with pytest.raises(ValueError, match="min_probability"):
        indexed.search("a cat", min_probability=1.5)


def test_classify_sigmoid(engine, photo_paths) -> None:
    labels = ["a photo of a cat", "an astronaut", "a cup of coffee"]
    scores = engine.classify(photo_paths[2], labels)
    assert sorted(s.label for s in scores) == sorted(labels)
    assert [s.score for s in scores] == sorted((s.score for s in scores), reverse=True)
    image = engine.encoder.encode_images([photo_paths[2]])[0]
    texts = engine.encoder.encode_texts(labels)
    for s in scores:
        cosine = float(texts[labels.index(s.label)] @ image)
        assert s.score == pytest.approx(cosine, abs=1e-5)
        expected = 1 / (1 + np.exp(-(np.exp(2.0) * cosine - 1.0)))  # conftest's scale/bias
        assert s.probability == pytest.approx(expected, rel=1e-6)
    assert sum(s.probability for s in scores) != pytest.approx(1.0)  # independent


def test_classify_softmax_sums_to_one(engine, photo_paths) -> None:
    scores = engine.classify(photo_paths[0], ["a", "an astronaut", "a dog", "a"], softmax=True)
    assert len(scores) == 3  # duplicates scored once
    assert sum(s.probability for s in scores) == pytest.approx(1.0)
    assert [s.probability for s in scores] == sorted((s.probability for s in scores), reverse=True)


def test_classify_errors(engine, photo_paths, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one label"):
        engine.classify(photo_paths[0], [])
    with pytest.raises(ValueError, match="at least one label"):
        engine.classify(photo_paths[0], [" ", ""])
    assert [s.label for s in engine.classify(photo_paths[0], ["a cat", " "])] == ["a cat"]
    with pytest.raises(ValueError, match="must be a string"):
        engine.classify(photo_paths[0], ["a cat", 3])
    with pytest.raises(ImageLoadError):
        engine.classify(tmp_path / "missing.jpg", ["a cat"])


def test_engine_parts_are_public(engine, tiny_encoder) -> None:
    assert engine.encoder is tiny_encoder
    assert isinstance(engine.store, FaissStore)
    assert "SearchEngine(" in repr(engine)


def test_classify_accepts_comma_separated_labels(engine, photo_paths) -> None:
    scores = engine.classify(photo_paths[2], "a cat, a dog,a car")
    assert sorted(s.label for s in scores) == ["a car", "a cat", "a dog"]


def test_search_on_empty_store(engine) -> None:
    assert engine.search("anything", k=3) == []
    assert engine.search("anything", k=3, negative="nothing") == []


# -- lifecycle ------------------------------------------------------------------------------


def test_close_closes_the_encoder_it_loaded_and_leaves_no_child_process(
    tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]
) -> None:
    import multiprocessing
    import sys

    before = {child.pid for child in multiprocessing.active_children()}
    engine = SearchEngine.create(tmp_path / "index", model=str(tiny_model_dir), device="cpu")
    engine.encoder.batch_size = 1  # more images than one batch: the forked decoders run
    assert engine.index_images(photo_paths).ok
    started = {child.pid for child in multiprocessing.active_children()} - before
    if sys.platform.startswith("linux"):
        assert started, "the encoder's decoding processes should have started"
    engine.close()
    assert engine.encoder.closed
    assert not {child.pid for child in multiprocessing.active_children()} - before
    with pytest.raises(InvalidInputError, match="closed"):
        engine.index_images(photo_paths[:1])
    with SearchEngine.open(tmp_path / "index") as reopened:  # committed on close
        assert len(reopened.store) == len(photo_paths)
    assert reopened.encoder.closed


def test_close_leaves_an_encoder_it_was_given_open(engine, tiny_encoder) -> None:
    engine.close()
    engine.close()  # twice is harmless
    assert not tiny_encoder.closed
    assert tiny_encoder.encode_texts(["a cat"]).shape == (1, tiny_encoder.dim)


def test_the_writer_is_the_engines_one_way_to_write(engine, photo_paths) -> None:
    assert engine.writer.store is engine.store
    assert not hasattr(engine, "write_vectors") and not hasattr(engine, "record_entries")
    engine.index_images(photo_paths[:2])
    assert engine.writer.dirty
    engine.commit()
    assert not engine.writer.dirty
