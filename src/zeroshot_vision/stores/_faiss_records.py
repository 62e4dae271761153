"""The records of a :class:`~zeroshot_vision.stores._faiss.FaissStore`: id, FAISS key and
metadata of each vector, in RAM or in an SQLite file.

A :class:`RecordTable` is a *base* plus an *overlay*:

* the base is an immutable, read-only SQLite file: the records of a saved generation
  (``records-<gen>.sqlite``, written only by ``"ivfpq"`` stores). Its pages are read
  through SQLite's memory map, so the kernel may drop them: at ten million records they
  are file pages, not anonymous memory (a Python dict costs about 400 bytes a record).
* the overlay is three dicts of what changed since the base was written (records put,
  base keys deleted or overwritten). The other kinds have no base: the overlay is the
  whole table, as before.

Saving a generation of an ``"ivfpq"`` store writes a new base (base rows still live,
copied inside SQLite, then the overlay) and :meth:`RecordTable.rebase` swaps it in and
empties the overlay. Readers take the table's state once per call, so a rebase never
shows them half of it.

The file is plain SQLite (stdlib ``sqlite3``)::

    CREATE TABLE records (key INTEGER PRIMARY KEY, id TEXT NOT NULL, meta TEXT);
    CREATE UNIQUE INDEX records_id ON records (id);
    CREATE TABLE store (next_key INTEGER NOT NULL, count INTEGER NOT NULL);

``meta`` is the metadata as JSON (NULL for none). Files written since the filter index
also hold the tables ``fields``, ``terms`` and ``filter_index`` (which fields, declared
or all, the index covers): see :mod:`~zeroshot_vision.stores._faiss_sql`. A file
without them is read as before (filters scan it) and the next generation adds them.
A saved generation copies its base's terms (minus the keys the overlay hides) in the
index's order, so SQLite appends them, then adds the overlay's records' terms.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zeroshot_vision._errors import IndexDamagedError
from zeroshot_vision.stores._faiss_sql import IndexedField, filter_parts, keyset_sql, sql_filter
from zeroshot_vision.stores._filters import compile_filter

__all__ = ["OVERLAY_LIMIT", "RecordFilter", "RecordTable", "SqliteRecords"]

OVERLAY_LIMIT = 1 << 18
"""Records (and deletions) an ``"ivfpq"`` store keeps in RAM beside its records file
before a save writes a new file: about 175 MB of Python objects at most (with photo-like
metadata), whatever the store's size."""
MMAP_BYTES = 1 << 40
"""How much of a records file SQLite may memory-map (all of it, in practice): pages read
through the map are file pages the kernel can drop, not the connection's own cache."""
_CACHE_KIB = 4096  # SQLite's page cache per connection, for pages not read through the map
_SCAN_ROWS = 1 << 14
_BIND_LIMIT = 900  # parameters per statement (SQLite's oldest limit is 999)
_PROBE_ROWS = 20_000  # an indexed term matching fewer keys drives a filter alone


def _dump(meta: dict[str, Any]) -> str | None:
    return json.dumps(meta, ensure_ascii=False) if meta else None


def _parse(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"metadata {raw[:80]!r} is not a JSON object")
    return value


@dataclass(frozen=True)
class RecordFilter:
    """A metadata filter, compiled for scanning a table.

    Attributes:
        passes: The filter's predicate (:func:`~zeroshot_vision.stores._filters.compile_filter`).
        needles: Texts that the JSON of any metadata passing it contains: the JSON of each
            string a field must equal (``{"camera": "X-T4"}``: ``"X-T4"`` with its quotes,
            as ``json.dumps`` writes it, like the records file). SQLite skips rows without
            them before a row's JSON is parsed; :attr:`passes` still decides.
        sql: The filter as one SQL expression over ``meta``
            (:func:`~zeroshot_vision.stores._faiss_sql.sql_filter`), or None.
        filter: The filter itself, for a records file's filter index to plan from.
    """

    passes: Callable[[Any], bool]
    needles: tuple[str, ...] = ()
    sql: tuple[str, tuple[Any, ...]] | None = None
    filter: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, filter: Mapping[str, Any]) -> RecordFilter:
        """The filter, compiled (validated by ``compile_filter``), and as SQL if it can be."""
        passes, needles, sql = compile_filter(filter), tuple(_needles(filter)), sql_filter(filter)
        if sql is not None and needles:
            # A text search is cheaper than parsing the JSON: rows without the strings
            # the filter requires are skipped first (SQLite stops at the first false term).
            where, params = sql
            checks = " AND ".join("instr(meta, ?) > 0" for _ in needles)
            sql = (f"{checks} AND {where}", (*needles, *params))
        return cls(passes, needles, sql, filter)


def _needles(filter: Mapping[str, Any]) -> Iterator[str]:
    for field_name, condition in filter.items():
        if field_name == "$and":
            for part in condition:
                yield from _needles(part)
        elif field_name.startswith("$"):  # $or: no text every match must hold
            continue
        elif isinstance(condition, str):
            yield json.dumps(condition, ensure_ascii=False)
        elif isinstance(condition, Mapping) and isinstance(condition.get("$eq"), str):
            yield json.dumps(condition["$eq"], ensure_ascii=False)


class SqliteRecords:
    """One read-only records file: lookups by id and key, and scans, for any thread.

    One connection, opened at once and shared under a lock: the file may be unlinked by a
    later save (two generations on) while this process still reads it, which an open
    connection survives and a new one would not.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            found = path.stat()
            self.identity = (found.st_dev, found.st_ino)
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            row = self._db.execute("SELECT next_key, count FROM store").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise _damaged(path, exc) from exc
        if row is None:
            raise _damaged(path, "its table 'store' is empty")
        self.next_key, self.count = int(row[0]), int(row[1])
        try:
            self.fields, self.declared = _read_fields(self._db, path)
        except sqlite3.Error as exc:
            raise _damaged(path, exc) from exc
        self.every_field = self.fields is not None and self.declared is None
        self._lock = threading.Lock()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    def parse(self, raw: str | None) -> dict[str, Any]:
        """A row's metadata, from its JSON.

        Raises:
            IndexDamagedError: It is not a JSON object.
        """
        try:
            return _parse(raw)
        except ValueError as exc:
            raise _damaged(self.path, exc) from exc

    def key_of(self, item: str) -> int | None:
        """The key of ``item``, or None."""
        rows = self._all("SELECT key FROM records WHERE id = ?", (item,))
        return int(rows[0][0]) if rows else None

    def get(self, item: str) -> tuple[int, dict[str, Any]] | None:
        """``(key, metadata)`` of ``item``, or None."""
        rows = self._all("SELECT key, meta FROM records WHERE id = ?", (item,))
        return (int(rows[0][0]), self.parse(rows[0][1])) if rows else None

    def by_keys(self, keys: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        """``key -> (id, metadata)`` for the keys found."""
        found: dict[int, tuple[str, dict[str, Any]]] = {}
        for start in range(0, len(keys), _BIND_LIMIT):
            chunk = keys[start : start + _BIND_LIMIT]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, id, meta FROM records WHERE key IN ({marks})"
            for key, item, meta in self._all(sql, [int(k) for k in chunk]):
                found[int(key)] = (item, self.parse(meta))
        return found

    def scan(self, columns: str, needles: Sequence[str] = ()) -> Iterator[tuple[Any, ...]]:
        """Every row's ``columns`` (``"key, id, meta"`` or a part), in key order; only rows
        whose metadata JSON contains each of ``needles`` when given."""
        last = -1
        where = "".join(" AND instr(meta, ?) > 0" for _ in needles)
        while True:
            rows = self._all(
                f"SELECT key, {columns} FROM records WHERE key > ?{where} ORDER BY key LIMIT ?",
                (last, *needles, _SCAN_ROWS),
            )
            if not rows:
                return
            yield from rows
            last = int(rows[-1][0])

    def matching(self, sql: tuple[str, tuple[Any, ...]]) -> npt.NDArray[np.int64]:
        """The keys of the rows where the expression ``sql`` holds, ascending, in one scan."""
        where, params = sql
        return self._keys(f"SELECT key FROM records WHERE {where} ORDER BY key", params)

    def matching_filter(self, where: RecordFilter) -> npt.NDArray[np.int64] | None:
        """The keys of the rows passing ``where``, ascending, through the filter index
        where a part of the filter can use it; None if no part can (scan instead).

        Each term of the filter's top-level *and* that the index answers
        (:func:`~zeroshot_vision.stores._faiss_sql.keyset_sql`) is counted up to
        :data:`_PROBE_ROWS` keys; those under it (or, if none is, all of them) are
        intersected, and the other terms are checked on those rows only, in SQL or, if
        they have none, in Python.
        """
        if self.fields is None or not where.filter:
            return None
        parts = filter_parts(where.filter)
        indexed: list[tuple[int, tuple[str, tuple[Any, ...]]]] = []
        for number, part in enumerate(parts):
            keyset = keyset_sql(part, self.fields)
            if keyset is None and self.every_field and _absent(part, self.fields):
                return np.zeros(0, dtype=np.int64)  # no record has the field it needs
            if keyset is not None:
                indexed.append((number, keyset))
        if not indexed:
            return None
        if len(indexed) > 1:
            small = [(n, ks) for n, ks in indexed if self._count_upto(ks) < _PROBE_ROWS]
            indexed = small or indexed
        used = {number for number, _ in indexed}
        driver = " INTERSECT ".join(f"SELECT key FROM ({sql})" for _, (sql, _) in indexed)
        driver_params = tuple(p for _, (_, params) in indexed for p in params)
        rest = [part for number, part in enumerate(parts) if number not in used]
        if not rest:
            return np.unique(self._keys(driver, driver_params))
        residual = sql_filter({"$and": rest})
        chosen = f"SELECT key FROM records WHERE key IN ({driver})"
        if residual is not None:
            sql, params = residual
            return np.sort(self._keys(f"{chosen} AND {sql}", (*driver_params, *params)))
        passes = compile_filter({"$and": rest})
        rows = self._all(f"SELECT key, meta FROM records WHERE key IN ({driver})", driver_params)
        empty = passes({})
        found = [k for k, meta in rows if (passes(self.parse(meta)) if meta else empty)]
        return np.sort(np.asarray(found, dtype=np.int64))

    def _count_upto(self, keyset: tuple[str, tuple[Any, ...]]) -> int:
        sql, params = keyset
        rows = self._all(f"SELECT count(*) FROM ({sql} LIMIT ?)", (*params, _PROBE_ROWS))
        return int(rows[0][0])

    def _keys(self, sql: str, params: Sequence[Any]) -> npt.NDArray[np.int64]:
        try:
            with self._lock:
                cursor = self._db.execute(sql, params)
                parts = []
                while rows := cursor.fetchmany(_SCAN_ROWS):
                    parts.append(np.fromiter((row[0] for row in rows), np.int64, len(rows)))
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def explain(self, where: RecordFilter) -> list[str]:
        """SQLite's plan (``EXPLAIN QUERY PLAN``) for the index part of ``where``."""
        assert self.fields is not None and where.filter is not None
        keyset = keyset_sql(where.filter, self.fields)
        assert keyset is not None
        rows = self._all(f"EXPLAIN QUERY PLAN {keyset[0]}", keyset[1])
        return [str(row[-1]) for row in rows]

    def key_array(self) -> npt.NDArray[np.int64]:
        """Every key, ascending, without a Python object per row."""
        return self.matching(("1", ()))

    def still_at_path(self) -> bool:
        """Whether ``path`` still names the file this reads (no later save replaced it)."""
        try:
            found = self.path.stat()
        except OSError:
            return False
        return (found.st_dev, found.st_ino) == self.identity

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


_TERM_TYPES = "('text', 'integer', 'real')"


def _insert_terms(db: sqlite3.Connection, rows: str) -> None:
    """Add the terms of the records where the SQL ``rows`` holds, in the index's order."""
    db.execute(
        "INSERT OR IGNORE INTO terms (field, value, key) "
        "SELECT f.id, j.value, r.key FROM records AS r, json_each(r.meta) AS j, fields AS f "
        f"WHERE {rows} AND f.name = j.key AND j.type IN {_TERM_TYPES} "
        "UNION ALL "
        "SELECT f.id, e.value, r.key FROM records AS r, json_each(r.meta) AS j, fields AS f, "
        f"json_each(j.value) AS e WHERE {rows} AND f.name = j.key AND j.type = 'array' "
        f"AND e.type IN {_TERM_TYPES} "
        "ORDER BY 1, 2, 3"
    )


def _read_fields(
    db: sqlite3.Connection, path: Path
) -> tuple[dict[str, IndexedField] | None, str | None]:
    """The indexed fields of a records file (None for a file without a filter index) and
    the fields declared for it (JSON; None: every field)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "terms" not in tables:
        return None, "[]"
    fields = {
        str(name): IndexedField(int(number), bool(lists))
        for number, name, lists in db.execute("SELECT id, name, lists FROM fields")
    }
    row = db.execute("SELECT declared FROM filter_index").fetchone()
    if row is None:
        raise _damaged(path, "its table 'filter_index' is empty")
    return fields, row[0]


def _absent(part: Mapping[str, Any], fields: Mapping[str, IndexedField]) -> bool:
    """Whether ``part`` (one field's conditions) can only hold for records that have the
    field, and the index knows no such field (no record has it)."""
    ((name, condition),) = part.items()
    if name.startswith("$") or name in fields:
        return False
    ops = condition.keys() if isinstance(condition, Mapping) else ("$eq",)
    return any(op in _NEEDS_FIELD for op in ops) or (
        isinstance(condition, Mapping) and condition.get("$exists") is True
    )


_NEEDS_FIELD = frozenset({"$eq", "$in", "$gt", "$gte", "$lt", "$lte"})


def _without(keys: npt.NDArray[np.int64], dead: set[int]) -> npt.NDArray[np.int64]:
    if not dead:
        return keys
    gone = np.fromiter(dead, dtype=np.int64, count=len(dead))
    return keys[~np.isin(keys, gone)]


def _damaged(path: Path, problem: object) -> IndexDamagedError:
    return IndexDamagedError(
        f"the FaissStore records file {path} is damaged ({problem}); restore the folder "
        "from a backup, or re-encode the photos (delete the index folder and run `zsv index` "
        "again)",
        path=str(path),
    )


@dataclass
class _State:
    base: SqliteRecords | None = None
    key_of: dict[str, int] = field(default_factory=dict)
    id_of: dict[int, str] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    shadowed: set[int] = field(default_factory=set)  # base keys deleted or overwritten


class RecordTable:
    """Id, key and metadata of every record; see the module.

    Not locked: the store's read-write lock keeps writers (:meth:`put`, :meth:`drop`)
    apart from readers; :meth:`rebase` may run beside readers.
    """

    def __init__(self) -> None:
        self._state = _State()

    # -- reads ---------------------------------------------------------------------------

    def __len__(self) -> int:
        state = self._state
        base = state.base.count - len(state.shadowed) if state.base is not None else 0
        return base + len(state.key_of)

    def __contains__(self, item: str) -> bool:
        return self.key_of(item) is not None

    @property
    def overlay_size(self) -> int:
        """Records and deletions held in RAM beside the base."""
        state = self._state
        return len(state.key_of) + len(state.shadowed)

    @property
    def next_key(self) -> int:
        """The next key the base's store would have handed out (0 without a base)."""
        base = self._state.base
        return 0 if base is None else base.next_key

    @property
    def base_path(self) -> Path | None:
        """The records file under the overlay, if any."""
        base = self._state.base
        return None if base is None else base.path

    def key_of(self, item: str) -> int | None:
        """The key of ``item``, or None if absent."""
        state = self._state
        key = state.key_of.get(item)
        if key is not None or state.base is None:
            return key
        key = state.base.key_of(item)
        return None if key is None or key in state.shadowed else key

    def get(self, item: str) -> tuple[int, dict[str, Any]] | None:
        """``(key, metadata)`` of ``item``, or None if absent."""
        state = self._state
        key = state.key_of.get(item)
        if key is not None:
            return key, state.meta[item]
        if state.base is None:
            return None
        found = state.base.get(item)
        return None if found is None or found[0] in state.shadowed else found

    def by_keys(self, keys: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
        """``(id, metadata)`` of each live key, in order (a key the index returned)."""
        state = self._state
        rest = [key for key in keys if key not in state.id_of]
        from_base = state.base.by_keys(rest) if rest and state.base is not None else {}
        out = []
        for key in keys:
            item = state.id_of.get(key)
            out.append((item, state.meta[item]) if item is not None else from_base[key])
        return out

    def rows(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """Every ``(id, key, metadata)``: the base's in key order, then the overlay's."""
        state = self._state
        if state.base is not None:
            for key, item, meta in state.base.scan("id, meta"):
                if key not in state.shadowed:
                    yield item, int(key), state.base.parse(meta)
        for item, key in list(state.key_of.items()):
            yield item, key, state.meta[item]

    def ids(self) -> tuple[Iterator[str], int]:
        """Every id, and how many: a snapshot, streamed from the base.

        The base file never changes and this keeps its connection; only the overlay's ids
        and the base keys it hides are copied (at most :data:`OVERLAY_LIMIT`), so later
        writes do not show, and ten million ids are not one list.
        """
        state = self._state
        count = len(self)
        overlay = list(state.key_of)
        if state.base is None:
            return iter(overlay), count
        base, hidden = state.base, set(state.shadowed)

        def stream() -> Iterator[str]:
            for key, item in base.scan("id"):
                if key not in hidden:
                    yield item
            yield from overlay

        return stream(), count

    def keys(self) -> npt.NDArray[np.int64]:
        """Every key."""
        state = self._state
        parts = [np.fromiter(state.key_of.values(), dtype=np.int64, count=len(state.key_of))]
        if state.base is not None:
            parts.insert(0, _without(state.base.key_array(), state.shadowed))
        return np.concatenate(parts)

    def matching_keys(self, where: RecordFilter) -> npt.NDArray[np.int64]:
        """The keys of the records whose metadata passes ``where``, as one array."""
        state = self._state
        passes = where.passes
        found: list[int] = []
        indexed = state.base.matching_filter(where) if state.base is not None else None
        if indexed is not None or (state.base is not None and where.sql is not None):
            assert state.base is not None
            keys = indexed
            if keys is None:
                assert where.sql is not None
                keys = state.base.matching(where.sql)
            keys = _without(keys, state.shadowed)
            overlay = [state.key_of[item] for item, meta in state.meta.items() if passes(meta)]
            return np.concatenate([keys, np.asarray(overlay, dtype=np.int64)])
        if state.base is not None:
            base, empty = state.base, passes({})
            for key, meta in base.scan("meta", where.needles):
                if key not in state.shadowed and (passes(base.parse(meta)) if meta else empty):
                    found.append(int(key))
        found.extend(state.key_of[item] for item, meta in state.meta.items() if passes(meta))
        return np.asarray(found, dtype=np.int64)

    # -- writes --------------------------------------------------------------------------

    def put(self, item: str, key: int, meta: dict[str, Any]) -> int | None:
        """Set ``item``'s record; returns the key it had, or None."""
        old = self.drop(item)
        state = self._state
        state.key_of[item] = key
        state.id_of[key] = item
        state.meta[item] = meta
        return old

    def drop(self, item: str) -> int | None:
        """Remove ``item``; returns its key, or None if it was absent."""
        state = self._state
        key = state.key_of.pop(item, None)
        if key is not None:
            del state.id_of[key]
            del state.meta[item]
        if state.base is not None:
            base_key = state.base.key_of(item)
            if base_key is not None and base_key not in state.shadowed:
                state.shadowed.add(base_key)
                key = base_key if key is None else key
        return key

    # -- files ---------------------------------------------------------------------------

    def write_sqlite(
        self, path: Path, next_key: int, indexed_fields: Sequence[str] | None = None
    ) -> None:
        """Write every record to a new SQLite file at ``path`` (empty or absent), with a
        filter index of ``indexed_fields`` (None: of every field; see
        :mod:`~zeroshot_vision.stores._faiss_sql`)."""
        state = self._state
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode=OFF")  # a temp file: it is renamed once synced
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE records (key INTEGER PRIMARY KEY, id TEXT NOT NULL, meta TEXT)"
            )
            db.execute("CREATE TABLE store (next_key INTEGER NOT NULL, count INTEGER NOT NULL)")
            db.execute("CREATE TEMP TABLE shadowed (key INTEGER PRIMARY KEY)")
            db.executemany("INSERT INTO shadowed VALUES (?)", ((k,) for k in state.shadowed))
            attached = state.base is not None and state.base.still_at_path()
            if attached:
                assert state.base is not None
                # Copied inside SQLite: no row passes through Python.
                db.execute("ATTACH DATABASE ? AS base", (str(state.base.path),))
                db.execute(
                    "INSERT INTO records SELECT key, id, meta FROM base.records "
                    "WHERE key NOT IN (SELECT key FROM shadowed) ORDER BY key"
                )
            elif state.base is not None:  # its file was replaced: read it through our connection
                db.executemany(
                    "INSERT INTO records VALUES (?, ?, ?)",
                    (row for row in state.base.scan("id, meta") if row[0] not in state.shadowed),
                )
            db.executemany(
                "INSERT INTO records VALUES (?, ?, ?)",
                (
                    (key, state.id_of[key], _dump(state.meta[state.id_of[key]]))
                    for key in sorted(state.id_of)
                ),
            )
            db.execute("CREATE UNIQUE INDEX records_id ON records (id)")
            db.execute("INSERT INTO store VALUES (?, ?)", (next_key, len(self)))
            self._write_filter_index(db, attached, indexed_fields)
            db.commit()
            if attached:
                db.execute("DETACH DATABASE base")
        finally:
            db.close()

    def _write_filter_index(
        self, db: sqlite3.Connection, attached: bool, indexed_fields: Sequence[str] | None
    ) -> None:
        """The tables ``fields``, ``terms`` and ``filter_index`` of a file being written:
        the base's terms copied (in their order, so appended) and the overlay's added,
        or, if the base has none of this selection, all built from the records."""
        state = self._state
        declared = None if indexed_fields is None else json.dumps(sorted(set(indexed_fields)))
        db.execute(
            "CREATE TABLE fields (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
            "lists INTEGER NOT NULL)"
        )
        db.execute(
            "CREATE TABLE terms (field INTEGER NOT NULL, value NOT NULL, key INTEGER NOT NULL, "
            "PRIMARY KEY (field, value, key)) WITHOUT ROWID"
        )
        db.execute("CREATE TABLE filter_index (every_field INTEGER NOT NULL, declared TEXT)")
        db.execute("INSERT INTO filter_index VALUES (?, ?)", (declared is None, declared))
        wanted = None if indexed_fields is None else set(indexed_fields)
        if wanted is not None and not wanted:
            return  # no field indexed: empty tables, and no pass over the records
        base = state.base
        if attached and base is not None and base.fields is not None and base.declared == declared:
            db.execute("INSERT INTO fields SELECT id, name, lists FROM base.fields")
            db.execute(
                "INSERT INTO terms SELECT field, value, key FROM base.terms "
                "WHERE key NOT IN (SELECT key FROM shadowed)"
            )
            # The overlay's fields, learnt from its dicts: new names, and lists in old ones.
            lists: dict[str, bool] = {}
            for meta in state.meta.values():
                for name, value in meta.items():
                    if wanted is None or name in wanted:
                        lists[name] = lists.get(name, False) or isinstance(value, list)
            db.executemany(
                "INSERT INTO fields (name, lists) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET lists = max(lists, excluded.lists)",
                lists.items(),
            )
            db.execute("CREATE TEMP TABLE fresh (key INTEGER PRIMARY KEY)")
            db.executemany("INSERT INTO fresh VALUES (?)", ((k,) for k in state.id_of))
            _insert_terms(db, "r.key IN (SELECT key FROM fresh)")
            return
        # Every name (and whether it ever holds a list), in one pass over the JSON.
        found = db.execute(
            "SELECT j.key, max(j.type = 'array') FROM records AS r, json_each(r.meta) AS j "
            "GROUP BY j.key"
        ).fetchall()
        db.executemany(
            "INSERT INTO fields (name, lists) VALUES (?, ?)",
            ((name, lists) for name, lists in found if wanted is None or name in wanted),
        )
        _insert_terms(db, "1")

    def rebase(self, path: Path) -> None:
        """Read the records from the file ``path`` (written by :meth:`write_sqlite` from
        this table) and empty the overlay."""
        self._state = _State(base=SqliteRecords(path))
