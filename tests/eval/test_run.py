"""Runs on a stand-in encoder whose vectors are chosen, so every number is known exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import StandInEncoder, write_solid_png

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.eval import (
    ClassificationResult,
    embed_labels,
    evaluate_classification,
    evaluate_retrieval,
    read_image_folder,
    read_pairs_tsv,
    score_retrieval,
)

RED, GREEN, BLUE, GREY, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (90, 90, 90), (255, 255, 0)
SIGMOID = [1 / (1 + math.exp(-x)) for x in range(-6, 7)]  # SIGMOID[x + 6] = sigmoid(x)


def sigmoid(x: int) -> float:
    return SIGMOID[x + 6]


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    """cat: 2 images (one right, one taken for a dog); dog: 1 (right); red car: 2 (one
    right, one tied between cat and dog)."""
    root = tmp_path / "pets"
    write_solid_png(root / "cat" / "1.png", RED)
    write_solid_png(root / "cat" / "2.png", YELLOW)
    write_solid_png(root / "dog" / "1.png", GREEN)
    write_solid_png(root / "red_car" / "1.png", GREY)
    write_solid_png(root / "red_car" / "2.png", BLUE)
    return root


def stand_in(**options: object) -> StandInEncoder:
    return StandInEncoder(
        texts={"cat": [1, 0, 0], "dog": [0, 1, 0], "red car": [0, 0, 1]},
        colours={
            RED: [1, 0, 0],
            YELLOW: [0.6, 0.8, 0],  # cos 0.6 with cat, 0.8 with dog
            GREEN: [0, 1, 0],
            GREY: [0.5, 0.5, -(0.5**0.5)],  # cat and dog tie at cos 0.5, car last
            BLUE: [0, 0, 1],
        },
        logit_scale=math.log(10.0),  # logits = 10 cos - 5
        logit_bias=-5.0,
        **options,  # type: ignore[arg-type]
    )


def classify(pets: Path, **options: object) -> ClassificationResult:
    return evaluate_classification(stand_in(), read_image_folder(pets), templates=["{}"], **options)  # type: ignore[arg-type]


def test_accuracy_per_class_and_confusions_are_exact(pets: Path) -> None:
    result = classify(pets)
    assert result.labels == ("cat", "dog", "red car")  # '_' reads as a space
    assert result.n == 5
    assert result.top1 == pytest.approx(3 / 5)
    assert result.top5 == 1.0  # three classes: every truth is in the top 5
    assert [(s.label, s.n, s.correct) for s in result.per_class] == [
        ("cat", 2, 1),
        ("dog", 1, 1),
        ("red car", 2, 1),
    ]
    # The grey car ties cat and dog: the prediction is the first of the tie, cat.
    assert [(p.truth, p.predicted, p.count, p.share) for p in result.confused] == [
        ("cat", "dog", 1, 0.5),
        ("red car", "cat", 1, 0.5),
    ]
    assert result.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert result.calibrated and result.model == "stand-in"


def test_calibration_tables_and_threshold_are_exact(pets: Path) -> None:
    calibration = classify(pets, target_precision=0.9).calibration
    assert calibration is not None
    assert (calibration.pairs, calibration.positives) == (15, 5)
    # Probabilities (10 cos - 5 through a sigmoid), best first:
    # sigmoid(5) x3 all positive, sigmoid(3) negative, sigmoid(1) positive, sigmoid(0) x2
    # negative, sigmoid(-5) x7 negative, sigmoid(10 * -0.707 - 5) positive (the grey car).
    point = calibration.threshold
    assert point is not None
    assert point.threshold == pytest.approx(sigmoid(5), rel=1e-6)
    assert (point.precision, point.recall, point.predicted) == (1.0, pytest.approx(3 / 5), 3)
    lower = classify(pets, target_precision=0.8).calibration
    assert lower is not None and lower.threshold is not None
    assert lower.threshold.threshold == pytest.approx(sigmoid(1), rel=1e-6)
    assert lower.threshold.recall == pytest.approx(4 / 5)
    bins = {round(b.low, 1): b for b in calibration.reliability}
    assert bins[0.0].count == 8 and bins[0.0].positive_rate == pytest.approx(1 / 8)
    assert bins[0.5].count == 2 and bins[0.5].positive_rate == 0.0
    assert bins[0.9].count == 4 and bins[0.9].positive_rate == pytest.approx(3 / 4)
    at_half = next(p for p in calibration.curve if p.threshold == 0.5)
    assert (at_half.predicted, at_half.precision) == (7, pytest.approx(4 / 7))


def test_uncalibrated_models_get_no_calibration(pets: Path) -> None:
    result = evaluate_classification(
        stand_in(calibrated=False), read_image_folder(pets), templates=["{}"]
    )
    assert result.calibration is None and not result.calibrated
    assert result.top1 == pytest.approx(3 / 5)  # ranking does not depend on calibration
    assert result.to_json()["calibration"] is None


def test_templates_are_normalized_averaged_and_normalized_again() -> None:
    encoder = StandInEncoder(
        texts={"a cat": [1, 0, 0], "the cat": [0, 3, 0], "a dog": [0, 0, 1], "the dog": [0, 0, 2]},
        colours={},
    )
    vectors = embed_labels(encoder, ["cat", "dog"], ["a {}", "the {}"])
    np.testing.assert_allclose(vectors, [[2**-0.5, 2**-0.5, 0], [0, 0, 1]], atol=1e-6)
    assert encoder.text_calls == [["a cat", "a dog"], ["the cat", "the dog"]]


def test_a_template_without_braces_is_refused(pets: Path) -> None:
    with pytest.raises(InvalidInputError, match="no \\{\\} for the label"):
        evaluate_classification(stand_in(), read_image_folder(pets), templates=["a photo"])
    with pytest.raises(InvalidInputError, match="at least one template"):
        embed_labels(stand_in(), ["cat"], [])


def test_a_class_without_a_readable_image_is_left_out_and_reported(pets: Path) -> None:
    (pets / "broken").mkdir()
    (pets / "broken" / "bad.jpg").write_bytes(b"not a jpeg at all")
    result = classify(pets)
    assert result.labels == ("cat", "dog", "red car")
    assert result.n == 5 and result.top1 == pytest.approx(3 / 5)
    reasons = {s.source: s.reason for s in result.skipped}
    assert any(source.endswith("bad.jpg") for source in reasons)
    assert "no readable image" in reasons["class 'broken'"]


def test_fewer_than_two_readable_classes_is_an_error(tmp_path: Path) -> None:
    write_solid_png(tmp_path / "cat" / "1.png", RED)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "1.png").write_bytes(b"broken")
    with pytest.raises(InvalidInputError, match="fewer than two classes"):
        classify(tmp_path)


def test_retrieval_scores_are_exact() -> None:
    images = np.eye(3, dtype=np.float32)
    texts = np.array(
        [
            [1, 0, 0],  # relevant: image 0 -> rank 1
            [0.8, 0.6, 0],  # relevant: image 1 -> rank 2
            [0, 0, 1],  # relevant: images 0 and 2 -> rank 1
            [2**-0.5, 2**-0.5, 0],  # relevant: image 1, tied with image 0 -> rank 2
        ],
        dtype=np.float32,
    )
    pairs = [(0, 0), (1, 1), (2, 0), (2, 2), (3, 1)]
    result = score_retrieval(texts, images, pairs, model="m", sources=["a", "a", "b", "b", "b"])
    overall = result.overall
    assert (result.n, result.n_images) == (4, 3)
    assert overall.recall == (0.5, 1.0, 1.0)
    assert overall.mrr == pytest.approx(0.75)
    assert overall.median_rank == 1.5
    assert overall.curve == (0.5, 1.0, 1.0)
    assert overall.recall_at(2) == 1.0
    by_source = {group.name: group for group in result.by_source}
    assert by_source["a"].n == 2 and by_source["a"].mrr == pytest.approx(0.75)
    assert by_source["b"].n == 2 and by_source["b"].recall[0] == 0.5
    data = result.to_json()
    assert (data["n"], data["recall@1"], data["recall@5"], data["mrr"]) == (4, 0.5, 1.0, 0.75)
    assert data["recall@10"] == 1.0 and set(data["by_source"]) == {"a", "b"}


def test_retrieval_over_a_pairs_file_skips_unreadable_images(tmp_path: Path) -> None:
    write_solid_png(tmp_path / "img" / "red.png", RED)
    write_solid_png(tmp_path / "img" / "green.png", GREEN)
    (tmp_path / "img" / "bad.png").write_bytes(b"broken")
    (tmp_path / "pairs.tsv").write_text(
        "img/red.png\ta cat\nimg/green.png\ta dog\nimg/bad.png\ta cat\n", encoding="utf-8"
    )
    encoder = StandInEncoder(
        texts={"a cat": [1, 0], "a dog": [0.6, 0.8]},
        colours={RED: [1, 0], GREEN: [0, 1]},
    )
    result = evaluate_retrieval(encoder, read_pairs_tsv(tmp_path / "pairs.tsv"))
    assert (result.n, result.n_images) == (2, 2)
    assert result.overall.recall[0] == 1.0  # dog: cos 0.8 with green beats 0.6 with red
    assert [Path(s.source).name for s in result.skipped] == ["bad.png"]
