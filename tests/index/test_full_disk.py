"""Full disks and read-only folders, on a real small tmpfs (root only; skipped otherwise).

A commit, an export or a download that meets ``ENOSPC`` says so in one line and leaves
the last committed state readable; once space is freed, the next run continues. A
read-only index folder can be searched and described without a single write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.helpers import PhotoServer, small_tmpfs

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._index import FileEntry, IndexFolder, IndexWriter
from zeroshot_vision.ingest._exchange import export_index
from zeroshot_vision.unsplash._download import RetryPolicy, download_photos
from zeroshot_vision.unsplash._lite import UnsplashPhoto

DIM = 64


class Disk:
    """A tmpfs of a few MiB, mounted for one test, that can be filled and made read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Fill the disk, leaving about ``leave`` bytes free."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            written = 0
            with contextlib.suppress(OSError):
                while True:
                    written += os.write(fd, b"\0" * 4096)
            os.ftruncate(fd, max(0, written - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with small_tmpfs(tmp_path / "disk", "4m") as mount:
        yield Disk(mount)


def _batch(start: int, n: int) -> tuple[list[FileEntry], np.ndarray, list[Any]]:
    rows = np.random.default_rng(start).normal(size=(n, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    entries = [FileEntry(id=f"id-{i}", path=f"/p/{i}.jpg", size=1, mtime_ns=1)
               for i in range(start, start + n)]  # fmt: skip
    return entries, rows, [{"text": "x" * 200}] * n


def _commit(index: Path, start: int, n: int) -> None:
    folder = IndexFolder.open(index)
    with IndexWriter(folder.open_store(), folder) as writer:
        writer.write(*_batch(start, n))


def _count(index: Path) -> int:
    store = IndexFolder.open(index).open_store()
    try:
        return len(store)
    finally:
        store.close()


@pytest.mark.parametrize("leave", [0, 16_384, 131_072, 393_216])
def test_a_commit_on_a_full_disk_keeps_the_last_commit_and_the_next_run_continues(
    disk: Disk, leave: int, capsys: pytest.CaptureFixture[str]
) -> None:
    index = disk.path / "index"
    IndexFolder.create(index, model="m", dim=DIM)
    _commit(index, 0, 300)
    disk.fill(leave)
    with pytest.raises(OSError) as exc:
        for round_ in range(1, 6):  # space left may take a commit or two to run out
            _commit(index, round_ * 300, 300)
    assert exc.value.errno == errno.ENOSPC
    assert "\n" not in str(exc.value)
    committed = _count(index)
    assert committed % 300 == 0 and committed >= 300  # whole commits, nothing half-saved
    assert IndexFolder.open(index).counts()["indexed"] == committed
    assert main(["info", "--index", str(index)]) == EXIT_OK
    capsys.readouterr()
    disk.free()
    _commit(index, 10_000, 300)  # the next run
    assert _count(index) == committed + 300
    counts = IndexFolder.open(index).counts()
    # The batch that met the full disk may stay pending (its ids were recorded before the
    # store failed to save them): the next folder run re-encodes or drops those.
    assert counts["indexed"] == committed + 300 and counts["pending"] in (0, 300)
    leftovers = [p.name for p in (index / "store").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_export_to_a_full_disk_is_one_line_and_leaves_no_partial_file(
    disk: Disk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index"
    IndexFolder.create(index, model="m", dim=DIM)
    _commit(index, 0, 2_000)
    disk.fill(8_192)
    out = disk.path / "vectors.parquet"
    with pytest.raises(OSError) as exc:
        export_index(index, out)
    assert exc.value.errno == errno.ENOSPC
    assert not out.exists() and [p.name for p in disk.path.iterdir()] == ["filler"]
    assert main(["export", "--index", str(index), "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err and "Traceback" not in err
    disk.free()
    assert export_index(index, out) == 2_000


def test_a_download_to_a_full_disk_stops_with_one_line_and_the_next_run_continues(
    disk: Disk,
) -> None:
    ids = [f"p{i}" for i in range(12)]
    with PhotoServer() as server:
        photos = [UnsplashPhoto(photo_id=i, image_url=f"{server.url}/photo-{i}") for i in ids]
        fast = RetryPolicy(retries=0, backoff=0.001, max_backoff=0.01, max_retry_after=1.0)
        out = disk.path / "photos"
        out.mkdir()
        disk.fill(0)
        with pytest.raises(OSError, match="no space left for photos") as exc:
            download_photos(photos, out, workers=2, retry=fast)
        assert exc.value.errno == errno.ENOSPC and "\n" not in str(exc.value)
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files
        disk.free()
        report = download_photos(photos, out, workers=2, retry=fast)
        assert report.ok and report.downloaded + report.skipped == len(ids)
        assert sorted(p.stem for p in out.glob("*.jpg")) == sorted(ids)


def test_a_read_only_index_folder_is_searched_and_described_without_writes(
    disk: Disk, tiny_encoder: Any, photo_paths: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    index = disk.path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:3])
    before = {p: p.stat().st_mtime_ns for p in index.rglob("*")}
    disk.read_only()
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        assert len(engine.search("a photo", k=5)) == 3
    assert main(["info", "--index", str(index)]) == EXIT_OK
    assert "count:      3" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in index.rglob("*")} == before
    with (
        SearchEngine.open(index, encoder=tiny_encoder) as engine,
        pytest.raises(OSError, match="cannot write to the index folder"),
    ):
        engine.index_images(photo_paths[3:4])
