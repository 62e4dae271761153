"""The lexical side of an index: words in photos, places and captions, searched with BM25.

A :class:`LexicalIndex` is one SQLite database (``text.sqlite`` in an index folder) with an
FTS5 table: one row per text field of an image (the text read in it, its place, its file
name, an Unsplash description, ...). SQLite ships with Python, so the lexical side costs no
dependency; FTS5 ranks with BM25, folds case and accents (``unicode61 remove_diacritics
2``: "cafe" finds "Café"), and a query is answered in about a millisecond at 100k photos
(``benchmarks/bench_hybrid.py``).

Chinese and Japanese are written without spaces, which ``unicode61`` would read as one
long token. Every CJK character is spaced out when indexed and when queried
(:func:`space_cjk`), so a query word such as "咖啡" becomes the phrase "咖 啡" and finds it
inside a longer line; the trigram tokenizer would miss two-character words.

User queries are never FTS5 syntax: :func:`match_expression` quotes every word, so
``"``, ``*``, ``NEAR``, ``AND``, ``-`` and ``:`` are searched as the words they contain,
and a query of punctuation only matches nothing instead of raising.

The index is a companion of the :class:`~zeroshot_vision._index.writer.IndexWriter`: it
stages what the writer writes and deletes, and commits in the writer's commit, after the
store and before the folder's state records the rows as indexed, so that after a kill the
next run rewrites the same pending ids on both sides.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroshot_vision._errors import TextIndexDamagedError
from zeroshot_vision.stores._filters import compile_filter

__all__ = [
    "MARK_END",
    "MARK_START",
    "OCR_LINES_FIELD",
    "REPAIR_COMMAND",
    "TEXT_DATABASE",
    "LexicalHit",
    "LexicalIndex",
    "OcrLine",
    "document_texts",
    "match_expression",
    "space_cjk",
    "unspace_cjk",
]

logger = logging.getLogger(__name__)

TEXT_DATABASE = "text.sqlite"
"""The lexical index's file in an index folder."""

REPAIR_COMMAND = "zsv index --rebuild-text"
"""What rebuilds a missing or damaged lexical side (named in its errors)."""

MARK_START = "["
"""Put before each matched word in a :attr:`LexicalHit.snippet`."""
MARK_END = "]"
"""Put after each matched word in a :attr:`LexicalHit.snippet`."""

OCR_LINES_FIELD = "ocr.lines"
"""The text field that carries OCR lines as JSON (stored with their boxes, not indexed)."""

_SCHEMA_VERSION = "1"
_SQLITE_READONLY = 8  # sqlite3.SQLITE_READONLY, named in the module from Python 3.11
_SNIPPET_TOKENS = 12
_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
)
_CJK_CHAR = re.compile(f"([{_CJK}])")
_CJK_SPACE = "\u2009"
"""A thin space around each CJK character: a separator to FTS5, removed from snippets."""
_WORD = re.compile(r"\w+")
_MAX_QUERY_WORDS = 32
_PARTIAL_UP_TO = 3
"""Queries of at most this many distinct words also find images holding some of them."""
"""Words of a query kept for the lexical side (a pasted page is not a query)."""

_METADATA_FIELDS = (
    ("location", "place"),
    ("city", "place"),
    ("region", "place"),
    ("country", "place"),
    ("description", "description"),
    ("ai_description", "ai_description"),
    # A caption extractor gives its caption as text too; from the metadata it also
    # reaches a rebuilt lexical side, which runs no extractor again.
    ("caption", "caption"),
)


@dataclass(frozen=True, kw_only=True)
class OcrLine:
    """One line of text read in a photo.

    Attributes:
        text: The words, as recognised.
        confidence: The recogniser's confidence, in [0, 1].
        box: The line's corners in pixels of the image as stored, clockwise from the top
            left: ``((x, y), (x, y), (x, y), (x, y))``.
    """

    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (``box`` as lists)."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "box": [list(corner) for corner in self.box],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OcrLine:
        """The inverse of :meth:`to_json`."""
        return cls(
            text=str(raw["text"]),
            confidence=float(raw["confidence"]),
            box=tuple((float(x), float(y)) for x, y in raw["box"]),
        )


@dataclass(frozen=True, kw_only=True)
class LexicalHit:
    """One image the lexical side found.

    Attributes:
        id: The image's id.
        score: BM25 relevance (higher is better; comparable within one query only).
        field: The text field that matched best (``"ocr"``, ``"place"``, ``"name"``, ...).
        snippet: Its text around the match, each matched word between
            :data:`MARK_START` and :data:`MARK_END` (``None`` when not asked for: see
            :meth:`LexicalIndex.snippets`).
        metadata: The image's metadata as written with it.
        row: The matched field's row in the index (what :meth:`LexicalIndex.snippets`
            reads).
    """

    id: str
    score: float
    field: str
    snippet: str | None
    metadata: Mapping[str, Any]
    row: int = -1


def space_cjk(text: str) -> str:
    """``text`` with every Chinese/Japanese character a word of its own (for FTS5)."""
    return _CJK_CHAR.sub(rf"{_CJK_SPACE}\1{_CJK_SPACE}", text.replace(_CJK_SPACE, " "))


def unspace_cjk(text: str) -> str:
    """Undo :func:`space_cjk` in a snippet (marks included)."""
    return text.replace(_CJK_SPACE, "")


def match_expression(query: str, *, every: bool) -> str | None:
    """An FTS5 expression that searches ``query`` as plain words, or ``None`` if it has none.

    Every word is quoted (a CJK word becomes a quoted phrase of its characters), so no
    part of the query is read as FTS5 syntax.

    Args:
        query: What the user typed.
        every: Join the words with ``AND`` (all must match) rather than ``OR``.
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", query))[:_MAX_QUERY_WORDS]
    terms = []
    for word in words:
        spaced = " ".join(space_cjk(word).split())
        if spaced.strip("_"):
            terms.append('"' + spaced.replace('"', '""') + '"')
    if not terms:
        return None
    return (" AND " if every else " OR ").join(dict.fromkeys(terms))


def _file_name_words(image_id: str) -> str:
    """The words of an id's last path part: ``"trips/IMG_2041.jpg"`` -> ``"IMG_2041 jpg"``."""
    name = image_id.rsplit("/", 1)[-1]
    return name.replace(".", " ")


def document_texts(
    image_id: str, metadata: Mapping[str, Any], texts: Mapping[str, str]
) -> dict[str, str]:
    """The text fields the lexical side holds for one image, by field name.

    The file name, the place (``city``, ``region``, ``country``), the descriptions and
    keywords an Unsplash Lite row carries, a ``caption``, and the texts extractors gave
    (``"ocr"``; a text equal to a metadata field's is held once).
    """
    fields: dict[str, list[str]] = {"name": [_file_name_words(image_id)]}
    for key, field in _METADATA_FIELDS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            fields.setdefault(field, []).append(value)
    keywords = metadata.get("keywords")
    if isinstance(keywords, (list, tuple)):
        words = [k for k in keywords if isinstance(k, str) and k.strip()]
        if words:
            fields["keywords"] = [", ".join(words)]
    for field, text in texts.items():
        if field != OCR_LINES_FIELD and isinstance(text, str) and text.strip():
            parts = fields.setdefault(field, [])
            if text not in parts:  # given both as metadata and as text: once, not twice
                parts.append(text)
    return {field: "\n".join(parts) for field, parts in fields.items()}


def _damaged(path: Path, problem: object) -> TextIndexDamagedError:
    return TextIndexDamagedError(
        f"the lexical index {path} is damaged or missing ({problem}); vector search still "
        f"works (mode='vector'); rebuild the text side with: {REPAIR_COMMAND}",
        path=str(path),
    )


class LexicalIndex:
    """An FTS5 index of each image's text, kept in step with a vector store.

    Writes are staged by :meth:`write` and :meth:`delete` and made durable, in one
    transaction, by :meth:`commit` (see :class:`~zeroshot_vision._index.writer.Companion`).

    Args:
        path: The database file; created when ``create`` is true.
        create: Create the file if it does not exist (a writer); a reader of a missing
            file gets :class:`~zeroshot_vision._errors.TextIndexDamagedError`.

    Raises:
        TextIndexDamagedError: The file is missing (reading) or is not a lexical index.
    """

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise _damaged(self.path, "the file is missing")
        try:
            # A rollback journal, not WAL: readers open the file read-only, so an index
            # on a read-only disk is searched without writing a -shm file beside it.
            if create:
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
                self._create()
            else:
                self._db = self._reader()
            self._check()
        except sqlite3.Error as exc:
            self._close_quietly()
            raise _damaged(self.path, exc) from exc
        except TextIndexDamagedError:
            self._close_quietly()
            raise
        self._staged_writes: dict[str, tuple[dict[str, str], Mapping[str, Any], list[Any]]] = {}
        self._staged_deletes: set[str] = set()

    def __repr__(self) -> str:
        return f"LexicalIndex({str(self.path)!r})"

    def _reader(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
        try:
            db.execute("SELECT value FROM meta LIMIT 1").fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != _SQLITE_READONLY:
                db.close()
                raise
            # A writer killed mid-transaction left a hot journal, which only a read-write
            # connection may roll back (SQLite does so on its first read).
            db.close()
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        return db

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    def _create(self) -> None:
        with self._db:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS images(
                    id TEXT PRIMARY KEY, metadata TEXT NOT NULL, lines TEXT);
                CREATE TABLE IF NOT EXISTS fields(
                    row INTEGER PRIMARY KEY, id TEXT NOT NULL, field TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS fields_by_id ON fields(id);
                CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(
                    text, tokenize = 'unicode61 remove_diacritics 2');
                """
            )
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))

    def _check(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != _SCHEMA_VERSION:
            raise _damaged(self.path, f"unknown schema {row[0] if row else None!r}")

    # -- the writer's companion --------------------------------------------------------

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        """Stage the text of written images (replacing what they had).

        Args:
            ids: The images' ids.
            extras: One mapping per id, as the ingest pipeline gives them: ``"metadata"``
                (what is stored with the vector), ``"texts"`` (text fields of
                extractors, ``{"ocr": "..."}``; the lines read, with their boxes, as
                JSON under :data:`OCR_LINES_FIELD`) or ``"lines"`` (:class:`OcrLine`
                values or their JSON form).
        """
        for image_id, extra in zip(ids, extras):
            metadata = extra.get("metadata") or {}
            texts = extra.get("texts") or {}
            given = extra.get("lines")
            if given is None and OCR_LINES_FIELD in texts:
                given = json.loads(texts[OCR_LINES_FIELD])
            lines = [
                line.to_json() if isinstance(line, OcrLine) else dict(line) for line in given or ()
            ]
            self._staged_deletes.discard(image_id)
            self._staged_writes[image_id] = (
                document_texts(image_id, metadata, texts),
                metadata,
                lines,
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Stage the removal of images' text (missing ids are ignored)."""
        for image_id in ids:
            self._staged_writes.pop(image_id, None)
            self._staged_deletes.add(image_id)

    def commit(self) -> None:
        """Write what was staged, in one transaction.

        Raises:
            TextIndexDamagedError: The database cannot be written (damaged, disk full).
        """
        if not self._staged_writes and not self._staged_deletes:
            return
        touched = list(self._staged_deletes) + list(self._staged_writes)
        try:
            with self._db:
                # FTS5 rows are found by rowid (fields.row): a look-up by an UNINDEXED
                # column would scan the whole table for every image.
                old_rows = [
                    (row,)
                    for image_id in touched
                    for (row,) in self._db.execute(
                        "SELECT row FROM fields WHERE id = ?", (image_id,)
                    )
                ]
                self._db.executemany("DELETE FROM texts WHERE rowid = ?", old_rows)
                self._db.executemany("DELETE FROM fields WHERE id = ?", ((i,) for i in touched))
                self._db.executemany("DELETE FROM images WHERE id = ?", ((i,) for i in touched))
                for image_id, (fields, metadata, lines) in self._staged_writes.items():
                    self._db.execute(
                        "INSERT INTO images VALUES (?, ?, ?)",
                        (
                            image_id,
                            json.dumps(dict(metadata), ensure_ascii=False, default=str),
                            json.dumps(lines, ensure_ascii=False) if lines else None,
                        ),
                    )
                    for field, text in fields.items():
                        row = self._db.execute(
                            "INSERT INTO fields(id, field) VALUES (?, ?)", (image_id, field)
                        ).lastrowid
                        self._db.execute(
                            "INSERT INTO texts(rowid, text) VALUES (?, ?)", (row, space_cjk(text))
                        )
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        self.discard()

    def discard(self) -> None:
        """Forget what was staged since the last :meth:`commit`."""
        self._staged_writes.clear()
        self._staged_deletes.clear()

    def close(self) -> None:
        """Close the database (staged changes are dropped)."""
        self.discard()
        self._db.close()

    def __enter__(self) -> LexicalIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        try:
            return int(self._db.execute("SELECT count(*) FROM images").fetchone()[0])
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    def ids(self) -> Iterable[str]:
        """Every image id with text, in no particular order."""
        try:
            return [row[0] for row in self._db.execute("SELECT id FROM images")]
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    def top_places(self, n: int = 10) -> list[tuple[str, str | None, int]]:
        """The ``n`` places with the most images: ``(city, country_code, count)``."""
        try:
            rows = self._db.execute(
                "SELECT json_extract(metadata, '$.city') AS city, "
                "json_extract(metadata, '$.country_code') AS code, count(*) AS n "
                "FROM images WHERE city IS NOT NULL GROUP BY city, code "
                "ORDER BY n DESC, city LIMIT ?",
                (n,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        return [
            (str(city), code if isinstance(code, str) else None, int(count))
            for city, code, count in rows
        ]

    def lines(self, image_id: str) -> list[OcrLine]:
        """The lines of text read in an image (empty when none were, or it is unknown)."""
        try:
            row = self._db.execute("SELECT lines FROM images WHERE id = ?", (image_id,)).fetchone()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        if row is None or not row[0]:
            return []
        return [OcrLine.from_json(raw) for raw in json.loads(row[0])]

    def texts(self, image_id: str) -> dict[str, str]:
        """The text fields held for an image, by field name (CJK spacing undone)."""
        try:
            rows = self._db.execute(
                "SELECT f.field, t.text FROM fields AS f JOIN texts AS t ON t.rowid = f.row "
                "WHERE f.id = ?",
                (image_id,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        return {field: unspace_cjk(text) for field, text in rows}

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        snippets: bool = True,
    ) -> list[LexicalHit]:
        """The images whose text best matches ``query``'s words, best first.

        Images holding every word come first (BM25 order); for a query of at most three
        distinct words, then those holding one of them (a longer query's partial matches
        are mostly its function words). A query with no words (punctuation only) finds
        nothing.

        Args:
            query: Plain words; FTS5 syntax in it is searched as words.
            k: How many images at most.
            filter: A metadata filter (:mod:`zeroshot_vision.stores._filters`), applied to
                the metadata written with each image.
            snippets: Give each hit its snippet; ``False`` leaves them ``None`` (the
                costly part of a query with many matches) for :meth:`snippets` to fill in
                for the hits that are shown.

        Raises:
            InvalidFilterError: A malformed filter.
            TextIndexDamagedError: The database cannot be read.
        """
        accept = compile_filter(filter)
        found: dict[str, LexicalHit] = {}
        # Images holding only some words of a longer query mostly share its function
        # words ("a", "of"): those are noise to fuse with the vector ranking. Up to
        # _PARTIAL_UP_TO distinct words, a partial match still counts.
        distinct = {word.casefold() for word in _WORD.findall(unicodedata.normalize("NFKC", query))}
        passes = (True, False) if len(distinct) <= _PARTIAL_UP_TO else (True,)
        asked = set()
        for every in passes:
            expression = match_expression(query, every=every)
            if expression is None:
                break
            if expression in asked:  # one word: "all of them" and "any of them" agree
                continue
            asked.add(expression)
            self._collect(expression, k, accept if filter else None, found, snippets)
            if len(found) >= k:
                break
        return list(found.values())[:k]

    def _collect(
        self,
        expression: str,
        k: int,
        accept: Any,
        found: dict[str, LexicalHit],
        snippets: bool = True,
    ) -> None:
        """Add the best rows for ``expression`` to ``found`` until it holds ``k`` images.

        Ranks rowids alone first (asking for snippets or joins in the ranked query would
        compute them for every match before the sort), then reads the chosen rows' ids,
        fields and metadata, and snippets for the images kept only.

        The ranked rows are read from one open statement, a page at a time: FTS5 scores
        every match to sort them, so asking again with ``LIMIT ... OFFSET`` for the next
        page (as a filter that drops most rows needs) would score them all again.
        """
        batch = max(2 * k, 32)
        chosen: dict[int, LexicalHit] = {}
        # Metadata is read with the candidates only to filter them; otherwise once, for
        # the images kept.
        metadata_column = "i.metadata" if accept is not None else "NULL"
        cursor = None
        try:
            # No LIMIT: scoring every match is the cost, and a sort of all the scores
            # costs next to nothing beside it (measured at 100k photos).
            cursor = self._db.execute(
                "SELECT rowid, -rank FROM texts WHERE texts MATCH ? ORDER BY rank", (expression,)
            )
            while len(found) < k:
                ranked = cursor.fetchmany(batch)
                if not ranked:
                    break
                marks = ",".join("?" * len(ranked))
                about = {
                    row: (image_id, field, metadata)
                    for row, image_id, field, metadata in self._db.execute(
                        f"SELECT f.row, f.id, f.field, {metadata_column} FROM fields AS f "
                        f"JOIN images AS i ON i.id = f.id WHERE f.row IN ({marks})",
                        [row for row, _ in ranked],
                    )
                }
                for row, score in ranked:
                    if row not in about or about[row][0] in found:
                        continue
                    image_id, field, metadata_json = about[row]
                    metadata = json.loads(metadata_json) if metadata_json is not None else {}
                    if accept is not None and not accept(metadata):
                        continue
                    chosen[row] = found[image_id] = LexicalHit(
                        id=image_id,
                        score=float(score),
                        field=field,
                        snippet=None,
                        metadata=metadata,
                        row=row,
                    )
                    if len(found) >= k:
                        break
                if len(found) >= k or len(ranked) < batch:
                    break
            cursor.close()
            cursor = None
            if accept is None and chosen:
                marks = ",".join("?" * len(chosen))
                stored = dict(
                    self._db.execute(
                        f"SELECT id, metadata FROM images WHERE id IN ({marks})",
                        [hit.id for hit in chosen.values()],
                    ).fetchall()
                )
                for row, hit in chosen.items():
                    chosen[row] = found[hit.id] = dataclasses.replace(
                        hit, metadata=json.loads(stored.get(hit.id) or "{}")
                    )
            if snippets:
                for row, snippet in self._snippets(expression, list(chosen)).items():
                    hit = chosen[row]
                    found[hit.id] = dataclasses.replace(hit, snippet=snippet)
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        finally:
            if cursor is not None:
                cursor.close()

    def snippets(self, query: str, hits: Sequence[LexicalHit]) -> list[LexicalHit]:
        """``hits`` (of :meth:`search` for ``query``) with their snippets filled in."""
        expression = match_expression(query, every=False)
        if expression is None:
            return list(hits)
        try:
            found = self._snippets(expression, [hit.row for hit in hits])
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc
        return [dataclasses.replace(hit, snippet=found.get(hit.row, hit.snippet)) for hit in hits]

    def _snippets(self, expression: str, rows: list[int]) -> dict[int, str]:
        """The snippets of ``rows`` for ``expression``, in one evaluation of the match."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        return {
            row: unspace_cjk(snippet)
            for row, snippet in self._db.execute(
                "SELECT rowid, snippet(texts, 0, ?, ?, '…', ?) FROM texts "
                f"WHERE texts MATCH ? AND rowid IN ({marks})",
                [MARK_START, MARK_END, _SNIPPET_TOKENS, expression, *rows],
            )
        }
