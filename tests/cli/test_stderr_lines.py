"""No raw warning lines on ``zsv``'s stderr (issue 29, item 15).

Python prints a warning as two raw lines (a source path, then a line of code), which read
as a crash; what the library expects (Pillow's damaged-EXIF warning, numpy's overflow
while narrowing float64 vectors) is logged or reported in one line instead. Run as a
child process: decoding workers are forked, and their stderr is the file descriptor.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK


def zsv(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zeroshot_vision._cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


RAW_WARNING = re.compile(r"\w+Warning: |warnings\.warn\(")
"""What Python's own warning printer writes: ``file:line: UserWarning: ...``, then code."""


def assert_no_raw_warning(stderr: str) -> None:
    assert not RAW_WARNING.search(stderr), stderr


def test_index_with_damaged_exif_prints_no_warning_lines(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "M" * 40
    exif[0x0110] = "X" * 40
    Image.new("RGB", (32, 32), (10, 200, 10)).save(
        photos / "bad-exif.jpg", "JPEG", exif=exif.tobytes()[:-30]
    )
    Image.new("RGB", (32, 32), (200, 10, 10)).save(photos / "fine.jpg", "JPEG")
    done = zsv("index", str(photos), "--index", "idx", "--model", str(tiny_model_dir), cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert "indexed 2" in done.stdout
    assert_no_raw_warning(done.stderr)
    assert all(line.startswith("zsv: ") for line in done.stderr.splitlines()), done.stderr
    # The library logs it instead, naming the file (tests/images/test_image_formats.py).


def test_import_of_values_beyond_float32_is_one_error_line(tmp_path: Path) -> None:
    vectors = np.full((2, 4), 1e300)  # finite float64, infinite as float32
    column = pa.array(vectors.tolist(), pa.list_(pa.float64(), 4))
    table = pa.table({"id": ["a", "b"], "vector": column})
    pq.write_table(table, tmp_path / "huge.parquet")
    done = zsv("import", "huge.parquet", "--index", "idx", "--model", "tiny", cwd=tmp_path)
    assert done.returncode == EXIT_ERROR
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "beyond float32's range" in lines[0], done.stderr
    assert not (tmp_path / "idx").exists()
