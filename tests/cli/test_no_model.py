"""Commands that need no model never import torch; ``zsv index`` loads the model only
when an image needs encoding (each checked in a fresh process, through ``sys.modules``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zeroshot_vision._cli import EXIT_OK, main

PROBE = """
import sys
from zeroshot_vision._cli import main
code = main(sys.argv[1:])
heavy = [m for m in ('torch', 'transformers') if m in sys.modules]
print('probe:', code, ','.join(heavy) or '-', file=sys.stderr)
"""


def probe(*argv: str) -> tuple[int, str]:
    """Run ``zsv ARGV`` in a fresh process: its exit code and the heavy modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=300
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("probe:"))
    _, code, heavy = line.split()
    return int(code), heavy


@pytest.fixture(scope="module")
def folder_and_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, photo_paths: list[Path]
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("no-model")
    photos = root / "photos"
    photos.mkdir()
    for path in photo_paths[:2]:
        shutil.copy(path, photos / path.name)
    assert main(["index", str(photos), "--index", str(root / "index"),
                 "--model", str(tiny_model_dir)]) == EXIT_OK  # fmt: skip
    return photos, root / "index"


@pytest.mark.slow
def test_commands_without_a_model_never_import_torch(
    folder_and_index: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    _, index = folder_and_index
    vectors = tmp_path / "vectors.parquet"
    for argv in (
        ["info", "--index", str(index)],
        ["duplicates", "--index", str(index)],
        ["export", "--index", str(index), "--out", str(vectors)],
        ["import", str(vectors), "--index", str(tmp_path / "copy")],
    ):
        assert probe(*argv) == (EXIT_OK, "-"), argv


@pytest.mark.slow
def test_index_loads_the_model_only_for_new_images(
    folder_and_index: tuple[Path, Path], photo_paths: list[Path]
) -> None:
    photos, index = folder_and_index
    assert probe("index", str(photos), "--index", str(index)) == (EXIT_OK, "-")
    shutil.copy(photo_paths[2], photos / photo_paths[2].name)
    code, heavy = probe("index", str(photos), "--index", str(index), "--json")
    assert code == EXIT_OK and "torch" in heavy
    from zeroshot_vision._index import IndexFolder

    store = IndexFolder.open(index).open_store()
    try:
        assert photo_paths[2].name in set(store.ids())
    finally:
        store.close()
