"""An encoder's lifecycle: close() and ``with`` stop its decoding processes and feeds."""

from __future__ import annotations

import multiprocessing
import sys
import threading

import numpy as np
import pytest

from zeroshot_vision import Encoder, FaissStore, InvalidInputError

HAS_FORK = sys.platform.startswith("linux")  # decoding processes are Linux-only


def _children() -> set[int]:
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


def _feeders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zsv-feed"]


def _load(tiny_model_dir, **options) -> Encoder:
    return Encoder.from_pretrained(
        tiny_model_dir, device="cpu", dtype="float32", warm_up=False, **options
    )


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes are Linux-only")
def test_close_stops_every_decoding_process(tiny_model_dir, photo_paths) -> None:
    before = _children()
    encoder = _load(tiny_model_dir, workers=2, batch_size=1)
    # More photos than one batch: they go to the forked decoders, not to threads.
    vectors = encoder.encode_images(photo_paths * 2)
    assert vectors.shape == (2 * len(photo_paths), encoder.dim)
    started = _children() - before
    assert len(started) == 2, started
    encoder.close()
    assert encoder.closed
    assert not _children() & started
    encoder.close()  # a second close does nothing
    assert not _children() & started


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes are Linux-only")
def test_with_block_closes_the_encoder(tiny_model_dir, photo_paths) -> None:
    before = _children()
    with _load(tiny_model_dir, workers=2, batch_size=1) as encoder:
        report = encoder.classify_many(photo_paths * 2, ["a cat", "a rocket"])
        assert len(report.results) == 2 * len(photo_paths)
        started = _children() - before
        assert len(started) == 2, started
    assert encoder.closed
    assert not _children() & started


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes are Linux-only")
def test_close_during_an_iteration_stops_its_feeder_and_says_so(
    tiny_model_dir, photo_paths
) -> None:
    before = _children()
    encoder = _load(tiny_model_dir, workers=2, batch_size=1)
    batches = encoder.encode_batches(photo_paths * 4)
    first = next(batches)
    assert len(first) == 1 and not isinstance(first[0][1], Exception)
    assert _feeders() and len(_children() - before) == 2
    encoder.close()
    assert not _feeders()
    assert not _children() - before
    with pytest.raises(InvalidInputError, match=r"encoder .* is closed"):
        next(batches)


def test_a_closed_encoder_refuses_images_but_still_embeds_texts(
    tiny_model_dir, photo_paths
) -> None:
    encoder = _load(tiny_model_dir, workers=0)
    expected = encoder.encode_texts(["a cat"])
    encoder.close()
    with pytest.raises(InvalidInputError, match="is closed"):
        encoder.encode_images(photo_paths)
    with pytest.raises(InvalidInputError, match="is closed"):
        next(encoder.encode_batches(photo_paths))
    with pytest.raises(InvalidInputError, match="is closed"):
        encoder.classify(photo_paths[0], ["a cat"])
    with pytest.raises(InvalidInputError, match="is closed"):
        encoder.classify_many(photo_paths, ["a cat"])
    np.testing.assert_array_equal(encoder.encode_texts(["a cat"]), expected)


def test_faiss_store_is_a_context_manager(tmp_path) -> None:
    with FaissStore.open(tmp_path / "store", dim=3) as store:
        store.upsert(["a"], [[1.0, 0.0, 0.0]])
        store.commit()
    assert store.query([1.0, 0.0, 0.0], k=1)[0].id == "a"  # closing releases nothing
    with FaissStore.load(tmp_path / "store") as loaded:
        assert list(loaded.ids()) == ["a"]
