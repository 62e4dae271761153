"""Captions at index time: CaptionExtractor in the ingest pipeline (scripted endpoint, so
captions are known) and ``zsv index --captions`` against the real ``transformers serve``."""

from __future__ import annotations

import shutil
import socket

import pytest

from zeroshot_vision._captions import CaptionExtractor, measure_caption_seconds
from zeroshot_vision._llm import LLMEndpoint
from zeroshot_vision.ingest import ExifExtractor


def captions(engine) -> dict[str, str | None]:
    records = engine.store.fetch(list(engine.store.ids()))
    return {i: r.metadata.get("caption") for i, r in records.items()}


def test_captions_are_stored_incremental_and_follow_the_model(
    tiny_encoder, photo_paths, tmp_path, fake_llm
):
    from zeroshot_vision import SearchEngine

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:2]:
        shutil.copy(path, photos / path.name)
    fake_llm.reply = "\nA cat on a chair.\nSecond line is dropped."
    llm = LLMEndpoint(fake_llm.url, "good", max_retries=0)
    with llm, SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        extractor = CaptionExtractor(llm, image_side=64)
        report = engine.index_folder(photos, extractors=[ExifExtractor(), extractor])
        assert not report.failed and len(report.indexed) == 2
        assert set(captions(engine).values()) == {"A cat on a chair."}
        sent = fake_llm.requests[-1]["body"]["messages"][0]["content"]
        assert [part["type"] for part in sent] == ["text", "image_url"]
        assert extractor.calls == 2 and extractor.seconds > 0

        # Incremental: nothing changed, nothing asked; one new photo, one caption.
        engine.index_folder(photos, extractors=[ExifExtractor(), extractor])
        assert len(fake_llm.requests) == 2
        shutil.copy(photo_paths[2], photos / photo_paths[2].name)
        engine.index_folder(photos, extractors=[ExifExtractor(), extractor])
        assert len(fake_llm.requests) == 3 and len(captions(engine)) == 3

        # Captions by a photo the endpoint fails on: indexed anyway, failure reported.
        fake_llm.reply = "   "
        shutil.copy(photo_paths[3], photos / photo_paths[3].name)
        report = engine.index_folder(photos, extractors=[ExifExtractor(), extractor])
        assert report.indexed and any("empty caption" in f.reason for f in report.failed)
        assert len(captions(engine)) == 4 and captions(engine)[photo_paths[3].name] is None

        # A new revision (or model) captions every photo once more.
        fake_llm.reply = "Revised."
        again = CaptionExtractor(llm, image_side=64, revision="2")
        engine.index_folder(photos, extractors=[ExifExtractor(), again])
        assert again.calls == 4 and set(captions(engine).values()) == {"Revised."}


def _photo_folder(tmp_path, photo_paths, count=4):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:count]:
        shutil.copy(path, photos / path.name)
    return photos


def test_an_endpoint_that_dies_midway_stops_the_run_and_a_rerun_finishes(
    tiny_encoder, photo_paths, tmp_path, fake_llm
):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision._errors import ExtractorUnavailableError

    photos = _photo_folder(tmp_path, photo_paths)
    fake_llm.reply = "A photo."
    fake_llm.down_after = 2  # then 503 for good
    llm = LLMEndpoint(fake_llm.url, "good", max_retries=0)
    with llm, SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        with pytest.raises(ExtractorUnavailableError, match="HTTP 503") as info:
            engine.index_folder(photos, extractors=[CaptionExtractor(llm, image_side=64)])
        assert len(info.value.report.indexed) == 2 and info.value.report.failed == ()
        assert list(captions(engine).values()) == ["A photo.", "A photo."]
        assert engine.folder is not None
        assert len(engine.folder.entries()) == 2  # the others are not recorded as failed

        fake_llm.down_after = None  # back up
        asked = len(fake_llm.requests)
        report = engine.index_folder(photos, extractors=[CaptionExtractor(llm, image_side=64)])
        assert len(report.indexed) == 2 and report.failed == () and report.skipped == 2
        assert len(fake_llm.requests) == asked + 2  # only the photos not reached
        assert list(captions(engine).values()) == ["A photo."] * 4


def test_zsv_index_captions_stops_when_the_endpoint_dies_and_continues(
    tiny_model_dir, photo_paths, tmp_path, fake_llm, capsys
):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main

    photos = _photo_folder(tmp_path, photo_paths)
    index = tmp_path / "index"
    fake_llm.reply = "A photo."
    fake_llm.down_after = 3  # two to measure the cost, one photo, then 503 for good
    args = ["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir),
            "--captions", "--llm-url", fake_llm.url, "--llm-model", "good"]  # fmt: skip
    assert main(args) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "caption is unavailable, the run stopped" in err and "run again to continue" in err
    assert err.count("\n") == 2  # the cost line, then one line for the stop
    with SearchEngine.open(index, model=str(tiny_model_dir)) as engine:
        assert list(captions(engine).values()) == ["A photo."]

    fake_llm.down_after = None
    assert main(args) == EXIT_OK
    assert capsys.readouterr().out.startswith("indexed 3, skipped 1, removed 0, failed 0")
    with SearchEngine.open(index, model=str(tiny_model_dir)) as engine:
        assert list(captions(engine).values()) == ["A photo."] * 4


def test_an_endpoint_that_is_not_there_indexes_nothing_and_records_nothing(
    tiny_encoder, photo_paths, tmp_path, fake_llm
):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision._errors import ExtractorUnavailableError, LLMUnreachableError

    photos = _photo_folder(tmp_path, photo_paths, count=2)
    # A port nothing listens on: bind one, note it, close it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = f"http://127.0.0.1:{port}/v1"
    with (
        LLMEndpoint(gone, "good", max_retries=0) as llm,
        SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine,
    ):
        with pytest.raises(ExtractorUnavailableError) as info:
            engine.index_folder(photos, extractors=[CaptionExtractor(llm, image_side=64)])
        assert isinstance(info.value.__cause__, LLMUnreachableError)
        assert len(engine.store) == 0 and engine.folder is not None
        assert engine.folder.entries() == {}


def test_failures_in_a_row_stop_the_run(tiny_encoder, photo_paths, tmp_path, fake_llm):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision._errors import ExtractorUnavailableError

    photos = _photo_folder(tmp_path, photo_paths)
    # A text-only model refuses every photo (HTTP 400: not a sign the endpoint is gone).
    llm = LLMEndpoint(fake_llm.url, "text-only", max_retries=0)
    extractor = CaptionExtractor(llm, image_side=64, give_up_after=2)
    with (
        llm,
        SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine,
        pytest.raises(ExtractorUnavailableError, match="2 failures in a row") as info,
    ):
        engine.index_folder(photos, extractors=[extractor])
    (failure,) = info.value.report.failed  # the first; the second stopped the run
    assert "does not take images" in failure.reason
    assert extractor.calls == 2 and len(fake_llm.requests) == 2


def test_measuring_the_cost_raises_the_endpoints_errors_first(fake_llm, photo_paths):
    from zeroshot_vision._errors import LLMModelNotFoundError

    with LLMEndpoint(fake_llm.url, "good", max_retries=0) as llm:
        assert measure_caption_seconds(CaptionExtractor(llm), photo_paths[:3]) > 0
        assert len(fake_llm.requests) == 2  # a sample of two
    llm = LLMEndpoint(fake_llm.url, "gpt-9", max_retries=0)
    with llm, pytest.raises(LLMModelNotFoundError):
        measure_caption_seconds(CaptionExtractor(llm), photo_paths[:1])


@pytest.mark.slow
def test_zsv_index_captions_against_the_real_server(
    vlm_server, tiny_model_dir, photo_paths, tmp_path, capsys
):
    from zeroshot_vision import SearchEngine
    from zeroshot_vision._cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:3]:
        shutil.copy(path, photos / path.name)
    index = tmp_path / "index"
    args = ["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir),
            "--captions", "--llm-url", vlm_server.base_url]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    assert "s per photo (measured on 2); 3 photos" in err
    with SearchEngine.open(index, model=str(tiny_model_dir)) as engine:
        found = captions(engine)
    assert len(found) == 3
    # Random text: a caption is stored unless the model said nothing (then reported).
    assert code in (0, 3)
    assert all(c is None or (c.strip() and "\n" not in c) for c in found.values())
    assert any(c for c in found.values()) or "empty caption" in err


def test_captions_are_searchable_in_text_and_hybrid_mode(
    tiny_encoder, photo_paths, tmp_path, fake_llm
):
    from zeroshot_vision import SearchEngine

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:2]:
        shutil.copy(path, photos / path.name)
    llm = LLMEndpoint(fake_llm.url, "good", max_retries=0)
    with llm, SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        # Indexed first without captions: the caption run then reads every photo once,
        # reusing the vectors, and its captions must reach the lexical side too.
        engine.index_folder(photos)
        assert engine.search("marmalade", mode="text") == []
        fake_llm.reply = "A ginger marmalade cat asleep on a windowsill."
        engine.index_folder(photos, extractors=[ExifExtractor(), CaptionExtractor(llm)])
        hits = engine.search("marmalade windowsill", k=5, mode="text")
        assert sorted(h.id for h in hits) == sorted(p.name for p in photo_paths[:2])
        assert all("[marmalade]" in (h.snippet or "") for h in hits)
        assert engine.text_index is not None
        assert engine.text_index.texts(hits[0].id)["caption"] == fake_llm.reply
        fused = engine.search("marmalade", k=5, mode="hybrid")
        assert {h.id for h in fused if "text" in h.found_by} == {h.id for h in hits}

        # A new photo is captioned as it is indexed; a recaption replaces the old words.
        shutil.copy(photo_paths[2], photos / photo_paths[2].name)
        fake_llm.reply = "A red rocket on a launch pad."
        engine.index_folder(photos, extractors=[ExifExtractor(), CaptionExtractor(llm)])
        assert [h.id for h in engine.search("launch pad", k=5, mode="text")] == [
            photo_paths[2].name
        ]
        fake_llm.reply = "A quiet harbour at dawn."
        revised = CaptionExtractor(llm, revision="2")
        engine.index_folder(photos, extractors=[ExifExtractor(), revised])
        assert engine.search("marmalade", k=5, mode="text") == []
        assert engine.search("launch pad", k=5, mode="text") == []
        assert len(engine.search("harbour dawn", k=5, mode="text")) == 3

        # A rebuilt lexical side takes the captions from the stored metadata: the
        # endpoint is not asked again, and the captions stay searchable.
        asked = len(fake_llm.requests)
        engine.index_folder(photos, rebuild_text=True)
        assert len(fake_llm.requests) == asked
        assert len(engine.search("harbour dawn", k=5, mode="text")) == 3
        assert "[harbour]" in (engine.search("harbour", k=1, mode="text")[0].snippet or "")
        # ... and the store's metadata keeps them (a refresh must not drop a field of an
        # extractor that did not run this time).
        assert set(captions(engine).values()) == {"A quiet harbour at dawn."}
