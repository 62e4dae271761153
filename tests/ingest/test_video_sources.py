"""Videos from the other sources: paths given to ``index_images`` become frames through
the one pipeline (as a folder run's videos do); what cannot carry a video says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("av")

import skimage.data

from zeroshot_vision import SearchEngine
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision.ingest._video import CACHE_FILE
from zeroshot_vision.testing import write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "trip.mp4"
    scenes = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    write_clip(path, scenes, seconds=1.0, fps=10)
    return path


def test_index_images_given_a_video_path_indexes_its_frames(
    tmp_path: Path, tiny_encoder, clip: Path, photo_paths: list[Path]
) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_images(
            [photo_paths[0], clip],
            ids=["photo", "trip"],
            metadata=[None, {"album": "holidays"}],
            video=VideoOptions(max_interval=5.0),
        )
        assert not report.failed, report.failed
        frames = ["trip#t=0.500", "trip#t=1.500", "trip#t=2.500"]
        assert report.indexed == ("photo", *frames)
        records = engine.store.fetch(frames)
        for frame_id, scene in zip(frames, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], strict=True):
            meta = records[frame_id].metadata
            assert meta["path"] == str(clip) and meta["album"] == "holidays"
            assert (meta["scene_start"], meta["scene_end"]) == scene
            assert meta["timestamp"] == float(frame_id.rsplit("=", 1)[1])
        # The cat photo, as a query, finds the video inside the cat's scene.
        best = engine.search_by_image(skimage.data.chelsea(), k=1)[0]
        assert best.id == "trip#t=2.500" and best.timestamp == 2.5
        # The choice is kept like a folder run's: the same path again is not decoded again.
        assert str(clip) in (tmp_path / "index" / CACHE_FILE).read_text()
        again = engine.index_images([clip], ids=["trip"], video=VideoOptions(max_interval=5.0))
        assert again.indexed == tuple(frames) and len(engine.store) == 4


def test_a_video_path_with_videos_off_is_a_failure_that_says_how(
    tmp_path: Path, tiny_encoder, clip: Path, photo_paths: list[Path]
) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_images([clip, photo_paths[0]], video=False)
    assert report.indexed == (str(photo_paths[0]),)  # the run goes on
    (failure,) = report.failed
    assert failure.source == str(clip)
    assert "video=True" in failure.reason and "zeroshot-vision[video]" in failure.reason


def test_a_bad_video_path_is_one_failure_and_the_rest_is_indexed(
    tmp_path: Path, tiny_encoder, photo_paths: list[Path]
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_images([broken, photo_paths[0]], ids=["broken", "photo"])
    assert report.indexed == ("photo",)
    (failure,) = report.failed
    assert "broken.mp4" in failure.source


def test_folder_runs_and_ray_refuse_what_they_cannot_read(
    tmp_path: Path, tiny_model_dir: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroshot_vision._cli import main

    with (
        SearchEngine.create(tmp_path / "index", model=str(tiny_model_dir)) as engine,
        pytest.raises(InvalidInputError, match=r"not a folder.*index_images"),
    ):
        engine.index_folder(clip)
    shutil.copy(clip, tmp_path / "trip.mp4")
    argv = ["index", str(tmp_path / "trip.mp4"), "--index", str(tmp_path / "cli")]
    assert main([*argv, "--model", str(tiny_model_dir)]) != 0
    assert "is not a folder" in capsys.readouterr().err
    media = tmp_path / "media"
    media.mkdir()
    argv = ["index", str(media), "--index", str(tmp_path / "ray"), "--ray", "--video"]
    assert main([*argv, "--model", str(tiny_model_dir)]) != 0
    assert "--ray indexes images only" in capsys.readouterr().err
