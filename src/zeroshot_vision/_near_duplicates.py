"""Near-duplicate images: pairs of stored vectors above a cosine threshold, grouped.

Every stored vector is queried against its own store (a self-kNN, batched through
:func:`~zeroshot_vision.stores._batch.query_many`); each pair scoring at or above the
threshold joins its two images, and the groups are the connected components of those
pairs (union-find). Nothing is re-encoded: only stored vectors are compared. Frames of
one video (ids ``<file>#t=<seconds>``) are never paired with each other: the frames of
a still scene look alike by nature; a frame may still pair with a photo or another
video's frame (a video that duplicates another).

**Exactness.** Each vector asks for its ``neighbours`` nearest; when even the last of
them is above the threshold, it asks again for twice as many, so no pair above the
threshold is missed. With :class:`~zeroshot_vision.stores.FaissStore` (an exact flat
index) the result is therefore exact: the same pairs as comparing every vector with
every other.

**Cost.** One query per stored vector, plus one fetch per batch (and a few extra queries
for images with many near-duplicates). For FAISS that is ``n`` searches in memory,
seconds for 100,000 vectors. For Pinecone it is ``n`` query requests (read units are
billed per query, and grow with the namespace's size) plus ``n / batch_size`` fetches,
run concurrently but bounded; Pinecone's approximate index may also miss a few pairs.

**The default threshold** is 0.99, a cosine *distance* of 0.01: the default of Immich's
duplicate detection (``machineLearning.duplicateDetection.maxDistance: 0.01``), run on
CLIP and SigLIP image embeddings, where 0.001 finds only near-identical files and 0.1
starts to find merely similar photos. Resized and re-compressed copies of a photo score
near 1.0 with real SigLIP checkpoints; crops and edits score lower and need a lower
threshold (0.95, say) - check on a sample of your own photos, and tune ``threshold``.
The tiny random test models say nothing about any of these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from zeroshot_vision._checks import batched, positive_int
from zeroshot_vision._constants import DEFAULT_DUPLICATE_THRESHOLD
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._progress import ProgressOption, Tracker
from zeroshot_vision._results import file_key
from zeroshot_vision._types import DuplicateGroup, DuplicatePair
from zeroshot_vision.stores._base import VectorStore
from zeroshot_vision.stores._batch import query_many

__all__ = ["DEFAULT_DUPLICATE_THRESHOLD", "check_threshold", "find_duplicates", "group_pairs"]

DEFAULT_NEIGHBOURS = 10
"""Neighbours asked for per vector before asking for more."""


def check_threshold(value: object) -> float:
    """``value`` as a float if it is a cosine threshold in (0, 1], else an error."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise InvalidInputError(f"threshold must be a cosine in (0, 1], got {value!r}")
    return float(value)


def find_duplicates(
    store: VectorStore,
    *,
    threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    batch_size: int = 256,
    progress: ProgressOption = None,
) -> list[DuplicateGroup]:
    """Groups of stored images whose vectors score ``threshold`` or more with each other.

    Args:
        store: Any vector store.
        threshold: The cosine at or above which two images are near-duplicates.
        neighbours: How many nearest neighbours each vector asks for first (more are
            fetched when all of them are above the threshold).
        batch_size: Vectors fetched and queried per batch.
        progress: ``True`` for a bar, or a callable receiving a
            :class:`~zeroshot_vision._types.Progress` per batch.

    Returns:
        The groups (two ids or more each), largest first, then by first id; each group's
        ids sorted and its pairs highest score first.

    Raises:
        InvalidInputError: ``threshold`` outside (0, 1], or a count that is not a
            positive integer.
    """
    threshold = check_threshold(threshold)
    neighbours = positive_int(neighbours, "neighbours")
    batch_size = positive_int(batch_size, "batch_size")
    ids = list(store.ids())
    total = len(ids)
    pairs: dict[tuple[str, str], float] = {}
    with Tracker(progress, task="duplicates", total=total, unit="vec") as tracker:
        for chunk in batched(ids, batch_size):
            records = store.fetch(chunk)
            present = [item for item in chunk if item in records]
            if present and total > 1:
                vectors = np.stack([records[item].vector for item in present])
                want = min(neighbours + 1, total)
                for item, vector, hits in zip(present, vectors, query_many(store, vectors, k=want)):
                    asked = want
                    # All hits above the threshold: there may be more beyond them.
                    while len(hits) == asked and hits[-1].score >= threshold and asked < total:
                        asked = min(asked * 2, total)
                        hits = store.query(vector, k=asked)
                    for hit in hits:
                        # Frames of one video look alike by nature: not duplicates.
                        same_file = file_key(hit.id) == file_key(item)
                        if not same_file and hit.score >= threshold:
                            key = (item, hit.id) if item < hit.id else (hit.id, item)
                            pairs[key] = max(pairs.get(key, -1.0), hit.score)
            tracker.advance(len(chunk))
    return group_pairs(
        DuplicatePair(first=a, second=b, score=score) for (a, b), score in pairs.items()
    )


def group_pairs(pairs: Iterable[DuplicatePair]) -> list[DuplicateGroup]:
    """The connected components of ``pairs`` (union-find), as sorted groups."""
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]  # path halving keeps the trees flat
            item = parent[item]
        return item

    listed = list(pairs)
    for pair in listed:
        a, b = root(pair.first), root(pair.second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for item in parent:
        members.setdefault(root(item), []).append(item)
    in_group: dict[str, list[DuplicatePair]] = {}
    for pair in listed:
        in_group.setdefault(root(pair.first), []).append(pair)
    groups = [
        DuplicateGroup(
            ids=tuple(sorted(items)),
            pairs=tuple(sorted(in_group[key], key=lambda p: (-p.score, p.first, p.second))),
        )
        for key, items in members.items()
    ]
    return sorted(groups, key=lambda group: (-len(group.ids), group.ids))
