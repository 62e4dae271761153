"""Video frames on Pinecone (the loopback test server, through the real SDK): frame
metadata within Pinecone's limits and filterable, a deleted video's frames deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("pinecone")

import skimage.data

from zeroshot_vision import SearchEngine
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision.stores._pinecone import MAX_METADATA_BYTES
from zeroshot_vision.testing import PineconeTestServer
from zeroshot_vision.testing._video_clips import write_clip


def test_video_frames_on_pinecone(
    tmp_path: Path, tiny_encoder, photo_paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "test")
    folder = tmp_path / "media"
    folder.mkdir()
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    write_clip(
        folder / "trip.mov",
        photos,
        seconds=1.0,
        fps=10,
        tags={"creation_time": "2023-05-01T12:00:00Z", "location": "+48.8584+002.2945/"},
    )
    shutil.copy(photo_paths[0], folder / photo_paths[0].name)
    with (
        PineconeTestServer(dimension=tiny_encoder.dim) as host,
        SearchEngine.create(
            tmp_path / "index", encoder=tiny_encoder, store="pinecone", store_options={"host": host}
        ) as engine,
    ):
        report = engine.index_folder(folder, video=VideoOptions(max_interval=0.5))
        assert not report.failed
        frames = sorted(i for i in engine.store.ids() if i.startswith("trip.mov#t="))
        assert len(frames) == 6
        meta = engine.store.fetch([frames[2]])[frames[2]].metadata
        assert set(meta) >= {"path", "timestamp", "scene_start", "scene_end", "duration"}
        assert len(json.dumps(meta, separators=(",", ":")).encode()) < MAX_METADATA_BYTES
        # Date and place filters work for videos as for photos.
        assert (meta["year"], meta["latitude"]) == (2023, 48.8584)
        later = engine.search("a cat", k=10, filter={"timestamp": {"$gte": 2.0}})
        assert later and all(r.metadata["timestamp"] >= 2.0 for r in later)
        in_may = engine.search("a cat", k=10, filter={"month": 5})
        assert {r.id for r in in_may} == set(frames)
        grouped = engine.search("a cat", k=5, group_by="file")
        assert [r.id.split("#t=")[0] for r in grouped].count("trip.mov") == 1
        # Deleting the video deletes all of its frames there too.
        (folder / "trip.mov").unlink()
        removed = engine.index_folder(folder, video=True, allow_removal=True)
        assert sorted(removed.removed) == frames
        assert set(engine.store.ids()) == {photo_paths[0].name}
