"""Index folders: one format, incremental and resumable folder runs, damage, locks, upgrades."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.factories import memory_engine
from tests.helpers import make_jpeg, photo_row, write_dataset

from zeroshot_vision import (
    IndexDamagedError,
    IndexFolder,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    SearchEngine,
)
from zeroshot_vision._index.folder import FORMAT_VERSION
from zeroshot_vision._types import FolderReport, Progress
from zeroshot_vision.ingest._scan import scan_unsplash
from zeroshot_vision.stores._faiss import FaissStore


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


def run(
    source: Path, index: Path, *, model: Path | str | None = None, **options: Any
) -> FolderReport:
    """What ``zsv index`` does: create or open, index the folder, close."""
    create = {k: options.pop(k) for k in ("store", "store_options") if k in options}
    engine = SearchEngine.create(
        index, model=str(model) if model else None, exist_ok=True, device="cpu", **create
    )
    with engine:
        return engine.index_folder(source, **options)


def stored(index: Path) -> FaissStore:
    store = IndexFolder.open(index).open_store()
    assert isinstance(store, FaissStore)
    return store


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


# -- folder runs ----------------------------------------------------------------------------


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

    report = run(source, index, model=tiny_model_dir, batch_size=3)

    assert sorted(report.indexed) == sorted(ids)
    assert [Path(f.source).name for f in report.failed] == ["broken.jpg"]
    assert report.count == 7 and report.skipped == 0
    assert json.loads(json.dumps(report.to_json()))["failed"][0]["reason"]
    store = stored(index)
    assert sorted(store.ids()) == sorted(ids)
    record = store.fetch(["sub/img000.jpg"])["sub/img000.jpg"]
    assert record.metadata["path"] == str((source / "sub/img000.jpg").resolve())
    manifest = IndexFolder.open(index).manifest
    assert manifest.model == str(tiny_model_dir.resolve()) and manifest.dim == 32
    assert sorted(p.name for p in index.iterdir()) == [
        ".lock",
        "extractors.sqlite",  # which extractors ran on which image (the lexical side's)
        "settings.json",
        "state.sqlite",
        "store",
        "text.sqlite",  # the lexical side: file names, places, captions, text in photos
    ]
    with SearchEngine.open(index) as engine:  # no arguments: all of it is in the folder
        assert len(engine.search("a photo of a dog", k=3)) == 3


def test_rerun_is_incremental(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 6)
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir, batch_size=4)

    again = run(source, index, batch_size=4)  # model comes from the index
    assert again.indexed == () and again.skipped == 6 and again.failed == ()
    assert [Path(f.source).name for f in again.known_failed] == ["broken.jpg"]

    before = stored(index).fetch(["img001.jpg"])["img001.jpg"].vector
    (source / "img001.jpg").write_bytes(make_jpeg(200, (64, 48)))  # changed content
    touch_later(source / "img001.jpg")
    (source / "img002.jpg").unlink()  # deleted
    make_folder(source, 1, start=10)  # new: img010.jpg
    (source / "broken.jpg").write_bytes(make_jpeg(5))  # fixed
    touch_later(source / "broken.jpg")

    third = run(source, index, batch_size=4)
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
    run(source, index, model=tiny_model_dir)
    (source / "img001.jpg").write_bytes(b"<html>oops</html>")
    touch_later(source / "img001.jpg")
    report = run(source, index)
    assert [Path(f.source).name for f in report.failed] == ["img001.jpg"]
    assert sorted(stored(index).ids()) == ["img002.jpg", "sub/img000.jpg"]
    assert IndexFolder.open(index).counts() == {"indexed": 2, "failed": 1, "pending": 0}


def test_progress_is_committed_every_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 7)
    index = tmp_path / "index"
    events: list[Progress] = []
    committed: list[int] = []

    def on_progress(event: Progress) -> None:
        events.append(event)
        if event.done:  # by now the batch is durable: a fresh reader sees it
            committed.append(len(stored(index)))
            assert IndexFolder.open(index).counts()["indexed"] == len(stored(index))

    run(source, index, model=tiny_model_dir, batch_size=3, progress=on_progress)
    assert [(e.total, e.done, e.advanced) for e in events] == [
        (7, 0, 0),
        (7, 3, 3),
        (7, 6, 3),
        (7, 7, 1),
    ]
    assert committed == [3, 6, 7]


def test_exclude_leaves_out_files_and_folders(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 6)  # sub/img000.jpg, sub/img003.jpg and four at the top
    (source / "raw").mkdir()
    (source / "raw" / "x.jpg").write_bytes(make_jpeg(9))
    report = run(source, tmp_path / "index", model=tiny_model_dir, exclude=["raw", "img00[12].*"])
    assert sorted(report.indexed) == [
        "img004.jpg",
        "img005.jpg",
        "sub/img000.jpg",
        "sub/img003.jpg",
    ]
    with pytest.raises(InvalidInputError, match="exclude"):
        run(source, tmp_path / "index", exclude=[""])


# -- what a killed or interrupted writer leaves -----------------------------------------------


def test_pending_ids_of_an_interrupted_run_are_reconciled(
    tmp_path: Path, tiny_encoder: Any
) -> None:
    """Vectors written to the store, but the run died before the state recorded them."""
    source = tmp_path / "photos"
    ids = make_folder(source, 5)
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        engine.index_folder(source)
    engine = SearchEngine.open(index, encoder=tiny_encoder)
    # Two photos re-written and one that is about to vanish, then the store commits and
    # the process "dies" before the state does.
    engine.index_images([source / "img001.jpg", source / "img002.jpg", source / "img004.jpg"])
    engine.store.commit()
    assert IndexFolder.open(index).counts()["pending"] == 3
    engine.folder.unlock()  # type: ignore[union-attr]  # what the OS does for a dead process
    (source / "img004.jpg").unlink()

    report = run(source, index)
    assert report.removed == ("img004.jpg",)
    assert sorted(report.indexed) == ["img001.jpg", "img002.jpg"]
    assert sorted(stored(index).ids()) == sorted(i for i in ids if i != "img004.jpg")
    assert IndexFolder.open(index).counts() == {"indexed": 4, "failed": 0, "pending": 0}


def test_vectors_the_store_lost_are_reencoded(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 4)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    store = stored(index)
    store.delete(["img001.jpg", "img002.jpg"])  # a store restored from an older copy
    store.commit()
    report = run(source, index)
    assert sorted(report.indexed) == ["img001.jpg", "img002.jpg"] and report.skipped == 2
    assert sorted(stored(index).ids()) == sorted(ids)


def test_a_full_disk_at_commit_is_one_clear_error_and_loses_nothing(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 6)
    index = tmp_path / "index"
    real_commit = FaissStore.commit
    commits = 0

    def commit_then_fill_up(self: FaissStore) -> None:
        nonlocal commits
        commits += 1
        if commits > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_commit(self)

    monkeypatch.setattr(FaissStore, "commit", commit_then_fill_up)
    with pytest.raises(OSError, match=r"cannot save the index in .*No space left") as caught:
        run(source, index, model=tiny_model_dir, batch_size=2)
    assert caught.value.errno == errno.ENOSPC
    assert len(stored(index)) == 2  # the first batch's commit is intact
    monkeypatch.setattr(FaissStore, "commit", real_commit)
    report = run(source, index, batch_size=2)
    assert report.skipped == 2 and sorted(stored(index).ids()) == sorted(ids)


# -- absence is not deletion ----------------------------------------------------------------


def test_an_empty_source_removes_nothing_without_allow_removal(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 4)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    for item in ids:
        (source / item).unlink()  # an unmounted drive looks just like this
    with pytest.raises(InvalidInputError, match=r"lacks 4 of the 4 indexed images.*allow-removal"):
        run(source, index)
    assert sorted(stored(index).ids()) == sorted(ids)
    report = run(source, index, allow_removal=True)
    assert sorted(report.removed) == sorted(ids) and report.count == 0


def test_removing_a_minority_needs_no_option(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 5)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    (source / "img001.jpg").unlink()
    (source / "img002.jpg").unlink()
    assert sorted(run(source, index).removed) == ["img001.jpg", "img002.jpg"]


def test_an_unreadable_folder_keeps_its_vectors(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 6)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    real_scandir = os.scandir
    locked = str(source.resolve() / "sub")

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == locked:  # tests run as root, where chmod 000 reads anyway
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    (source / "img001.jpg").unlink()
    report = run(source, index)
    assert report.removed == ("img001.jpg",)
    assert [(Path(f.source).name, f.reason) for f in report.unreadable] == [
        ("sub", "Permission denied")
    ]
    assert sorted(stored(index).ids()) == sorted(i for i in ids if i != "img001.jpg")


def test_a_file_name_that_is_not_utf8_is_indexed_and_saved(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    with open(os.fsencode(source) + b"/bad\xffname.jpg", "wb") as handle:
        handle.write(make_jpeg(7))
    index = tmp_path / "index"
    first = run(source, index, model=tiny_model_dir)
    assert "bad\\xffname.jpg" in first.indexed
    (source / "img001.jpg").unlink()
    second = run(source, index)  # the index can still be updated and saved
    assert second.removed == ("img001.jpg",) and second.skipped == 2
    assert sorted(stored(index).ids()) == ["bad\\xffname.jpg", "sub/img000.jpg"]


# -- refusals -------------------------------------------------------------------------------


def test_refuses_a_nested_source_or_another_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    with pytest.raises(InvalidInputError, match="lies inside"):
        run(tmp_path, index)  # another source is added; one holding the first is not
    with pytest.raises(InvalidInputError, match="indexed with model"):
        run(source, index, model=tmp_path)
    with pytest.raises(InvalidInputError, match="not a folder"):
        run(tmp_path / "missing", index)
    with pytest.raises(InvalidInputError, match="already holds an index"):
        SearchEngine.create(index, model=str(tiny_model_dir))


def test_refuses_a_folder_that_is_not_an_index(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    theirs = tmp_path / "project"
    theirs.mkdir()
    (theirs / "state.json").write_text("their own state", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty and holds no index"):
        run(source, theirs, model=tiny_model_dir)
    assert [p.name for p in theirs.iterdir()] == ["state.json"]
    with pytest.raises(InvalidInputError, match="is a file"):
        run(source, theirs / "state.json", model=tiny_model_dir)
    with pytest.raises(IndexNotFoundError, match="no index at"):
        SearchEngine.open(theirs)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(source, empty, model=tiny_model_dir).count == 2


def test_index_folder_needs_a_folder_engine(tiny_encoder: Any, tmp_path: Path) -> None:
    engine = memory_engine(tiny_encoder)
    with pytest.raises(InvalidInputError, match=r"SearchEngine.create"):
        engine.index_folder(tmp_path)


def test_one_writer_at_a_time_and_readers_never_wait(tmp_path: Path, tiny_encoder: Any) -> None:
    source = tmp_path / "photos"
    make_folder(source, 2)
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as writer:
        writer.index_folder(source)
        with pytest.raises(IndexLockedError, match="another process is writing"):
            SearchEngine.open(index, encoder=tiny_encoder).index_folder(source)
        with SearchEngine.open(index, encoder=tiny_encoder) as reader:  # no lock taken
            assert len(reader.search("a photo", k=5)) == 2
    with SearchEngine.open(index, encoder=tiny_encoder) as later:  # released on close
        assert later.index_folder(source).skipped == 2


def test_an_unwritable_index_folder_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    make_folder(source, 1)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir)
    (index / ".lock").unlink()
    (index / ".lock").mkdir()  # stands in for a read-only folder (root ignores modes)
    with pytest.raises(OSError, match="cannot write to the index folder"):
        run(source, index)


# -- damage and versions --------------------------------------------------------------------


@pytest.fixture
def built(tmp_path: Path, tiny_model_dir: Path) -> Path:
    source = tmp_path / "photos"
    make_folder(source, 3)
    run(source, tmp_path / "index", model=tiny_model_dir)
    return tmp_path / "index"


DAMAGED_MANIFESTS = {
    "not json": "{not json",
    "a list": "[1, 2]",
    "another format": json.dumps({"format": "other", "model": "m", "dim": 3}),
    "dim a string": json.dumps({"format": "zeroshot-vision/index", "model": "m", "dim": "32"}),
    "dim zero": json.dumps({"format": "zeroshot-vision/index", "model": "m", "dim": 0}),
    "no model": json.dumps({"format": "zeroshot-vision/index", "dim": 32}),
    "store a string": json.dumps(
        {"format": "zeroshot-vision/index", "model": "m", "dim": 32, "store": "faiss"}
    ),
    "truncated": '{"format": "zeroshot-vision/index", "model": "m", "di',
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_MANIFESTS))
def test_a_damaged_manifest_is_a_one_line_error(built: Path, damage: str) -> None:
    (built / "settings.json").write_text(DAMAGED_MANIFESTS[damage])
    with pytest.raises(IndexDamagedError, match=r"settings.json is damaged") as info:
        SearchEngine.open(built)
    assert "\n" not in str(info.value)


def test_a_manifest_replaced_by_a_folder(built: Path) -> None:
    (built / "settings.json").unlink()
    (built / "settings.json").mkdir()
    with pytest.raises(IndexDamagedError, match=r"settings.json is damaged"):
        IndexFolder.open(built)


def test_a_newer_format_asks_for_an_upgrade(built: Path) -> None:
    raw = json.loads((built / "settings.json").read_text())
    (built / "settings.json").write_text(json.dumps({**raw, "version": 99}))
    with pytest.raises(IndexDamagedError, match=r"newer zeroshot-vision .*format 99"):
        IndexFolder.open(built)


@pytest.mark.parametrize("damage", ["missing manifest", "manifest is a folder", "garbage"])
def test_a_missing_or_damaged_store_is_not_an_empty_index(built: Path, damage: str) -> None:
    manifest = built / "store" / "store.json"
    if damage == "missing manifest":
        manifest.unlink()
    elif damage == "manifest is a folder":
        manifest.unlink()
        manifest.mkdir()
    else:
        manifest.write_text("{{{")
    with pytest.raises(IndexDamagedError, match="store") as info:
        IndexFolder.open(built).open_store()
    assert "\n" not in str(info.value)


def test_a_damaged_state_is_a_one_line_error(built: Path, tmp_path: Path) -> None:
    (built / "state.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexDamagedError, match=r"state.sqlite is damaged"):
        IndexFolder.open(built).counts()
    with pytest.raises(IndexDamagedError, match=r"state.sqlite is damaged"):
        run(tmp_path / "photos", built)


def test_a_state_with_wrong_rows_is_a_one_line_error(built: Path, tmp_path: Path) -> None:
    with sqlite3.connect(built / "state.sqlite") as db:
        db.execute("DROP TABLE files")
        db.execute("CREATE TABLE files (id INTEGER)")
    with pytest.raises(IndexDamagedError, match=r"state.sqlite is damaged"):
        IndexFolder.open(built).counts()


def test_a_writer_killed_mid_transaction_does_not_block_readers(built: Path) -> None:
    # The kill leaves a hot journal; a read-only connection cannot roll it back.
    counts = IndexFolder.open(built).counts()
    script = textwrap.dedent(
        f"""
        import os, signal, sqlite3
        db = sqlite3.connect({str(built / "state.sqlite")!r}, isolation_level=None)
        db.execute("PRAGMA cache_size = 1")  # spill to the file: the journal turns hot
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM files")
        db.executemany("INSERT INTO files VALUES (?, NULL, NULL, NULL, 'pending', NULL)",
                       [(f"x{{i}}",) for i in range(5000)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert (built / "state.sqlite-journal").stat().st_size > 0
    assert IndexFolder.open(built).counts() == counts  # rolled back, nothing lost


def test_a_version_1_folder_is_read_and_upgraded(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "photos"
    ids = make_folder(source, 3)
    index = tmp_path / "v1"
    # What zeroshot-vision 0.1 wrote: settings.json v1, state.json and a FaissStore.
    store = FaissStore.open(index / "store", dim=32)
    vectors = np.random.default_rng(0).standard_normal((3, 32))
    store.upsert(ids, vectors, [{"path": str((source / i).resolve())} for i in ids])
    store.commit()
    settings = {
        "format": "zeroshot-vision/index",
        "version": 1,
        "model": str(tiny_model_dir.resolve()),
        "dim": 32,
        "store": {"kind": "faiss", "options": {}},
    }
    (index / "settings.json").write_text(json.dumps(settings))
    files = {}
    for item in ids:
        stat = (source / item).stat()
        files[item] = {
            "path": str((source / item).resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    state = {
        "format": "zeroshot-vision/index-state",
        "version": 1,
        "source": str(source.resolve()),
        "files": files,
        "failed": {},
    }
    (index / "state.json").write_text(json.dumps(state))

    folder = IndexFolder.open(index)
    assert folder.counts()["indexed"] == 3 and folder.source() == str(source.resolve())
    report = run(source, index)
    # The first run after the upgrade gives the index its lexical side: every image's text
    # is written once, its vector reused; the next run has nothing to do.
    assert sorted(report.indexed) == sorted(ids)
    again = run(source, index)
    assert again.skipped == 3 and again.indexed == ()
    assert not (index / "state.json").exists()
    assert IndexFolder.open(index).manifest.version == FORMAT_VERSION


# -- Unsplash Lite --------------------------------------------------------------------------


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
    assert [image.id for image in scan_unsplash(dataset).images] == ["aaa", "bbb"]
    report = run(dataset, tmp_path / "index", model=tiny_model_dir)
    assert sorted(report.indexed) == ["aaa", "bbb"] and report.count == 2
    assert stored(tmp_path / "index").fetch(["aaa"])["aaa"].metadata["description"] == "first"
    again = run(dataset, tmp_path / "index")
    assert (again.skipped, again.indexed, again.count) == (2, (), 2)


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

    found = scan_unsplash(dataset, images_dir=images)
    assert [image.id for image in found.images] == ["aaa", "bbb"]

    report = run(dataset, tmp_path / "index", model=tiny_model_dir, images_dir=images)
    assert sorted(report.indexed) == ["aaa", "bbb"]
    with SearchEngine.open(tmp_path / "index") as engine:
        (hit,) = engine.search("a photo", k=5, filter={"country": "Iceland"})
        assert hit.id == "aaa"
        assert hit.metadata["keywords"] == ["glacier"]
        assert hit.metadata["photographer"] == "Ada Lovelace" and hit.metadata["year"] == 2019
        assert hit.metadata["path"] == str((images / "aaa.jpg").resolve())
        (japan,) = engine.search("a photo", k=5, filter={"keywords": {"$exists": False}})
        assert japan.metadata["ai_description"] == "a\tcat"


# -- a real SIGKILL at unplanned moments ----------------------------------------------------

# The wrapper slows each commit a little so the run lasts long enough to be killed mid-way;
# everything else is the real `zsv index`.
_SLOW_INDEX = textwrap.dedent(
    """
    import sys, time
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._cli import main
    real_commit = SearchEngine.commit
    def slow_commit(self):
        time.sleep(0.05)
        real_commit(self)
    SearchEngine.commit = slow_commit
    sys.exit(main(sys.argv[1:]))
    """
)


def _kill_twice_then_finish(command: list[str], index: Path, env: dict[str, str]) -> dict[str, Any]:
    for kill_after in (0.0, 0.17):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            # Wait until this run has committed at least one batch of its own (a loaded
            # machine can take long to start it and load the model).
            deadline = time.monotonic() + 180
            baseline = _indexed(index)
            while _indexed(index) <= baseline and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.005)
            time.sleep(kill_after)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
    finished = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert finished.returncode == 0, finished.stderr
    summary: dict[str, Any] = json.loads(finished.stdout)
    return summary


def _indexed(index: Path) -> int:
    if not (index / "settings.json").exists():
        return 0
    try:
        return IndexFolder.open(index).counts()["indexed"]
    except IndexDamagedError:  # the state file is being created
        return 0


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
    summary = _kill_twice_then_finish(command, index, {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert summary["count"] == len(ids)
    assert summary["indexed"] + summary["skipped"] == len(ids)
    assert summary["skipped"] >= 2  # earlier work was kept, not redone
    store = stored(index)
    assert sorted(store.ids()) == sorted(ids)
    assert store._index.ntotal == len(ids)  # exactly one vector per image
    assert IndexFolder.open(index).counts() == {"indexed": len(ids), "failed": 1, "pending": 0}


@pytest.mark.parametrize(
    "damage",
    ["store manifest gone", "store manifest a folder", "settings wrong types", "state garbage"],
)
def test_zsv_reports_a_damaged_index_in_one_line(
    built: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never "count: 0" or "no results" for an index whose files are damaged (#12)."""
    from zeroshot_vision._cli import EXIT_ERROR, main

    if damage == "store manifest gone":
        (built / "store" / "store.json").unlink()
    elif damage == "store manifest a folder":
        (built / "store" / "store.json").unlink()
        (built / "store" / "store.json").mkdir()
    elif damage == "settings wrong types":
        raw = json.loads((built / "settings.json").read_text())
        (built / "settings.json").write_text(json.dumps({**raw, "dim": [32]}))
    else:
        (built / "state.sqlite").write_bytes(b"\x00garbage" * 64)
    for argv in (["info", "--index", str(built)], ["search", "x", "--index", str(built)]):
        assert main(argv) == EXIT_ERROR
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("zsv: error: ")
        assert "damaged" in err or "missing" in err


def test_zsv_index_ann_records_the_index_type(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main

    source = tmp_path / "photos"
    ids = make_folder(source, 5)
    index = tmp_path / "index"
    argv = ["index", str(source), "--index", str(index), "--model", str(tiny_model_dir)]
    assert main([*argv, "--ann", "hnsw"]) == EXIT_OK
    assert dict(IndexFolder.open(index).manifest.store.options) == {"index": "hnsw"}
    store = stored(index)
    assert store.index_type == "hnsw" and sorted(store.ids()) == sorted(ids)
    (source / "img001.jpg").unlink()
    assert main(argv) == EXIT_OK  # later runs need no --ann
    assert stored(index).index_type == "hnsw" and len(stored(index)) == 4
    capsys.readouterr()
    assert main([*argv, "--ann", "hnsw-sq8"]) == EXIT_ERROR  # contradicts the index
    assert "store options" in capsys.readouterr().err


# A reader must work at any moment of a writer's run: the writer below commits every batch
# (slowed a little, so there are many commits to land between).
_SLOW_WRITER = _SLOW_INDEX.replace("time.sleep(0.05)", "time.sleep(0.02)")


@pytest.mark.slow
def test_readers_work_while_zsv_index_commits(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroshot_vision._cli import EXIT_OK, main

    source = tmp_path / "photos"
    make_folder(source, 40)
    index = tmp_path / "index"
    run(source, index, model=tiny_model_dir, batch_size=40)  # a first generation exists
    make_folder(source, 40, start=100)
    command = [
        sys.executable, "-c", _SLOW_WRITER, "index", str(source), "--index", str(index),
        "--batch-size", "2",
    ]  # fmt: skip
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reads = 0
    try:
        deadline = time.monotonic() + 60
        while writer.poll() is None and time.monotonic() < deadline:
            assert main(["info", "--index", str(index), "--json"]) == EXIT_OK
            count = json.loads(capsys.readouterr().out)["count"]
            with SearchEngine.open(index, encoder=tiny_encoder) as engine:
                hits = engine.search("a photo", k=3)
            assert 40 <= count <= 80 and len(hits) == 3
            reads += 1
    finally:
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert reads >= 3  # the readers really overlapped the writer
    assert len(stored(index)) == 80


def test_temp_files_of_a_killed_save_do_not_count_in_the_size(built: Path) -> None:
    folder = IndexFolder.open(built)
    before = folder.size_bytes()
    (built / "store" / ".index-9.faiss.k3j2h1g0.tmp").write_bytes(b"\0" * 1_000_000)
    assert folder.size_bytes() == before


def test_index_version_changes_with_every_commit_and_not_otherwise(
    tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._index import index_version

    folder = tmp_path / "versioned"
    assert index_version(folder) == index_version(folder)  # no folder yet: still a token
    with SearchEngine.create(folder, model=str(tiny_model_dir), device="cpu") as engine:
        created = index_version(folder)
        engine.index_images(photo_paths[:1])
    first = index_version(folder)
    assert first != created
    assert index_version(folder) == first  # reading changes nothing
    with SearchEngine.open(folder, model=str(tiny_model_dir), device="cpu") as engine:
        engine.index_images(photo_paths[1:2])
    assert index_version(folder) != first
