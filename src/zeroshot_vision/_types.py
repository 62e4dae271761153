"""Small immutable values that cross module boundaries.

:class:`SearchResult` (with :data:`Metadata` and :func:`caption`) lives in
:mod:`~zeroshot_vision._search_result` and is imported from here as before: a process that
only prints a server's results (``zsv search --server``) then builds one dataclass, not
twelve (each costs most of a millisecond to create).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from zeroshot_vision._search_result import CAPTION_FIELDS, Metadata, SearchResult, caption

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

__all__ = [
    "CAPTION_FIELDS",
    "ClassifyReport",
    "DuplicateGroup",
    "DuplicatePair",
    "FolderReport",
    "Hit",
    "ImageFailure",
    "ImageLabels",
    "ImageSource",
    "IndexReport",
    "LabelScore",
    "Metadata",
    "Progress",
    "Record",
    "SearchResult",
    "caption",
]

ImageSource = Union[str, "os.PathLike[str]", Path, bytes, "Image.Image", "npt.NDArray[Any]"]
"""Anything the encoder can read an image from: a path, the file's bytes, a PIL image, or a
numpy array (``HxW`` gray, ``HxWx3`` RGB or ``HxWx4`` RGBA; uint8, or floats in [0, 1])."""


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class ImageFailure:
    """An image that could not be indexed, and why.

    Attributes:
        source: A printable name of the image (usually its path).
        reason: Why it failed.
    """

    source: str
    reason: str


@dataclass(frozen=True, kw_only=True)
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

    def __repr__(self) -> str:
        return f"IndexReport(indexed={len(self.indexed)}, failed={len(self.failed)})"


@dataclass(frozen=True, kw_only=True)
class ImageLabels:
    """The labels scored against one image, most likely first.

    Attributes:
        source: A printable name of the image (its path, or its kind).
        labels: Every label with its probability and cosine, highest first.
    """

    source: str
    labels: tuple[LabelScore, ...]

    def likely(self, min_probability: float = 0.5) -> tuple[LabelScore, ...]:
        """The labels at or above ``min_probability``: zero, one or several."""
        return tuple(label for label in self.labels if label.probability >= min_probability)


@dataclass(frozen=True, kw_only=True)
class ClassifyReport:
    """What ``Encoder.classify_many`` found.

    Attributes:
        results: One entry per readable image, in input order.
        failed: The images that could not be read, each with its reason.
    """

    results: tuple[ImageLabels, ...] = ()
    failed: tuple[ImageFailure, ...] = ()

    def __repr__(self) -> str:
        return f"ClassifyReport(results={len(self.results)}, failed={len(self.failed)})"


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where a long operation stands; the one progress type of the library.

    Every long operation (``index_folder``, ``index_images``, ``classify_many``,
    ``duplicates``, ``export_store``, ``import_store``) takes ``progress=``: ``True`` for a
    ``tqdm.auto`` bar (a notebook widget in Jupyter, a text bar in a terminal), or a
    callable that receives one of these before the first batch and after every batch.

    Attributes:
        total: Items this operation has to handle (``None`` when not known in advance).
        done: Items handled so far, succeeded or failed.
        advanced: Items handled since the previous call.
        indexed: Items that succeeded so far (indexed, classified, compared, written).
        failed: Items that could not be handled so far (unreadable images).
        task: What is running: ``"index"``, ``"classify"``, ``"duplicates"``,
            ``"export"`` or ``"import"``.
    """

    total: int | None
    done: int = 0
    advanced: int = 0
    indexed: int = 0
    failed: int = 0
    task: str = "index"


@dataclass(frozen=True, kw_only=True)
class DuplicatePair:
    """Two stored images whose vectors are near-identical.

    Attributes:
        first: One id (the smaller, in sort order).
        second: The other id.
        score: Cosine similarity of their vectors.
    """

    first: str
    second: str
    score: float


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    """Images that are near-duplicates of each other, directly or through others.

    A group is a connected component of the pairs above the threshold: if A matches B
    and B matches C, the three form one group even when A and C score below it.

    Attributes:
        ids: The group's ids, sorted.
        pairs: Every pair above the threshold within the group, highest score first.
    """

    ids: tuple[str, ...]
    pairs: tuple[DuplicatePair, ...]

    @property
    def score(self) -> float:
        """The highest pair score in the group."""
        return max((pair.score for pair in self.pairs), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``ids`` and ``pairs`` (``[first, second, score]``)."""
        return {
            "ids": list(self.ids),
            "pairs": [[p.first, p.second, round(p.score, 6)] for p in self.pairs],
        }


@dataclass(frozen=True, kw_only=True)
class FolderReport:
    """What ``SearchEngine.index_folder`` did.

    Attributes:
        indexed: Ids encoded and stored in this run (new or changed files).
        skipped: Files unchanged since they were indexed, not encoded again.
        removed: Ids whose files are gone, removed from the store.
        failed: Images that could not be read in this run.
        known_failed: Unchanged images that failed in an earlier run; not retried.
        unreadable: Folders or files that could not be listed or examined, with the
            reason; what the index holds for them was kept.
        count: Vectors in the store at the end.
        seconds: Wall time of the run.
    """

    indexed: tuple[str, ...] = ()
    skipped: int = 0
    removed: tuple[str, ...] = ()
    failed: tuple[ImageFailure, ...] = ()
    known_failed: tuple[ImageFailure, ...] = ()
    unreadable: tuple[ImageFailure, ...] = ()
    count: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Indexing throughput of this run (0 when nothing was encoded)."""
        return len(self.indexed) / self.seconds if self.indexed and self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (counts, and the failures with their reasons)."""

        def listed(failures: tuple[ImageFailure, ...]) -> list[dict[str, str]]:
            return [{"source": f.source, "reason": f.reason} for f in failures]

        return {
            "indexed": len(self.indexed),
            "skipped": self.skipped,
            "removed": len(self.removed),
            "failed": listed(self.failed),
            "known_failed": listed(self.known_failed),
            "unreadable": listed(self.unreadable),
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }

    def __str__(self) -> str:
        # The same counts as to_json: "failed" is this run's failures; images that failed
        # before and were not retried are counted apart.
        known = f", {len(self.known_failed)} known bad" if self.known_failed else ""
        return (
            f"indexed {len(self.indexed)}, skipped {self.skipped}, removed {len(self.removed)}, "
            f"failed {len(self.failed)}{known}; {self.count} in the index"
        )

    def __repr__(self) -> str:
        # Ids and failures can number in the thousands; a notebook shows the counts.
        return (
            f"FolderReport(indexed={len(self.indexed)}, skipped={self.skipped}, "
            f"removed={len(self.removed)}, failed={len(self.failed)}, "
            f"known_failed={len(self.known_failed)}, unreadable={len(self.unreadable)}, "
            f"count={self.count}, seconds={self.seconds:.2f})"
        )
