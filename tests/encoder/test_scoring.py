"""Label scores as plain functions of cosines and a checkpoint's scale and bias."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.helpers import TINY_LOGIT_BIAS, TINY_LOGIT_SCALE

from zeroshot_vision import _scoring as scoring

COSINES = np.array([-0.2, 0.0, 0.05, 0.3, 0.9])
LABELS = ["far", "zero", "near", "closer", "closest"]


def test_probability_is_sigmoid_of_scaled_cosine_plus_bias() -> None:
    expected = [
        1.0 / (1.0 + math.exp(-(math.exp(TINY_LOGIT_SCALE) * c + TINY_LOGIT_BIAS))) for c in COSINES
    ]
    found = scoring.probability(COSINES, logit_scale=TINY_LOGIT_SCALE, logit_bias=TINY_LOGIT_BIAS)
    np.testing.assert_allclose(found, expected, rtol=1e-12)
    one = scoring.probability(0.3, logit_scale=TINY_LOGIT_SCALE, logit_bias=TINY_LOGIT_BIAS)
    assert isinstance(one, float) and one == pytest.approx(expected[3], rel=1e-12)


def test_sigmoid_is_stable_at_the_extremes() -> None:
    values = scoring.sigmoid([-1000.0, 0.0, 1000.0])
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])
    assert not np.isnan(values).any()


def test_the_functions_agree_with_the_encoder_methods(tiny_encoder) -> None:
    scale, bias, calibrated = scoring.logit_parameters(tiny_encoder._model)
    assert scale == pytest.approx(TINY_LOGIT_SCALE) and bias == pytest.approx(TINY_LOGIT_BIAS)
    assert calibrated is True
    np.testing.assert_array_equal(
        tiny_encoder.logits(COSINES), scoring.logits(COSINES, logit_scale=scale, logit_bias=bias)
    )
    np.testing.assert_array_equal(
        tiny_encoder.probability(COSINES),
        scoring.probability(COSINES, logit_scale=scale, logit_bias=bias),
    )
    texts = tiny_encoder.encode_texts(LABELS)
    image = tiny_encoder.encode_texts(["a photo"])[0]  # any unit vector will do
    for softmax in (None, True, False):
        (method,) = tiny_encoder.score_labels(LABELS, texts, [image], softmax=softmax)
        function = scoring.label_scores(
            LABELS,
            texts @ image,
            logit_scale=scale,
            logit_bias=bias,
            calibrated=calibrated,
            softmax=softmax,
        )
        assert method == function


def test_clip_has_no_bias_so_it_is_uncalibrated(tiny_clip_encoder) -> None:
    scale, bias, calibrated = scoring.logit_parameters(tiny_clip_encoder._model)
    assert bias == 0.0 and calibrated is False
    assert scale == pytest.approx(TINY_LOGIT_SCALE)


@pytest.mark.parametrize(
    ("softmax", "calibrated", "expected"),
    [(None, True, False), (None, False, True), (True, True, True), (False, False, False)],
)
def test_softmax_rule(softmax: bool | None, calibrated: bool, expected: bool) -> None:
    assert scoring.uses_softmax(softmax, calibrated=calibrated) is expected


def test_label_scores_rank_by_cosine_with_sigmoid_or_softmax_probabilities() -> None:
    options = {"logit_scale": TINY_LOGIT_SCALE, "logit_bias": TINY_LOGIT_BIAS}
    shuffled = [4, 0, 3, 1, 2]
    labels, cosines = [LABELS[i] for i in shuffled], COSINES[shuffled]
    sigmoid = scoring.label_scores(labels, cosines, calibrated=True, **options)
    assert [s.label for s in sigmoid] == LABELS[::-1]
    assert [s.score for s in sigmoid] == sorted(COSINES.tolist(), reverse=True)
    np.testing.assert_allclose(
        [s.probability for s in sigmoid], scoring.probability(COSINES[::-1], **options)
    )
    softmax = scoring.label_scores(labels, cosines, calibrated=False, **options)
    probabilities = np.array([s.probability for s in softmax])
    assert probabilities.sum() == pytest.approx(1.0)
    logits = np.exp(TINY_LOGIT_SCALE) * COSINES[::-1] + TINY_LOGIT_BIAS
    np.testing.assert_allclose(probabilities, np.exp(logits) / np.exp(logits).sum(), rtol=1e-9)
    # Ties keep the labels' order.
    tied = scoring.label_scores(["b", "a"], np.array([0.5, 0.5]), calibrated=True, **options)
    assert [s.label for s in tied] == ["b", "a"]
