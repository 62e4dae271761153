"""Index folders in and out as Parquet (``zsv export`` / ``zsv import``).

The file format is :mod:`zeroshot_vision.stores.exchange`'s; these functions add what an
index folder needs: the model recorded in the file on export, and on import the folder's
state kept in step with its store: an import is the ingest pipeline
(:mod:`zeroshot_vision.ingest`) with a source whose vectors are already computed.
"""

from __future__ import annotations

import logging
import os

from zeroshot_vision._progress import ProgressOption
from zeroshot_vision.errors import IndexExistsError, InvalidInputError
from zeroshot_vision.index.folder import IndexFolder
from zeroshot_vision.ingest.run import ingest_into_store
from zeroshot_vision.ingest.sources import ParquetSource
from zeroshot_vision.models import default_model
from zeroshot_vision.stores.exchange import ParquetVectors, export_store

__all__ = ["export_index", "import_index"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def export_index(
    index: PathLike,
    path: PathLike,
    *,
    batch_size: int = 1_000,
    progress: ProgressOption = None,
) -> int:
    """:func:`~zeroshot_vision.stores.exchange.export_store` for an index folder,
    recording its model in the file."""
    folder = IndexFolder.open(index)
    with folder.open_store() as store:
        return export_store(
            store, path, model=folder.manifest.model, batch_size=batch_size, progress=progress
        )


def import_index(
    path: PathLike,
    index: PathLike,
    *,
    model: str | None = None,
    batch_size: int = 1_000,
    wait: float = 0.0,
    progress: ProgressOption = None,
) -> int:
    """:func:`~zeroshot_vision.stores.exchange.import_store` into an index folder,
    creating it (FAISS) if needed.

    A new folder records ``model``, else the model the file names, else the default
    model (``$ZSV_MODEL``): the model that made the vectors, so that text queries are
    embedded by the same one. No model is loaded. As for indexing, ids are recorded as
    pending before they reach the store and as indexed after it commits, so an
    interrupted import leaves a folder that opens. ``wait`` is how many seconds to wait
    for another writer of the folder to finish (0: fail at once).

    Raises:
        DimensionMismatchError: The file's dimension differs from the folder's.
        InvalidInputError: See :func:`~zeroshot_vision.stores.exchange.import_store`; or
            the folder holds other files.
        IndexLockedError: Another process is writing to the folder (and did not finish
            within ``wait``).
    """
    info = ParquetVectors.open(path)
    checked = False
    if IndexFolder.exists(index):
        folder = IndexFolder.open(index)
    else:
        if info.dim is None:
            raise InvalidInputError(
                f"{info.path} does not say its dimension (a variable-length vector "
                "column); create the index first (zsv index) or write fixed-size lists"
            )
        info.check(info.dim, batch_size=batch_size)  # a bad file creates no folder
        checked = True
        try:
            folder = IndexFolder.create(
                index, model=model or info.model or default_model(), dim=info.dim
            )
        except IndexExistsError:  # another process created it meanwhile: use theirs
            folder = IndexFolder.open(index)
    # Every row is checked before the folder is written: an import is all or nothing.
    if not checked or folder.manifest.dim != info.dim:
        info.check(folder.manifest.dim, batch_size=batch_size)
    folder.lock(wait=wait)
    try:
        batches = info.batches(folder.manifest.dim, batch_size=batch_size, progress=progress)
        source = ParquetSource(batches=batches, name=str(info.path))
        with folder.open_store() as store:
            imported = len(ingest_into_store(source, store, folder).indexed)
    finally:
        folder.unlock()
    logger.info("imported %d records from %s into %s", imported, info.path, folder.path)
    return imported
