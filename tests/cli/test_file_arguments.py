"""Files named on the command line (issue 29, items 4 and 14).

Writers replace only regular files: ``--out`` naming a FIFO, a device (through a link to
``/dev/null``) or a folder is a one-line error that leaves it as it was. Readers read
only regular files, bounded: ``/dev/zero`` and a FIFO are refused at once rather than
read until memory runs out or waited on forever. Commands that might hang or exhaust
memory on a regression run in a child process with a timeout and a memory cap.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zeroshot_vision import InvalidInputError
from zeroshot_vision._cli import EXIT_ERROR, main
from zeroshot_vision.ingest._exchange import import_index

DIM = 4


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A small index folder made by importing vectors (no model is loaded)."""
    vectors = np.eye(DIM, dtype=np.float32)
    table = pa.table(
        {
            "id": [f"photo-{i}" for i in range(DIM)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
        }
    )
    source = tmp_path / "vectors.parquet"
    pq.write_table(table, source)
    folder = tmp_path / "index"
    assert import_index(source, folder, model="tiny") == DIM
    return folder


def one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zsv: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], err


def test_export_refuses_a_fifo_and_leaves_it(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["export", "--index", str(index), "--out", str(fifo)]) == EXIT_ERROR
    one_error_line(capsys.readouterr().err, "FIFO", str(fifo))
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert not list(tmp_path.glob(".pipe*"))  # no temp file left behind


def test_export_refuses_a_device_behind_a_link(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A link to /dev/null rather than /dev/null itself: should the check regress, the
    # rename replaces the link, never the machine's device.
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    assert main(["export", "--index", str(index), "--out", str(link)]) == EXIT_ERROR
    one_error_line(capsys.readouterr().err, "device")
    assert link.is_symlink() and os.readlink(link) == os.devnull


@pytest.mark.parametrize("where", ["root", "folder"])
def test_export_to_a_folder_is_one_line(
    where: str, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = "/" if where == "root" else str(tmp_path)
    assert main(["export", "--index", str(index), "--out", out]) == EXIT_ERROR
    one_error_line(capsys.readouterr().err, "folder")


def test_export_still_replaces_a_regular_file(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vectors-out.parquet"
    out.write_bytes(b"an older export")
    assert main(["export", "--index", str(index), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == DIM


def test_every_atomic_writer_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from zeroshot_vision._files import write_atomic

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="FIFO"):
        write_atomic(fifo, b"data")
    with pytest.raises(InvalidInputError, match="folder"):
        write_atomic(tmp_path, b"data")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temp file left
    write_atomic(tmp_path / "new.txt", b"data")  # a new path, as before
    write_atomic(tmp_path / "new.txt", b"again")  # a regular file, replaced
    assert (tmp_path / "new.txt").read_bytes() == b"again"


def test_bounded_reads_refuse_devices_fifos_and_giant_files(tmp_path: Path) -> None:
    from zeroshot_vision._files import read_regular

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: an ordinary open would wait forever
    with pytest.raises(InvalidInputError, match="FIFO"):
        read_regular(fifo, max_bytes=100)
    with pytest.raises(InvalidInputError, match="device"):
        read_regular("/dev/zero", max_bytes=100)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(InvalidInputError, match="larger than 100 bytes"):
        read_regular(big, max_bytes=100)
    assert read_regular(big, max_bytes=101) == b"x" * 101


def _limit_memory() -> None:  # in the child: a regression fails fast instead of swapping
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def run_zsv(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zeroshot_vision._cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )


@pytest.mark.parametrize("kind", ["device", "fifo"])
@pytest.mark.parametrize("command", ["serve", "undo"])
def test_file_arguments_are_bounded_regular_files(
    command: str, kind: str, index: Path, tmp_path: Path
) -> None:
    if kind == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    else:
        path = "/dev/zero"
    argv = {
        "serve": ["serve", "--index", str(index), "--api-key-file", path],
        "undo": ["duplicates", "--index", str(index), "--undo", path],
    }[command]
    try:
        done = run_zsv(*argv, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"zsv {command} waited on {path} for a minute")
    assert done.returncode == EXIT_ERROR, done.stderr
    one_error_line(done.stderr, "FIFO" if kind == "fifo" else "device")


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:99999", "http://:8000", "http://host:port"]
)
def test_a_malformed_server_url_is_one_line(
    url: str, index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "a dog", "--index", str(index), "--server", url]) == EXIT_ERROR
    one_error_line(capsys.readouterr().err, "--server")
