"""Odd files in a photo folder: none hangs or crashes a run; each is skipped with a reason.

The folder holds real photos beside a FIFO named ``a.jpg``, a symbolic link loop, a link
to ``/dev/zero`` named ``b.png``, a folder named ``x.jpg``, a link to a parent folder, a
truncated image, a 255-byte name and one name in both NFC and NFD. ``zsv index`` runs in
a subprocess under a timeout, so that a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from zeroshot_vision import ImageLoadError, SearchEngine, load_image

TIMEOUT_S = 120


@pytest.fixture
def odd_folder(tmp_path: Path, photo_paths: list[Path]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo_paths[0], folder / "real.png")
    os.mkfifo(folder / "a.jpg")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "b.png").symlink_to("/dev/zero")
    (folder / "x.jpg").mkdir()
    shutil.copy(photo_paths[1], folder / "x.jpg" / "inside.png")
    (folder / "x.jpg" / "up").symlink_to("..")  # not followed: no endless walk
    (folder / "truncated.jpg").write_bytes(photo_paths[2].read_bytes()[:200])
    shutil.copy(photo_paths[3], folder / ("n" * 251 + ".png"))  # 255 bytes, the limit
    for form, photo in (("NFC", photo_paths[4]), ("NFD", photo_paths[5])):
        shutil.copy(photo, folder / (unicodedata.normalize(form, "café") + ".png"))
    return folder


def _index(source: Path, index: Path, model: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "zeroshot_vision._cli.parser", "index", str(source),
         "--index", str(index), "--model", str(model), "--workers", "0", "--json"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


@pytest.mark.slow
def test_odd_files_are_skipped_with_reasons_and_never_hang(
    odd_folder: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    summary = _index(odd_folder, tmp_path / "index", tiny_model_dir)
    failed = {Path(f["source"]).name: f["reason"] for f in summary["failed"]}
    unreadable = {Path(f["source"]).name: f["reason"] for f in summary["unreadable"]}
    assert failed["a.jpg"] == "not a regular file (a FIFO)"
    assert failed["b.png"] == "not a regular file (a character device)"
    assert "truncated" in failed["truncated.jpg"].lower()
    assert unreadable == {"loop.jpg": "Too many levels of symbolic links"}
    assert summary["indexed"] == 5 and summary["count"] == 5
    with SearchEngine.open(tmp_path / "index", model=str(tiny_model_dir)) as engine:
        ids = set(engine.store.ids())
    nfc, nfd = (unicodedata.normalize(form, "café") + ".png" for form in ("NFC", "NFD"))
    assert ids == {"real.png", "x.jpg/inside.png", "n" * 251 + ".png", nfc, nfd}
    # The next run skips what it already knows, the odd files included, without hanging.
    again = _index(odd_folder, tmp_path / "index", tiny_model_dir)
    assert again["indexed"] == 0 and again["skipped"] == 5 and again["count"] == 5


def test_loading_a_fifo_or_a_device_directly_does_not_block(odd_folder: Path) -> None:
    for name, kind in (("a.jpg", "a FIFO"), ("b.png", "a character device")):
        with pytest.raises(ImageLoadError, match=rf"not a regular file \({kind}\)"):
            load_image(odd_folder / name)


def test_files_that_vanish_or_change_between_runs_are_reconciled(
    odd_folder: Path, tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        assert engine.index_folder(odd_folder).count == 5
    (odd_folder / "real.png").unlink()  # vanished
    changed = odd_folder / "x.jpg" / "inside.png"
    shutil.copy(photo_paths[0], changed)  # rewritten with another photo
    os.utime(changed, ns=(1, 1))
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(odd_folder)
        assert report.indexed == ("x.jpg/inside.png",) and report.removed == ("real.png",)
        assert report.count == 4
        stored = engine.store.fetch(["x.jpg/inside.png"])["x.jpg/inside.png"].vector
        fresh = tiny_encoder.encode_images([changed])[0]
        assert float(stored @ fresh) > 0.999
