"""Run evaluations: embed a dataset with an encoder and score it.

Two layers, so that each can be used alone:

* ``score_*`` functions take score matrices (already computed cosines) and return the
  result objects; no model is involved, so they are exact and fast to test.
* ``evaluate_*`` functions take an :class:`~zeroshot_vision._encoder.Encoder` (or anything
  with its embedding methods) and a dataset, embed both sides, and call ``score_*``.

Zero-shot labels are embedded through prompt templates: each template is filled with the
label, embedded and normalized; the template vectors of a label are averaged and the
average normalized again (the ensembling of the CLIP paper, in embedding space).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from zeroshot_vision._errors import ImageLoadError, InvalidInputError
from zeroshot_vision.eval._labelled_data import (
    ImageFolderDataset,
    PairsDataset,
    Skipped,
)
from zeroshot_vision.eval._metrics import (
    ReliabilityBin,
    ThresholdPoint,
    confusion_matrix,
    first_relevant_ranks,
    mean_reciprocal_rank,
    precision_recall_at,
    predictions,
    recall_at_k,
    reliability_table,
    threshold_for_precision,
)

__all__ = [
    "CALIBRATION_THRESHOLDS",
    "DEFAULT_TEMPLATES",
    "RETRIEVAL_KS",
    "Calibration",
    "ClassScore",
    "ClassificationResult",
    "ConfusedPair",
    "EvalEncoder",
    "RetrievalResult",
    "RetrievalScores",
    "check_template",
    "embed_images",
    "embed_labels",
    "evaluate_classification",
    "evaluate_retrieval",
    "score_classification",
    "score_retrieval",
]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a bad photo of the {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "itap of a {}.",
    "art of the {}.",
)
"""A small prompt ensemble in the style of the CLIP paper's ImageNet prompts (its
prompt-engineering notebook picked seven such templates); SigLIP's evaluations use the
same kind of prompts."""

RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10)
"""The K of the Recall@K columns."""

CALIBRATION_THRESHOLDS: tuple[float, ...] = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
)
"""Probability thresholds at which precision and recall are reported."""

_CURVE_DEPTH = 50  # recall@K curves go from K=1 to this (or the gallery's size)
_QUERY_CHUNK = 1024  # queries scored at once: bounds the (queries, images) matrix


class EvalEncoder(Protocol):
    """What an evaluation needs from an encoder (an :class:`Encoder` has all of it)."""

    model_name: str
    calibrated: bool
    batch_size: int

    def encode_texts(
        self, texts: str | Iterable[str], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]: ...

    def encode_batches(
        self,
        images: Iterable[Any],
        *,
        keys: Iterable[Any] | None = None,
        batch_size: int | None = None,
    ) -> Iterator[list[tuple[Any, npt.NDArray[np.float32] | ImageLoadError]]]: ...

    def logits(self, cosine: float | npt.NDArray[Any]) -> npt.NDArray[np.float64]: ...


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClassScore:
    """Accuracy on one class.

    Attributes:
        label: The class.
        n: Its evaluated images.
        correct: How many of them the model ranked first.
        accuracy: ``correct / n`` (0 when ``n`` is 0).
    """

    label: str
    n: int
    correct: int
    accuracy: float


@dataclass(frozen=True, kw_only=True)
class ConfusedPair:
    """Images of class ``truth`` that the model called ``predicted``.

    Attributes:
        truth: The true class.
        predicted: The class predicted instead.
        count: How many images.
        share: ``count`` over the images of ``truth``.
    """

    truth: str
    predicted: str
    count: int
    share: float


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """How well SigLIP's probabilities match reality on a labelled folder.

    Each (image, label) pair is one binary event, positive when the label is the image's
    class, with probability ``sigmoid(exp(logit_scale) * cos + logit_bias)``.

    Attributes:
        pairs: The number of (image, label) pairs.
        positives: How many of them are positives (one per image).
        reliability: Probability bins with their observed positive rate.
        curve: Precision and recall at :data:`CALIBRATION_THRESHOLDS`.
        target_precision: The precision asked for.
        threshold: The lowest threshold reaching ``target_precision`` (a value for
            ``min_probability``), or ``None`` when no threshold reaches it.
    """

    pairs: int
    positives: int
    reliability: tuple[ReliabilityBin, ...]
    curve: tuple[ThresholdPoint, ...]
    target_precision: float
    threshold: ThresholdPoint | None


@dataclass(frozen=True, kw_only=True)
class ClassificationResult:
    """Zero-shot classification of a labelled folder by one model.

    Attributes:
        model: The checkpoint's name or path.
        calibrated: Whether the model's probabilities are calibrated (SigLIP).
        n: Images evaluated.
        top1: Share of images whose class ranks first.
        top5: Share whose class ranks in the top 5 (1.0 with 5 classes or fewer).
        labels: The candidate labels, in dataset order.
        templates: The prompt templates averaged per label.
        per_class: Accuracy per class, in label order.
        confused: The most frequent (truth, predicted) mistakes, most frequent first.
        confusion: ``confusion[i, j]``: images of ``labels[i]`` predicted ``labels[j]``.
        calibration: Reliability and thresholds (``None`` for uncalibrated models).
        skipped: Images and classes left out, with the reason.
        seconds: Wall time of the evaluation.
    """

    model: str
    calibrated: bool
    n: int
    top1: float
    top5: float
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    per_class: tuple[ClassScore, ...]
    confused: tuple[ConfusedPair, ...]
    confusion: npt.NDArray[np.int64]
    calibration: Calibration | None
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``top1``, ``top5``, ``n``, per-class rows, ...)."""
        calibration = None
        if self.calibration is not None:
            c = self.calibration
            calibration = {
                "pairs": c.pairs,
                "positives": c.positives,
                "target_precision": c.target_precision,
                "threshold": _point_json(c.threshold) if c.threshold else None,
                "curve": [_point_json(point) for point in c.curve],
                "reliability": [
                    {
                        "low": b.low,
                        "high": b.high,
                        "count": b.count,
                        "mean_probability": _finite(b.mean_probability),
                        "positive_rate": _finite(b.positive_rate),
                    }
                    for b in c.reliability
                ],
            }
        return {
            "model": self.model,
            "calibrated": self.calibrated,
            "n": self.n,
            "top1": self.top1,
            "top5": self.top5,
            "labels": list(self.labels),
            "templates": list(self.templates),
            "per_class": [
                {"label": s.label, "n": s.n, "correct": s.correct, "accuracy": s.accuracy}
                for s in self.per_class
            ],
            "confused": [
                {"truth": p.truth, "predicted": p.predicted, "count": p.count, "share": p.share}
                for p in self.confused
            ],
            "confusion": self.confusion.tolist(),
            "calibration": calibration,
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, kw_only=True)
class RetrievalScores:
    """Text-to-image retrieval scores over one set of queries.

    Attributes:
        name: ``"all"``, or the judgments' source (``"conversions"``, ...).
        n: Queries (distinct texts).
        recall: Recall@K for each K of :data:`RETRIEVAL_KS`, in that order.
        mrr: Mean reciprocal rank of the first relevant image.
        median_rank: Median rank of the first relevant image.
        curve: Recall@K for K = 1, 2, ... up to 50 (or the number of images).
    """

    name: str
    n: int
    recall: tuple[float, ...]
    mrr: float
    median_rank: float
    curve: tuple[float, ...]

    def recall_at(self, k: int) -> float:
        """Recall@``k`` (``k`` from 1 to the length of :attr:`curve`)."""
        if not 1 <= k <= len(self.curve):
            raise InvalidInputError(f"recall@{k} was not computed (1 to {len(self.curve)})")
        return self.curve[k - 1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``n``, ``recall@1``, ``recall@5``, ``recall@10``, ``mrr``..."""
        out: dict[str, Any] = {"n": self.n}
        out.update({f"recall@{k}": value for k, value in zip(RETRIEVAL_KS, self.recall)})
        out.update({"mrr": self.mrr, "median_rank": self.median_rank})
        return out


@dataclass(frozen=True, kw_only=True)
class RetrievalResult:
    """Text-to-image retrieval over a set of (image, text) pairs by one model.

    Each distinct text is a query; its relevant images are those paired with it; every
    image of the dataset is a candidate.

    Attributes:
        model: The checkpoint's name or path.
        n_images: Images in the gallery.
        overall: Scores over every query.
        by_source: Scores per judgment source (or per language, see ``grouped_by``),
            when the pairs have several.
        skipped: Pairs and images left out, with the reason.
        seconds: Wall time of the evaluation.
        grouped_by: What ``by_source`` groups by: ``"source"`` or ``"language"``.
    """

    model: str
    n_images: int
    overall: RetrievalScores
    by_source: tuple[RetrievalScores, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0
    grouped_by: str = "source"

    @property
    def n(self) -> int:
        """Queries evaluated."""
        return self.overall.n

    @property
    def group_mean(self) -> RetrievalScores | None:
        """The unweighted mean over :attr:`by_source` (per-language results quote this
        average: each language counts once, however many captions it has); None without
        groups."""
        groups = self.by_source
        if not groups:
            return None
        depth = min(len(group.curve) for group in groups)
        return RetrievalScores(
            name=f"mean of {len(groups)}",
            n=sum(group.n for group in groups),
            recall=tuple(float(np.mean(values)) for values in zip(*(g.recall for g in groups))),
            mrr=float(np.mean([group.mrr for group in groups])),
            median_rank=float(np.mean([group.median_rank for group in groups])),
            curve=tuple(float(np.mean([group.curve[i] for group in groups])) for i in range(depth)),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``n``, ``recall@K``, ``mrr``, ``by_source``, ``skipped``..."""
        return {
            "model": self.model,
            **self.overall.to_json(),
            "n_images": self.n_images,
            "curve": list(self.overall.curve),
            "by_source": {s.name: s.to_json() for s in self.by_source},
            "grouped_by": self.grouped_by,
            "mean_of_groups": mean.to_json() if (mean := self.group_mean) else None,
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 3),
        }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _point_json(point: ThresholdPoint) -> dict[str, Any]:
    return {
        "threshold": point.threshold,
        "precision": point.precision,
        "recall": point.recall,
        "predicted": point.predicted,
    }


# -- scoring (no model) ---------------------------------------------------------------------


def score_classification(
    scores: npt.ArrayLike,
    truth: Sequence[int] | npt.ArrayLike,
    *,
    labels: Sequence[str],
    model: str = "",
    probabilities: npt.ArrayLike | None = None,
    target_precision: float = 0.9,
    templates: Sequence[str] = (),
    most_confused: int = 10,
    skipped: Sequence[Skipped] = (),
    seconds: float = 0.0,
) -> ClassificationResult:
    """Score an ``(images, labels)`` matrix against the true labels.

    Args:
        scores: Image-label similarities (cosines or logits: only the order matters).
        truth: The index of each image's true label.
        labels: The label names.
        model: The model's name, for the result.
        probabilities: Calibrated per-pair probabilities of the same shape (SigLIP's),
            for the calibration tables; ``None`` for models without calibration.
        target_precision: The precision the suggested threshold must reach.
        templates: The prompt templates used, for the result.
        most_confused: How many confused pairs to keep.
        skipped: What was left out, for the result.
        seconds: Wall time, for the result.

    Raises:
        InvalidInputError: Shapes disagree, or a truth index is out of range.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    classes = np.asarray(truth, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape != (len(classes), len(labels)):
        raise InvalidInputError(
            f"scores must be (images, labels) = ({len(classes)}, {len(labels)}), got {matrix.shape}"
        )
    if classes.size and (classes.min() < 0 or classes.max() >= len(labels)):
        raise InvalidInputError("a truth index is outside the label list")
    relevant = np.zeros(matrix.shape, dtype=bool)
    relevant[np.arange(len(classes)), classes] = True
    ranks = first_relevant_ranks(matrix, relevant) if classes.size else np.zeros(0, np.int64)
    predicted = predictions(matrix, classes) if classes.size else np.zeros(0, np.int64)
    confusion = confusion_matrix(classes, predicted, len(labels))
    per_class = []
    for i, label in enumerate(labels):
        n = int(confusion[i].sum())
        correct = int(confusion[i, i])
        per_class.append(
            ClassScore(label=label, n=n, correct=correct, accuracy=correct / n if n else 0.0)
        )
    mistakes = [
        (int(confusion[i, j]), i, j)
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and confusion[i, j]
    ]
    # Most frequent first; ties in label order, so the list is deterministic.
    mistakes.sort(key=lambda item: (-item[0], item[1], item[2]))
    confused = tuple(
        ConfusedPair(
            truth=labels[i],
            predicted=labels[j],
            count=count,
            share=count / per_class[i].n,
        )
        for count, i, j in mistakes[:most_confused]
    )
    calibration = None
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != matrix.shape:
            raise InvalidInputError(f"probabilities must have shape {matrix.shape}, got {p.shape}")
        calibration = Calibration(
            pairs=int(p.size),
            positives=int(relevant.sum()),
            reliability=reliability_table(p, relevant),
            curve=precision_recall_at(p, relevant, CALIBRATION_THRESHOLDS),
            target_precision=target_precision,
            threshold=threshold_for_precision(p, relevant, target_precision),
        )
    return ClassificationResult(
        model=model,
        calibrated=probabilities is not None,
        n=int(classes.size),
        top1=recall_at_k(ranks, 1),
        top5=recall_at_k(ranks, 5),
        labels=tuple(labels),
        templates=tuple(templates),
        per_class=tuple(per_class),
        confused=confused,
        confusion=confusion,
        calibration=calibration,
        skipped=tuple(skipped),
        seconds=seconds,
    )


def _retrieval_scores(
    name: str,
    text_vectors: npt.NDArray[np.float32],
    image_vectors: npt.NDArray[np.float32],
    relevant: Sequence[Sequence[int]],
) -> RetrievalScores:
    ranks = np.zeros(len(relevant), dtype=np.int64)
    for start in range(0, len(relevant), _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, len(relevant))
        scores = text_vectors[start:stop] @ image_vectors.T
        mask = np.zeros(scores.shape, dtype=bool)
        for row, images in enumerate(relevant[start:stop]):
            mask[row, list(images)] = True
        ranks[start:stop] = first_relevant_ranks(scores, mask)
    depth = min(_CURVE_DEPTH, len(image_vectors))
    return RetrievalScores(
        name=name,
        n=len(relevant),
        recall=tuple(recall_at_k(ranks, k) for k in RETRIEVAL_KS),
        mrr=mean_reciprocal_rank(ranks),
        median_rank=float(np.median(ranks)) if ranks.size else 0.0,
        curve=tuple(recall_at_k(ranks, k) for k in range(1, depth + 1)),
    )


def score_retrieval(
    text_vectors: npt.ArrayLike,
    image_vectors: npt.ArrayLike,
    pairs: Sequence[tuple[int, int]],
    *,
    model: str = "",
    sources: Sequence[str] | None = None,
    skipped: Sequence[Skipped] = (),
    seconds: float = 0.0,
    grouped_by: str = "source",
) -> RetrievalResult:
    """Score text-to-image retrieval from embeddings and (text, image) index pairs.

    Args:
        text_vectors: ``(texts, dim)`` unit vectors; each distinct text once.
        image_vectors: ``(images, dim)`` unit vectors: the whole gallery.
        pairs: ``(text index, image index)`` judgments; a text's relevant images are all
            the images it is paired with.
        model: The model's name, for the result.
        sources: The source of each pair; with several distinct sources, scores are
            also given per source.
        skipped: What was left out, for the result.
        seconds: Wall time, for the result.
        grouped_by: What ``sources`` name: ``"source"`` or ``"language"``.
    """
    texts = np.asarray(text_vectors, dtype=np.float32)
    images = np.asarray(image_vectors, dtype=np.float32)
    if sources is not None and len(sources) != len(pairs):
        raise InvalidInputError("sources must give one source per pair")

    def group(name: str, chosen: Sequence[tuple[int, int]]) -> RetrievalScores:
        relevant: dict[int, set[int]] = {}
        for text, image in chosen:
            relevant.setdefault(text, set()).add(image)
        order = sorted(relevant)
        return _retrieval_scores(
            name, texts[order], images, [sorted(relevant[text]) for text in order]
        )

    overall = group("all", pairs)
    by_source: list[RetrievalScores] = []
    names = list(dict.fromkeys(sources or ()))
    if len(names) > 1 and sources is not None:
        for name in names:
            chosen = [pair for pair, source in zip(pairs, sources) if source == name]
            by_source.append(group(name, chosen))
    return RetrievalResult(
        model=model,
        n_images=len(images),
        overall=overall,
        by_source=tuple(by_source),
        skipped=tuple(skipped),
        seconds=seconds,
        grouped_by=grouped_by,
    )


# -- embedding ------------------------------------------------------------------------------


def check_template(template: str) -> str:
    """Return ``template`` if it has a ``{}`` for the label, else raise.

    Raises:
        InvalidInputError: There is no ``{}`` in it.
    """
    if "{}" not in template:
        raise InvalidInputError(
            f"template {template!r} has no {{}} for the label; e.g. 'a photo of a {{}}.'"
        )
    return template


def embed_labels(
    encoder: EvalEncoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> npt.NDArray[np.float32]:
    """One unit vector per label: its templates embedded, averaged, normalized again.

    Every ``{}`` of a template is replaced by the label (other braces stay as they are).

    Raises:
        InvalidInputError: No template, or a template without ``{}``.
    """
    if not templates:
        raise InvalidInputError("give at least one template, e.g. 'a photo of a {}.'")
    total = np.zeros((len(labels), 0), dtype=np.float64)
    for template in templates:
        check_template(template)
        vectors = encoder.encode_texts([template.replace("{}", label) for label in labels])
        # Normalized again here, so that the average weighs each template alike whatever
        # the encoder returns.
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        total = vectors.astype(np.float64) if total.shape[1] == 0 else total + vectors
    average: npt.NDArray[np.float32] = (
        total / np.linalg.norm(total, axis=1, keepdims=True).clip(1e-12)
    ).astype(np.float32)
    return average


def embed_images(
    encoder: EvalEncoder,
    paths: Sequence[Path],
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[npt.NDArray[np.float32], list[int], list[Skipped]]:
    """Embed image files, skipping the unreadable ones.

    Args:
        encoder: The encoder.
        paths: Image files.
        batch_size: Images per forward pass (default: the encoder's).
        progress: Called with the number of images handled since the last call.

    Returns:
        ``(vectors, kept, skipped)``: the vectors of the readable images, their indices
        in ``paths``, and a skip for each unreadable one.
    """
    chunks: list[npt.NDArray[np.float32]] = []
    kept: list[int] = []
    skipped: list[Skipped] = []
    batches = encoder.encode_batches(paths, keys=range(len(paths)), batch_size=batch_size)
    for batch in batches:
        vectors = []
        for index, vector in batch:
            if isinstance(vector, ImageLoadError):
                skipped.append(Skipped(source=str(paths[index]), reason=vector.reason))
            else:
                kept.append(index)
                vectors.append(vector)
        if vectors:
            chunks.append(np.stack(vectors))
        if progress is not None:
            progress(len(batch))
    if not chunks:
        return np.zeros((0, 0), np.float32), kept, skipped
    return np.concatenate(chunks), kept, skipped


def _probabilities(
    encoder: EvalEncoder, cosines: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64] | None:
    from zeroshot_vision._scoring import sigmoid

    return sigmoid(encoder.logits(cosines)) if encoder.calibrated else None


# -- evaluating (with a model) --------------------------------------------------------------


def evaluate_classification(
    encoder: EvalEncoder,
    dataset: ImageFolderDataset,
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    target_precision: float = 0.9,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ClassificationResult:
    """Zero-shot classify every image of a labelled folder and score the result.

    The candidates are the dataset's labels that keep at least one readable image (a
    class whose images all fail to decode is left out, with a skip saying so). For a
    calibrated model (SigLIP) the result also holds the calibration tables.

    Args:
        encoder: The model.
        dataset: From :func:`~zeroshot_vision.eval._labelled_data.read_image_folder`.
        templates: Prompt templates, each with ``{}`` for the label.
        target_precision: The precision the suggested probability threshold must reach.
        batch_size: Images per forward pass.
        progress: Called with the number of images handled since the last call.

    Raises:
        InvalidInputError: A template lacks ``{}``, or fewer than two classes keep a
            readable image.
    """
    for template in templates:
        check_template(template)
    started = time.perf_counter()
    vectors, kept, skipped = embed_images(
        encoder, [image.path for image in dataset.images], batch_size=batch_size, progress=progress
    )
    found = [dataset.images[i].label for i in kept]
    present = sorted(set(found))
    for label_index, label in enumerate(dataset.labels):
        if label_index not in present:
            skipped.append(
                Skipped(
                    source=f"class {label!r}",
                    reason="no readable image; class left out of the labels",
                )
            )
    if len(present) < 2:
        # The dataset had two classes or more, so the classes lost here left skips.
        raise InvalidInputError(
            f"{dataset.root}: fewer than two classes have a readable image "
            f"({len(skipped)} skipped; first: {skipped[0].source}: {skipped[0].reason})"
        )
    new_index = {old: new for new, old in enumerate(present)}
    labels = [dataset.labels[i] for i in present]
    truth = np.array([new_index[label] for label in found], dtype=np.int64)
    label_vectors = embed_labels(encoder, labels, templates)
    cosines = vectors @ label_vectors.T
    return score_classification(
        cosines,
        truth,
        labels=labels,
        model=encoder.model_name,
        probabilities=_probabilities(encoder, cosines),
        target_precision=target_precision,
        templates=templates,
        skipped=[*dataset.skipped, *skipped],
        seconds=time.perf_counter() - started,
    )


def evaluate_retrieval(
    encoder: EvalEncoder,
    dataset: PairsDataset,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RetrievalResult:
    """Text-to-image retrieval over (image, text) pairs: Recall@1/5/10 and MRR.

    Every distinct image is embedded once and is a candidate for every query; every
    distinct text is a query. Texts go to the model as they are (no template). Pairs
    whose image cannot be decoded are skipped.

    Raises:
        InvalidInputError: No pair has a readable image.
    """
    started = time.perf_counter()
    image_paths = list(dict.fromkeys(pair.image for pair in dataset.pairs))
    vectors, kept, skipped = embed_images(
        encoder, image_paths, batch_size=batch_size, progress=progress
    )
    if not kept:
        raise InvalidInputError(f"{dataset.name}: no image could be read ({skipped[0].reason})")
    image_index = {image_paths[old]: new for new, old in enumerate(kept)}
    usable = [pair for pair in dataset.pairs if pair.image in image_index]
    texts = list(dict.fromkeys(pair.text for pair in usable))
    text_index = {text: i for i, text in enumerate(texts)}
    text_vectors = encoder.encode_texts(texts)
    return score_retrieval(
        text_vectors,
        vectors,
        [(text_index[pair.text], image_index[pair.image]) for pair in usable],
        model=encoder.model_name,
        sources=[pair.source for pair in usable],
        skipped=[*dataset.skipped, *skipped],
        seconds=time.perf_counter() - started,
        grouped_by=dataset.grouped_by,
    )
