"""An index folder's lexical side: ``text.sqlite``, beside the store (FAISS or Pinecone).

The state records (``meta`` row ``text_index``) that a folder has a lexical side, so that
a deleted ``text.sqlite`` is reported as missing, naming the repair command, rather than
read as an index without text. See :mod:`zeroshot_vision._lexical` for what it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zeroshot_vision._lexical import TEXT_DATABASE, LexicalIndex

if TYPE_CHECKING:
    from zeroshot_vision._index.folder import IndexFolder

__all__ = [
    "TEXT_EXTRACTOR_VERSION",
    "TEXT_META_KEY",
    "FolderTextCompanion",
    "create_text_index",
    "has_text_index",
    "open_text_index",
]

logger = logging.getLogger(__name__)

TEXT_EXTRACTOR_VERSION = "1"
"""Bump when what the lexical side holds per image changes: every image is rewritten once."""
TEXT_META_KEY = "text_index"
"""The state's ``meta`` row saying that the folder has a lexical side."""


def has_text_index(folder: IndexFolder) -> bool:
    """Whether ``folder`` was given a lexical side (present and sound or not)."""
    return folder.meta(TEXT_META_KEY) is not None


def open_text_index(folder: IndexFolder) -> LexicalIndex | None:
    """The folder's lexical side to search, or ``None`` when it never had one.

    Raises:
        TextIndexDamagedError: It had one, and ``text.sqlite`` is missing or damaged (the
            message names ``zsv index --rebuild-text``).
    """
    if not has_text_index(folder):
        return None
    return LexicalIndex(folder.path / TEXT_DATABASE)


def create_text_index(folder: IndexFolder, *, fresh: bool = False) -> LexicalIndex:
    """The folder's lexical side to write (the writer holds the lock), created if needed.

    Args:
        folder: A locked index folder.
        fresh: Start from an empty database (rebuilding a damaged one).
    """
    path = folder.path / TEXT_DATABASE
    if fresh:
        for leftover in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)
    index = LexicalIndex(path, create=True)
    if not has_text_index(folder):
        folder.state().set_meta(TEXT_META_KEY, "1")
    return index


class FolderTextCompanion:
    """The writer companion that keeps an index folder's ``text.sqlite`` in step.

    The database is created at the first write or delete (the writer holds the folder's
    lock by then); see :class:`~zeroshot_vision._index.writer.Companion`.

    Args:
        folder: The index folder.
    """

    def __init__(self, folder: IndexFolder) -> None:
        self.folder = folder
        self.index: LexicalIndex | None = None

    def __repr__(self) -> str:
        return f"FolderTextCompanion({str(self.folder.path)!r})"

    def _open(self) -> LexicalIndex:
        if self.index is None:
            self.index = create_text_index(self.folder)
        return self.index

    def write(self, ids: Sequence[str], extras: Sequence[Mapping[str, Any]]) -> None:
        """Stage the text of written images."""
        self._open().write(ids, extras)

    def delete(self, ids: Sequence[str]) -> None:
        """Stage the removal of images' text."""
        self._open().delete(ids)

    def commit(self) -> None:
        """Commit what was staged (nothing to do before the first write)."""
        if self.index is not None:
            self.index.commit()

    def discard(self) -> None:
        """Forget what was staged."""
        if self.index is not None:
            self.index.discard()

    def rebuild(self) -> None:
        """Start the lexical side afresh (empty); the next folder run refills it."""
        if self.index is not None:
            self.index.close()
            self.index = None
        self.index = create_text_index(self.folder, fresh=True)

    def close(self) -> None:
        """Close the database."""
        if self.index is not None:
            self.index.close()
            self.index = None
