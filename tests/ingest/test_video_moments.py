"""Results are moments: hits carry timestamps, ``group_by="file"`` folds a video's
moments into its best one, ``zsv search`` prints ``path @ 01:23`` and the server returns
timestamps."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("av")

import skimage.data

from zeroshot_vision import SearchEngine
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision._results import clock, group_by_file
from zeroshot_vision._types import SearchResult
from zeroshot_vision.testing._video_clips import write_clip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_encoder, photo_paths) -> dict[str, Path]:
    """A long video (six scenes, frames every 0.5 s), a short one and two photos."""
    root = tmp_path_factory.mktemp("moments")
    folder = root / "media"
    folder.mkdir()
    astronaut, coffee, cat = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    write_clip(folder / "long.mp4", [coffee, cat, astronaut, cat, coffee, cat], seconds=1.0, fps=10)
    write_clip(folder / "short.webm", [astronaut], seconds=1.0, fps=10, codec="libvpx-vp9")
    for photo in photo_paths[3:5]:
        shutil.copy(photo, folder / photo.name)
    with SearchEngine.create(root / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(folder, video=VideoOptions(max_interval=0.5))
    assert not report.failed
    return {"folder": folder, "index": root / "index"}


def test_clock_reads_like_a_player() -> None:
    assert [clock(s) for s in (0.0, 9.99, 83.2, 3723.0)] == ["00:00", "00:09", "01:23", "1:02:03"]


def test_group_by_file_keeps_the_best_moment_and_folds_the_others() -> None:
    found = [
        SearchResult(id="a.mp4#t=3.000", score=0.9, probability=None, metadata={"timestamp": 3.0}),
        SearchResult(id="b.jpg", score=0.8, probability=None),
        SearchResult(id="a.mp4#t=1.000", score=0.7, probability=None, metadata={"timestamp": 1.0}),
        SearchResult(id="c.mp4#t=0.500", score=0.6, probability=None),
    ]
    grouped = group_by_file(found, k=2)
    assert [r.id for r in grouped] == ["a.mp4#t=3.000", "b.jpg"]
    assert [m.id for m in grouped[0].moments] == ["a.mp4#t=1.000"]
    assert grouped[0].timestamp == 3.0 and grouped[1].timestamp is None


def test_search_group_by_file_gives_one_result_per_file(library, tiny_encoder) -> None:
    with SearchEngine.open(library["index"], encoder=tiny_encoder) as engine:
        flat = engine.search_by_image(skimage.data.chelsea(), k=30)
        grouped = engine.search_by_image(skimage.data.chelsea(), k=10, group_by="file")
        texts = engine.search("a cat", k=3, group_by="file")
        with pytest.raises(ValueError, match="group_by"):
            engine.search("a cat", group_by="folder")
    # The long video holds 12 frames: ungrouped, it fills the page.
    assert sum(r.id.startswith("long.mp4#") for r in flat[:10]) >= 6
    files = [r.id.split("#t=")[0] for r in grouped]
    assert len(files) == len(set(files)) == 4  # two videos, two photos
    best = grouped[files.index("long.mp4")]
    assert best.timestamp is not None and len(best.moments) == 11
    assert all(m.score <= best.score for m in best.moments)
    # The best moment of the long video for the cat photo lies in a cat scene.
    assert int(best.timestamp) in (1, 3, 5)
    assert len(texts) == 3 and len({r.id.split("#t=")[0] for r in texts}) == 3
    payload = json.loads(grouped.to_json())
    entry = payload[files.index("long.mp4")]
    assert len(entry["moments"]) == 11 and entry["metadata"]["timestamp"] == best.timestamp


def test_zsv_search_prints_path_at_the_moment(
    library,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zeroshot_vision._cli import main

    # Wide enough that the table does not shorten the long temporary path (xdist's
    # worker folders make it longer than a terminal's default 80 columns allow).
    monkeypatch.setenv("COLUMNS", "400")

    cat = library["folder"].parent / "cat.png"
    from PIL import Image

    Image.fromarray(skimage.data.chelsea()).save(cat)
    # Every file of the library (four), so the line checked is there whatever the ranks.
    argv = ["search", "--image", str(cat), "--index", str(library["index"]), "-k", "4"]
    assert main([*argv, "--group-by", "file", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    long_video = str(library["folder"] / "long.mp4")
    line = next((line for line in out.splitlines() if long_video in line), out)  # out: shown
    assert f"{long_video} @ 00:0" in line


@pytest.fixture(scope="module")
def live(library, tiny_encoder) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    from tests.helpers import open_service, start_server, stop_server

    from zeroshot_vision.server._metrics import ServerMetrics

    metrics = ServerMetrics()
    service = open_service(library["index"], tiny_encoder, metrics=metrics)
    server, running = start_server(service, metrics=metrics)
    try:
        yield server
    finally:
        stop_server(running)
        service.close()


def test_server_returns_timestamps_and_moments(live, library) -> None:
    import httpx

    from zeroshot_vision.server._client import ServerClient

    body = {"query": "a cat", "k": 5, "group_by": "file"}
    with httpx.Client(base_url=live.url, timeout=30) as http:
        answer = http.post("/v1/search", json=body).json()
    rows = {row["id"].split("#t=")[0]: row for row in answer["results"]}
    assert rows["long.mp4"]["timestamp"] == rows["long.mp4"]["metadata"]["timestamp"]
    assert len(rows["long.mp4"]["moments"]) == 11
    assert all(isinstance(m["timestamp"], float) for m in rows["long.mp4"]["moments"])
    photo = next(row for key, row in rows.items() if "#t=" not in row["id"])
    assert "timestamp" not in photo and "moments" not in photo  # as zsv search --json
    with ServerClient(live.url) as client:
        found = client.search(index=None, query="a cat", k=5, group_by="file")
    video = next(r for r in found if r.id.startswith("long.mp4#"))
    assert video.timestamp is not None and len(video.moments) == 11
    assert all(m.timestamp is not None for m in video.moments)


def test_duplicates_never_pair_frames_of_one_video(tmp_path: Path, tiny_encoder) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    still = skimage.data.coffee()
    # One long still scene: its frames are near-identical; a copy of the video is a duplicate.
    write_clip(folder / "a.mp4", [still], seconds=2.0, fps=10, noise=0.0)
    shutil.copy(folder / "a.mp4", folder / "copy.mp4")
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(folder, video=VideoOptions(max_interval=0.5))
        assert len(engine.store) == 8
        groups = engine.duplicates(threshold=0.98)
    for group in groups:
        for pair in group.pairs:
            assert pair.first.split("#t=")[0] != pair.second.split("#t=")[0], pair
    paired = {(p.first, p.second) for g in groups for p in g.pairs}
    assert ("a.mp4#t=0.200", "copy.mp4#t=0.200") in paired  # the copied video is found
