"""An index folder's lexical side: ``text.sqlite``, beside the store (FAISS or Pinecone).

The state records (``meta`` row ``text_index``) that a folder has a lexical side, so that
a deleted ``text.sqlite`` is reported as missing, naming the repair command, rather than
read as an index without text. See :mod:`zeroshot_vision.lexical` for what it holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from zeroshot_vision.lexical import TEXT_DATABASE, LexicalIndex

if TYPE_CHECKING:
    from zeroshot_vision.index.folder import IndexFolder

__all__ = ["TEXT_META_KEY", "create_text_index", "has_text_index", "open_text_index"]

logger = logging.getLogger(__name__)

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
