"""After a SIGKILL, vectors and text agree: text is never held for an image without a vector,
and the next run leaves exactly the same ids on both sides."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from tests.helpers import make_jpeg

from zeroshot_vision._errors import IndexDamagedError
from zeroshot_vision._index import IndexFolder
from zeroshot_vision._lexical import TEXT_DATABASE, LexicalIndex

# The real `zsv index`, with the lexical side's commit slowed so a kill lands near it.
_SLOW = textwrap.dedent(
    """
    import sys, time
    from zeroshot_vision._cli import main
    from zeroshot_vision._lexical import LexicalIndex
    real = LexicalIndex.commit
    def slow(self):
        time.sleep(0.05)
        real(self)
    LexicalIndex.commit = slow
    sys.exit(main(sys.argv[1:]))
    """
)


def _indexed(index) -> int:
    try:
        return (
            IndexFolder.open(index).counts()["indexed"] if (index / "settings.json").exists() else 0
        )
    except IndexDamagedError:
        return 0


def _sides(index) -> tuple[set[str], set[str]]:
    folder = IndexFolder.open(index)
    store = folder.open_store()
    try:
        vectors = set(store.ids())
    finally:
        store.close()
    with LexicalIndex(index / TEXT_DATABASE) as text:
        return vectors, set(text.ids())


@pytest.mark.slow
def test_killed_index_keeps_vectors_and_text_in_step(tmp_path, tiny_model_dir) -> None:
    source = tmp_path / "photos"
    source.mkdir()
    names = [f"img{i:02d}.jpg" for i in range(30)]
    for i, name in enumerate(names):
        (source / name).write_bytes(make_jpeg(i, (40, 40)))
    index = tmp_path / "index"
    command = [sys.executable, "-c", _SLOW, "index", str(source), "--index", str(index),
               "--model", str(tiny_model_dir), "--batch-size", "2", "--no-places"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        while _indexed(index) < 4 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.005)
        time.sleep(0.13)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    vectors, texts = _sides(index)
    assert texts <= vectors  # the text side commits after the store, never before
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert finished.returncode == 0, finished.stderr
    vectors, texts = _sides(index)
    assert vectors == texts == set(names)
