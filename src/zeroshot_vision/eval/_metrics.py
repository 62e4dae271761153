"""Evaluation metrics on score matrices: pure numpy, no model.

Every ranking metric here starts from one number per query: the rank of its first
relevant item. A query is a row of a score matrix (an image scored against every label,
or a text scored against every image); its relevant items are a boolean mask of the same
shape (the true label, or every image paired with the text).

**Tie rule.** Ties count against the model. The rank of a query is one plus the number of
irrelevant items that score at least as high as its best relevant item. A model that
gives every item the same score therefore ranks each query last among its ties, never
first, and an accidental tie can only lower a metric, never raise it. The same rule makes
the top-1 prediction of a tied row an irrelevant item (see :func:`predictions`).

**Calibration.** Each (image, label) pair is one binary event: positive when the label
is the image's class. A threshold ``t`` predicts positive when the probability is at
least ``t``; precision and recall follow the usual definitions over all pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zeroshot_vision._errors import InvalidInputError

__all__ = [
    "ReliabilityBin",
    "ThresholdPoint",
    "confusion_matrix",
    "first_relevant_ranks",
    "mean_reciprocal_rank",
    "precision_recall_at",
    "predictions",
    "recall_at_k",
    "reliability_table",
    "softmax",
    "threshold_for_precision",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _matrices(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    score_matrix = np.asarray(scores, dtype=np.float64)
    mask = np.asarray(relevant, dtype=bool)
    if score_matrix.ndim != 2 or score_matrix.shape != mask.shape:
        raise InvalidInputError(
            f"scores and relevant must be 2-D and of one shape, got {score_matrix.shape} "
            f"and {mask.shape}"
        )
    if not mask.any(axis=1).all():
        raise InvalidInputError("every query needs at least one relevant item")
    return score_matrix, mask


def first_relevant_ranks(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> IntArray:
    """The 1-based rank of each query's best relevant item, ties counted against it.

    Args:
        scores: ``(queries, items)`` scores, higher is better (cosine, logits...).
        relevant: ``(queries, items)`` booleans; each row has at least one true.

    Returns:
        ``(queries,)`` ranks: ``1 + #{irrelevant items scoring >= the best relevant}``.

    Raises:
        InvalidInputError: The shapes differ, or a query has no relevant item.
    """
    score_matrix, mask = _matrices(scores, relevant)
    best_relevant = np.where(mask, score_matrix, -np.inf).max(axis=1, keepdims=True)
    beaten_or_tied = (score_matrix >= best_relevant) & ~mask
    ranks: IntArray = (1 + beaten_or_tied.sum(axis=1)).astype(np.int64)
    return ranks


def recall_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """Share of queries whose first relevant item ranks within the top ``k``.

    With one relevant item per query (classification) this is top-``k`` accuracy.
    """
    if k < 1:
        raise InvalidInputError(f"k must be a positive number, got {k}")
    values = np.asarray(ranks)
    return float((values <= k).mean()) if values.size else 0.0


def mean_reciprocal_rank(ranks: npt.ArrayLike) -> float:
    """Mean of ``1 / rank`` over queries (0 for no queries)."""
    values = np.asarray(ranks, dtype=np.float64)
    return float((1.0 / values).mean()) if values.size else 0.0


def predictions(scores: npt.ArrayLike, truth: Sequence[int] | npt.ArrayLike) -> IntArray:
    """The top-1 prediction of each row, consistent with the tie rule.

    The highest-scoring column; where the true column ties with others for the top, the
    first other one, so that a prediction equals the truth exactly when the rank is 1.
    """
    score_matrix = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(truth, dtype=np.int64)
    top = score_matrix >= score_matrix.max(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    shared = top[rows, labels] & (top.sum(axis=1) > 1)
    top[rows[shared], labels[shared]] = False
    predicted: IntArray = top.argmax(axis=1).astype(np.int64)
    return predicted


def confusion_matrix(
    truth: Sequence[int] | npt.ArrayLike, predicted: Sequence[int] | npt.ArrayLike, classes: int
) -> IntArray:
    """``counts[i, j]``: how many items of class ``i`` were predicted as class ``j``."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def softmax(logits: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Numerically stable softmax: CLIP's probabilities over a label set."""
    values = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(values - values.max(axis=axis, keepdims=True))
    result: FloatArray = shifted / shifted.sum(axis=axis, keepdims=True)
    return result


# -- calibration --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReliabilityBin:
    """One bin of a reliability table.

    Attributes:
        low: Lower edge of the bin (inclusive).
        high: Upper edge (exclusive, except 1.0 for the last bin).
        count: Pairs whose probability falls in the bin.
        mean_probability: Their mean predicted probability (``nan`` when empty).
        positive_rate: The share of them that are positives (``nan`` when empty).
    """

    low: float
    high: float
    count: int
    mean_probability: float
    positive_rate: float


@dataclass(frozen=True, kw_only=True)
class ThresholdPoint:
    """Precision and recall when pairs with probability ``>= threshold`` are positive.

    Attributes:
        threshold: The probability threshold.
        precision: True positives over predicted positives (1.0 when none predicted).
        recall: True positives over all positives (0.0 when there are none).
        predicted: How many pairs the threshold predicts positive.
    """

    threshold: float
    precision: float
    recall: float
    predicted: int


def _binary(probabilities: npt.ArrayLike, positives: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(positives, dtype=bool).ravel()
    if p.shape != y.shape:
        raise InvalidInputError(
            f"probabilities and positives differ in size: {p.size} and {y.size}"
        )
    return p, y


def reliability_table(
    probabilities: npt.ArrayLike, positives: npt.ArrayLike, *, bins: int = 10
) -> tuple[ReliabilityBin, ...]:
    """Predicted probability vs observed positive rate, in ``bins`` equal-width bins.

    A calibrated model's positive rate in each bin is close to its mean probability.
    """
    if bins < 1:
        raise InvalidInputError(f"bins must be a positive number, got {bins}")
    p, y = _binary(probabilities, positives)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds edges[i] <= p < edges[i+1]; 1.0 itself goes to the last bin.
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table = []
    for i in range(bins):
        inside = index == i
        count = int(inside.sum())
        table.append(
            ReliabilityBin(
                low=float(edges[i]),
                high=float(edges[i + 1]),
                count=count,
                mean_probability=float(p[inside].mean()) if count else float("nan"),
                positive_rate=float(y[inside].mean()) if count else float("nan"),
            )
        )
    return tuple(table)


def precision_recall_at(
    probabilities: npt.ArrayLike, positives: npt.ArrayLike, thresholds: Sequence[float]
) -> tuple[ThresholdPoint, ...]:
    """Precision and recall of ``probability >= threshold``, for each threshold."""
    p, y = _binary(probabilities, positives)
    total = int(y.sum())
    points = []
    for threshold in thresholds:
        chosen = p >= threshold
        predicted = int(chosen.sum())
        hits = int((chosen & y).sum())
        points.append(
            ThresholdPoint(
                threshold=float(threshold),
                precision=hits / predicted if predicted else 1.0,
                recall=hits / total if total else 0.0,
                predicted=predicted,
            )
        )
    return tuple(points)


def threshold_for_precision(
    probabilities: npt.ArrayLike, positives: npt.ArrayLike, precision: float
) -> ThresholdPoint | None:
    """The lowest threshold whose precision reaches ``precision``, or ``None``.

    Candidates are the observed probabilities themselves (any threshold between two of
    them predicts the same pairs). The lowest qualifying one keeps the most recall.
    ``None`` when no threshold that predicts at least one pair reaches the precision.
    """
    if not 0.0 < precision <= 1.0:
        raise InvalidInputError(f"precision must be in (0, 1], got {precision}")
    p, y = _binary(probabilities, positives)
    if not p.size:
        return None
    order = np.argsort(-p, kind="stable")
    sorted_p, sorted_y = p[order], y[order]
    # Predicting the first i+1 pairs is only possible at a threshold equal to sorted_p[i]
    # when the next pair scores strictly lower (ties go in together).
    last_of_value = np.append(sorted_p[1:] < sorted_p[:-1], True)
    hits = np.cumsum(sorted_y)
    predicted = np.arange(1, p.size + 1)
    reached = last_of_value & (hits / predicted >= precision)
    if not reached.any():
        return None
    i = int(np.flatnonzero(reached)[-1])
    total = int(y.sum())
    return ThresholdPoint(
        threshold=float(sorted_p[i]),
        precision=float(hits[i] / predicted[i]),
        recall=float(hits[i] / total) if total else 0.0,
        predicted=int(predicted[i]),
    )
