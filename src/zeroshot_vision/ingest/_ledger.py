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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["LEDGER", "Ledger", "StagedTable"]

LEDGER = "extractors.sqlite"
"""The ledger's file name inside an index folder."""

_Value = TypeVar("_Value")


class StagedTable(Generic[_Value]):
    """A writer companion: rows per image id in a SQLite file, staged with the vectors.

    Rows are staged by :meth:`write`/:meth:`delete` and written by :meth:`commit` in one
    transaction, after the store's commit, so a run killed between the two leaves rows
    only for what the store holds. Subclasses name the table and turn a staged value
    into its rows.

    Args:
        path: The SQLite file (created when first committed).
    """

    table: ClassVar[str]
    schema: ClassVar[str]
    """The table's columns, ``id`` first, as in ``CREATE TABLE``."""
    columns: ClassVar[tuple[str, ...]]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._staged: dict[str, _Value | None] = {}

    def rows(self, item: str, value: _Value) -> Iterable[tuple[Any, ...]]:
        """The rows to insert for ``item`` (``id`` first)."""
        raise NotImplementedError

    def delete(self, ids: Sequence[str]) -> None:
        """Stage the removal of ids' rows."""
        self._staged.update(dict.fromkeys(ids))

    def discard(self) -> None:
        """Forget what was staged."""
        self._staged.clear()

    def commit(self) -> None:
        """Write what was staged, in one transaction."""
        if not self._staged:
            return
        marks = ", ".join("?" * len(self.columns))
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({self.schema}) WITHOUT ROWID")
            staged = list(self._staged.items())
            db.executemany(f"DELETE FROM {self.table} WHERE id = ?", [(i,) for i, _ in staged])
            db.executemany(
                f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})",
                [
                    row
                    for item, value in staged
                    if value is not None
                    for row in self.rows(item, value)
                ],
            )
        self._staged.clear()

    def select(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The committed rows ``sql`` selects; none before the first commit."""
        if not self.path.exists():
            return []
        with (
            contextlib.closing(sqlite3.connect(self.path)) as db,
            contextlib.suppress(sqlite3.OperationalError),  # no table yet
        ):
            return db.execute(sql, params).fetchall()
        return []


class Ledger(StagedTable[Mapping[str, str]]):
    """The extractor versions recorded per image id (a writer companion).

    Args:
        path: The SQLite file (created when first written).
    """

    table = "runs"
    schema = "id TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, PRIMARY KEY (id, name)"
    columns = ("id", "name", "version")

    @classmethod
    def of(cls, folder: Path) -> Ledger:
        """The ledger of the index folder at ``folder``."""
        return cls(folder / LEDGER)

    def versions(self) -> dict[str, dict[str, str]]:
        """Every recorded image: ``{id: {extractor name: version}}`` (committed rows)."""
        found: dict[str, dict[str, str]] = {}
        for item, name, version in self.select("SELECT id, name, version FROM runs"):
            found.setdefault(item, {})[name] = version
        return found

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        """Stage each id's ``extras["versions"]`` (replacing what it had)."""
        for item, extra in zip(ids, extras, strict=True):
            self._staged[item] = dict(extra.get("versions") or {})

    def rows(self, item: str, value: Mapping[str, str]) -> Iterable[tuple[Any, ...]]:
        return [(item, name, version) for name, version in value.items()]

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
