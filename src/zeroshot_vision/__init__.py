"""zeroshot-vision: zero-shot semantic image search and classification with SigLIP.

Images and texts are embedded into one vector space by SigLIP; image vectors live in a
pluggable vector store; a text query is the nearest neighbours of its vector.

    >>> from zeroshot_vision import Encoder, FaissStore, SearchEngine  # doctest: +SKIP
    >>> encoder = Encoder.from_pretrained()  # google/siglip-so400m-patch14-384
    >>> engine = SearchEngine(encoder, FaissStore(encoder.dim))
    >>> engine.index_images(["beach.jpg", "street.jpg"])
    >>> engine.search("a cyber-punk street at night", k=3)

Importing this package is cheap: torch, transformers, faiss and pinecone load on first
use.
"""

from zeroshot_vision.encoder import DEFAULT_MODEL, Encoder
from zeroshot_vision.engine import SearchEngine
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
    MissingDependencyError,
    ModelLoadError,
    PartialWriteError,
    RecordNotFoundError,
    StoreError,
    ZeroshotVisionError,
)
from zeroshot_vision.images import load_image
from zeroshot_vision.stores.base import VectorStore
from zeroshot_vision.stores.faiss import FaissStore
from zeroshot_vision.stores.pinecone import PineconeStore
from zeroshot_vision.stores.transfer import copy_store
from zeroshot_vision.types import (
    Hit,
    ImageFailure,
    IndexReport,
    LabelScore,
    Record,
    SearchResult,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "DatasetNotFoundError",
    "DimensionMismatchError",
    "Encoder",
    "FaissStore",
    "Hit",
    "ImageDecodeError",
    "ImageFailure",
    "ImageLoadError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IndexDamagedError",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexReport",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidVectorError",
    "LabelScore",
    "MissingDependencyError",
    "ModelLoadError",
    "PartialWriteError",
    "PineconeStore",
    "Record",
    "RecordNotFoundError",
    "SearchEngine",
    "SearchResult",
    "StoreError",
    "VectorStore",
    "ZeroshotVisionError",
    "__version__",
    "copy_store",
    "load_image",
]
