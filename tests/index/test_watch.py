"""``watch_folders`` / ``zsv index --watch``: the index follows a folder as it changes.

Also the index guarantees under ``--watch``: a SIGKILL while the watcher encodes, saves
or has just committed a burst leaves an index that opens, whose store and state agree,
that a plain ``zsv index`` completes, and no decoding process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.helpers import alive_after, child_pids, make_jpeg

from zeroshot_vision import IndexDamagedError, SearchEngine
from zeroshot_vision._files import is_temp_file
from zeroshot_vision._index import IndexFolder
from zeroshot_vision._types import FolderReport
from zeroshot_vision.ingest._watch import WatchState, watch_folders
from zeroshot_vision.stores._faiss import FaissStore

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


# `zsv` as a terminal starts it: SIGINT raising KeyboardInterrupt and not blocked. A child
# inherits an ignored SIGINT and a blocked mask from whoever starts it, and under xdist
# that is a worker process that other tests' libraries may have changed (CI saw this
# test's Ctrl-C ignored: the process sat in its watch loop). What was inherited goes to
# stderr, for the failure message.
_AS_A_TERMINAL_STARTS_IT = textwrap.dedent(
    """
    import signal, sys
    inherited = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))
    print("inherited SIGINT handler and blocked signals:", inherited, file=sys.stderr)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from zeroshot_vision._cli import run
    sys.argv[0] = "zsv"
    sys.exit(run())
    """
)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_zsv_index_watch_stops_cleanly_on_ctrl_c(
    stop_signal: signal.Signals, tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "first.png")
    index = tmp_path / "index"
    process = subprocess.Popen(
        [sys.executable, "-c", _AS_A_TERMINAL_STARTS_IT, "index", str(photos),
         "--index", str(index), "--model", str(tiny_model_dir), "--watch", "--debounce", "0.3"],
        # faulthandler: a SIGABRT makes the process print every thread's stack.
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONFAULTHANDLER": "1"},
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
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, err = process.communicate(timeout=30)
            pytest.fail(f"still watching 60 s after {stop_signal.name}; its stacks:\n{err[-6000:]}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # reaped here, not in a later test's garbage collection
    assert process.returncode == 0, err
    assert "stopped watching" in err and "Traceback" not in err
    assert indexed_ids(index) == {"first.png", "second.png"}


# -- a real SIGKILL while the watcher works ----------------------------------------------

# The real `zsv index --watch`, with each temp file of a save held a moment before its
# rename, so that a kill can land inside a save (a commit lasts milliseconds otherwise).
_SLOW_SAVES = textwrap.dedent(
    """
    import sys, time
    from zeroshot_vision import _files
    from zeroshot_vision._cli import main
    real_write_temp = _files._write_temp
    def slow_write_temp(path, data):
        written = real_write_temp(path, data)
        time.sleep(0.1)
        return written
    _files._write_temp = slow_write_temp
    sys.exit(main(sys.argv[1:]))
    """
)

_BURST = 120


def _counts(index: Path) -> dict[str, int]:
    try:
        return IndexFolder.open(index).counts()
    except IndexDamagedError:  # read between two of the writer's steps: look again
        return {"indexed": 0, "failed": 0, "pending": 0}


def _saving(index: Path) -> bool:
    """Whether a save is under way: a temp file of the store's is not yet in place."""
    try:
        return any(is_temp_file(path.name) for path in (index / "store").iterdir())
    except FileNotFoundError:  # a temp file renamed while the folder was listed
        return False


# When to kill, once the burst is being indexed: as soon as the first batch is pending
# (upserted, not committed), while a commit's store files are being written, or just
# after the first commit of the burst (later batches pending again).
_MOMENTS: dict[str, Callable[[Path], bool]] = {
    "encoding": lambda index: _counts(index)["pending"] > 0,
    "saving": _saving,
    "committed": lambda index: _counts(index)["indexed"] > 1,
}


def _on_disk(photos: Path) -> set[str]:
    return {path.relative_to(photos).as_posix() for path in photos.rglob("*") if path.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for children")
@pytest.mark.parametrize("moment", list(_MOMENTS))
def test_zsv_index_watch_killed_mid_burst_leaves_an_index_the_next_run_completes(
    moment: str,
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from zeroshot_vision._cli import EXIT_OK, main

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "first.png")
    index = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    model = ["--model", str(tiny_model_dir)]
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVES, "index", str(photos), "--index", str(index), *model,
         "--watch", "--debounce", "0.3", "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("indexed 1,"), process.communicate()
        time.sleep(1.0)  # the observer is up
        burst = photos / "burst"
        burst.mkdir()
        for i in range(_BURST):
            photo = photo_paths[i % len(photo_paths)]
            shutil.copy(photo, burst / f"{i:04d}{photo.suffix}")
        reached = _MOMENTS[moment]
        deadline = time.monotonic() + 60
        while not reached(index):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the watcher never got to {moment}"
            time.sleep(0.002)
        decoders = child_pids(process.pid)  # started by this run (a few ms to list)
        process.kill()
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert decoders and not alive_after(decoders)  # no orphaned decoding process

    # What the kill left opens, and the store and the state agree: every vector belongs
    # to a file of the state, and every file the state calls indexed has its vector.
    folder = IndexFolder.open(index)
    entries = folder.entries()
    kept = {item for item, entry in entries.items() if entry.status == "indexed"}
    with folder.open_store() as store:
        assert isinstance(store, FaissStore)
        in_store = set(store.ids())
        assert store._index.ntotal == len(in_store)
    assert kept <= in_store <= set(entries)
    assert "first.png" in kept and len(kept) < _BURST + 1  # killed mid-burst, not after
    left = [path.name for path in (index / "store").iterdir() if is_temp_file(path.name)]
    # The kill landed where it was meant to.
    if moment == "encoding":
        assert len(kept) == 1 and set(entries) - kept
    elif moment == "saving":
        assert left
    else:
        assert len(kept) > 1

    # The next plain `zsv index` (in this process: it needs no second start of Python).
    assert main(["index", str(photos), "--index", str(index), *model, "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    on_disk = _on_disk(photos)
    assert summary["count"] == len(on_disk) == _BURST + 1
    assert summary["skipped"] == len(kept)  # what was committed was not encoded again
    assert indexed_ids(index) == on_disk
    assert IndexFolder.open(index).counts() == {"indexed": len(on_disk), "failed": 0, "pending": 0}
    with IndexFolder.open(index).open_store() as store:
        assert isinstance(store, FaissStore)
        assert set(store.ids()) == on_disk and store._index.ntotal == len(on_disk)
    assert not [path for path in index.rglob("*") if is_temp_file(path.name)]
