"""The indexing pipeline: incremental updates, resume after SIGKILL, bad images, Unsplash."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import make_jpeg, photo_row, write_dataset

from zeroshot_vision import pipeline
from zeroshot_vision.errors import InvalidInputError, StoreError
from zeroshot_vision.index_dir import (
    close_store,
    create_index_dir,
    open_engine,
    open_store,
    read_settings,
)
from zeroshot_vision.pipeline import (
    STATE_FILE,
    IndexProgress,
    _exclusive,
    index_source,
    read_state_summary,
    scan_source,
)
from zeroshot_vision.stores.faiss import FaissStore


def make_folder(folder: Path, count: int, *, start: int = 0) -> list[str]:
    """Write ``count`` JPEGs (a third of them in a sub-folder); return their ids."""
    ids = []
    for i in range(start, start + count):
        relative = f"sub/img{i:03d}.jpg" if i % 3 == 0 else f"img{i:03d}.jpg"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(i, (64, 48)))
        ids.append(relative)
    return ids


def stored(index: Path) -> FaissStore:
    store = open_store(index)
    assert isinstance(store, FaissStore)
    return store


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_indexes_a_folder_and_skips_bad_and_foreign_files(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 7)
    (source / "broken.jpg").write_bytes(make_jpeg(1)[:120])
    (source / "notes.txt").write_text("not an image")
    (source / ".hidden.jpg").write_bytes(make_jpeg(2))
    (source / ".git").mkdir()
    (source / ".git" / "x.jpg").write_bytes(make_jpeg(3))
    index = tmp_path / "index"

    report = index_source(source, index, model=str(tiny_model_dir), batch_size=3)

    assert sorted(report.indexed) == sorted(ids)
    assert [Path(f.source).name for f in report.failed] == ["broken.jpg"]
    assert report.count == 7 and report.skipped == 0
    assert json.loads(json.dumps(report.to_json()))["failed"][0]["reason"]
    store = stored(index)
    assert sorted(store.ids()) == sorted(ids)
    record = store.fetch(["sub/img000.jpg"])["sub/img000.jpg"]
    assert record.metadata["path"] == str((source / "sub/img000.jpg").resolve())
    settings = read_settings(index)
    assert settings.model == str(tiny_model_dir.resolve()) and settings.dim == 32
    engine = open_engine(index)
    assert len(engine.search("a photo of a dog", k=3)) == 3


def test_rerun_is_incremental(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 6)
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir), batch_size=4)

    again = index_source(source, index, batch_size=4)  # model comes from the index
    assert again.indexed == () and again.skipped == 6 and again.failed == ()
    assert [Path(f.source).name for f in again.known_failed] == ["broken.jpg"]

    before = stored(index).fetch(["img001.jpg"])["img001.jpg"].vector
    (source / "img001.jpg").write_bytes(make_jpeg(200, (64, 48)))  # changed content
    touch_later(source / "img001.jpg")
    (source / "img002.jpg").unlink()  # deleted
    make_folder(source, 1, start=10)  # new: img010.jpg
    (source / "broken.jpg").write_bytes(make_jpeg(5))  # fixed
    touch_later(source / "broken.jpg")

    third = index_source(source, index, batch_size=4)
    assert sorted(third.indexed) == ["broken.jpg", "img001.jpg", "img010.jpg"]
    assert third.removed == ("img002.jpg",)
    assert third.skipped == 4 and third.failed == () and third.known_failed == ()
    store = stored(index)
    assert len(store) == third.count == 7
    assert "img002.jpg" not in set(store.ids())
    after = store.fetch(["img001.jpg"])["img001.jpg"].vector
    assert not np.allclose(before, after)


def test_a_file_that_turns_bad_loses_its_old_vector(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 3)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    (source / "img001.jpg").write_bytes(b"<html>oops</html>")
    touch_later(source / "img001.jpg")
    report = index_source(source, index)
    assert [Path(f.source).name for f in report.failed] == ["img001.jpg"]
    assert sorted(stored(index).ids()) == ["img002.jpg", "sub/img000.jpg"]


def test_progress_is_committed_every_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 7)
    index = tmp_path / "index"
    events: list[IndexProgress] = []
    committed: list[int] = []

    def on_progress(event: IndexProgress) -> None:
        events.append(event)
        if event.done:  # by now the batch is durable: a fresh reader sees it
            committed.append(len(stored(index)))
            assert read_state_summary(index).files == len(stored(index))

    index_source(source, index, model=str(tiny_model_dir), batch_size=3, progress=on_progress)
    assert [(e.total, e.done, e.advanced) for e in events] == [
        (7, 0, 0),
        (7, 3, 3),
        (7, 6, 3),
        (7, 7, 1),
    ]
    assert committed == [3, 6, 7]


def test_store_ahead_of_state_is_reconciled(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A crash between the store save and the state write, simulated."""
    source = tmp_path / "photos"
    ids = make_folder(source, 5)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    # The store holds an extra vector for a file that no longer exists, and the state lost
    # track of two files that are in the store.
    store = stored(index)
    store.upsert(["ghost.jpg"], np.ones((1, 32), dtype=np.float32))
    store.save(index / "store")
    state = json.loads((index / STATE_FILE).read_text())
    del state["files"]["img001.jpg"], state["files"]["img002.jpg"]
    (index / STATE_FILE).write_text(json.dumps(state))

    report = index_source(source, index)
    assert sorted(report.indexed) == ["img001.jpg", "img002.jpg"]
    assert report.removed == ("ghost.jpg",)
    assert sorted(stored(index).ids()) == sorted(ids)


def test_state_without_vectors_is_reencoded(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 4)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    shutil.rmtree(index / "store")
    report = index_source(source, index)
    assert sorted(report.indexed) == sorted(ids) and len(stored(index)) == 4


def test_damaged_state_file_costs_only_reencoding(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 3)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    (index / STATE_FILE).write_text("{not json")
    report = index_source(source, index)
    assert len(report.indexed) == 3 and len(stored(index)) == 3


def test_refuses_another_source_or_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    other = tmp_path / "other"
    make_folder(other, 2)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    with pytest.raises(InvalidInputError, match="is the index of"):
        index_source(other, index)
    with pytest.raises(InvalidInputError, match="indexed with model"):
        index_source(source, index, model=str(tmp_path))
    with pytest.raises(InvalidInputError, match="not a folder"):
        index_source(tmp_path / "missing", index)


def test_refuses_a_folder_that_is_not_an_index(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    theirs = tmp_path / "project"
    theirs.mkdir()
    (theirs / STATE_FILE).write_text("their own state", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty and holds no index"):
        index_source(source, theirs, model=str(tiny_model_dir))
    assert [p.name for p in theirs.iterdir()] == [STATE_FILE]
    assert (theirs / STATE_FILE).read_text(encoding="utf-8") == "their own state"
    with pytest.raises(InvalidInputError, match="is a file"):
        index_source(source, theirs / STATE_FILE, model=str(tiny_model_dir))
    with pytest.raises(InvalidInputError, match="not empty"):
        create_index_dir(theirs, model=str(tiny_model_dir), dim=32)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert index_source(source, empty, model=str(tiny_model_dir)).count == 2


def test_a_full_disk_at_commit_is_one_clear_error_and_loses_nothing(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 6)
    index = tmp_path / "index"
    real_save = pipeline.save_store
    saves = 0

    def save_then_fill_up(*args: object) -> None:
        nonlocal saves
        saves += 1
        if saves > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "save_store", save_then_fill_up)
    with pytest.raises(OSError, match=r"cannot save the index in .*No space left") as caught:
        index_source(source, index, model=str(tiny_model_dir), batch_size=2)
    assert caught.value.errno == errno.ENOSPC
    assert len(stored(index)) == 2  # the first batch's commit is intact
    monkeypatch.setattr(pipeline, "save_store", real_save)
    report = index_source(source, index, batch_size=2)
    assert report.skipped == 2 and sorted(stored(index).ids()) == sorted(ids)


def test_an_unwritable_index_folder_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 1)
    index = tmp_path / "index"
    index_source(source, index, model=str(tiny_model_dir))
    (index / ".lock").unlink()
    (index / ".lock").mkdir()  # stands in for a read-only folder (root ignores modes)
    with pytest.raises(OSError, match="cannot write to the index folder"):
        index_source(source, index)


def test_unsplash_photo_listed_twice_is_indexed_once(tmp_path: Path, tiny_model_dir: Path) -> None:
    dataset = tmp_path / "lite"
    rows = [
        photo_row("aaa", "http://x", photo_description="first"),
        photo_row("bbb", "http://x"),
        photo_row("aaa", "http://x", photo_description="second"),
    ]
    write_dataset(dataset, rows)
    for i, photo_id in enumerate(["aaa", "bbb"]):
        (dataset / f"{photo_id}.jpg").write_bytes(make_jpeg(i))
    assert [image.id for image in scan_source(dataset)] == ["aaa", "bbb"]
    report = index_source(dataset, tmp_path / "index", model=str(tiny_model_dir))
    assert sorted(report.indexed) == ["aaa", "bbb"] and report.count == 2
    assert stored(tmp_path / "index").fetch(["aaa"])["aaa"].metadata["description"] == "first"
    again = index_source(dataset, tmp_path / "index")
    assert (again.skipped, again.indexed, again.count) == (2, (), 2)


def test_one_indexer_at_a_time(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    index = tmp_path / "index"
    create_index_dir(index, model=str(tiny_model_dir), dim=32)
    with _exclusive(index), pytest.raises(StoreError, match="another process"):
        index_source(source, index)


def test_unsplash_folder_gets_photo_metadata(tmp_path: Path, tiny_model_dir: Path) -> None:
    dataset = tmp_path / "lite"
    rows = [
        photo_row("aaa", "http://x", photo_location_country="Iceland"),
        photo_row("bbb", "http://x", photo_location_country="Japan", ai_description="a\tcat"),
        photo_row("ccc", "http://x"),  # not downloaded
    ]
    keywords = [{"photo_id": "aaa", "keyword": "glacier", "suggested_by_user": "t"}]
    write_dataset(dataset, rows, variant="csv000", keywords=keywords)
    images = tmp_path / "images"
    images.mkdir()
    for i, photo_id in enumerate(["aaa", "bbb", "stray"]):
        (images / f"{photo_id}.jpg").write_bytes(make_jpeg(i))

    found = scan_source(dataset, images_dir=images)
    assert [image.id for image in found] == ["aaa", "bbb"]

    report = index_source(dataset, tmp_path / "index", model=str(tiny_model_dir), images_dir=images)
    assert sorted(report.indexed) == ["aaa", "bbb"]
    engine = open_engine(tmp_path / "index")
    (hit,) = engine.search("a photo", k=5, filter={"country": "Iceland"})
    assert hit.id == "aaa"
    assert hit.metadata["keywords"] == ["glacier"]
    assert hit.metadata["photographer"] == "Ada Lovelace" and hit.metadata["year"] == 2019
    assert hit.metadata["path"] == str((images / "aaa.jpg").resolve())
    (japan,) = engine.search("a photo", k=5, filter={"keywords": {"$exists": False}})
    assert japan.metadata["ai_description"] == "a\tcat"


# A real SIGKILL at unplanned moments. The wrapper slows each commit a little so the run
# lasts long enough to be killed mid-way; everything else is the real `zsv index`.
_SLOW_INDEX = textwrap.dedent(
    """
    import sys, time
    import zeroshot_vision.pipeline as pipeline
    from zeroshot_vision.cli import main
    real_commit = pipeline._commit
    def slow_commit(*args):
        time.sleep(0.05)
        real_commit(*args)
    pipeline._commit = slow_commit
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_index_killed_with_sigkill_resumes_to_exactly_one_vector_per_image(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 60)
    (source / "broken.jpg").write_bytes(b"GIF89a truncated")
    index = tmp_path / "index"
    command = [
        sys.executable, "-c", _SLOW_INDEX, "index", str(source), "--index", str(index),
        "--model", str(tiny_model_dir), "--batch-size", "2",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    counts = []
    for kill_after in (0.0, 0.17):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            # Wait until this run has committed at least one batch of its own.
            baseline = read_state_summary(index).files
            deadline = time.monotonic() + 60
            while read_state_summary(index).files <= baseline and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.005)
            time.sleep(kill_after)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        store = stored(index)  # loads after every kill
        counts.append(len(store))
        assert set(store.ids()) <= set(ids)
    assert 0 < counts[0] <= counts[1] < len(ids)

    finished = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["count"] == len(ids)
    assert summary["indexed"] + summary["skipped"] == len(ids)
    assert summary["skipped"] >= counts[-1] - 2  # earlier work was kept, not redone
    store = stored(index)
    assert sorted(store.ids()) == sorted(ids)
    assert store._index.ntotal == len(ids)  # exactly one vector per image
    assert read_state_summary(index).files == len(ids)


def test_pinecone_store_is_recorded_and_connected_lazily(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pinecone")
    from zeroshot_vision.cli import main
    from zeroshot_vision.testing.pinecone_server import PineconeTestServer

    key = "pcsk_test_pipeline_secret"
    monkeypatch.setenv("PINECONE_API_KEY", key)
    source = tmp_path / "photos"
    ids = make_folder(source, 4)
    index = tmp_path / "index"
    server = PineconeTestServer(dimension=32)
    host = server.start()
    try:
        argv = [
            "index", str(source), "--index", str(index), "--model", str(tiny_model_dir),
            "--store", "pinecone", "--pinecone-host", host, "--namespace", "photos",
        ]  # fmt: skip
        assert main(argv) == 0
        settings = read_settings(index)
        assert settings.store == "pinecone"
        assert dict(settings.store_options) == {"host": host, "namespace": "photos"}
        assert key not in (index / "settings.json").read_text()
        assert not (index / "store").exists()

        (source / "img001.jpg").unlink()
        report = index_source(source, index)  # store and options come from the folder
        assert report.removed == ("img001.jpg",) and report.skipped == 3
        engine = open_engine(index)
        try:
            assert sorted(engine.store.ids()) == sorted(i for i in ids if i != "img001.jpg")
            assert len(engine.search("a photo", k=10)) == 3
        finally:
            close_store(engine.store)
        assert main(["info", "--index", str(index)]) == 0
    finally:
        server.stop()
