"""The exception tree.

Every error the library raises on purpose derives from :class:`ZeroshotVisionError`.
Each subclass also inherits the builtin that matches its meaning, so callers can catch
``ValueError`` or ``ImportError`` without knowing this library.

```
ZeroshotVisionError
├── InvalidInputError (ValueError)
│   ├── DimensionMismatchError
│   ├── InvalidVectorError
│   ├── InvalidMetadataError
│   ├── InvalidFilterError
│   │   └── UnsupportedFilterError  well formed for a framework, not expressible here
│   ├── MissingColumnError      a dataset has no column of the name given
│   └── BackendMismatchError    an index's text route disagrees with the query encoder's
├── ImageLoadError (ValueError)
│   ├── ImageNotFoundError      the file is missing or cannot be opened
│   ├── ImageDecodeError        not an image, truncated, corrupt, or an unsupported format
│   └── ImageTooLargeError      more pixels (or bytes) than allowed: a decompression bomb
├── ModelLoadError (OSError)
│   └── ExportError             a checkpoint cannot be exported to ONNX (names the operator)
├── MissingDependencyError (ImportError)
├── IndexNotFoundError (FileNotFoundError)
├── IndexExistsError (InvalidInputError, FileExistsError)  the folder already holds an index
├── DatasetNotFoundError (FileNotFoundError)
├── RecordNotFoundError (KeyError)
├── BatchTooLargeError (MemoryError)  a batch did not fit in a worker's (or GPU's) memory
├── DistributedJobError (RuntimeError)  a distributed indexing job failed
├── LLMError                    the vision-language model's chat endpoint failed (ask)
│   ├── LLMUnreachableError (ConnectionError)  nothing answers at the base URL
│   ├── LLMTimeoutError (TimeoutError)         no answer (or no next token) in time
│   ├── LLMAuthError (PermissionError)         401/403: a missing or wrong API key
│   ├── LLMModelNotFoundError (LookupError)    the endpoint does not serve that model
│   ├── LLMRequestError (ValueError)           400: the endpoint rejected the request
│   │   └── LLMImagesRejectedError             the model does not take images
│   └── LLMResponseError (RuntimeError)        5xx, a stream cut short, a malformed answer
└── StoreError (RuntimeError)
    ├── PartialWriteError
    ├── IndexLockedError        another process is writing to the index folder
    └── IndexDamagedError       a file of an index folder is unreadable, malformed or missing
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendMismatchError",
    "BatchTooLargeError",
    "DatasetNotFoundError",
    "DimensionMismatchError",
    "DistributedJobError",
    "ExportError",
    "ExtractorUnavailableError",
    "ImageDecodeError",
    "ImageLoadError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IndexDamagedError",
    "IndexExistsError",
    "IndexLockedError",
    "IndexNotFoundError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidVectorError",
    "LLMAuthError",
    "LLMError",
    "LLMImagesRejectedError",
    "LLMModelNotFoundError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "MissingColumnError",
    "MissingDependencyError",
    "ModelLoadError",
    "PartialWriteError",
    "RecordNotFoundError",
    "ServerBusyError",
    "ServerResponseError",
    "ServerUnreachableError",
    "StoreError",
    "TextIndexDamagedError",
    "UnsupportedFilterError",
    "ZeroshotVisionError",
]


class ZeroshotVisionError(Exception):
    """Root of every error raised on purpose by zeroshot-vision."""


class InvalidInputError(ZeroshotVisionError, ValueError):
    """An argument was rejected before anything changed."""


class DimensionMismatchError(InvalidInputError):
    """A vector, store or encoder has a different dimension than expected."""

    def __init__(self, message: str, *, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class BackendMismatchError(InvalidInputError):
    """An index's images were encoded by a route (backend and precision) whose text
    vectors disagree with the query encoder's beyond the guard; the message names the
    backend and precision to query with."""


class InvalidVectorError(InvalidInputError):
    """A vector holds NaN or infinity, is all zeros, or has the wrong shape."""


class InvalidMetadataError(InvalidInputError):
    """Metadata is not JSON-like, or breaks a backend's limits."""


class InvalidFilterError(InvalidInputError):
    """A metadata filter does not follow the filter language."""


class UnsupportedFilterError(InvalidFilterError):
    """A filter that is valid in a framework's own language (LangChain, LlamaIndex) but
    has no counterpart in this library's filter language (:mod:`zeroshot_vision.stores._filters`):
    a callable, a ``$like`` or text-match operator, a negated condition."""


class MissingColumnError(InvalidInputError):
    """A dataset has no column of the name given.

    Attributes:
        column: The name asked for.
        columns: The columns the dataset has.
    """

    def __init__(self, message: str, *, column: str, columns: Sequence[str]) -> None:
        super().__init__(message)
        self.column = column
        self.columns = list(columns)


class ImageLoadError(ZeroshotVisionError, ValueError):
    """An image could not be read or decoded.

    Attributes:
        source: A printable name of the image (a path, or ``"<bytes>"``).
        reason: Why it failed, in a few words.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image {source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Decoding processes send these back pickled; the default would call
        # ``cls(message)`` and fail.
        return (type(self), (self.source, self.reason))


class ImageNotFoundError(ImageLoadError):
    """The image file does not exist, or cannot be opened (permissions, an I/O error)."""


class ImageDecodeError(ImageLoadError):
    """The data is not an image, or is truncated, corrupt or in an unsupported format."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels (or the file more bytes) than allowed: a decompression bomb."""


class ModelLoadError(ZeroshotVisionError, OSError):
    """A checkpoint could not be found, fetched or loaded."""


class ExportError(ModelLoadError):
    """A checkpoint could not be exported to ONNX; the message names the operator and
    suggests the torch backend, which runs every checkpoint."""


class MissingDependencyError(ZeroshotVisionError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class IndexNotFoundError(ZeroshotVisionError, FileNotFoundError):
    """An index folder does not exist or holds no index."""


class IndexExistsError(InvalidInputError, FileExistsError):
    """The folder already holds an index: it existed, or another process created it first.

    Also an :class:`InvalidInputError` (a ``ValueError``), which creating over an existing
    index raised before creation became exclusive.
    """


class RecordNotFoundError(ZeroshotVisionError, KeyError):
    """No record is stored under the id asked for.

    Attributes:
        id: The id that was asked for.
    """

    def __init__(self, message: str, *, id: str) -> None:
        super().__init__(message)
        self.id = id

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument, quotes and all.
        return str(self.args[0])


class BatchTooLargeError(ZeroshotVisionError, MemoryError):
    """A batch of images did not fit in the memory of the worker (or GPU) encoding it.

    Attributes:
        batch_size: The batch size that was too large; the message says to lower it.
    """

    def __init__(self, message: str, *, batch_size: int) -> None:
        super().__init__(message)
        self.batch_size = batch_size

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent back pickled from Ray workers; the default would call ``cls(message)``.
        return (_rebuild_batch_too_large, (str(self), self.batch_size))


def _rebuild_batch_too_large(message: str, batch_size: int) -> BatchTooLargeError:
    return BatchTooLargeError(message, batch_size=batch_size)


class DistributedJobError(ZeroshotVisionError, RuntimeError):
    """A distributed indexing job failed (a worker error the job could not retry)."""


class ExtractorUnavailableError(ZeroshotVisionError, RuntimeError):
    """An extractor's service is gone, not just failing on one image: the ingest run stops.

    Raised by an :class:`~zeroshot_vision.ingest._extract.Extractor` (a captioning endpoint
    that refuses connections or answers 5xx after its retries). The run commits what it
    wrote and raises this; the items it had not reached are not recorded as failed, so the
    next run continues with them.

    Attributes:
        extractor: The extractor's name.
        reason: Why, in a few words.
        report: What the stopped run did (a
            :class:`~zeroshot_vision._types.FolderReport`), set by the pipeline; ``None``
            when raised outside a run.
    """

    def __init__(self, extractor: str, reason: str) -> None:
        super().__init__(
            f"{extractor} is unavailable, the run stopped: {reason} (what was indexed is "
            "kept; run again to continue)"
        )
        self.extractor = extractor
        self.reason = reason
        self.report: Any = None


class StoreError(ZeroshotVisionError, RuntimeError):
    """A vector store failed to carry out a request."""


class PartialWriteError(StoreError):
    """A write reached the store only in part.

    Attributes:
        written_ids: Ids known to be stored.
        failed_ids: Ids that were not stored (or may not have been); retry these.
    """

    def __init__(
        self, message: str, *, written_ids: Sequence[str], failed_ids: Sequence[str]
    ) -> None:
        super().__init__(message)
        self.written_ids = list(written_ids)
        self.failed_ids = list(failed_ids)


class DatasetNotFoundError(ZeroshotVisionError, FileNotFoundError):
    """A folder holds no dataset table of the requested name (e.g. Unsplash ``photos``)."""


class IndexLockedError(StoreError):
    """Another process (or another engine in this one) is writing to the index folder.

    Attributes:
        pid: The process that holds the lock, when it recorded itself (else ``None``).
        since: When it took the lock (ISO 8601, UTC), when recorded (else ``None``).
    """

    def __init__(self, message: str, *, pid: int | None = None, since: str | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.since = since


class IndexDamagedError(StoreError):
    """A file of an index folder is unreadable, malformed, missing, or from a newer version.

    Attributes:
        path: The file or folder at fault.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class TextIndexDamagedError(IndexDamagedError):
    """An index's lexical side (``text.sqlite``) is missing or damaged.

    Vector search still works; the message names the command that rebuilds it.
    """


class ServerBusyError(ZeroshotVisionError, RuntimeError):
    """The model's queue is full; try again shortly (HTTP 503 with ``Retry-After``)."""


class ServerResponseError(ZeroshotVisionError, RuntimeError):
    """The server answered with an error that is not about the request's input.

    Attributes:
        status: The HTTP status.
        code: The error envelope's ``code``, when it has one.
    """

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServerUnreachableError(ZeroshotVisionError, ConnectionError):
    """No server answers at the URL (not running, wrong port, a network failure)."""


class LLMError(ZeroshotVisionError):
    """The chat endpoint of a vision-language model failed (:mod:`zeroshot_vision._ask`).

    Messages name the endpoint and the model, never the API key.

    Attributes:
        status: The HTTP status, when the endpoint answered with one (else ``None``).
        detail: The endpoint's own words about the error, shortened (else ``None``).
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class LLMUnreachableError(LLMError, ConnectionError):
    """Nothing answers at the endpoint's base URL (not running, wrong host or port)."""


class LLMTimeoutError(LLMError, TimeoutError):
    """The endpoint sent no answer, or no next piece of a streamed answer, in time."""


class LLMAuthError(LLMError, PermissionError):
    """The endpoint refused the API key (HTTP 401 or 403): missing, wrong or revoked."""


class LLMModelNotFoundError(LLMError, LookupError):
    """The endpoint does not serve the model named (HTTP 404, or a 400 naming the model).

    Attributes:
        model: The model asked for.
        available: The models the endpoint lists, when it could be asked (else empty).
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        available: Sequence[str] = (),
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.model = model
        self.available = list(available)


class LLMRequestError(LLMError, ValueError):
    """The endpoint rejected the request as malformed or too large (HTTP 400, 413, 422)."""


class LLMImagesRejectedError(LLMRequestError):
    """The model does not accept images (a text-only model behind the endpoint).

    Ask a vision-language model, or ask with ``max_images=0`` to send the photos'
    descriptions only.
    """


class LLMResponseError(LLMError, RuntimeError):
    """The endpoint failed while answering: a 5xx, a stream cut short, a malformed answer.

    Attributes:
        partial_text: What a streamed answer had said before it broke (``""`` if nothing).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.partial_text = partial_text
