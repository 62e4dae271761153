"""``watch_folders`` / ``zsv index --watch``: the index follows a folder as it changes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.helpers import make_jpeg

from zeroshot_vision import SearchEngine
from zeroshot_vision.index import IndexFolder
from zeroshot_vision.index.watch import WatchState, watch_folders
from zeroshot_vision.types import FolderReport

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def indexed_ids(index: Path) -> set[str]:
    """The ids the index's state records as indexed (read as another process would)."""
    entries = IndexFolder.open(index).entries()
    return {item for item, entry in entries.items() if entry.status == "indexed"}


@pytest.fixture
def watched(
    tmp_path: Path, tiny_encoder: object, photo_paths: list[Path]
) -> Iterator[tuple[Path, Path, list[FolderReport]]]:
    """A folder watched by ``watch_folders`` in a thread that owns its engine."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "first.png")
    index = tmp_path / "index"
    reports: list[FolderReport] = []
    stop, ready = threading.Event(), threading.Event()

    def watch() -> None:
        with SearchEngine.create(index, encoder=tiny_encoder) as engine:  # type: ignore[arg-type]
            engine.index_folder(photos)
            ready.set()
            watch_folders(engine, [photos], debounce=0.5, stop=stop,
                          on_report=lambda _, report: reports.append(report))  # fmt: skip

    thread = threading.Thread(target=watch)
    thread.start()
    assert ready.wait(60)
    time.sleep(0.5)  # the observer is up
    try:
        yield photos, index, reports
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()


def test_added_changed_renamed_and_removed_files_are_followed(
    watched: tuple[Path, Path, list[FolderReport]], photo_paths: list[Path]
) -> None:
    photos, index, reports = watched
    (photos / "trip").mkdir()
    shutil.copy(photo_paths[1], photos / "trip" / "second.png")
    wait_for(lambda: indexed_ids(index) == {"first.png", "trip/second.png"})
    (photos / "trip" / "second.png").rename(photos / "trip" / "renamed.png")
    wait_for(lambda: indexed_ids(index) == {"first.png", "trip/renamed.png"})
    (photos / "first.png").unlink()
    wait_for(lambda: indexed_ids(index) == {"trip/renamed.png"})
    runs = len(reports)
    shutil.copy(photo_paths[2], photos / "trip" / "renamed.png")  # changed in place
    wait_for(lambda: any(r.indexed == ("trip/renamed.png",) for r in reports[runs:]))
    entry = IndexFolder.open(index).entries()["trip/renamed.png"]
    assert entry.size == (photos / "trip" / "renamed.png").stat().st_size


def test_a_burst_of_files_is_one_or_a_few_batched_runs(
    watched: tuple[Path, Path, list[FolderReport]],
) -> None:
    photos, index, reports = watched
    runs_before = len(reports)
    burst = photos / "burst"
    burst.mkdir()
    for i in range(300):
        (burst / f"{i:04d}.jpg").write_bytes(make_jpeg(i, (24, 24)))
    wait_for(lambda: len(indexed_ids(index)) == 301, timeout=120)
    runs = reports[runs_before:]
    assert sum(len(r.indexed) for r in runs) == 300 and len(runs) <= 3


def test_watch_state_debounces_and_bounds_the_delay(tmp_path: Path) -> None:
    state = WatchState([tmp_path])
    state.touch(str(tmp_path / "a.jpg"))
    assert state.due(debounce=10, max_delay=60) == []
    state.touch(str(tmp_path.parent / "elsewhere.jpg"))  # not a watched folder
    assert state.due(debounce=0, max_delay=60) == [tmp_path]
    assert state.due(debounce=0, max_delay=60) == []  # clean again
    state.touch(str(tmp_path / "b.jpg"))
    assert state.due(debounce=10, max_delay=0) == [tmp_path]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_zsv_index_watch_stops_cleanly_on_ctrl_c(
    stop_signal: signal.Signals, tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "first.png")
    index = tmp_path / "index"
    process = subprocess.Popen(
        [sys.executable, "-m", "zeroshot_vision.cli", "index", str(photos), "--index", str(index),
         "--model", str(tiny_model_dir), "--watch", "--debounce", "0.3"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("indexed 1,")
        time.sleep(1.0)  # the observer is up
        shutil.copy(photo_paths[1], photos / "second.png")
        line = process.stdout.readline()
        assert f"{photos}: indexed 1," in line and "2 in the index" in line
        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped watching" in err and "Traceback" not in err
    assert indexed_ids(index) == {"first.png", "second.png"}
