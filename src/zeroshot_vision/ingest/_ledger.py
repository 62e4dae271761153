"""Which tracked extractor (name, version) ran on which image of an index folder.

Kept in ``extractors.sqlite`` beside the folder's state, as a
:class:`~zeroshot_vision._index.writer.Companion` of the run's writer: rows are staged
with the vectors and committed after the store, so a run killed half-way leaves the
rows of what it committed, and the next run re-runs an extractor only where it has no
row at the extractor's current version.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LEDGER", "Ledger"]

LEDGER = "extractors.sqlite"
"""The ledger's file name inside an index folder."""


class Ledger:
    """The extractor versions recorded per image id (a writer companion).

    Args:
        path: The SQLite file (created when first written).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._staged: dict[str, Mapping[str, str] | None] = {}

    @classmethod
    def of(cls, folder: Path) -> Ledger:
        """The ledger of the index folder at ``folder``."""
        return cls(folder / LEDGER)

    def versions(self) -> dict[str, dict[str, str]]:
        """Every recorded image: ``{id: {extractor name: version}}`` (committed rows)."""
        if not self.path.exists():
            return {}
        found: dict[str, dict[str, str]] = {}
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            for item, name, version in db.execute("SELECT id, name, version FROM runs"):
                found.setdefault(item, {})[name] = version
        return found

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        """Stage each id's ``extras["versions"]`` (replacing what it had)."""
        for item, extra in zip(ids, extras, strict=True):
            self._staged[item] = dict(extra.get("versions") or {})

    def delete(self, ids: Sequence[str]) -> None:
        """Stage the removal of ids' rows."""
        self._staged.update(dict.fromkeys(ids))

    def commit(self) -> None:
        """Write what was staged, in one transaction."""
        if not self._staged:
            return
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (id TEXT NOT NULL, name TEXT NOT NULL, "
                "version TEXT NOT NULL, PRIMARY KEY (id, name)) WITHOUT ROWID"
            )
            staged = list(self._staged.items())
            db.executemany("DELETE FROM runs WHERE id = ?", [(item,) for item, _ in staged])
            db.executemany(
                "INSERT INTO runs (id, name, version) VALUES (?, ?, ?)",
                [
                    (item, name, version)
                    for item, versions in staged
                    if versions is not None
                    for name, version in versions.items()
                ],
            )
        self._staged.clear()

    def forget(self, name: str) -> None:
        """Drop every committed row of extractor ``name``: it runs again on every image."""
        if not self.path.exists():
            return
        with (
            contextlib.closing(sqlite3.connect(self.path)) as db,
            db,
            contextlib.suppress(sqlite3.OperationalError),  # no table yet
        ):
            db.execute("DELETE FROM runs WHERE name = ?", (name,))

    def discard(self) -> None:
        """Forget what was staged."""
        self._staged.clear()
