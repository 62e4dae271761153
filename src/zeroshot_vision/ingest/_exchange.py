"""Index folders in and out as Parquet (``zsv export`` / ``zsv import``).

The file format is :mod:`zeroshot_vision.stores._parquet`'s; these functions add what an
index folder needs: the model recorded in the file on export, and on import the folder's
state kept in step with its store: an import is the ingest pipeline
(:mod:`zeroshot_vision.ingest`) with a source whose vectors are already computed.
"""

from __future__ import annotations

import logging
import os

from zeroshot_vision._errors import IndexExistsError, InvalidInputError
from zeroshot_vision._index.folder import IndexFolder
from zeroshot_vision._models import default_model
from zeroshot_vision._progress import ProgressOption
from zeroshot_vision.ingest._run import ingest_into_store
from zeroshot_vision.ingest._sources import ParquetSource
from zeroshot_vision.stores._parquet import ParquetVectors, export_store

__all__ = ["check_import_model", "export_index", "import_index"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def export_index(
    index: PathLike,
    path: PathLike,
    *,
    batch_size: int = 1_000,
    progress: ProgressOption = None,
) -> int:
    """:func:`~zeroshot_vision.stores._parquet.export_store` for an index folder,
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
    """:func:`~zeroshot_vision.stores._parquet.import_store` into an index folder,
    creating it (FAISS) if needed.

    A new folder records ``model``, else the model the file names, else the default
    model (``$ZSV_MODEL``): the model that made the vectors, so that text queries are
    embedded by the same one. No model is loaded. As for indexing, ids are recorded as
    pending before they reach the store and as indexed after it commits, so an
    interrupted import leaves a folder that opens. ``wait`` is how many seconds to wait
    for another writer of the folder to finish (0: fail at once).

    Raises:
        DimensionMismatchError: The file's dimension differs from the folder's.
        InvalidInputError: See :func:`~zeroshot_vision.stores._parquet.import_store`; or
            the folder holds other files; or, into an existing folder, vectors of another
            model than its own (see :func:`check_import_model`).
        IndexLockedError: Another process is writing to the folder (and did not finish
            within ``wait``).
    """
    info = ParquetVectors.open(path)
    checked = False
    if IndexFolder.exists(index):
        folder = IndexFolder.open(index)
        check_import_model(folder.manifest.model, file_model=info.model, requested=model)
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


def check_import_model(index_model: str, *, file_model: str | None, requested: str | None) -> None:
    """Refuse vectors of another model than the index's, before anything is written.

    The vectors' model is ``requested`` (``--model``) when given, else the one the file
    records; a file from another tool that records none cannot be checked, and is taken
    at its word. Models are compared by
    :func:`~zeroshot_vision._models.same_checkpoint`, the identity check every command
    uses (a local copy of the index's checkpoint is the same model).

    Raises:
        InvalidInputError: The vectors' model is another one; the message names both.
    """
    from zeroshot_vision._models import same_checkpoint

    vectors_model, where = (
        (requested, "--model says") if requested else (file_model, "the file records")
    )
    if vectors_model is None or same_checkpoint(vectors_model, index_model):
        return
    raise InvalidInputError(
        f"the index holds vectors of model {index_model}, but {where} model {vectors_model}: "
        "vectors of two models do not compare; import into a new index folder, or re-encode "
        "the images with the index's model"
    )
