"""zeroshot-vision: zero-shot semantic image search and classification with SigLIP.

Images and texts are embedded into one vector space by SigLIP; image vectors live in a
pluggable vector store; a text query is the nearest neighbours of its vector.

    >>> from zeroshot_vision import SearchEngine  # doctest: +SKIP
    >>> with SearchEngine.create("my-index") as engine:  # google/siglip-so400m-patch14-384
    ...     engine.index_folder("photos")  # recursive, incremental, resumable
    ...     engine.search("a cyber-punk street at night", k=3)

``zsv search "a cat" --index my-index`` then opens the same index.

Importing this package is cheap: torch, transformers, faiss and pinecone load on first
use.
"""

from zeroshot_vision.duplicates import DEFAULT_DUPLICATE_THRESHOLD
from zeroshot_vision.encoder import Encoder
from zeroshot_vision.engine import SearchEngine, file_id
from zeroshot_vision.errors import (
    DatasetNotFoundError,
    DimensionMismatchError,
    ImageDecodeError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
    IndexDamagedError,
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
from zeroshot_vision.images import load_image
from zeroshot_vision.index import IndexFolder, IndexWriter, export_index, import_index
from zeroshot_vision.models import default_model
from zeroshot_vision.query import Query, QueryPart
from zeroshot_vision.results import SearchResults
from zeroshot_vision.stores.base import VectorStore
from zeroshot_vision.stores.batch import query_many
from zeroshot_vision.stores.exchange import export_store, import_store
from zeroshot_vision.stores.faiss import FaissStore
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
        "zeroshot_vision.duplicates",
        "find_duplicates",
        "use SearchEngine.duplicates, or zeroshot_vision.duplicates.find_duplicates",
    ),
    "caption": ("zeroshot_vision.types", "caption", "import it from zeroshot_vision.types"),
}


def __getattr__(name: str) -> object:
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
