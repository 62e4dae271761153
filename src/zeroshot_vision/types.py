"""Small immutable values that cross module boundaries."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

__all__ = [
    "Hit",
    "ImageFailure",
    "ImageSource",
    "IndexReport",
    "LabelScore",
    "Metadata",
    "Record",
    "SearchResult",
]

Metadata = Mapping[str, Any]
"""JSON-like metadata: str keys; str, int, float, bool, None, lists and dicts as values."""

ImageSource = Union[str, "os.PathLike[str]", Path, bytes, "Image.Image"]
"""Anything the encoder can read an image from: a path, the file's bytes, or a PIL image."""


@dataclass(frozen=True)
class Hit:
    """One match from a vector store.

    Attributes:
        id: The stored id.
        score: Cosine similarity between the query and the stored vector, in [-1, 1].
        metadata: The stored metadata (empty when none was stored).
    """

    id: str
    score: float
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """A stored vector with its id and metadata, as returned by ``VectorStore.fetch``.

    Attributes:
        id: The stored id.
        vector: The stored vector, float32, unit length.
        metadata: The stored metadata.
    """

    id: str
    vector: npt.NDArray[np.float32]
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """One result of a text or image search.

    Attributes:
        id: The id of the matching image.
        score: Cosine similarity with the query.
        probability: SigLIP's calibrated probability that the query matches the image, or
            ``None`` for image-to-image search where no such calibration exists.
        metadata: The image's stored metadata.
    """

    id: str
    score: float
    probability: float | None
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class LabelScore:
    """A label and how well it fits an image.

    Attributes:
        label: The label as given.
        probability: Independent sigmoid probability, or the softmax share when asked for.
        score: Cosine similarity between the label's text and the image.
    """

    label: str
    probability: float
    score: float


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be indexed, and why.

    Attributes:
        source: A printable name of the image (usually its path).
        reason: Why it failed.
    """

    source: str
    reason: str


@dataclass(frozen=True)
class IndexReport:
    """What ``SearchEngine.index_images`` did.

    Attributes:
        indexed: Ids written to the store, in input order.
        failed: Images that were skipped, each with its reason.
    """

    indexed: tuple[str, ...] = ()
    failed: tuple[ImageFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every image was indexed."""
        return not self.failed

    def __str__(self) -> str:
        return f"indexed {len(self.indexed)}, failed {len(self.failed)}"
