"""Hybrid search: the vector ranking and the lexical ranking, fused by reciprocal rank.

SigLIP sees what a photo looks like; the lexical side (:mod:`zeroshot_vision._lexical`)
finds the words written in it, its place and its captions. Their scores do not compare
(a cosine against BM25), their ranks do: reciprocal rank fusion (Cormack et al., 2009)
gives each image ``weight / (60 + rank)`` from every ranking it appears in, and orders by
the sum. Both sides are asked for the same metadata filter and for
:data:`FUSION_DEPTH` candidates, so an image that only one side ranks near the top can
still win.

Each fused :class:`~zeroshot_vision._types.SearchResult` says which side found it
(``found_by``) and carries the lexical side's ``snippet``; its ``score`` is the cosine
with the query and its ``probability`` the vector side's calibrated one, which an image
only the lexical side found does not have (``None``): the calibration is SigLIP's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._results import SearchResults
from zeroshot_vision._types import SearchResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from zeroshot_vision._lexical import LexicalHit
    from zeroshot_vision._types import Record

__all__ = [
    "FUSION_DEPTH",
    "MODES",
    "RRF_K",
    "SearchMode",
    "check_mode",
    "check_weight",
    "fuse",
    "reciprocal_rank_fusion",
]

SearchMode = Literal["hybrid", "vector", "text"]
MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "text")
RRF_K = 60
"""The constant of reciprocal rank fusion: rank 1 counts 1/61, rank 10 counts 1/70."""
FUSION_DEPTH = 50
"""Candidates each side gives to the fusion (or ``k``, if larger)."""


def check_mode(mode: object) -> SearchMode:
    """``mode`` if it is one of :data:`MODES`, else a clear error."""
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def check_weight(weight: object) -> float:
    """A finite, non-negative fusion weight, else a clear error."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise InvalidInputError(f"text_weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise InvalidInputError(f"text_weight must be finite and >= 0, got {weight!r}")
    return float(weight)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    *,
    k: int = RRF_K,
) -> list[tuple[str, float]]:
    """Ids ordered by their summed ``weight / (k + rank)`` over the rankings, best first.

    Ties keep the order in which ids were first met (the first ranking first).

    Args:
        rankings: Id lists, each best first (an id at most once per list).
        weights: One weight per ranking (default all 1).
        k: The fusion constant (60 in the original paper and in most engines).
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    totals: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            totals[item] = totals.get(item, 0.0) + weight / (k + rank)
    return sorted(totals.items(), key=lambda pair: -pair[1])


def fuse(
    vector: Sequence[SearchResult],
    lexical: Sequence[LexicalHit],
    *,
    k: int,
    text_weight: float = 1.0,
    records: Callable[[Sequence[str]], Mapping[str, Record]],
    direction: npt.NDArray[np.floating[Any]],
    snippets: Callable[[Sequence[LexicalHit]], Sequence[LexicalHit]] | None = None,
) -> SearchResults:
    """The ``k`` best of both rankings, as results that say who found them.

    Args:
        vector: The vector side's results, best first (with score and probability).
        lexical: The lexical side's hits, best first.
        k: How many results.
        text_weight: The lexical ranking's weight (the vector ranking's is 1).
        records: Fetches stored vectors by id (a store's ``fetch``): an image only the
            lexical side found gets its cosine with ``direction`` as its score. An image
            with text but no vector (a writer killed between the two) is left out.
        direction: The query's unit vector (its positive parts).
        snippets: Fills in the snippets of the lexical hits that make the cut (see
            :meth:`~zeroshot_vision._lexical.LexicalIndex.snippets`), when the hits came
            without them.
    """
    by_vector = {result.id: result for result in vector}
    by_text = {hit.id: hit for hit in lexical}
    fused = reciprocal_rank_fusion([list(by_vector), list(by_text)], [1.0, text_weight])
    text_only = [item for item, _ in fused[: 2 * k] if item not in by_vector]
    stored = records(text_only) if text_only else {}
    if snippets is not None:
        shown = [by_text[item] for item, _ in fused[: 2 * k] if item in by_text]
        by_text.update((hit.id, hit) for hit in snippets(shown))
    out: list[SearchResult] = []
    for item, fused_score in fused:
        if len(out) == k:
            break
        hit = by_text.get(item)
        found = by_vector.get(item)
        if found is not None:
            out.append(
                replace(
                    found,
                    found_by=("vector", "text") if hit is not None else ("vector",),
                    snippet=hit.snippet if hit is not None else None,
                    fused_score=fused_score,
                )
            )
            continue
        record = stored.get(item)
        if record is None or hit is None:
            continue
        out.append(
            SearchResult(
                id=item,
                score=float(record.vector @ direction),
                probability=None,
                metadata=record.metadata,
                found_by=("text",),
                snippet=hit.snippet,
                fused_score=fused_score,
            )
        )
    query = getattr(vector, "query", None)
    return SearchResults(out, query=query, warnings=getattr(vector, "warnings", ()))
