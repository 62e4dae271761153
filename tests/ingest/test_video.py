"""Videos through the one ingest pipeline: frames chosen at scene cuts, found as moments.

Clips are made from real photos (scikit-image's) with PyAV: one scene per photo, slowly
panned and zoomed, with noise on every frame (zeroshot_vision.testing._video_clips).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")

import skimage.data

from zeroshot_vision import SearchEngine
from zeroshot_vision._images.video import VideoOptions, read_frames, select_frames
from zeroshot_vision.ingest._video import CACHE_FILE, frame_id
from zeroshot_vision.testing._video_clips import write_clip

SECONDS = 2.0
PHOTOS = {
    "astronaut": skimage.data.astronaut,
    "coffee": skimage.data.coffee,
    "cat": skimage.data.chelsea,
}


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load() for name, load in PHOTOS.items()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("clips") / "trip.mp4"
    write_clip(path, list(photos.values()), seconds=SECONDS, fps=12)
    return path


def test_scene_cuts_and_interval_choose_the_frames(clip: Path) -> None:
    selection = select_frames(clip, VideoOptions(max_interval=5.0))
    scenes = [(f.scene_start, f.scene_end) for f in selection.frames]
    assert scenes == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]  # three photos, three cuts
    # One frame per scene, at its middle (never on the cut).
    assert [f.timestamp for f in selection.frames] == [1.0, 3.0, 5.0]
    assert selection.facts["duration"] == pytest.approx(6.0)
    # A shorter interval splits each 2 s scene into slices of at most 0.5 s.
    dense = select_frames(clip, VideoOptions(max_interval=0.5))
    assert len(dense.frames) == 12
    for frame in dense.frames:
        assert frame.scene_start <= frame.timestamp < frame.scene_end
    # The bound on frames per video thins them evenly.
    few = select_frames(clip, VideoOptions(max_interval=0.5, max_frames=4))
    assert len(few.frames) == 4
    assert few.frames[0].timestamp < 1.0 and few.frames[-1].timestamp > 5.0


def test_frames_decode_to_the_photos_of_their_scenes(
    clip: Path, photos: dict[str, np.ndarray]
) -> None:
    selection = select_frames(clip, VideoOptions())
    frames = dict(read_frames(clip, [f.position for f in selection.frames], VideoOptions()))
    small = {
        name: np.asarray(Image.fromarray(p).convert("L").resize((16, 12)), np.float32)
        for name, p in photos.items()
    }
    for choice, name in zip(selection.frames, PHOTOS):
        image = np.asarray(frames[choice.position].convert("L").resize((16, 12)), np.float32)
        errors = {other: float(np.abs(image - ref).mean()) for other, ref in small.items()}
        assert min(errors, key=errors.__getitem__) == name, errors


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder, clip: Path, photo_paths
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("indexed")
    folder = root / "media"
    folder.mkdir()
    shutil.copy(clip, folder / "trip.mp4")
    for photo in photo_paths[3:5]:  # photos beside the video, as in a real collection
        shutil.copy(photo, folder / photo.name)
    with SearchEngine.create(root / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, video=VideoOptions(max_interval=5.0))
    assert not report.failed, report.failed
    return folder, root / "index"


def test_each_photo_finds_the_video_inside_its_scene(indexed, tiny_encoder, photos) -> None:
    """Done when: every photo, as an image query, finds the video at its own scene."""
    folder, index = indexed
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        assert len(engine.store) == 3 + 2  # three frames, two photos
        for scene, name in enumerate(PHOTOS):
            hits = engine.search_by_image(photos[name], k=1)
            meta = hits[0].metadata
            assert meta["path"] == str(folder / "trip.mp4")
            assert scene * SECONDS <= meta["timestamp"] < (scene + 1) * SECONDS
            assert meta["scene_start"] == scene * SECONDS
            assert hits[0].id == frame_id("trip.mp4", meta["timestamp"])


def test_frames_carry_moment_metadata(indexed, tiny_encoder) -> None:
    folder, index = indexed
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        record = engine.store.fetch(["trip.mp4#t=3.000"])["trip.mp4#t=3.000"]
    meta = record.metadata
    assert meta["timestamp"] == 3.0
    assert (meta["scene_start"], meta["scene_end"]) == (2.0, 4.0)
    assert meta["duration"] == pytest.approx(6.0)
    assert (meta["width"], meta["height"]) == (160, 120)
    assert meta["folders"] == [str(folder)]


def test_unchanged_video_is_not_analysed_again(
    tmp_path: Path, tiny_encoder, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(clip, folder / "a.mp4")
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        first = engine.index_folder(folder, video=True)
        assert len(first.indexed) == 3
        cache = json.loads((tmp_path / "index" / CACHE_FILE).read_text())
        assert list(cache) == [str(folder / "a.mp4")]

        def no_analysis(*args: object, **kwargs: object) -> None:
            raise AssertionError("an unchanged video was analysed again")

        monkeypatch.setattr("zeroshot_vision._images.video.select_frames", no_analysis)
        monkeypatch.setattr("zeroshot_vision._images.video.scan_frames", no_analysis)
        second = engine.index_folder(folder, video=True)
    assert second.indexed == () and second.skipped == 3


def test_changed_video_has_its_frames_replaced_and_deleted_video_loses_all(
    tmp_path: Path, tiny_encoder, photos
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    video = folder / "v.mp4"
    write_clip(video, [photos["coffee"], photos["cat"]], seconds=2.0, fps=12)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(folder, video=True)
        assert sorted(engine.store.ids()) == ["v.mp4#t=1.000", "v.mp4#t=3.000"]
        # The same file, now three scenes of 3 s: every old frame replaced.
        write_clip(
            video, [photos["astronaut"]] * 1 + [photos["cat"], photos["coffee"]], seconds=3.0
        )
        os.utime(video, ns=(1, 1))
        report = engine.index_folder(folder, video=True)
        assert sorted(report.removed) == ["v.mp4#t=1.000", "v.mp4#t=3.000"]
        assert sorted(engine.store.ids()) == ["v.mp4#t=1.500", "v.mp4#t=4.500", "v.mp4#t=7.500"]
        # Deleted: all its frames go, and its cached choice.
        video.unlink()
        report = engine.index_folder(folder, video=True, allow_removal=True)
        assert len(report.removed) == 3 and len(engine.store) == 0
        assert json.loads((tmp_path / "index" / CACHE_FILE).read_text()) == {}


def test_video_off_indexes_images_only(
    tmp_path: Path, tiny_encoder, clip: Path, photo_paths
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(clip, folder / "a.mp4")
    shutil.copy(photo_paths[0], folder / photo_paths[0].name)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, video=False)
    assert report.indexed == (photo_paths[0].name,)
