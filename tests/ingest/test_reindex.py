"""Moving an index to another model (``reindex``): a new store, resumable, one switch.

Model A is the tiny SigLIP (32-d), model B a tiny SigLIP 48 wide (48-d): the new store
has another dimension, so a mixed store could not even be built.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.factories import indexed_folder

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision._errors import IndexLockedError, InvalidInputError
from zeroshot_vision._index import IndexFolder
from zeroshot_vision._models import same_checkpoint
from zeroshot_vision.ingest._reindex import PENDING, PROGRESS, reindex


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zeroshot_vision.testing import build_random_siglip

    return build_random_siglip(tmp_path_factory.mktemp("wide"), preset="tiny-wide", seed=1)


@pytest.fixture(scope="module")
def wide_encoder(wide_model_dir: Path) -> Any:
    encoder = Encoder.from_pretrained(wide_model_dir, device="cpu", dtype="float32")
    yield encoder
    encoder.close()


def _photos(tmp_path: Path, photo_paths: list[Path], copies: int = 1) -> list[Path]:
    """``photo_paths`` under distinct names, ``copies`` times over (more files to kill)."""
    folder = tmp_path / "originals"
    folder.mkdir()
    found = []
    for copy in range(copies):
        for path in photo_paths:
            target = folder / f"{copy}-{path.name}"
            shutil.copy(path, target)
            found.append(target)
    return found


def _records(index: Path) -> dict[str, Any]:
    folder = IndexFolder.open(index)
    store = folder.open_store()
    try:
        return store.fetch(list(store.ids()))
    finally:
        store.close()


def test_reindex_moves_to_a_model_of_another_dimension(
    tmp_path: Path, tiny_encoder: Any, wide_encoder: Any, photo_paths: list[Path]
) -> None:
    made = indexed_folder(tmp_path, tiny_encoder, photo_paths)
    before = _records(made.index)
    entries = IndexFolder.open(made.index).entries()
    with SearchEngine.open(made.index, encoder=tiny_encoder) as engine:
        report = engine.reindex(encoder=wide_encoder)
        assert engine.encoder is wide_encoder and engine.store.dim == 48
        hits = engine.search("a cat", k=20)  # the engine searches with the new model
        assert len(hits) == len(photo_paths)
    assert report.dim == 48 and report.count == len(photo_paths)
    assert len(report.encoded) == len(photo_paths) and report.resumed == 0
    assert not report.left_out
    folder = IndexFolder.open(made.index)
    manifest = folder.manifest
    assert same_checkpoint(str(wide_encoder.model_name), manifest.model)
    assert manifest.dim == 48 and manifest.store_dir == "store-2"
    assert manifest.encoder is not None and manifest.encoder.backend == "torch"
    # The old store is gone, and so is the reindex's bookkeeping.
    assert not (made.index / "store").exists()
    assert not (made.index / PENDING).exists() and not (made.index / PROGRESS).exists()
    # Ids, state rows and metadata are kept; every vector is the new model's.
    after = _records(made.index)
    assert set(after) == set(before)
    assert folder.entries() == entries
    for item, record in after.items():
        assert record.metadata == before[item].metadata
    photo = made.photos / photo_paths[0].name
    expected = wide_encoder.encode_images([photo])[0]
    assert np.allclose(after[photo_paths[0].name].vector, expected, atol=2e-3)
    # A fresh open loads the recorded (new) model by itself, and searches it.
    with SearchEngine.open(made.index, device="cpu", dtype="float32") as reopened:
        assert reopened.encoder.dim == 48
        top = reopened.search_by_image(photo, k=1)[0]
        assert top.id == photo_paths[0].name and top.score > 0.99


def test_a_photo_whose_file_is_gone_is_left_out_and_reported(
    tmp_path: Path, tiny_encoder: Any, wide_encoder: Any, photo_paths: list[Path]
) -> None:
    made = indexed_folder(tmp_path, tiny_encoder, photo_paths[:4])
    gone = made.photos / photo_paths[1].name
    gone.unlink()
    report = reindex(made.index, wide_encoder)
    assert [failure.source for failure in report.left_out] == [str(gone)]
    assert "no such file" in report.left_out[0].reason.lower() or "not found" in (
        report.left_out[0].reason.lower()
    )
    assert report.count == 3
    # Dropped everywhere: no vector of the old model stays beside the new ones.
    assert photo_paths[1].name not in _records(made.index)
    assert photo_paths[1].name not in IndexFolder.open(made.index).entries()
    # The file coming back is indexed again, as a new one, with the new model.
    shutil.copy(photo_paths[1], gone)
    with SearchEngine.open(made.index, encoder=wide_encoder) as engine:
        again = engine.index_folder(made.photos)
    assert again.indexed == (photo_paths[1].name,)


def test_while_a_reindex_runs_readers_search_the_old_model_and_writers_are_refused(
    tmp_path: Path, tiny_encoder: Any, wide_encoder: Any, photo_paths: list[Path]
) -> None:
    made = indexed_folder(tmp_path, tiny_encoder, _photos(tmp_path, photo_paths))
    seen: dict[str, Any] = {}

    def during(progress: Any) -> None:
        if progress.done == 0 or seen:
            return
        # A reader opened now gets the old model and the old store, whole.
        with SearchEngine.open(made.index, encoder=tiny_encoder) as reader:
            seen["dim"] = reader.store.dim
            seen["hits"] = len(reader.search("a photo of a cat", k=50))
        with pytest.raises(IndexLockedError, match="reindex to") as refused:
            reindex(made.index, wide_encoder)
        seen["second"] = str(refused.value)
        with (
            SearchEngine.open(made.index, encoder=tiny_encoder) as writer,
            pytest.raises(IndexLockedError),
        ):
            writer.index_folder(made.photos)

    report = reindex(made.index, wide_encoder, batch_size=2, progress=during)
    assert seen["dim"] == 32 and seen["hits"] == len(photo_paths)
    assert "process" in seen["second"]
    assert report.count == len(photo_paths) and IndexFolder.open(made.index).manifest.dim == 48


_KILLED = """
import sys, time
from zeroshot_vision import Encoder
from zeroshot_vision.ingest._reindex import reindex

def progress(state):
    if state.done:
        print(state.done, flush=True)
        time.sleep(0.5)  # time for the test to kill it between batches
encoder = Encoder.from_pretrained(sys.argv[2], device="cpu", dtype="float32")
reindex(sys.argv[1], encoder, batch_size=2, progress=progress)
print("finished", flush=True)
"""


def test_sigkill_mid_reindex_keeps_the_old_index_and_the_next_run_resumes(
    tmp_path: Path,
    tiny_encoder: Any,
    wide_encoder: Any,
    wide_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = _photos(tmp_path, photo_paths, copies=2)
    made = indexed_folder(tmp_path, tiny_encoder, photos)
    script = tmp_path / "reindex.py"
    script.write_text(textwrap.dedent(_KILLED))
    child = subprocess.Popen(
        [sys.executable, str(script), str(made.index), str(wide_model_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    committed = 0
    deadline = time.monotonic() + 180
    for line in child.stdout:
        if line.strip() == "finished" or time.monotonic() > deadline:
            break
        committed = int(line)
        if committed >= 4:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert 4 <= committed < len(photos), "the child should have been killed mid-way"
    # The old index answers, with the old model, whole.
    folder = IndexFolder.open(made.index)
    assert folder.manifest.dim == 32 and folder.manifest.store_dir == "store"
    assert (made.index / PENDING).exists()
    with SearchEngine.open(made.index, encoder=tiny_encoder) as reader:
        assert len(reader.search("a rocket", k=50)) == len(photos)
    capsys.readouterr()
    assert main(["info", "--index", str(made.index), "--json"]) == EXIT_OK
    pending = json.loads(capsys.readouterr().out)["reindex"]
    assert pending is not None and same_checkpoint(pending["model"], str(wide_model_dir))
    # The next run goes on: what the killed one committed is not encoded again.
    report = reindex(made.index, wide_encoder, batch_size=2)
    assert report.resumed >= committed
    assert report.resumed + len(report.encoded) == len(photos)
    assert report.count == len(photos) and not report.left_out
    assert set(_records(made.index)) == {path.name for path in photos}
    assert IndexFolder.open(made.index).manifest.dim == 48
    assert not (made.index / "store").exists() and not (made.index / PENDING).exists()


def test_a_run_killed_after_the_switch_is_finished_by_the_next(
    tmp_path: Path, tiny_encoder: Any, wide_encoder: Any, photo_paths: list[Path]
) -> None:
    made = indexed_folder(tmp_path, tiny_encoder, photo_paths[:3])
    reindex(made.index, wide_encoder)
    # As if killed between the switch and the clean-up: the record and the old store stay.
    (made.index / "store").mkdir()
    (made.index / PENDING).write_text(
        json.dumps(
            {
                "model": str(wide_encoder.model_name),
                "dim": 48,
                "store_dir": "store-2",
                "previous_store_dir": "store",
                "previous_model": "old",
                "started": "2026-01-01T00:00:00Z",
            }
        )
    )
    report = reindex(made.index, wide_encoder)
    assert report.count == 3 and not report.encoded
    assert not (made.index / "store").exists() and not (made.index / PENDING).exists()
    assert IndexFolder.open(made.index).manifest.store_dir == "store-2"


def test_zsv_reindex_prints_what_it_did(
    tmp_path: Path,
    tiny_encoder: Any,
    wide_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = indexed_folder(tmp_path, tiny_encoder, photo_paths[:3])
    capsys.readouterr()
    argv = ["reindex", "--index", str(made.index), "--model", str(wide_model_dir), "--json"]
    assert main([*argv, "--device", "cpu", "--dtype", "float32"]) == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert printed["dim"] == 48 and printed["encoded"] == 3 and printed["count"] == 3
    assert main(["info", "--index", str(made.index), "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 48 and info["count"] == 3 and info["reindex"] is None


def test_a_server_keeps_answering_from_the_old_index_after_a_reindex(
    tmp_path: Path, tiny_encoder: Any, wide_encoder: Any, photo_paths: list[Path], caplog
) -> None:
    """Its model no longer matches the folder's: it says so once, and never mixes them."""
    import logging

    from zeroshot_vision.server._batching import Batcher
    from zeroshot_vision.server._service import IndexSpec, ServedIndex, ServedModel

    made = indexed_folder(tmp_path, tiny_encoder, photo_paths[:3])
    batcher = Batcher(tiny_encoder)
    try:
        model = ServedModel(encoder=tiny_encoder, batcher=batcher, owned=False)
        served = ServedIndex(IndexSpec(name="photos", path=made.index), model, writable=False)
        reindex(made.index, wide_encoder)
        log = logging.getLogger("zeroshot_vision.server._service")
        log.addHandler(caplog.handler)
        try:
            with served.reading() as engine:
                assert engine.store.dim == 32
                assert len(engine.search("a rocket", k=10)) == 3
        finally:
            log.removeHandler(caplog.handler)
        assert "reindexed to" in caplog.text and "restart zsv serve" in caplog.text
        # Nor does it write its model's vectors into the new model's store.
        with pytest.raises(InvalidInputError, match="reindexed to"):
            served.write(lambda engine: engine.index_images([photo_paths[3]]))
        assert len(_records(made.index)) == 3
    finally:
        batcher.close()
