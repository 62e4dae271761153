"""Hybrid search measured: Recall@K and MRR of an index's vector, text and hybrid modes.

:func:`evaluate_hybrid` asks an index every query of a set of (image, query) pairs (the
retrieval TSV: ``image path <TAB> query``) in each search mode and scores where the
expected image ranks, so a collection's own judgments show what the lexical side adds
(queries that quote words written in photos, name places, or repeat captions) and
whether fusing costs the visual queries anything. ``zsv eval hybrid`` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._hybrid import MODES, SearchMode

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.eval._labelled_data import PairsDataset

__all__ = ["HybridResult", "ModeScores", "evaluate_hybrid"]


@dataclass(frozen=True, kw_only=True)
class ModeScores:
    """How one search mode ranked the expected images.

    Attributes:
        mode: ``"vector"``, ``"text"`` or ``"hybrid"``.
        recall: Recall@K for K in 1, 5 and 10 (share of queries whose image is in the
            first K).
        mrr: Mean reciprocal rank (0 for an image not in the first ``k``).
        ms_per_query: Mean milliseconds per search.
    """

    mode: str
    recall: dict[int, float]
    mrr: float
    ms_per_query: float


@dataclass(frozen=True, kw_only=True)
class HybridResult:
    """The scores of every mode on one set of queries.

    Attributes:
        name: Where the pairs came from.
        queries: How many queries were asked.
        modes: One :class:`ModeScores` per mode.
        not_indexed: Pairs left out: their image is not in the index.
    """

    name: str
    queries: int
    modes: tuple[ModeScores, ...]
    not_indexed: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "name": self.name,
            "queries": self.queries,
            "not_indexed": list(self.not_indexed),
            "modes": {
                s.mode: {
                    **{f"recall@{k}": v for k, v in s.recall.items()},
                    "mrr": s.mrr,
                    "ms_per_query": s.ms_per_query,
                }
                for s in self.modes
            },
        }


def _ids_by_path(engine: SearchEngine) -> dict[str, str]:
    """Each indexed file's absolute path -> its id (for an index folder)."""
    if engine.folder is None:
        return {}
    found = {}
    for entry in engine.folder.entries().values():
        if entry.path is not None and entry.status == "indexed":
            found[str(Path(entry.path).resolve())] = entry.id
    return found


def evaluate_hybrid(
    engine: SearchEngine,
    dataset: PairsDataset,
    *,
    k: int = 10,
    modes: Sequence[SearchMode] = MODES,
) -> HybridResult:
    """Ask every query of ``dataset`` in each mode; score the expected image's rank.

    An image is matched to its id by its path in the index folder's state (or, for ids
    that are not paths, by its file name without folder).

    Raises:
        InvalidInputError: No pair's image is in the index, or a mode needs a lexical
            side the index lacks.
    """
    by_path = _ids_by_path(engine)
    stored = set(engine.store.ids()) if not by_path else set()
    asked: list[tuple[str, str]] = []
    missing: list[str] = []
    for pair in dataset.pairs:
        image_id = by_path.get(str(pair.image.resolve()))
        if image_id is None and pair.image.name in stored:
            image_id = pair.image.name
        if image_id is None:
            missing.append(str(pair.image))
        else:
            asked.append((pair.text, image_id))
    if not asked:
        raise InvalidInputError(f"{dataset.name}: none of its images is in the index")
    scores = []
    for mode in modes:
        ranks: list[int | None] = []
        started = time.perf_counter()
        for query, expected in asked:
            ids = [r.id for r in engine.search(query, k=k, mode=mode)]
            ranks.append(ids.index(expected) + 1 if expected in ids else None)
        seconds = time.perf_counter() - started
        n = len(ranks)
        scores.append(
            ModeScores(
                mode=mode,
                recall={
                    cut: sum(r is not None and r <= cut for r in ranks) / n
                    for cut in (1, 5, 10)
                    if cut <= k
                },
                mrr=sum(1 / r for r in ranks if r is not None) / n,
                ms_per_query=seconds * 1000 / n,
            )
        )
    return HybridResult(
        name=dataset.name, queries=len(asked), modes=tuple(scores), not_indexed=tuple(missing)
    )
