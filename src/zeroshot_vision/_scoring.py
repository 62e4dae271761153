"""Label scores from cosines: SigLIP's calibrated sigmoid, or a softmax over the labels.

Plain functions of cosine similarities and a checkpoint's two score parameters
(``logit_scale``, ``logit_bias``: :func:`logit_parameters` reads them), so stored vectors
can be scored without a model; :class:`~zeroshot_vision._encoder.Encoder`'s
``probability``, ``logits`` and ``score_labels`` call these with its own parameters.

SigLIP was trained with a sigmoid per text-image pair: ``sigmoid(exp(scale) * cos +
bias)`` is a calibrated probability of each label on its own. CLIP was trained with a
softmax and has no bias: its only probability is a softmax of the logits over the labels
being compared, which changes when that set changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from zeroshot_vision._types import LabelScore

__all__ = [
    "label_probabilities",
    "label_scores",
    "logit_parameters",
    "logits",
    "probability",
    "sigmoid",
    "uses_softmax",
]


def sigmoid(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def logit_parameters(model: Any) -> tuple[float, float, bool]:
    """A checkpoint's ``(logit_scale, logit_bias, calibrated)``.

    ``calibrated`` is whether the model has a ``logit_bias``: true for SigLIP
    (sigmoid-trained), false for CLIP (softmax-trained), whose missing scale or bias
    count as 0.
    """
    scale = getattr(model, "logit_scale", None)
    bias = getattr(model, "logit_bias", None)
    return (
        float(scale.detach().float().item()) if scale is not None else 0.0,
        float(bias.detach().float().item()) if bias is not None else 0.0,
        bias is not None,
    )


def logits(
    cosine: float | npt.NDArray[Any], *, logit_scale: float, logit_bias: float
) -> npt.NDArray[np.float64]:
    """``exp(logit_scale) * cosine + logit_bias``: the model's match logits."""
    scale = float(np.exp(logit_scale))
    values: npt.NDArray[np.float64] = scale * np.asarray(cosine, dtype=np.float64)
    return values + logit_bias


@overload
def probability(cosine: float, *, logit_scale: float, logit_bias: float) -> float: ...


@overload
def probability(
    cosine: npt.NDArray[Any], *, logit_scale: float, logit_bias: float
) -> npt.NDArray[np.float64]: ...


def probability(
    cosine: float | npt.NDArray[Any], *, logit_scale: float, logit_bias: float
) -> float | npt.NDArray[np.float64]:
    """``sigmoid(exp(logit_scale) * cosine + logit_bias)``; a float for a float.

    A calibrated probability that a text matches an image for SigLIP; meaningless for a
    model without a bias (CLIP), see :func:`uses_softmax`.
    """
    result = sigmoid(logits(cosine, logit_scale=logit_scale, logit_bias=logit_bias))
    return float(result) if np.ndim(cosine) == 0 else result


def uses_softmax(softmax: bool | None, *, calibrated: bool) -> bool:
    """The library's one rule: a softmax when asked for, or by default when uncalibrated.

    ``softmax=None`` means: independent sigmoids for a calibrated model (SigLIP), a
    softmax over the labels for one that is not (CLIP, whose sigmoid would mean nothing).
    """
    return bool(softmax) or (softmax is None and not calibrated)


def label_probabilities(
    cosines: npt.NDArray[Any], *, logit_scale: float, logit_bias: float, softmax: bool
) -> npt.NDArray[np.float64]:
    """Each label's probability: a softmax of the logits over the labels, or sigmoids."""
    if softmax:
        values = logits(cosines, logit_scale=logit_scale, logit_bias=logit_bias)
        weights = np.exp(values - values.max())
        result: npt.NDArray[np.float64] = weights / weights.sum()
        return result
    return probability(np.asarray(cosines), logit_scale=logit_scale, logit_bias=logit_bias)


def label_scores(
    labels: Sequence[str],
    cosines: npt.NDArray[Any],
    *,
    logit_scale: float,
    logit_bias: float,
    calibrated: bool,
    softmax: bool | None = None,
) -> list[LabelScore]:
    """One image's labels scored from their cosines, highest cosine first.

    Args:
        labels: The labels, in the order of ``cosines``.
        cosines: Each label's cosine with the image.
        logit_scale: The checkpoint's ``logit_scale`` (see :func:`logit_parameters`).
        logit_bias: Its ``logit_bias``.
        calibrated: Whether it has one (see :func:`logit_parameters`).
        softmax: True, False or None (see :func:`uses_softmax`).
    """
    probabilities = label_probabilities(
        cosines,
        logit_scale=logit_scale,
        logit_bias=logit_bias,
        softmax=uses_softmax(softmax, calibrated=calibrated),
    )
    order = np.argsort(-cosines, kind="stable")
    return [
        LabelScore(label=labels[i], probability=float(probabilities[i]), score=float(cosines[i]))
        for i in order
    ]
