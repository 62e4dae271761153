"""The on-disk index folder: everything later commands need, found from one path.

An index folder holds::

    settings.json   # which model made the vectors, their dimension, and which store holds them
    store/          # the FaissStore folder (for the "faiss" store kind)
    state.json      # what the indexing pipeline has committed (see zeroshot_vision.pipeline)

``settings.json`` is written once, atomically, when the folder is created; it is what lets
``zsv search --index DIR`` rebuild the same encoder and store without repeating options.
For a remote store (Pinecone) the folder keeps the connection options (never the API key,
which stays in ``PINECONE_API_KEY``) and the store is connected lazily, when first opened;
with neither host nor index name recorded, ``PINECONE_INDEX_HOST`` or ``PINECONE_INDEX``
names the index.

Example:
    >>> settings = create_index_dir("my-index", model="google/siglip-so400m-patch14-384",
    ...                             dim=1152)  # doctest: +SKIP
    >>> engine = open_engine("my-index")  # doctest: +SKIP
    >>> engine.search("a red bicycle", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._files import write_atomic
from zeroshot_vision.errors import (
    DimensionMismatchError,
    IndexNotFoundError,
    InvalidInputError,
    StoreError,
)

if TYPE_CHECKING:
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.stores.base import VectorStore

__all__ = [
    "SETTINGS_FILE",
    "STORE_DIR",
    "STORE_KINDS",
    "IndexSettings",
    "check_index_folder",
    "close_store",
    "create_index_dir",
    "index_size_bytes",
    "model_reference",
    "open_engine",
    "open_store",
    "read_settings",
    "save_store",
]

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
STORE_DIR = "store"
STORE_KINDS = ("faiss", "pinecone")
FORMAT = "zeroshot-vision/index"
FORMAT_VERSION = 1

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class IndexSettings:
    """What an index folder records about how its vectors were made and where they live.

    Attributes:
        model: The encoder's checkpoint: a Hugging Face name, or an absolute local path.
        dim: The embedding dimension.
        store: The store kind, one of :data:`STORE_KINDS`.
        store_options: Options for the store (for ``"pinecone"``: ``host``,
            ``index_name``, ``namespace``). Never secrets.
    """

    model: str
    dim: int
    store: str = "faiss"
    store_options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The settings as the JSON object stored in ``settings.json``."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.model,
            "dim": self.dim,
            "store": {"kind": self.store, "options": dict(self.store_options)},
        }


def model_reference(model: str) -> str:
    """The form of a model name to record: local folders become absolute paths.

    A relative folder would point elsewhere once a later command runs from another
    working directory; a hub name (``google/siglip-...``) is kept as given.
    """
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


def _check_settings(settings: IndexSettings) -> None:
    if not isinstance(settings.model, str) or not settings.model:
        raise InvalidInputError("the model name must be a non-empty string")
    if isinstance(settings.dim, bool) or not isinstance(settings.dim, int) or settings.dim <= 0:
        raise InvalidInputError(f"dim must be a positive integer, got {settings.dim!r}")
    if settings.store not in STORE_KINDS:
        raise InvalidInputError(
            f"unknown store kind {settings.store!r}; expected one of {', '.join(STORE_KINDS)}"
        )
    options = settings.store_options
    if settings.store == "pinecone" and options.get("host") and options.get("index_name"):
        raise InvalidInputError("name the Pinecone index by its host or its name, not both")


def check_index_folder(path: PathLike) -> None:
    """Check that ``path`` can hold an index: an index folder, an empty folder, or nothing.

    A folder that holds other files is refused, so that a mistyped ``--index`` never
    mixes an index into (or overwrites the ``state.json`` or ``store/`` of) a folder
    that belongs to something else.

    Raises:
        InvalidInputError: If ``path`` is a file, or a non-empty folder without an index.
    """
    folder = Path(path)
    if not folder.exists() or (folder / SETTINGS_FILE).is_file():
        return
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is a file, not an index folder")
    if any(folder.iterdir()):
        raise InvalidInputError(
            f"{folder} is not empty and holds no index (no {SETTINGS_FILE}); "
            "give --index a new or empty folder"
        )


def create_index_dir(
    path: PathLike,
    *,
    model: str,
    dim: int,
    store: str = "faiss",
    store_options: Mapping[str, Any] | None = None,
    exist_ok: bool = True,
) -> IndexSettings:
    """Create an index folder (or check an existing one) and return its settings.

    Args:
        path: The index folder; created with its parents if needed.
        model: The encoder's checkpoint name or local path (see :func:`model_reference`).
        dim: The encoder's embedding dimension.
        store: The store kind, ``"faiss"`` (default) or ``"pinecone"``.
        store_options: Store options to record (Pinecone: ``host``, ``index_name``,
            ``namespace``).
        exist_ok: If the folder already holds settings, return them when they agree
            with the arguments instead of raising.

    Raises:
        InvalidInputError: If the settings are malformed, the folder already holds an
            index made with another model, dimension or store (or ``exist_ok`` is false),
            or it is a non-empty folder that is not an index (see
            :func:`check_index_folder`).
    """
    folder = Path(path)
    settings = IndexSettings(
        model=model_reference(model),
        dim=dim,
        store=store,
        store_options={k: v for k, v in (store_options or {}).items() if v is not None},
    )
    _check_settings(settings)
    if (folder / SETTINGS_FILE).exists():
        existing = read_settings(folder)
        if not exist_ok:
            raise InvalidInputError(f"{folder} already holds an index")
        _check_compatible(folder, existing, settings)
        return existing
    check_index_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / SETTINGS_FILE, json.dumps(settings.to_json(), indent=2).encode())
    logger.info("created index folder %s (model %s, dim %d)", folder, settings.model, dim)
    return settings


def _check_compatible(folder: Path, existing: IndexSettings, wanted: IndexSettings) -> None:
    if existing.model != wanted.model:
        raise InvalidInputError(
            f"{folder} was indexed with model {existing.model!r}, not {wanted.model!r}; "
            "use another index folder for another model"
        )
    if existing.dim != wanted.dim:
        raise DimensionMismatchError(
            f"{folder} holds vectors of dimension {existing.dim}, the model makes {wanted.dim}",
            expected=existing.dim,
            actual=wanted.dim,
        )
    if existing.store != wanted.store:
        raise InvalidInputError(f"{folder} uses the {existing.store!r} store, not {wanted.store!r}")
    if wanted.store_options and dict(wanted.store_options) != dict(existing.store_options):
        raise InvalidInputError(
            f"{folder} uses the store options {dict(existing.store_options)}, not "
            f"{dict(wanted.store_options)}; use another index folder"
        )


def read_settings(path: PathLike) -> IndexSettings:
    """Read the settings of an index folder.

    Raises:
        IndexNotFoundError: If ``path`` is not an index folder.
        StoreError: If ``settings.json`` is damaged or from a newer version.
    """
    folder = Path(path)
    file = folder / SETTINGS_FILE
    if not file.is_file():
        raise IndexNotFoundError(
            f"no index at {folder} (missing {SETTINGS_FILE}; create one with 'zsv index')"
        )
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ValueError("not an index settings file")
        if int(raw.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"written by a newer zeroshot-vision (format {raw['version']})")
        store = raw.get("store") or {}
        settings = IndexSettings(
            model=str(raw["model"]),
            dim=int(raw["dim"]),
            store=str(store.get("kind", "faiss")),
            store_options=dict(store.get("options") or {}),
        )
        _check_settings(settings)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"cannot read {file}: {exc}") from exc
    return settings


def open_store(path: PathLike, settings: IndexSettings | None = None) -> VectorStore:
    """Open the vector store of an index folder.

    A faiss index folder with nothing saved yet gives an empty :class:`FaissStore`; a
    pinecone one connects with the recorded options (the API key comes from the
    ``PINECONE_API_KEY`` environment variable).

    Raises:
        IndexNotFoundError: If ``path`` is not an index folder.
        MissingDependencyError: If the store's optional package is not installed.
    """
    folder = Path(path)
    settings = settings or read_settings(folder)
    if settings.store == "pinecone":
        from zeroshot_vision._optional import require

        module = require(
            "zeroshot_vision.stores.pinecone", extra="pinecone", purpose="the pinecone store"
        )
        options = settings.store_options
        store: VectorStore = module.PineconeStore.connect(
            host=options.get("host"),
            index_name=options.get("index_name"),
            namespace=options.get("namespace") or "",
            dim=settings.dim,
        )
        return store

    from zeroshot_vision.stores.faiss import MANIFEST, FaissStore

    if not (folder / STORE_DIR / MANIFEST).is_file():
        return FaissStore(settings.dim)
    faiss_store = FaissStore.load(folder / STORE_DIR)
    if faiss_store.dim != settings.dim:
        raise DimensionMismatchError(
            f"the store in {folder} holds dimension {faiss_store.dim}, settings say {settings.dim}",
            expected=settings.dim,
            actual=faiss_store.dim,
        )
    return faiss_store


def save_store(path: PathLike, store: VectorStore) -> None:
    """Make the store's current contents durable in the index folder.

    A :class:`FaissStore` is saved (atomically) to ``path/store``; a remote store has
    already committed each write, so there is nothing to do.
    """
    from zeroshot_vision.stores.faiss import FaissStore

    if isinstance(store, FaissStore):
        store.save(Path(path) / STORE_DIR)


def close_store(store: object) -> None:
    """Release a store's connections, for stores that hold any (``PineconeStore``).

    Stores opened with :func:`open_store` or :func:`open_engine` should be closed this way
    when done; for a :class:`FaissStore` it does nothing.
    """
    close = getattr(store, "close", None)
    if callable(close):
        close()


def open_engine(
    index_dir: PathLike,
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> SearchEngine:
    """Load the encoder and store recorded in an index folder and join them in an engine.

    Args:
        index_dir: The index folder.
        model: Use this checkpoint instead of the recorded one (for example a local copy
            of the same model); its dimension must match the index.
        device: Torch device for the encoder (``"cpu"``, ``"cuda"``, ...); ``None`` picks.
        dtype: Torch dtype for the encoder; ``None`` picks.

    Raises:
        IndexNotFoundError: If ``index_dir`` is not an index folder.
        ModelLoadError: If the model cannot be loaded.
        DimensionMismatchError: If the model's dimension differs from the index's.
    """
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.engine import SearchEngine

    settings = read_settings(index_dir)
    encoder = Encoder.from_pretrained(model or settings.model, device=device, dtype=dtype)
    if encoder.dim != settings.dim:
        raise DimensionMismatchError(
            f"model {model or settings.model!r} makes vectors of dimension {encoder.dim}, "
            f"but the index at {index_dir} holds dimension {settings.dim}",
            expected=settings.dim,
            actual=encoder.dim,
        )
    return SearchEngine(encoder, open_store(index_dir, settings))


def index_size_bytes(path: PathLike) -> int:
    """The total size of the files in an index folder, in bytes."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:  # removed while we walk (a concurrent save)
                continue
    return total
