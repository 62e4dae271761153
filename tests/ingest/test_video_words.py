"""A text query finds the right video moment, honestly: words shown in one scene.

With random tiny SigLIP weights a query such as "a cat" cannot be expected to find the
cat's scene, and this test does not pretend it does. What can be tested for real is the
lexical side: RapidOCR reads the words on a sign filmed in the second scene (the real
PP-OCR models, no mocks), and a text query for them finds the video at a moment inside
that scene, in ``text`` and ``hybrid`` modes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("rapidocr", reason="the ocr extra is not installed")
pytest.importorskip("matplotlib", reason="the font comes with matplotlib")

import skimage.data
from PIL import Image

from zeroshot_vision import SearchEngine
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision.testing import write_clip
from zeroshot_vision.testing._text_photos import render_text

SIGN = ["CAFE CENTRAL", "OPEN DAILY"]


def test_words_filmed_in_one_scene_find_the_video_inside_that_scene(
    tmp_path: Path, tiny_encoder
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    sign = render_text(Image.fromarray(skimage.data.coffee()), SIGN, style="sign")
    scenes = [skimage.data.astronaut(), np.asarray(sign), skimage.data.chelsea()]
    write_clip(folder / "walk.mp4", scenes, seconds=1.0, fps=10, size=(640, 480))
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, ocr=True, video=VideoOptions(max_interval=5.0))
        assert not report.failed, report.failed
        assert sorted(report.indexed) == [
            "walk.mp4#t=0.500",
            "walk.mp4#t=1.500",
            "walk.mp4#t=2.500",
        ]
        for mode in ("text", "hybrid"):
            best = engine.search("cafe central", k=1, mode=mode)[0]
            assert best.id == "walk.mp4#t=1.500", (mode, best)
            assert best.metadata["scene_start"] <= best.timestamp < best.metadata["scene_end"]
            assert (best.metadata["scene_start"], best.metadata["scene_end"]) == (1.0, 2.0)
        # Words shown in no scene find no moment by their text.
        assert [r.id for r in engine.search("invoice", k=3, mode="text")] == []
