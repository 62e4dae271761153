"""Reports people look at: Markdown, JSON and plots from evaluation results.

:func:`write_classification_report` and :func:`write_retrieval_report` write a folder:

* ``report.md``: tables for every model side by side, the plots embedded;
* ``results.json``: what ``--json`` prints;
* PNG plots (matplotlib, drawn on its Agg canvas without touching pyplot's global
  state): per-class accuracy bars, a confusion heat map of the largest classes and a
  reliability diagram per calibrated model, or recall@K curves for retrieval.

matplotlib is imported only to draw (the ``eval`` extra); the Markdown and JSON
functions need nothing beyond the standard library.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._files import write_atomic
from zeroshot_vision._optional import require
from zeroshot_vision.eval._labelled_data import Skipped
from zeroshot_vision.eval._run import RETRIEVAL_KS, ClassificationResult, RetrievalResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CONFUSION_CLASSES",
    "PER_CLASS_BARS",
    "classification_json",
    "classification_markdown",
    "group_table",
    "model_slugs",
    "plot_confusion",
    "plot_per_class_accuracy",
    "plot_recall_by_group",
    "plot_recall_curves",
    "plot_reliability",
    "retrieval_json",
    "retrieval_markdown",
    "threshold_summary",
    "write_classification_report",
    "write_retrieval_report",
]

PER_CLASS_BARS = 40
"""At most this many classes in the per-class plot (the hardest, when there are more)."""
CONFUSION_CLASSES = 15
"""The heat map shows this many classes: those with the most images."""
_SKIPS_SHOWN = 50


# -- JSON -----------------------------------------------------------------------------------


def classification_json(results: Sequence[ClassificationResult]) -> dict[str, Any]:
    """One model: its object (``top1``, ``top5``, ``n``, ...); several: ``{"models": [...]}``."""
    objects = [result.to_json() for result in results]
    return objects[0] if len(objects) == 1 else {"models": objects}


def retrieval_json(results: Sequence[RetrievalResult]) -> dict[str, Any]:
    """One model: its object (``recall@1``, ``mrr``, ``n``...); several: ``{"models": [...]}``."""
    objects = [result.to_json() for result in results]
    return objects[0] if len(objects) == 1 else {"models": objects}


# -- Markdown -------------------------------------------------------------------------------


def model_slugs(models: Sequence[str]) -> list[str]:
    """Short, unique, file-name-safe model names: ``google/siglip-base`` -> ``siglip-base``."""
    slugs: list[str] = []
    for model in models:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/\\")).name).strip("-.")
        slug = base or "model"
        n = 2
        while slug in slugs:
            slug, n = f"{base or 'model'}-{n}", n + 1
        slugs.append(slug)
    return slugs


def _cell(text: object) -> str:
    # A pipe would end the table cell; a newline the row.
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _skips(skipped: Sequence[Skipped]) -> list[str]:
    if not skipped:
        return []
    lines = ["", "## Skipped", ""]
    lines.extend(f"- `{_cell(s.source)}`: {_cell(s.reason)}" for s in skipped[:_SKIPS_SHOWN])
    if len(skipped) > _SKIPS_SHOWN:
        lines.append(f"- ... and {len(skipped) - _SKIPS_SHOWN} more (see results.json)")
    return lines


def threshold_summary(result: ClassificationResult) -> str:
    """The suggested ``min_probability`` and its recall, in words, for tables."""
    if result.calibration is None:
        return "n/a (not calibrated)"
    point = result.calibration.threshold
    if point is None:
        return "none reaches it"
    return f"{point.threshold:.4f} (recall {_percent(point.recall)})"


def classification_markdown(
    results: Sequence[ClassificationResult], *, dataset: str = "", plots: Sequence[str] = ()
) -> str:
    """The Markdown report of one or more models on one labelled folder.

    Args:
        results: One result per model, all on the same dataset.
        dataset: The dataset's name or path, for the title.
        plots: File names of plots to embed (relative to the report).
    """
    if not results:
        raise InvalidInputError("no results to report")
    first = results[0]
    names = model_slugs([r.model for r in results])
    target = first.calibration.target_precision if first.calibration else None
    lines = [f"# Zero-shot classification{': ' + dataset if dataset else ''}", ""]
    lines.append(
        f"{first.n} images, {len(first.labels)} classes. Each label is embedded through "
        f"{len(first.templates)} prompt template{'s' if len(first.templates) != 1 else ''} "
        "(normalized, averaged, normalized again): "
        + ", ".join(f"`{t}`" for t in first.templates)
        + ". Ties count against the model."
    )
    lines += ["", "## Summary", ""]
    summary: list[list[object]] = [
        ["model", *(r.model for r in results)],
        ["top-1 accuracy", *(_percent(r.top1) for r in results)],
        ["top-5 accuracy", *(_percent(r.top5) for r in results)],
        ["images (n)", *(r.n for r in results)],
        [
            "probabilities",
            *(
                "calibrated (sigmoid per label)" if r.calibrated else "softmax over the labels"
                for r in results
            ),
        ],
        [
            f"threshold for precision {target if target is not None else '-'}",
            *(threshold_summary(r) for r in results),
        ],
        ["seconds", *(f"{r.seconds:.1f}" for r in results)],
    ]
    lines += _table(["", *names], summary)
    lines += ["", "## Per-class accuracy", ""]
    rows = []
    for i, label in enumerate(first.labels):
        cells = [f"{_percent(r.per_class[i].accuracy)}" for r in results]
        rows.append([label, first.per_class[i].n, *cells])
    lines += _table(["class", "n", *names], rows)
    lines += ["", "## Most confused pairs", ""]
    for name, result in zip(names, results):
        if len(results) > 1:
            lines += [f"### {name}", ""]
        if not result.confused:
            lines += ["No mistakes.", ""]
            continue
        lines += _table(
            ["true class", "predicted as", "images", "share of class"],
            [[p.truth, p.predicted, p.count, _percent(p.share)] for p in result.confused],
        )
        lines.append("")
    for name, result in zip(names, results):
        calibration = result.calibration
        if calibration is None:
            continue
        lines += [f"## Calibration: {name}", ""]
        lines.append(
            f"Each (image, label) pair is one binary event: {calibration.pairs} pairs, "
            f"{calibration.positives} positives. Probability = sigmoid(exp(t)·cos + b)."
        )
        lines += ["", "Reliability (predicted probability vs observed positive rate):", ""]
        lines += _table(
            ["probability", "pairs", "mean probability", "positive rate"],
            [
                [
                    f"{b.low:.1f}-{b.high:.1f}",
                    b.count,
                    f"{b.mean_probability:.4f}" if b.count else "-",
                    f"{b.positive_rate:.4f}" if b.count else "-",
                ]
                for b in calibration.reliability
            ],
        )
        lines += ["", "Precision and recall when `probability >= threshold` counts as a match:", ""]
        lines += _table(
            ["threshold", "predicted", "precision", "recall"],
            [
                [
                    f"{p.threshold:g}",
                    p.predicted,
                    _percent(p.precision) if p.predicted else "-",
                    _percent(p.recall),
                ]
                for p in calibration.curve
            ],
        )
        lines.append("")
    without = [name for name, r in zip(names, results) if r.calibration is None]
    if without:
        lines.append(
            f"{', '.join(without)}: no calibration tables. CLIP has no bias term; its only "
            "probability is a softmax over the labels compared, which changes with the set."
        )
    lines += _skips(first.skipped)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(plot).stem}]({plot})" for plot in plots]
    return "\n".join(lines).rstrip() + "\n"


def retrieval_markdown(
    results: Sequence[RetrievalResult], *, dataset: str = "", plots: Sequence[str] = ()
) -> str:
    """The Markdown report of one or more models on one set of (image, text) pairs."""
    if not results:
        raise InvalidInputError("no results to report")
    first = results[0]
    names = model_slugs([r.model for r in results])
    lines = [f"# Text-to-image retrieval{': ' + dataset if dataset else ''}", ""]
    lines.append(
        f"{first.n} queries (distinct texts) against {first.n_images} images. A query's "
        "rank is that of its best relevant image; ties count against the model."
    )
    lines += ["", "## Summary", ""]

    def rows_for(pick: Any) -> list[list[object]]:
        rows: list[list[object]] = [["queries (n)", *(pick(r).n for r in results)]]
        for i, k in enumerate(RETRIEVAL_KS):
            rows.append([f"Recall@{k}", *(_percent(pick(r).recall[i]) for r in results)])
        rows.append(["MRR", *(f"{pick(r).mrr:.4f}" for r in results)])
        rows.append(["median rank", *(f"{pick(r).median_rank:g}" for r in results)])
        return rows

    lines += _table(["", *names], rows_for(lambda r: r.overall))
    lines.append("")
    lines.append(f"Seconds: {', '.join(f'{n} {r.seconds:.1f}' for n, r in zip(names, results))}")
    if first.grouped_by == "language" and first.by_source:
        lines += ["", "## Per language", ""]
        lines.append(
            "Each language's captions rank the same gallery; the mean counts each language "
            "once (the average XM3600 results quote)."
        )
        lines.append("")
        header, rows = group_table(results)
        lines += _table(header, rows)
    else:
        for i, group in enumerate(first.by_source):
            lines += ["", f"## Judgments from {group.name}", ""]
            lines += _table(["", *names], rows_for(lambda r, i=i: r.by_source[i]))
    lines += _skips(first.skipped)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(plot).stem}]({plot})" for plot in plots]
    return "\n".join(lines).rstrip() + "\n"


def group_table(results: Sequence[RetrievalResult]) -> tuple[list[str], list[list[str]]]:
    """Recall@1/5/10 per group (language or source), one column per model and K, and the
    mean over groups as the last row: ``(header, rows)``."""
    first = results[0]
    names = model_slugs([r.model for r in results])
    header = [first.grouped_by, "n"]
    header += [f"{name} R@{k}" for name in names for k in RETRIEVAL_KS]
    rows: list[list[str]] = []
    for i, group in enumerate(first.by_source):
        row = [group.name, str(group.n)]
        row += [
            _percent(r.by_source[i].recall[j]) for r in results for j, _ in enumerate(RETRIEVAL_KS)
        ]
        rows.append(row)
    means = [r.group_mean for r in results]
    if all(mean is not None for mean in means):
        row = [f"mean ({len(first.by_source)})", str(first.overall.n)]
        row += [
            _percent(mean.recall[j])
            for mean in means
            if mean is not None
            for j in range(len(RETRIEVAL_KS))
        ]
        rows.append(row)
    return header, rows


# -- plots ----------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    require("matplotlib", extra="eval", purpose="evaluation plots")
    from matplotlib.figure import Figure

    # A bare Figure renders through the Agg canvas on savefig: no pyplot, no GUI backend,
    # no global state changed in the caller's notebook.
    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=110)


def plot_per_class_accuracy(results: Sequence[ClassificationResult], path: Path) -> None:
    """Horizontal bars of per-class accuracy, one colour per model."""
    first = results[0]
    order = list(range(len(first.labels)))
    title = "Per-class top-1 accuracy"
    if len(order) > PER_CLASS_BARS:
        order = sorted(order, key=lambda i: (first.per_class[i].accuracy, i))[:PER_CLASS_BARS]
        title += f" (the {PER_CLASS_BARS} hardest classes for {model_slugs([first.model])[0]})"
    order = order[::-1]  # barh draws bottom-up; the first class goes on top
    names = model_slugs([r.model for r in results])
    height = 0.8 / len(results)
    figure = _figure(8, 1.2 + 0.3 * len(order) * max(1, len(results) * 0.6))
    axes = figure.add_subplot()
    positions = np.arange(len(order))
    for m, (name, result) in enumerate(zip(names, results)):
        values = [result.per_class[i].accuracy for i in order]
        offset = ((len(results) - 1) / 2 - m) * height  # the first model on top
        bars = axes.barh(positions + offset, values, height=height, label=name)
        # Written out, so that a 0% class shows a number rather than nothing.
        axes.bar_label(bars, [f"{100 * v:.0f}%" for v in values], padding=2, fontsize="x-small")
    axes.set_yticks(positions, [f"{first.labels[i]} (n={first.per_class[i].n})" for i in order])
    axes.set_xlim(0, 1.08)
    axes.set_xlabel("top-1 accuracy")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _save(figure, path)


def plot_confusion(result: ClassificationResult, path: Path) -> None:
    """A heat map of row-normalized confusion for the classes with the most images."""
    counts = result.confusion
    sizes = counts.sum(axis=1)
    chosen = sorted(range(len(result.labels)), key=lambda i: (-sizes[i], i))[:CONFUSION_CLASSES]
    chosen.sort()
    sub = counts[np.ix_(chosen, chosen)].astype(np.float64)
    shares = sub / np.maximum(sizes[chosen][:, None], 1)
    side = 2.5 + 0.45 * len(chosen)
    figure = _figure(side + 1.5, side)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    labels = [result.labels[i] for i in chosen]
    axes.set_xticks(range(len(chosen)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(chosen)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true class")
    for row in range(len(chosen)):
        for column in range(len(chosen)):
            if sub[row, column]:
                axes.text(
                    column,
                    row,
                    str(int(sub[row, column])),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if shares[row, column] > 0.5 else "black",
                )
    shown = "" if len(chosen) == len(result.labels) else f", {len(chosen)} largest classes"
    axes.set_title(f"Confusion: {model_slugs([result.model])[0]}{shown}")
    figure.colorbar(image, ax=axes, label="share of the true class")
    _save(figure, path)


def plot_reliability(result: ClassificationResult, path: Path) -> None:
    """Reliability diagram and precision/recall against the threshold."""
    calibration = result.calibration
    if calibration is None:
        raise InvalidInputError(f"{result.model} has no calibration to plot")
    figure = _figure(11, 4.5)
    left, right = figure.subplots(1, 2)
    bins = [b for b in calibration.reliability if b.count]
    centers = [(b.low + b.high) / 2 for b in bins]
    width = calibration.reliability[0].high - calibration.reliability[0].low
    left.bar(
        centers,
        [b.positive_rate for b in bins],
        width=width * 0.9,
        alpha=0.7,
        label="observed positive rate",
    )
    left.plot(
        [b.mean_probability for b in bins],
        [b.positive_rate for b in bins],
        "o",
        color="black",
        label="bin mean probability",
    )
    left.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    # Counts go on a top axis of their own, where no bar or point can cover them.
    counts = left.secondary_xaxis("top")
    counts.set_xticks(centers, [str(b.count) for b in bins], fontsize="x-small")
    counts.set_xlabel("pairs per bin", fontsize="small")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.05)
    left.set_xlabel("predicted probability")
    left.set_ylabel("observed share of true labels")
    left.set_title("Reliability")
    left.legend(loc="upper left", fontsize="small")
    thresholds = [p.threshold for p in calibration.curve]
    # A threshold that predicts nothing has no precision to show (1.0 by convention).
    precision = [p.precision if p.predicted else np.nan for p in calibration.curve]
    right.plot(thresholds, precision, "o-", label="precision")
    right.plot(thresholds, [p.recall for p in calibration.curve], "s-", label="recall")
    right.set_xlim(0, 1)
    if calibration.threshold is not None:
        right.axvline(
            calibration.threshold.threshold,
            color="red",
            linestyle=":",
            label=f"precision {calibration.target_precision:g} at "
            f"{calibration.threshold.threshold:.3g}",
        )
    right.set_ylim(0, 1.05)
    right.set_xlabel("threshold (min_probability)")
    right.set_title("Precision and recall of probability >= threshold")
    right.grid(alpha=0.3)
    right.legend(loc="lower left", fontsize="small")
    figure.suptitle(f"Calibration: {model_slugs([result.model])[0]}")
    _save(figure, path)


def plot_recall_curves(results: Sequence[RetrievalResult], path: Path) -> None:
    """Recall@K against K, one line per model."""
    figure = _figure(7, 4.5)
    axes = figure.add_subplot()
    for name, result in zip(model_slugs([r.model for r in results]), results):
        curve = result.overall.curve
        axes.plot(
            range(1, len(curve) + 1), curve, marker="." if len(curve) < 20 else "", label=name
        )
    axes.set_xscale("log")
    depth = max(len(r.overall.curve) for r in results)
    ticks = [k for k in (1, 2, 5, 10, 20, 50) if k <= depth]
    axes.set_xticks(ticks, [str(k) for k in ticks])
    axes.minorticks_off()
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("K")
    axes.set_ylabel("Recall@K")
    axes.set_title(f"Text-to-image Recall@K ({results[0].n} queries, {results[0].n_images} images)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="lower right", fontsize="small")
    _save(figure, path)


def plot_recall_by_group(results: Sequence[RetrievalResult], path: Path) -> None:
    """Recall@1 per language (or source), one bar per model, the mean last."""
    first = results[0]
    labels = [group.name for group in first.by_source] + ["mean"]
    figure = _figure(max(6.0, 0.45 * len(labels) * max(1, len(results)) + 2), 4.5)
    axes = figure.add_subplot()
    width = 0.8 / len(results)
    for m, (name, result) in enumerate(zip(model_slugs([r.model for r in results]), results)):
        mean = result.group_mean
        values = [group.recall[0] for group in result.by_source]
        values.append(mean.recall[0] if mean is not None else 0.0)
        positions = [i + (m - (len(results) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(positions, values, width=width, label=name)
    axes.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 12 else 0)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("Recall@1")
    axes.set_title(f"Text-to-image Recall@1 per {first.grouped_by}")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper right", fontsize="small")
    _save(figure, path)


# -- folders --------------------------------------------------------------------------------


def _write_folder(
    out_dir: str | os.PathLike[str],
    *,
    draw: Callable[[Path], list[Path]],
    markdown: Callable[[list[str]], str],
    data: dict[str, Any],
) -> list[Path]:
    """Create ``out_dir``, draw the plots into it, then write the report and the JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures = draw(out)
    report = out / "report.md"
    write_atomic(report, markdown([p.name for p in pictures]).encode("utf-8"))
    results = out / "results.json"
    write_atomic(results, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))
    return [report, results, *pictures]


def write_classification_report(
    results: Sequence[ClassificationResult],
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = "",
    plots: bool = True,
) -> list[Path]:
    """Write ``report.md``, ``results.json`` and the plots into ``out_dir``.

    Returns:
        The files written, the report first.
    """
    if not results:
        raise InvalidInputError("no results to report")

    def draw(out: Path) -> list[Path]:
        if not plots:
            return []
        pictures = [out / "per_class_accuracy.png"]
        plot_per_class_accuracy(results, pictures[-1])
        for slug, result in zip(model_slugs([r.model for r in results]), results):
            pictures.append(out / f"confusion-{slug}.png")
            plot_confusion(result, pictures[-1])
            if result.calibration is not None:
                pictures.append(out / f"reliability-{slug}.png")
                plot_reliability(result, pictures[-1])
        return pictures

    return _write_folder(
        out_dir,
        draw=draw,
        markdown=lambda names: classification_markdown(results, dataset=dataset, plots=names),
        data=classification_json(results),
    )


def write_retrieval_report(
    results: Sequence[RetrievalResult],
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = "",
    plots: bool = True,
) -> list[Path]:
    """Write ``report.md``, ``results.json``, ``recall_at_k.png`` and, for multilingual
    captions, ``recall_by_language.png`` into ``out_dir``.

    Returns:
        The files written, the report first.
    """
    if not results:
        raise InvalidInputError("no results to report")

    def draw(out: Path) -> list[Path]:
        if not plots:
            return []
        plot_recall_curves(results, out / "recall_at_k.png")
        pictures = [out / "recall_at_k.png"]
        if results[0].grouped_by == "language" and results[0].by_source:
            pictures.append(out / f"recall_by_{results[0].grouped_by}.png")
            plot_recall_by_group(results, pictures[-1])
        return pictures

    return _write_folder(
        out_dir,
        draw=draw,
        markdown=lambda names: retrieval_markdown(results, dataset=dataset, plots=names),
        data=retrieval_json(results),
    )
