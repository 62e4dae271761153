"""Exclusive creation and one writer, proven with real processes released together.

Each race runs in two long-lived worker processes that block on a line from their stdin;
the test writes that line to both at once (the barrier), then reads one result line from
each. Thirty rounds per race, every wait bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision import IndexExistsError, IndexLockedError, InvalidInputError
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._index import IndexFolder
from zeroshot_vision.stores._faiss import FaissStore
from zeroshot_vision.stores._parquet import export_store

ROUNDS = 30
DEADLINE_S = 60.0

_WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from zeroshot_vision._errors import IndexExistsError, IndexLockedError
    from zeroshot_vision._index import IndexFolder

    task, root, dim = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    print("ready", flush=True)
    for line in sys.stdin:  # one line per round: the barrier
        folder_path = root / line.strip()
        try:
            if task == "create":
                IndexFolder.create(folder_path, model="m", dim=dim)
                outcome = "created"
            else:
                folder = IndexFolder.open(folder_path)
                folder.lock()
                outcome = "locked"
        except (IndexExistsError, IndexLockedError) as exc:
            outcome = type(exc).__name__
        except Exception as exc:
            outcome = "unexpected " + repr(exc)
        print(json.dumps({"pid": os.getpid(), "dim": dim, "outcome": outcome}), flush=True)
        if task == "lock":
            sys.stdin.readline()  # hold the lock until both have tried
            if outcome == "locked":
                folder.unlock()
            print("released", flush=True)
    """
)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        _stop(proc)


def _start(task: str, root: Path, dims: tuple[int, int], into: list[subprocess.Popen[str]]) -> None:
    for dim in dims:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, task, str(root), str(dim)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        into.append(proc)
    for proc in into:
        assert _read(proc) == "ready"


def _read(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"worker {proc.pid} died (exit {proc.poll()})"
    return line.strip()


def _release(procs: list[subprocess.Popen[str]], line: str) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
    for proc in procs:  # written to both before either is flushed: released together
        assert proc.stdin is not None
        proc.stdin.flush()


def test_two_processes_creating_one_index_exactly_one_wins(
    tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    _start("create", tmp_path, (8, 16), workers)
    start = time.monotonic()
    for i in range(ROUNDS):
        _release(workers, f"round-{i}")
        results = [json.loads(_read(proc)) for proc in workers]
        outcomes = sorted(r["outcome"] for r in results)
        assert outcomes == ["IndexExistsError", "created"], (i, results)
        winner = next(r for r in results if r["outcome"] == "created")
        manifest = IndexFolder.open(tmp_path / f"round-{i}").manifest
        assert manifest.dim == winner["dim"]  # the winner's manifest, never replaced
        assert time.monotonic() - start < DEADLINE_S
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(set(leftovers)) == ["settings.json"]  # no temp files left behind


def test_two_processes_locking_one_index_exactly_one_writes(
    tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    for i in range(ROUNDS):
        IndexFolder.create(tmp_path / f"round-{i}", model="m", dim=8)
    _start("lock", tmp_path, (8, 8), workers)
    start = time.monotonic()
    for i in range(ROUNDS):
        _release(workers, f"round-{i}")
        results = [json.loads(_read(proc)) for proc in workers]
        assert sorted(r["outcome"] for r in results) == ["IndexLockedError", "locked"], results
        _release(workers, "release")
        assert [_read(proc) for proc in workers] == ["released", "released"]
        assert time.monotonic() - start < DEADLINE_S


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from zeroshot_vision._index import IndexFolder

    folder = IndexFolder.open(sys.argv[1])
    folder.lock()
    print("locked", flush=True)
    hold = float(sys.argv[2])
    if hold > 0:
        time.sleep(hold)
    else:
        sys.stdin.readline()
    folder.unlock()
    """
)


@pytest.fixture
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    IndexFolder.create(folder, model="m", dim=8)
    return folder


def _hold(index: Path, seconds: float = 0.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(index), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert _read(proc) == "locked"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_told_which_process_holds_the_lock_and_since_when(
    index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = _hold(index)
    try:
        owner = rf"locked by process {holder.pid} since 20"
        with pytest.raises(IndexLockedError, match=owner) as e:
            IndexFolder.open(index).lock()
        assert e.value.pid == holder.pid
        assert e.value.since is not None and e.value.since.endswith("Z")
        # Readers are never blocked: the manifest, the counts and `zsv info` all work.
        assert IndexFolder.open(index).counts()["indexed"] == 0
        assert main(["info", "--index", str(index)]) == EXIT_OK
        capsys.readouterr()
        vectors = index.parent / "vectors.parquet"
        store = FaissStore(8)
        store.upsert(["a"], np.eye(1, 8, dtype=np.float32), [None])
        export_store(store, vectors)
        started = time.monotonic()
        code = main(["import", str(vectors), "--index", str(index), "--wait", "0.3"])
        waited = time.monotonic() - started
        err = capsys.readouterr().err
        assert code == EXIT_ERROR
        assert f"locked by process {holder.pid}" in err and "waited 0.3 s" in err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert 0.3 <= waited < 30
    finally:
        _stop(holder)
    assert not (index / ".lock.owner").exists()  # removed on release


def test_a_writer_waits_for_the_lock_up_to_its_timeout(index: Path) -> None:
    holder = _hold(index, seconds=0.5)
    try:
        folder = IndexFolder.open(index)
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match=r"waited 0\.05 s"):
            folder.lock(wait=0.05)
        folder.lock_wait = 20.0
        folder.lock()  # waits until the holder lets go, well before 20 s
        assert time.monotonic() - started < 20
        assert folder.lock_owner() is not None
        assert folder.lock_owner().pid == os.getpid()  # type: ignore[union-attr]
        folder.unlock()
    finally:
        _stop(holder)


def test_a_damaged_owner_record_still_gives_a_one_line_lock_error(index: Path) -> None:
    holder = _hold(index)
    try:
        (index / ".lock.owner").write_text('{"pid": "nope"', encoding="utf-8")
        with pytest.raises(IndexLockedError, match="locked by another process") as e:
            IndexFolder.open(index).lock()
        assert e.value.pid is None
    finally:
        _stop(holder)


def test_creating_over_an_index_is_index_exists_error(index: Path) -> None:
    with pytest.raises(IndexExistsError, match="already holds an index") as e:
        IndexFolder.create(index, model="m", dim=8)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, InvalidInputError)


def test_a_folder_holding_only_a_creation_in_progress_is_still_available(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    (folder / ".settings.json.abcd1234.tmp").write_bytes(b"{}")  # another creator's temp file
    IndexFolder.check_available(folder)
    (folder / "notes.txt").write_text("theirs", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty"):
        IndexFolder.check_available(folder)


@pytest.mark.parametrize("wait", [-1.0, float("nan"), float("inf")])
def test_a_wait_that_would_block_forever_is_refused(index: Path, wait: float) -> None:
    with pytest.raises(InvalidInputError, match="wait must be"):
        IndexFolder.open(index).lock(wait=wait)


def test_a_fifo_as_the_owner_record_does_not_block_the_second_writer(index: Path) -> None:
    holder = _hold(index)
    try:
        (index / ".lock.owner").unlink()
        os.mkfifo(index / ".lock.owner")
        with pytest.raises(IndexLockedError, match="locked by another process"):
            IndexFolder.open(index).lock()
    finally:
        _stop(holder)
