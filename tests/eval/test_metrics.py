"""Metrics checked exactly on hand-built scores whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.eval._metrics import (
    confusion_matrix,
    first_relevant_ranks,
    mean_reciprocal_rank,
    precision_recall_at,
    predictions,
    recall_at_k,
    reliability_table,
    softmax,
    threshold_for_precision,
)


def test_ranks_with_one_relevant_item() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # truth 0 first
            [0.9, 0.1, 0.2],  # truth 2 second
            [0.9, 0.1, 0.2],  # truth 1 third
        ]
    )
    relevant = np.eye(3, dtype=bool)[[0, 2, 1]]
    ranks = first_relevant_ranks(scores, relevant)
    assert ranks.tolist() == [1, 2, 3]
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 2) == pytest.approx(2 / 3)
    assert recall_at_k(ranks, 5) == 1.0
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_ties_count_against_the_model() -> None:
    # The truth ties with two others at the top: it ranks behind both.
    scores = np.array([[0.5, 0.5, 0.5, 0.1]])
    relevant = np.array([[True, False, False, False]])
    assert first_relevant_ranks(scores, relevant).tolist() == [3]
    # A model that scores everything alike ranks every query last.
    flat = np.zeros((4, 4))
    assert first_relevant_ranks(flat, np.eye(4, dtype=bool)).tolist() == [4, 4, 4, 4]
    # Ties below the truth do not matter.
    assert first_relevant_ranks([[0.9, 0.2, 0.2]], [[True, False, False]]).tolist() == [1]


def test_rank_of_several_relevant_items_is_the_best_ones() -> None:
    scores = np.array([[0.1, 0.8, 0.7, 0.9, 0.3]])
    relevant = np.array([[True, False, True, False, True]])  # best relevant scores 0.7
    assert first_relevant_ranks(scores, relevant).tolist() == [3]  # behind 0.9 and 0.8


def test_ranks_refuse_bad_shapes_and_queries_without_relevant_items() -> None:
    with pytest.raises(InvalidInputError, match="one shape"):
        first_relevant_ranks(np.zeros((2, 3)), np.zeros((2, 2), dtype=bool))
    with pytest.raises(InvalidInputError, match="relevant item"):
        first_relevant_ranks(np.zeros((1, 3)), np.zeros((1, 3), dtype=bool))
    with pytest.raises(InvalidInputError):
        recall_at_k([1, 2], 0)


def test_empty_ranks_give_zero() -> None:
    assert recall_at_k([], 1) == 0.0
    assert mean_reciprocal_rank([]) == 0.0


def test_predictions_follow_the_tie_rule() -> None:
    scores = np.array(
        [
            [0.2, 0.7, 0.1],  # clear winner 1
            [0.5, 0.5, 0.1],  # truth 0 tied with 1: predicted 1 (a mistake)
            [0.5, 0.5, 0.1],  # truth 2, not in the tie: the first of the tie, 0
            [0.3, 0.3, 0.3],  # truth 2 tied with all: the first other one, 0
        ]
    )
    truth = [1, 0, 2, 2]
    assert predictions(scores, truth).tolist() == [1, 1, 0, 0]
    ranks = first_relevant_ranks(scores, np.eye(3, dtype=bool)[truth])
    assert ((ranks == 1) == (predictions(scores, truth) == truth)).all()


def test_confusion_matrix_counts() -> None:
    counts = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 0], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [2, 0, 1]]


def test_softmax_sums_to_one_and_is_stable() -> None:
    p = softmax(np.array([[1000.0, 1000.0], [0.0, math.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_reliability_table_bins() -> None:
    p = [0.05, 0.15, 0.15, 0.95, 1.0, 0.5]
    y = [False, True, False, True, True, False]
    table = reliability_table(p, y, bins=10)
    assert len(table) == 10
    assert table[0].count == 1 and table[0].positive_rate == 0.0
    assert table[1].count == 2 and table[1].positive_rate == 0.5
    assert table[1].mean_probability == pytest.approx(0.15)
    assert table[5].count == 1  # 0.5 opens the sixth bin
    assert table[9].count == 2 and table[9].positive_rate == 1.0  # 1.0 is in the last bin
    assert table[3].count == 0 and math.isnan(table[3].positive_rate)
    assert sum(b.count for b in table) == len(p)


def test_precision_and_recall_at_thresholds() -> None:
    p = [0.9, 0.8, 0.7, 0.6, 0.2]
    y = [True, False, True, True, False]
    a, b, c = precision_recall_at(p, y, [0.65, 0.95, 0.0])
    assert (a.predicted, a.precision, a.recall) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b.predicted, b.precision, b.recall) == (0, 1.0, 0.0)  # predicts nothing
    assert (c.predicted, c.precision, c.recall) == (5, pytest.approx(3 / 5), 1.0)


def test_threshold_for_precision_is_the_lowest_that_reaches_it() -> None:
    p = [0.9, 0.8, 0.7, 0.6, 0.2]
    y = [True, False, True, True, False]
    # Thresholds 0.9: 1/1; 0.8: 1/2; 0.7: 2/3; 0.6: 3/4; 0.2: 3/5.
    point = threshold_for_precision(p, y, 0.75)
    assert point is not None
    assert (point.threshold, point.precision, point.recall, point.predicted) == (
        0.6,
        0.75,
        1.0,
        4,
    )
    point = threshold_for_precision(p, y, 0.9)
    assert point is not None and point.threshold == 0.9 and point.recall == pytest.approx(1 / 3)
    assert threshold_for_precision([0.5, 0.4], [False, True], 0.9) is None


def test_threshold_cannot_split_tied_probabilities() -> None:
    # 0.8 is shared by a positive and a negative: no threshold takes one without the other.
    point = threshold_for_precision([0.8, 0.8, 0.1], [True, False, False], 0.9)
    assert point is None
    point = threshold_for_precision([0.8, 0.8, 0.1], [True, False, False], 0.5)
    assert point is not None and point.threshold == 0.8 and point.predicted == 2


def test_threshold_rejects_an_impossible_precision() -> None:
    with pytest.raises(InvalidInputError):
        threshold_for_precision([0.5], [True], 0.0)
    with pytest.raises(InvalidInputError):
        threshold_for_precision([0.5], [True], 1.5)
    with pytest.raises(InvalidInputError, match="differ in size"):
        reliability_table([0.5, 0.1], [True])
