"""Bad videos: each a recorded failure or a documented behaviour, and the run goes on.

Also a real SIGKILL in the middle of a video's frames: the next run ends with each
frame exactly once.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")

import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from zeroshot_vision import SearchEngine  # noqa: E402
from zeroshot_vision._errors import ImageDecodeError  # noqa: E402
from zeroshot_vision._images.video import VideoOptions, read_frames, select_frames  # noqa: E402
from zeroshot_vision._index.folder import IndexFolder  # noqa: E402
from zeroshot_vision.testing._video_clips import write_clip  # noqa: E402


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.mp4"
    write_clip(path, [skimage.data.astronaut(), skimage.data.coffee()], seconds=1.0, fps=10)
    return path


def _audio_only(path: Path) -> None:
    with av.open(os.fspath(path), "w") as container:
        stream: Any = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.linspace(0, 400, 16000)) * 0.3).astype(np.float32)[None, :]
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[:, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_bad_videos_are_recorded_failures_and_the_run_goes_on(
    tmp_path: Path, tiny_encoder, good: Path
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(good, folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buffer, "JPEG")
    # Documented: a still image with a video's name is what FFmpeg reads it as, a video
    # of one frame.
    (folder / "photo.mov").write_bytes(buffer.getvalue())
    (folder / "cut.mp4").write_bytes(good.read_bytes()[:3000])  # truncated before its index
    (folder / "garbage.mkv").write_bytes(os.urandom(5000))
    _audio_only(folder / "sound.m4v")
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, video=True)
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert set(failed) == {"empty.mp4", "cut.mp4", "garbage.mkv", "sound.m4v"}
        assert "empty" in failed["empty.mp4"]
        assert "no video stream" in failed["sound.m4v"]
        assert sorted(report.indexed) == [
            "good.mp4#t=0.500",
            "good.mp4#t=1.500",
            "photo.mov#t=0.000",
        ]
        counts = IndexFolder.open(tmp_path / "index").counts()
        assert counts == {"indexed": 3, "failed": 4, "pending": 0}
        # Recorded: an unchanged bad file is not tried again.
        again = engine.index_folder(folder, video=True)
        assert again.indexed == () and len(again.known_failed) == 4
        # A bad file that becomes a good video gets its frames; its failure row goes.
        shutil.copy(good, folder / "empty.mp4")
        fixed = engine.index_folder(folder, video=True)
        assert sorted(fixed.indexed) == ["empty.mp4#t=0.500", "empty.mp4#t=1.500"]
        assert "empty.mp4" in fixed.removed
        assert IndexFolder.open(tmp_path / "index").counts()["failed"] == 3


def test_a_video_cut_after_its_first_frames_keeps_what_decodes(tmp_path: Path) -> None:
    """Documented: a stream truncated mid-way gives the frames before the cut (mkv keeps
    its index at the start, so the file still opens)."""
    whole = tmp_path / "whole.mkv"
    write_clip(whole, [skimage.data.astronaut(), skimage.data.coffee()], seconds=2.0, fps=10)
    cut = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    selection = select_frames(cut, VideoOptions(max_interval=1.0))
    assert (
        1
        <= len(selection.frames)
        < len(select_frames(whole, VideoOptions(max_interval=1.0)).frames) + 1
    )
    assert selection.frames[0].timestamp == 0.5


def test_rotated_phone_video_is_decoded_upright(tmp_path: Path) -> None:
    # A phone held upright stores landscape frames and a display matrix: turn 90° clockwise.
    upright = np.zeros((160, 120, 3), np.uint8)
    upright[:40] = 255  # white at the top of the upright picture
    stored = np.rot90(upright, k=1)  # what the sensor wrote: the top is on the left
    path = tmp_path / "phone.mp4"
    write_clip(path, [stored], seconds=1.0, fps=10, size=(160, 120), noise=0.0, rotate=90)
    selection = select_frames(path, VideoOptions())
    assert (selection.facts["width"], selection.facts["height"]) == (120, 160)
    ((_, frame),) = list(read_frames(path, [selection.frames[0].position], VideoOptions()))
    pixels = np.asarray(frame.convert("L"), np.float32)
    assert frame.size == (120, 160)
    assert pixels[:30].mean() > 200 and pixels[60:].mean() < 60


def test_huge_frames_are_downscaled_at_decode(tmp_path: Path) -> None:
    path = tmp_path / "big.mp4"
    write_clip(path, [skimage.data.astronaut()], seconds=0.5, fps=4, size=(1920, 1080))
    options = VideoOptions(max_side=256)
    selection = select_frames(path, options)
    assert (selection.facts["width"], selection.facts["height"]) == (1920, 1080)
    ((_, frame),) = list(read_frames(path, [selection.frames[0].position], options))
    assert frame.size == (256, 144)


def test_timestamps_going_backwards_never_give_two_frames_one_id(tmp_path: Path) -> None:
    """Documented: frames whose time goes back are never chosen; ids stay unique."""
    path = tmp_path / "backwards.mkv"
    with av.open(os.fspath(path), "w") as container:
        stream: Any = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        stream.time_base = Fraction(1, 100)
        # Presentation times (hundredths) jump back after the sixth frame; decoding times
        # stay increasing, as a muxer requires.
        shown = [20, 30, 40, 50, 60, 70, 30, 40, 50, 80, 90, 100, 110]
        for n, pts in enumerate(shown):
            shade = 40 if n < 6 else 220  # a cut where the clock jumps
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), shade, np.uint8), "rgb24")
            frame.pts = n
            for packet in stream.encode(frame):  # intra-only: one packet per frame, in order
                packet.pts, packet.dts = pts, n
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    selection = select_frames(path, VideoOptions(max_interval=0.2))
    times = [frame.timestamp for frame in selection.frames]
    assert times == sorted(set(times))  # strictly increasing: unique ids
    assert max(times) >= 0.8  # frames after the jump back are still chosen


def test_not_a_video_raises_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "x.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(100))
    with pytest.raises(ImageDecodeError, match=r"x\.webm"):
        select_frames(path, VideoOptions())


# -- a real SIGKILL in the middle of a video's frames ---------------------------------

_SLOW_INDEX = textwrap.dedent(
    """
    import sys, time
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._cli import main
    real_commit = SearchEngine.commit
    def slow_commit(self):
        time.sleep(0.05)
        real_commit(self)
    SearchEngine.commit = slow_commit
    sys.exit(main(sys.argv[1:]))
    """
)


def _indexed(index: Path) -> int:
    if not (index / "settings.json").exists():
        return 0
    try:
        return IndexFolder.open(index).counts()["indexed"]
    except Exception:
        return 0


@pytest.mark.slow
def test_sigkill_mid_video_resumes_without_duplicate_or_missing_frames(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    write_clip(folder / "long.mp4", photos * 2, seconds=1.0, fps=10)
    index = tmp_path / "index"
    command = [
        sys.executable, "-c", _SLOW_INDEX, "index", str(folder), "--index", str(index),
        "--model", str(tiny_model_dir), "--batch-size", "2", "--video", "--video-interval",
        "0.25",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    expected = [
        f.timestamp
        for f in select_frames(folder / "long.mp4", VideoOptions(max_interval=0.25)).frames
    ]
    assert len(expected) == 24
    for kill_after in (0.0, 0.15):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 180
            baseline = _indexed(index)
            while _indexed(index) <= baseline and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.005)
            time.sleep(kill_after)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert 0 < _indexed(index) < len(expected)  # killed in the middle of the video
    finished = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["skipped"] >= 2 and summary["count"] == len(expected)
    store = IndexFolder.open(index).open_store()
    assert sorted(store.ids()) == sorted(f"long.mp4#t={t:.3f}" for t in expected)
    assert len(store) == len(expected)  # exactly one vector per frame
    assert IndexFolder.open(index).counts() == {"indexed": len(expected), "failed": 0, "pending": 0}
