"""One search result: what ``SearchEngine.search`` and the server's client return.

Apart from :mod:`~zeroshot_vision._types`, which imports it from here (so
``zeroshot_vision._types.SearchResult`` is this class): ``zsv search --server`` builds its
results without creating the other eleven dataclasses there, each of which costs most of
a millisecond of a command that should answer in 150 ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CAPTION_FIELDS", "Metadata", "SearchResult", "caption"]

Metadata = Mapping[str, Any]
"""JSON-like metadata: str keys; str, int, float, bool, None, lists and dicts as values."""


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """One result of a text or image search.

    Attributes:
        id: The id of the matching image.
        score: Cosine similarity with the query.
        probability: SigLIP's calibrated probability that the query matches the image, or
            ``None`` for image-to-image search where no such calibration exists, and for
            a hit only the lexical side found (hybrid search: the probability is the
            vector side's).
        metadata: The image's stored metadata.
        found_by: Which side of a hybrid search found it: ``("vector",)``,
            ``("text",)`` or both.
        snippet: The text that matched (an OCR line, a description, a place), each
            matched word between ``[`` and ``]``; ``None`` when the lexical side did not
            find it.
        fused_score: Its reciprocal-rank-fusion score in a hybrid search (the order of
            the results), else ``None``.
        moments: With ``group_by="file"``: the file's other matching moments (frames of
            the same video), best first; this result is its best one.
    """

    id: str
    score: float
    probability: float | None
    metadata: Metadata = field(default_factory=dict)
    found_by: tuple[str, ...] = ("vector",)
    snippet: str | None = None
    fused_score: float | None = None
    moments: tuple[SearchResult, ...] = ()

    @property
    def timestamp(self) -> float | None:
        """Seconds from the start of the video, for a video frame; ``None`` for a photo."""
        value = self.metadata.get("timestamp")
        return float(value) if isinstance(value, (int, float)) else None


CAPTION_FIELDS = ("description", "ai_description")


def caption(metadata: Metadata) -> str:
    """The text that describes an image: its description, else its AI description.

    Unsplash photos often have no human description; the AI one is the fallback.
    Empty when neither is a non-blank string.
    """
    for key in CAPTION_FIELDS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""
