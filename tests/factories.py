"""Factories for the objects most tests need: an engine over the tiny model, an indexed
photo folder. The fixtures ``make_engine`` and ``make_indexed_folder`` (tests/conftest.py)
hand them out; module-scoped fixtures call the functions directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroshot_vision import FaissStore, SearchEngine
from zeroshot_vision._types import FolderReport


def memory_engine(encoder: Any) -> SearchEngine:
    """An in-memory engine: ``encoder`` (the tiny model) over an empty FAISS store."""
    return SearchEngine(encoder, FaissStore(encoder.dim))


@dataclass(frozen=True)
class IndexedFolder:
    """A folder of photos and the index folder made of it with ``index_folder``."""

    photos: Path
    index: Path
    report: FolderReport


def indexed_folder(
    root: Path, encoder: Any, photos: Sequence[Path], **index_folder: Any
) -> IndexedFolder:
    """Copy ``photos`` into ``root/photos`` and index them into ``root/index``.

    Keyword arguments go to :meth:`SearchEngine.index_folder`.
    """
    folder = root / "photos"
    folder.mkdir(parents=True)
    for path in photos:
        shutil.copy(path, folder / path.name)
    with SearchEngine.create(root / "index", encoder=encoder) as engine:
        report = engine.index_folder(folder, **index_folder)
    assert not report.failed, report.failed
    return IndexedFolder(photos=folder, index=root / "index", report=report)


class EngineFactory:
    """Makes engines over one encoder and closes them all at the end of a test."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.made: list[SearchEngine] = []

    def __call__(self, index: Path | None = None) -> SearchEngine:
        """An in-memory engine, or with ``index`` one that creates (or opens) that folder."""
        if index is None:
            engine = memory_engine(self.encoder)
        elif (index / "settings.json").exists():
            engine = SearchEngine.open(index, encoder=self.encoder)
        else:
            engine = SearchEngine.create(index, encoder=self.encoder)
        self.made.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.made:
            engine.close()  # closing twice is harmless
