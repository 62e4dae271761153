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

from zeroshot_vision._errors import (
    BackendMismatchError,
    BatchTooLargeError,
    DatasetNotFoundError,
    DimensionMismatchError,
    DistributedJobError,
    ExportError,
    ExtractorUnavailableError,
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
    LLMAuthError,
    LLMError,
    LLMImagesRejectedError,
    LLMModelNotFoundError,
    LLMRequestError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnreachableError,
    MissingColumnError,
    MissingDependencyError,
    ModelLoadError,
    PartialWriteError,
    RecordNotFoundError,
    ServerBusyError,
    ServerResponseError,
    ServerUnreachableError,
    StoreError,
    TextIndexDamagedError,
    UnsupportedFilterError,
    ZeroshotVisionError,
)

if _TYPE_CHECKING:
    from zeroshot_vision._ask import Answer, parse_citations
    from zeroshot_vision._captions import CaptionExtractor
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine, file_id
    from zeroshot_vision._images import IMAGE_SUFFIXES, load_image
    from zeroshot_vision._images.video import VideoOptions, select_frames
    from zeroshot_vision._index import FileEntry, IndexFolder, IndexWriter
    from zeroshot_vision._llm import LLMEndpoint, image_data_url
    from zeroshot_vision._models import default_model
    from zeroshot_vision._near_duplicates import DEFAULT_DUPLICATE_THRESHOLD
    from zeroshot_vision._ocr import OcrEngine, OcrExtractor
    from zeroshot_vision._places import PlacesExtractor, ReverseGeocoder
    from zeroshot_vision._presets import PRESETS, ModelPreset
    from zeroshot_vision._query import Query, QueryPart
    from zeroshot_vision._results import SearchResults
    from zeroshot_vision._types import (
        ClassifyReport,
        DuplicateGroup,
        DuplicatePair,
        FolderReport,
        Hit,
        ImageFailure,
        ImageLabels,
        ImageSource,
        IndexReport,
        LabelScore,
        Metadata,
        Progress,
        Record,
        SearchResult,
    )
    from zeroshot_vision.ingest._exchange import export_index, import_index
    from zeroshot_vision.ingest._reindex import ReindexReport
    from zeroshot_vision.stores._base import VectorStore
    from zeroshot_vision.stores._faiss import FaissStore
    from zeroshot_vision.stores._pinecone import PineconeStore

__version__ = "0.1.0"

_LAZY = {
    "SearchEngine": "zeroshot_vision._engine",
    "file_id": "zeroshot_vision._engine",
    "Encoder": "zeroshot_vision._encoder",
    "Query": "zeroshot_vision._query",
    "QueryPart": "zeroshot_vision._query",
    "SearchResults": "zeroshot_vision._results",
    "ClassifyReport": "zeroshot_vision._types",
    "DuplicateGroup": "zeroshot_vision._types",
    "DuplicatePair": "zeroshot_vision._types",
    "FolderReport": "zeroshot_vision._types",
    "Hit": "zeroshot_vision._types",
    "ImageFailure": "zeroshot_vision._types",
    "ImageLabels": "zeroshot_vision._types",
    "ImageSource": "zeroshot_vision._types",
    "IndexReport": "zeroshot_vision._types",
    "LabelScore": "zeroshot_vision._types",
    "Metadata": "zeroshot_vision._types",
    "Progress": "zeroshot_vision._types",
    "Record": "zeroshot_vision._types",
    "SearchResult": "zeroshot_vision._types",
    "IMAGE_SUFFIXES": "zeroshot_vision._images",
    "load_image": "zeroshot_vision._images",
    "VideoOptions": "zeroshot_vision._images.video",
    "select_frames": "zeroshot_vision._images.video",
    "FileEntry": "zeroshot_vision._index",
    "IndexFolder": "zeroshot_vision._index",
    "IndexWriter": "zeroshot_vision._index",
    "export_index": "zeroshot_vision.ingest._exchange",
    "import_index": "zeroshot_vision.ingest._exchange",
    "default_model": "zeroshot_vision._models",
    "ModelPreset": "zeroshot_vision._presets",
    "PRESETS": "zeroshot_vision._presets",
    "DEFAULT_DUPLICATE_THRESHOLD": "zeroshot_vision._near_duplicates",
    "VectorStore": "zeroshot_vision.stores._base",
    "FaissStore": "zeroshot_vision.stores._faiss",
    "PineconeStore": "zeroshot_vision.stores._pinecone",
    "Answer": "zeroshot_vision._ask",
    "ReindexReport": "zeroshot_vision.ingest._reindex",
    "parse_citations": "zeroshot_vision._ask",
    "LLMEndpoint": "zeroshot_vision._llm",
    "image_data_url": "zeroshot_vision._llm",
    "OcrEngine": "zeroshot_vision._ocr",
    "OcrExtractor": "zeroshot_vision._ocr",
    "PlacesExtractor": "zeroshot_vision._places",
    "ReverseGeocoder": "zeroshot_vision._places",
    "CaptionExtractor": "zeroshot_vision._captions",
}
"""Where each public name lives; imported on first use, so ``import zeroshot_vision`` (and
the ``zsv`` command, which imports it first) loads neither numpy nor the engine."""

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "IMAGE_SUFFIXES",
    "PRESETS",
    "Answer",
    "BackendMismatchError",
    "BatchTooLargeError",
    "CaptionExtractor",
    "ClassifyReport",
    "DatasetNotFoundError",
    "DimensionMismatchError",
    "DistributedJobError",
    "DuplicateGroup",
    "DuplicatePair",
    "Encoder",
    "ExportError",
    "ExtractorUnavailableError",
    "FaissStore",
    "FileEntry",
    "FolderReport",
    "Hit",
    "ImageDecodeError",
    "ImageFailure",
    "ImageLabels",
    "ImageLoadError",
    "ImageNotFoundError",
    "ImageSource",
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
    "LLMAuthError",
    "LLMEndpoint",
    "LLMError",
    "LLMImagesRejectedError",
    "LLMModelNotFoundError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "LabelScore",
    "Metadata",
    "MissingColumnError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelPreset",
    "OcrEngine",
    "OcrExtractor",
    "PartialWriteError",
    "PineconeStore",
    "PlacesExtractor",
    "Progress",
    "Query",
    "QueryPart",
    "Record",
    "RecordNotFoundError",
    "ReindexReport",
    "ReverseGeocoder",
    "SearchEngine",
    "SearchResult",
    "SearchResults",
    "ServerBusyError",
    "ServerResponseError",
    "ServerUnreachableError",
    "StoreError",
    "TextIndexDamagedError",
    "UnsupportedFilterError",
    "VectorStore",
    "VideoOptions",
    "ZeroshotVisionError",
    "__version__",
    "default_model",
    "export_index",
    "file_id",
    "image_data_url",
    "import_index",
    "load_image",
    "parse_citations",
    "select_frames",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    raise AttributeError(f"module 'zeroshot_vision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
