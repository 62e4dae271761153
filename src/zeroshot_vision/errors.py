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
│   └── InvalidFilterError
├── ImageLoadError (ValueError)
├── ModelLoadError (OSError)
├── MissingDependencyError (ImportError)
├── IndexNotFoundError (FileNotFoundError)
├── DatasetNotFoundError (FileNotFoundError)
└── StoreError (RuntimeError)
    └── PartialWriteError
```
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DatasetNotFoundError",
    "DimensionMismatchError",
    "ImageLoadError",
    "IndexNotFoundError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidVectorError",
    "MissingDependencyError",
    "ModelLoadError",
    "PartialWriteError",
    "StoreError",
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


class InvalidVectorError(InvalidInputError):
    """A vector holds NaN or infinity, is all zeros, or has the wrong shape."""


class InvalidMetadataError(InvalidInputError):
    """Metadata is not JSON-like, or breaks a backend's limits."""


class InvalidFilterError(InvalidInputError):
    """A metadata filter does not follow the filter language."""


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


class ModelLoadError(ZeroshotVisionError, OSError):
    """A checkpoint could not be found, fetched or loaded."""


class MissingDependencyError(ZeroshotVisionError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class IndexNotFoundError(ZeroshotVisionError, FileNotFoundError):
    """An index folder does not exist or holds no index."""


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
