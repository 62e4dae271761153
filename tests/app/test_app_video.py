"""The app shows video frames: a thumbnail of the frame, and "Open" plays the video from
the moment (Streamlit's video element with the frame's start time)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("streamlit")

import skimage.data
from PIL import Image
from streamlit.testing.v1 import AppTest

from zeroshot_vision import SearchEngine
from zeroshot_vision._app import SCRIPT
from zeroshot_vision._app.logic import frame_thumbnail_jpeg
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision._photos import moment_for_id
from zeroshot_vision.testing._video_clips import write_clip


@pytest.fixture(scope="module")
def video_index(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:
    root = tmp_path_factory.mktemp("app-video")
    (root / "media").mkdir()
    scenes = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    write_clip(root / "media" / "trip.mp4", scenes, seconds=1.0, fps=10)
    with SearchEngine.create(root / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(root / "media", video=VideoOptions(max_interval=5.0))
    return root


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_a_frame_is_shown_as_its_thumbnail_and_opens_the_video_at_its_moment(
    monkeypatch: pytest.MonkeyPatch, video_index: Path
) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--index", str(video_index / "index")])
    at = AppTest.from_file(str(SCRIPT), default_timeout=120).run()
    at.text_input(key="query").input("a cup of coffee").run()
    assert not at.exception and not at.error
    assert not at.warning  # every frame has a thumbnail
    opens = [b for b in at.button if str(b.key).startswith("open-trip.mp4#t=")]
    assert len(opens) == 3
    target = next(b for b in opens if b.key == "open-trip.mp4#t=2.500")
    target.click().run()
    assert not at.exception
    # An HTML5 player of the video the app serves, starting at the moment to the
    # millisecond (the media fragment; Streamlit's st.video would round down to 2 s).
    (player,) = at.get("html")
    match = re.fullmatch(
        r'<video class="zsv-moment" controls preload="metadata" data-start="2\.500" '
        r'src="(/(?:mock/)?media/[0-9a-f]+\.mp4)#t=2\.500" style="width: 100%"></video>',
        player.proto.body,
    )
    assert match, player.proto.body
    shown = "\n".join(str(c.value) for c in at.caption)
    assert r"media/trip\.mp4 @ 00\:02" in shown  # markdown-escaped: path @ 00:02


def test_frame_thumbnail_and_moment_follow_the_serving_rule(
    video_index: Path, tiny_encoder
) -> None:
    with SearchEngine.open(video_index / "index", encoder=tiny_encoder) as engine:
        moment = moment_for_id(engine.store, "trip.mp4#t=1.500", folder=engine.folder)
        assert moment == (video_index / "media" / "trip.mp4", 1.5)
        assert moment_for_id(engine.store, "missing#t=1.000", folder=engine.folder) is None
        # A stored path outside the index's source folders is never handed out.
        record = engine.store.fetch(["trip.mp4#t=1.500"])["trip.mp4#t=1.500"]
        engine.store.upsert(
            ["stray#t=1.000"],
            record.vector[None, :],
            [{**record.metadata, "path": str(video_index / "elsewhere.mp4")}],
        )
        assert moment_for_id(engine.store, "stray#t=1.000", folder=engine.folder) is None
    thumbnail = frame_thumbnail_jpeg(video_index / "media" / "trip.mp4", 1.5)
    with Image.open(__import__("io").BytesIO(thumbnail)) as image:
        pixels = image.convert("RGB").resize((16, 12))
    coffee = Image.fromarray(skimage.data.coffee()).resize((16, 12))
    cat = Image.fromarray(skimage.data.chelsea()).resize((16, 12))

    def distance(a: Image.Image, b: Image.Image) -> float:
        import numpy as np

        return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())

    assert distance(pixels, coffee) < distance(pixels, cat)  # the second scene's photo
