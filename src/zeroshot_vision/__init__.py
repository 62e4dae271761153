"""zeroshot-vision: zero-shot semantic image search and classification with SigLIP.

Images and texts are embedded into one vector space by SigLIP; image vectors live in a
pluggable vector store; a text query is the nearest neighbours of its vector.

    >>> from zeroshot_vision import SearchEngine  # doctest: +SKIP
    >>> with SearchEngine.create("my-index") as engine:  # google/siglip-so400m-patch14-384
    ...     engine.index_folder("photos")  # recursive, incremental, resumable
    ...     engine.search("a cyber-punk street at night", k=3)

``zsv search "a cat" --index my-index`` then opens the same index.

Importing this package is cheap: its names are imported on first use (the engine,
numpy, the stores), and torch, transformers, faiss and pinecone when they are needed.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from zeroshot_vision.errors import (
    DatasetNotFoundError,
    DimensionMismatchError,
    ImageDecodeError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
    IndexDamagedError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidVectorError,
    MissingColumnError,
    MissingDependencyError,
    ModelLoadError,
    PartialWriteError,
    RecordNotFoundError,
    StoreError,
    UnsupportedFilterError,
    ZeroshotVisionError,
)

if _TYPE_CHECKING:
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.engine import SearchEngine, file_id
    from zeroshot_vision.images import load_image
    from zeroshot_vision.index import IndexFolder, IndexWriter
    from zeroshot_vision.ingest.exchange import export_index, import_index
    from zeroshot_vision.models import default_model
    from zeroshot_vision.near_duplicates import DEFAULT_DUPLICATE_THRESHOLD
    from zeroshot_vision.query import Query, QueryPart
    from zeroshot_vision.results import SearchResults
    from zeroshot_vision.stores.base import VectorStore
    from zeroshot_vision.stores.batch import query_many
    from zeroshot_vision.stores.faiss import FaissStore
    from zeroshot_vision.stores.parquet import export_store, import_store
    from zeroshot_vision.stores.pinecone import PineconeStore
    from zeroshot_vision.stores.registry import register_store_kind, store_kinds
    from zeroshot_vision.stores.transfer import copy_store
    from zeroshot_vision.types import (
        ClassifyReport,
        DuplicateGroup,
        DuplicatePair,
        FolderReport,
        Hit,
        ImageFailure,
        ImageLabels,
        IndexReport,
        LabelScore,
        Progress,
        Record,
        SearchResult,
    )

__version__ = "0.1.0"

_LAZY = {
    "DEFAULT_DUPLICATE_THRESHOLD": "zeroshot_vision.near_duplicates",
    "Encoder": "zeroshot_vision.encoder",
    "SearchEngine": "zeroshot_vision.engine",
    "file_id": "zeroshot_vision.engine",
    "load_image": "zeroshot_vision.images",
    "IndexFolder": "zeroshot_vision.index",
    "IndexWriter": "zeroshot_vision.index",
    "export_index": "zeroshot_vision.ingest.exchange",
    "import_index": "zeroshot_vision.ingest.exchange",
    "default_model": "zeroshot_vision.models",
    "Query": "zeroshot_vision.query",
    "QueryPart": "zeroshot_vision.query",
    "SearchResults": "zeroshot_vision.results",
    "VectorStore": "zeroshot_vision.stores.base",
    "query_many": "zeroshot_vision.stores.batch",
    "export_store": "zeroshot_vision.stores.parquet",
    "import_store": "zeroshot_vision.stores.parquet",
    "FaissStore": "zeroshot_vision.stores.faiss",
    "PineconeStore": "zeroshot_vision.stores.pinecone",
    "register_store_kind": "zeroshot_vision.stores.registry",
    "store_kinds": "zeroshot_vision.stores.registry",
    "copy_store": "zeroshot_vision.stores.transfer",
    "ClassifyReport": "zeroshot_vision.types",
    "DuplicateGroup": "zeroshot_vision.types",
    "DuplicatePair": "zeroshot_vision.types",
    "FolderReport": "zeroshot_vision.types",
    "Hit": "zeroshot_vision.types",
    "ImageFailure": "zeroshot_vision.types",
    "ImageLabels": "zeroshot_vision.types",
    "IndexReport": "zeroshot_vision.types",
    "LabelScore": "zeroshot_vision.types",
    "Progress": "zeroshot_vision.types",
    "Record": "zeroshot_vision.types",
    "SearchResult": "zeroshot_vision.types",
}
"""Where each public name lives; imported on first use, so ``import zeroshot_vision`` (and
the ``zsv`` command, which imports it first) loads neither numpy nor the engine."""

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "ClassifyReport",
    "DatasetNotFoundError",
    "DimensionMismatchError",
    "DuplicateGroup",
    "DuplicatePair",
    "Encoder",
    "FaissStore",
    "FolderReport",
    "Hit",
    "ImageDecodeError",
    "ImageFailure",
    "ImageLabels",
    "ImageLoadError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IndexDamagedError",
    "IndexExistsError",
    "IndexFolder",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexReport",
    "IndexWriter",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidVectorError",
    "LabelScore",
    "MissingColumnError",
    "MissingDependencyError",
    "ModelLoadError",
    "PartialWriteError",
    "PineconeStore",
    "Progress",
    "Query",
    "QueryPart",
    "Record",
    "RecordNotFoundError",
    "SearchEngine",
    "SearchResult",
    "SearchResults",
    "StoreError",
    "UnsupportedFilterError",
    "VectorStore",
    "ZeroshotVisionError",
    "__version__",
    "copy_store",
    "default_model",
    "export_index",
    "export_store",
    "file_id",
    "import_index",
    "import_store",
    "load_image",
    "query_many",
    "register_store_kind",
    "store_kinds",
]

# Names this package exported before, kept importable for one release: each was a second
# name for something else here, or a display helper.
_DEPRECATED = {
    "IndexProgress": ("zeroshot_vision.types", "Progress", "use zeroshot_vision.Progress"),
    "DEFAULT_MODEL": (
        "zeroshot_vision.models",
        "DEFAULT_MODEL",
        "use zeroshot_vision.default_model() (it honours $ZSV_MODEL)",
    ),
    "find_duplicates": (
        "zeroshot_vision.near_duplicates",
        "find_duplicates",
        "use SearchEngine.duplicates, or zeroshot_vision.near_duplicates.find_duplicates",
    ),
    "caption": ("zeroshot_vision.types", "caption", "import it from zeroshot_vision.types"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    if name in _DEPRECATED:
        import importlib
        import warnings

        module, attribute, hint = _DEPRECATED[name]
        warnings.warn(
            f"zeroshot_vision.{name} is deprecated and will be removed in 0.3: {hint}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'zeroshot_vision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
