"""One decode per video: the choosing pass keeps the chosen frames' pictures.

A 30 fps clip is decoded without its unreferenced frames (FFmpeg's ``skip_frame =
NONREF``); the pictures the pass keeps are the very frames a second pass would decode at
the same positions, and a fresh index never decodes a video twice. Over the run's budget
of kept pictures, frames are decoded again and nothing is lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

import skimage.data
from PIL import Image

from zeroshot_vision import SearchEngine
from zeroshot_vision._images.video import (
    VideoOptions,
    read_frames,
    scan_frames,
    select_frames,
)
from zeroshot_vision.testing._video_clips import write_clip

PHOTOS = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


@pytest.fixture(scope="module")
def clip30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip30") / "fast.mp4"
    write_clip(path, PHOTOS, seconds=1.5, fps=30, size=(192, 108))
    return path


class _Keeper:
    def __init__(self) -> None:
        self.pictures: dict[int, Image.Image] = {}

    def keep(self, position: int, picture: Image.Image) -> None:
        self.pictures[position] = picture

    def keep_only(self, positions) -> None:
        self.pictures = {p: v for p, v in self.pictures.items() if p in positions}


def test_fast_stream_skips_unreferenced_frames_and_keeps_the_chosen_pictures(
    clip30: Path,
) -> None:
    keeper = _Keeper()
    options = VideoOptions(max_interval=0.5)
    selection = scan_frames(clip30, options, keeper)
    assert selection.skip_frame == "NONREF"
    # Cuts are found at most a tenth of a second late (frames are compared 10 a second).
    scenes = [(f.scene_start, f.scene_end) for f in selection.frames[::3]]
    assert np.allclose(scenes, [(0.0, 1.5), (1.5, 3.0), (3.0, 4.5)], atol=0.11), scenes
    assert len(selection.frames) == 9  # three 0.5 s slices per 1.5 s scene
    for frame in selection.frames:
        assert frame.scene_start <= frame.timestamp < frame.scene_end
    # Kept: exactly the chosen frames, identical to what a second pass decodes there.
    assert sorted(keeper.pictures) == [f.position for f in selection.frames]
    again = dict(
        read_frames(
            clip30,
            [f.position for f in selection.frames],
            options,
            skip_frame=selection.skip_frame,
        )
    )
    for position, picture in keeper.pictures.items():
        assert np.array_equal(np.asarray(picture), np.asarray(again[position])), position
    # The two-pass path (every frame decoded) finds the same scenes and as many frames.
    full = select_frames(clip30, VideoOptions(max_interval=0.5, one_pass=False))
    assert full.skip_frame == "DEFAULT" and len(full.frames) == len(selection.frames)
    assert np.allclose(
        [(f.scene_start, f.scene_end) for f in full.frames],
        [(f.scene_start, f.scene_end) for f in selection.frames],
        atol=0.11,
    )
    # A JSON round trip (the index folder's cache) keeps the decoding mode.
    assert type(selection).from_json(selection.to_json()) == selection


def test_a_fresh_index_decodes_each_video_once(
    tmp_path: Path, tiny_encoder, clip30: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(clip30, folder / "fast.mp4")

    def second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("a chosen frame was decoded a second time")

    monkeypatch.setattr("zeroshot_vision._images.video.read_frames", second_pass)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, video=VideoOptions(max_interval=0.5))
    assert not report.failed, report.failed
    assert len(report.indexed) == 9


def test_kept_pictures_embed_like_a_second_decode_and_over_budget_loses_nothing(
    tmp_path: Path, tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    write_clip(folder / "trip.mp4", PHOTOS, seconds=1.0, fps=12)
    vectors = {}
    for name, options, budget in [
        ("one pass", VideoOptions(max_interval=0.5), None),
        ("two passes", VideoOptions(max_interval=0.5, one_pass=False), None),
        ("no budget", VideoOptions(max_interval=0.5), 1),
    ]:
        if budget is not None:  # nothing can be kept: every frame is decoded again
            monkeypatch.setattr("zeroshot_vision.ingest._video.HELD_BYTES", budget)
        with SearchEngine.create(tmp_path / name, encoder=tiny_encoder) as engine:
            report = engine.index_folder(folder, video=options)
            assert not report.failed, (name, report.failed)
            records = engine.store.fetch(sorted(engine.store.ids()))
            vectors[name] = {key: record.vector for key, record in records.items()}
    assert len(vectors["one pass"]) == 6
    for name in ("two passes", "no budget"):
        assert sorted(vectors[name]) == sorted(vectors["one pass"])
        for frame_id, vector in vectors["one pass"].items():
            other = vectors[name][frame_id]
            cosine = float(np.dot(vector, other))  # unit vectors
            assert cosine > 0.99, (name, frame_id, cosine)


def test_too_few_frames_left_by_skipping_decodes_every_frame_again(
    clip30: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream whose skipped frames leave too few to compare (P-frames nothing refers
    to) is decoded again in full: the choice and the kept pictures are the full pass's."""
    from zeroshot_vision._images import video

    passes: list[bool] = []

    def sparse(self: object) -> bool:
        passes.append(True)
        return len(passes) == 1  # the first (skipping) pass found too few frames

    monkeypatch.setattr(video._Scan, "sparse", sparse)
    keeper = _Keeper()
    options = VideoOptions(max_interval=0.5)
    selection = scan_frames(clip30, options, keeper)
    assert passes == [True]  # asked once, after the skipping pass; the full pass is final
    assert selection.skip_frame == "DEFAULT" and len(selection.frames) == 9
    assert sorted(keeper.pictures) == [f.position for f in selection.frames]
    again = dict(read_frames(clip30, sorted(keeper.pictures), options))
    for position, picture in keeper.pictures.items():
        assert np.array_equal(np.asarray(picture), np.asarray(again[position])), position
