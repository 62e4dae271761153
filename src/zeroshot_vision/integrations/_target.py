"""Where the framework adapters write: a bare vector store, or a search engine.

An engine's writes go through its :class:`~zeroshot_vision._index.IndexWriter` (an index
folder's state records ids as pending before the store has them) and are committed at
once: a framework's caller never calls ``commit``. A bare store takes them directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import batched, item_list
from zeroshot_vision._errors import ImageNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import Record
    from zeroshot_vision.stores._base import VectorStore


def given_or_loaded(
    encoder: Encoder | None, *, model: str | os.PathLike[str] | None, device: str | None, dtype: Any
) -> Encoder:
    """``encoder``, or the one ``Encoder.from_pretrained`` loads from the other arguments."""
    if encoder is not None:
        return encoder
    from zeroshot_vision._encoder import Encoder

    return Encoder.from_pretrained(model, device=device, dtype=dtype)


class Target:
    """A store, made on the first write when its dimension is not known in advance.

    Args:
        store: The store to use; ``None`` makes an in-memory exact
            :class:`~zeroshot_vision.stores.FaissStore` of the first vectors' dimension.
        engine: A search engine whose store (and index folder) to use instead.
    """

    def __init__(self, store: VectorStore | None, engine: SearchEngine | None) -> None:
        self.engine = engine
        self._store = engine.store if engine is not None else store

    @property
    def store(self) -> VectorStore | None:
        """The store, or ``None`` while nothing has been written to a lazy one."""
        return self._store

    @property
    def encoder(self) -> Encoder | None:
        """The engine's encoder, when there is an engine."""
        return self.engine.encoder if self.engine is not None else None

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[dict[str, Any]],
    ) -> None:
        """Write records (through the engine, committed, when there is one)."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if self._store is None:
            from zeroshot_vision.stores._faiss import FaissStore

            self._store = FaissStore(int(matrix.shape[1]) if matrix.ndim == 2 else 1)
        if self.engine is None:
            self._store.upsert(ids, matrix, list(metadata))
            return
        from zeroshot_vision._index import FileEntry

        path_of = [meta.get("path") for meta in metadata]
        entries = [
            FileEntry(id=item, path=path if isinstance(path, str) else None)
            for item, path in zip(ids, path_of)
        ]
        self.engine.writer.write(entries, matrix, list(metadata))
        self.engine.commit()

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; missing ids are ignored."""
        if self._store is None or not ids:
            return
        if self.engine is None:
            self._store.delete(list(ids))
            return
        self.engine.writer.delete(list(ids))
        self.engine.commit()

    def commit(self) -> None:
        """Commit what was written outside :meth:`upsert` (an engine's ``index_images``)."""
        if self.engine is not None:
            self.engine.commit()

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records of ``ids``; missing ones left out."""
        return {} if self._store is None else self._store.fetch(list(ids))

    def records(self, batch_size: int = 1_000) -> Iterator[Record]:
        """Every stored record, fetched a batch at a time."""
        if self._store is None:
            return
        for chunk in batched(list(self._store.ids()), batch_size):
            yield from self._store.fetch(chunk).values()


def existing_images(uris: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The paths of ``uris`` as strings, after checking that each is a file.

    Raises:
        InvalidInputError: One string was given instead of a list of them, no list at
            all, or an item that is not a path.
        ImageNotFoundError: A path names no file.
    """
    if isinstance(uris, (str, os.PathLike)):
        raise InvalidInputError("uris must be a list of image paths, not one path")
    paths = []
    for i, uri in enumerate(item_list(uris, "uris")):
        if not isinstance(uri, (str, os.PathLike)):
            raise InvalidInputError(f"uris[{i}] must be a path, got {type(uri).__name__}")
        path = os.fspath(uri)
        if not Path(path).is_file():
            raise ImageNotFoundError(path, "no such file")
        paths.append(path)
    return paths
