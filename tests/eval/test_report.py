"""Reports: Markdown tables, JSON shape, file names, plots, and a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from zeroshot_vision.eval import score_classification, score_retrieval, write_classification_report
from zeroshot_vision.eval._report import (
    classification_json,
    classification_markdown,
    model_slugs,
    retrieval_markdown,
    write_retrieval_report,
)


def test_importing_eval_and_the_cli_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, zeroshot_vision.eval, zeroshot_vision._cli;"
        "print(','.join(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_model_slugs_are_short_safe_and_unique() -> None:
    assert model_slugs(["google/siglip-base-patch16-224", "/models/clip/", "a b|c", "x/a b|c"]) == [
        "siglip-base-patch16-224",
        "clip",
        "a-b-c",
        "a-b-c-2",
    ]


def many_classes(n: int, calibrated: bool):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(n), 2)
    scores = rng.normal(size=(len(truth), n)) + 2 * np.eye(n)[truth]
    probabilities = 1 / (1 + np.exp(-(scores - 1))) if calibrated else None
    labels = [f"class | {i}" for i in range(n)]
    return score_classification(
        scores, truth, labels=labels, model=f"model-{calibrated}", probabilities=probabilities
    )


def test_classification_report_files_tables_and_plots(tmp_path: Path) -> None:
    siglip, clip = many_classes(50, True), many_classes(50, False)
    files = write_classification_report([siglip, clip], tmp_path, dataset="fifty")
    assert [f.name for f in files] == [
        "report.md",
        "results.json",
        "per_class_accuracy.png",
        "confusion-model-True.png",
        "reliability-model-True.png",
        "confusion-model-False.png",
    ]
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Zero-shot classification: fifty\n")
    assert "| class \\| 0 | 2 |" in report  # a pipe in a label cannot break the table
    assert "model-False: no calibration tables" in report
    data = json.loads((tmp_path / "results.json").read_text())
    assert [m["model"] for m in data["models"]] == ["model-True", "model-False"]
    assert data == classification_json([siglip, clip])
    for name in files[2:]:
        with Image.open(name) as image:
            assert image.format == "PNG" and image.height > 400  # 40 bars, 15x15 heat map


def test_a_single_model_prints_its_own_object() -> None:
    result = many_classes(3, True)
    data = classification_json([result])
    assert {"top1", "top5", "n", "per_class", "confused", "calibration"} <= set(data)
    assert data["n"] == 6
    json.dumps(data, allow_nan=False)  # empty reliability bins are null, not NaN


def test_retrieval_markdown_has_a_row_per_metric_and_source(tmp_path: Path) -> None:
    result = score_retrieval(
        np.eye(2, dtype=np.float32),
        np.eye(2, dtype=np.float32),
        [(0, 0), (1, 1)],
        model="m",
        sources=["conversions", "keywords"],
    )
    markdown = retrieval_markdown([result], dataset="pairs")
    for row in ("| queries (n) | 2 |", "| Recall@1 | 100.0% |", "| MRR | 1.0000 |"):
        assert row in markdown
    assert "## Judgments from conversions" in markdown
    files = write_retrieval_report([result], tmp_path)
    assert [f.name for f in files] == ["report.md", "results.json", "recall_at_k.png"]


def test_markdown_without_plots_or_mistakes() -> None:
    perfect = score_classification(np.eye(2), [0, 1], labels=["a", "b"], model="m")
    markdown = classification_markdown([perfect])
    assert "No mistakes." in markdown and "## Plots" not in markdown
