"""The extract stage and its extension points, on real photos and the tiny model.

Extractors merge metadata (the source's own fields win), fail per item without stopping
a run, and, when versioned, run once over an index that had none, resumably, reusing
the stored vectors; a writer companion gets their text in the same commit; a source may
yield several items per file, all removed with it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._errors import ExtractorUnavailableError
from zeroshot_vision.ingest import ExifExtractor, Extracted, ExtractionError, Item
from zeroshot_vision.ingest._source import IndexView, Listing
from zeroshot_vision.ingest._sources import FolderSource


class Brightness:
    """Mean grey level of the decoded pixels: an extractor that really reads them."""

    name = "brightness"

    def __init__(self, version: str | None = "1", *, fail_on: str | None = None) -> None:
        self.version = version
        self.fail_on = fail_on
        self.seen: list[str] = []

    def extract(self, item: Item) -> Extracted:
        self.seen.append(item.id)
        if self.fail_on is not None and item.id == self.fail_on:
            raise ExtractionError("too dark to tell")
        grey = np.asarray(item.image().convert("L"), dtype=np.float64)
        mean = round(float(grey.mean()), 2)
        return Extracted(
            metadata={"brightness": mean, "path": "overridden?"}, texts={"tone": f"tone {mean}"}
        )


class Stop(BaseException):
    """Stands for a kill: nothing in the pipeline catches it."""


class StopAfter(Brightness):
    def __init__(self, count: int) -> None:
        super().__init__("1")
        self.count = count

    def extract(self, item: Item) -> Extracted:
        if len(self.seen) >= self.count:
            raise Stop
        return super().extract(item)


@pytest.fixture
def photos(tmp_path: Path, photo_paths: list[Path]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photo_paths[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def _vectors(engine: SearchEngine) -> dict[str, np.ndarray]:
    ids = sorted(engine.store.ids())
    return {item: record.vector for item, record in engine.store.fetch(ids).items()}


def test_extractor_metadata_is_stored_under_the_sources_own(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[ExifExtractor(), Brightness(None)])
        assert len(report.indexed) == 4 and report.failed == ()
        records = engine.store.fetch(list(report.indexed))
    for item, record in records.items():
        assert 0 < record.metadata["brightness"] < 255
        # The source's own "path" wins over the extractor's key of the same name.
        assert record.metadata["path"] == str((photos / item).resolve())


def test_switching_on_a_versioned_extractor_runs_it_once_over_the_index(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        engine.index_folder(photos)
        before = _vectors(engine)

    brightness = Brightness("1")
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[ExifExtractor(), brightness])
        assert sorted(report.indexed) == sorted(before) and report.skipped == 0
        assert sorted(brightness.seen) == sorted(before)
        after = _vectors(engine)
        assert all("brightness" in r.metadata for r in engine.store.fetch(list(before)).values())
    # Vectors were reused, not re-encoded: bit for bit the stored ones.
    assert all(np.array_equal(before[item], after[item]) for item in before)

    again = Brightness("1")
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[ExifExtractor(), again])
    assert (report.indexed, report.skipped, again.seen) == ((), 4, [])

    bumped = Brightness("2")
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[ExifExtractor(), bumped])
    assert len(bumped.seen) == 4 and report.skipped == 0


def test_a_killed_extractor_pass_continues_where_it_stopped(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        engine.index_folder(photos)
    engine = SearchEngine.open(index, encoder=tiny_encoder)
    with pytest.raises(Stop):
        # One image per batch, a commit after each: two are done when it stops.
        engine.index_folder(photos, extractors=[StopAfter(2)], batch_size=1)
    engine.writer.discard()
    engine.close()

    rest = Brightness("1")
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[rest])
        assert len(engine.store) == 4
    assert len(rest.seen) == 2 and report.skipped == 2


def test_an_extractor_failure_fails_that_item_only_and_is_not_retried(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    index = tmp_path / "index"
    bad = sorted(p.name for p in photos.iterdir())[1]
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[Brightness("1", fail_on=bad)])
        assert len(report.indexed) == 4  # still searchable by its vector
        (failure,) = report.failed
        assert failure.source.endswith(bad) and failure.reason == "brightness: too dark to tell"
        assert "brightness" not in engine.store.fetch([bad])[bad].metadata
    again = Brightness("1", fail_on=bad)
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        report = engine.index_folder(photos, extractors=[again])
    assert again.seen == [] and report.skipped == 4


class GoneAfter(Brightness):
    """An extractor whose service goes away after ``count`` items."""

    def __init__(self, count: int) -> None:
        super().__init__("1")
        self.count = count

    def extract(self, item: Item) -> Extracted:
        if len(self.seen) >= self.count:
            raise ExtractorUnavailableError(self.name, "the service stopped answering")
        return super().extract(item)


def test_an_unavailable_extractor_stops_the_run_and_a_rerun_continues(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    index = tmp_path / "index"
    with SearchEngine.create(index, encoder=tiny_encoder) as engine:
        # One batch of four: the two before the stop are written and committed.
        with pytest.raises(ExtractorUnavailableError) as info:
            engine.index_folder(photos, extractors=[GoneAfter(2)])
        assert "brightness is unavailable" in str(info.value)
        stopped = info.value.report
        assert len(stopped.indexed) == 2 and stopped.failed == ()
    with SearchEngine.open(index, encoder=tiny_encoder) as engine:
        assert sorted(engine.store.ids()) == sorted(stopped.indexed)
        assert engine.folder is not None
        entries = engine.folder.entries()  # the photos not reached are not recorded
        assert sorted(entries) == sorted(stopped.indexed)
        assert {e.status for e in entries.values()} == {"indexed"}
        rest = Brightness("1")
        report = engine.index_folder(photos, extractors=[rest])
        assert len(report.indexed) == 2 and report.failed == () and report.skipped == 2
        assert sorted(rest.seen) == sorted(set(report.indexed))
        records = engine.store.fetch(list(engine.store.ids()))
        assert len(records) == 4 and all("brightness" in r.metadata for r in records.values())


class TextSide:
    """A writer companion keeping extracted text, committed after the store."""

    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine
        self.staged: dict[str, Mapping[str, str] | None] = {}
        self.committed: dict[str, Mapping[str, str]] = {}

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        self.staged.update({item: extra.get("texts", {}) for item, extra in zip(ids, extras)})

    def delete(self, ids: Sequence[str]) -> None:
        self.staged.update(dict.fromkeys(ids))

    def commit(self) -> None:
        for item, texts in self.staged.items():
            if texts is None:
                self.committed.pop(item, None)
            else:
                self.committed[item] = texts
        self.staged.clear()

    def discard(self) -> None:
        self.staged.clear()


def test_a_companion_gets_the_text_with_the_commit_and_loses_it_with_the_file(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        side = TextSide(engine)
        engine.writer.attach(side)
        engine.index_folder(photos, extractors=[Brightness("1")])
        assert sorted(side.committed) == sorted(p.name for p in photos.iterdir())
        assert all(t["tone"].startswith("tone ") for t in side.committed.values())
        gone = sorted(side.committed)[0]
        (photos / gone).unlink()
        engine.index_folder(photos, extractors=[Brightness("1")])
        assert gone not in side.committed and len(side.committed) == 3


class Frames(FolderSource):
    """Two items per file, as a video source gives one per chosen frame."""

    def open(self, index: IndexView) -> Listing:
        listing = super().open(index)
        items = [
            Item(
                id=f"{item.id}#t={t}",
                path=item.path,
                display_path=item.display_path,
                size=item.size,
                mtime_ns=item.mtime_ns,
                metadata={**item.metadata, "t": t},
            )
            for item in listing.items
            for t in (0, 1)
        ]
        return Listing(
            items=items,
            total=len(items),
            root=listing.root,
            covers=listing.covers,
            register=listing.register,
        )


def test_several_items_per_file_are_all_removed_with_it(
    tmp_path: Path, tiny_encoder: Any, photos: Path
) -> None:
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        report = engine.ingest(Frames(photos))
        assert len(report.indexed) == 8
        name = sorted(p.name for p in photos.iterdir())[0]
        (photos / name).unlink()
        report = engine.ingest(Frames(photos))
        assert sorted(report.removed) == [f"{name}#t=0", f"{name}#t=1"]
        assert report.skipped == 6 and len(engine.store) == 6
