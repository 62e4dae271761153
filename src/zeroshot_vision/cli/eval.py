"""``zsv eval``: the evaluation subcommands (``classify`` and ``retrieval``).

A thin layer: parse, call :mod:`zeroshot_vision.eval` (a library package that knows
nothing of the command line), print a side-by-side table (or ``--json``) and write a
report folder with ``--out``. Library errors become one-line messages in
:func:`zeroshot_vision.cli.parser.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import (
    add_device_options,
    positive_int_arg,
    precision_arg,
    template_arg,
)
from zeroshot_vision.cli.output import interactive, print_json, say
from zeroshot_vision.models import default_model

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.eval.datasets import Skipped

__all__ = ["add_eval_command", "run_eval_classify", "run_eval_retrieval"]

T = TypeVar("T")


_ROUTES = ("torch", "onnx/float32", "onnx/int8")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="checkpoint name or folder; repeat to compare models side by side "
        "(default $ZSV_MODEL or google/siglip-so400m-patch14-384)",
    )
    add_device_options(parser)
    parser.add_argument(
        "--route",
        action="append",
        choices=_ROUTES,
        help="encoder backend and precision; repeat to compare them side by side on your "
        "data, each model through each route (default: torch)",
    )
    parser.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="images per batch")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--out", metavar="DIR", help="write report.md, results.json and PNG plots here"
    )


def add_eval_command(commands: Subcommands) -> None:
    """Register ``zsv eval`` with its ``classify`` and ``retrieval`` subcommands."""
    parser = commands.add_parser(
        "eval",
        help="measure a checkpoint: zero-shot accuracy, retrieval recall, calibration",
        description="Evaluate one or more checkpoints on your own labelled data.",
    )
    kinds = parser.add_subparsers(dest="eval_command", metavar="KIND", required=True)
    classify = kinds.add_parser(
        "classify",
        help="zero-shot accuracy on a folder with one sub-folder per class",
        description=(
            "Zero-shot classification of FOLDER/<label>/<image> ('_' in a folder name reads "
            "as a space). Reports top-1 and top-5 accuracy, per-class accuracy, the most "
            "confused pairs and, for SigLIP, calibration: the probability threshold that "
            "reaches --precision."
        ),
    )
    classify.add_argument("--data", required=True, metavar="FOLDER", help="the labelled folder")
    classify.add_argument(
        "--template",
        action="append",
        type=template_arg,
        metavar="T",
        help="prompt template with {} for the label; repeat to average several "
        "(default: a small CLIP-style ensemble; '{}' for the bare label)",
    )
    classify.add_argument(
        "--precision",
        type=precision_arg,
        default=0.9,
        metavar="P",
        help="precision the suggested min_probability must reach (default 0.9)",
    )
    _add_common(classify)
    classify.set_defaults(handler=run_eval_classify)
    retrieval = kinds.add_parser(
        "retrieval",
        help="text-to-image Recall@1/5/10 and MRR from (image, text) pairs",
        description=(
            "Text-to-image retrieval. PAIRS is a TSV file (image path <TAB> caption, paths "
            "relative to the file) or an unzipped Unsplash Lite folder, whose conversions "
            "(search query -> downloaded photo), user keywords and AI captions are the "
            "judgments; --images is where 'zsv download' put its photos."
        ),
    )
    retrieval.add_argument("--data", required=True, metavar="PAIRS", help="TSV or Unsplash folder")
    retrieval.add_argument(
        "--images", metavar="DIR", help="Unsplash only: the downloaded photos (<photo_id>.jpg)"
    )
    _add_common(retrieval)
    retrieval.set_defaults(handler=run_eval_retrieval)


def _models(args: argparse.Namespace) -> list[str]:
    return list(dict.fromkeys(args.model or [default_model()]))


def _each_model(args: argparse.Namespace, evaluate: Callable[[Encoder], T]) -> list[T]:
    """Load each model in turn, evaluate, and let it go before the next one loads."""
    from zeroshot_vision.encoder import Encoder

    results = []
    routes = list(dict.fromkeys(getattr(args, "route", None) or ["torch"]))
    for name in _models(args):
        for route in routes:
            backend, _, precision = route.partition("/")
            encoder = Encoder.from_pretrained(
                name,
                device=args.device,
                dtype=args.dtype,
                progress=interactive(),
                backend=backend,
                precision=precision or None,
            )
            result = evaluate(encoder)
            if len(routes) > 1:  # one column per route of the same model
                label = f"{name}+{encoder.route.backend}-{encoder.route.precision}"
                result = dataclasses.replace(result, model=label)  # type: ignore[type-var]
            results.append(result)
            encoder.close()
            del encoder
    return results


def _report_skips(skipped: Sequence[Skipped]) -> None:
    shown = 10
    for skip in skipped[:shown]:
        say(f"zsv: skipped {skip.source}: {skip.reason}", sys.stderr)
    if len(skipped) > shown:
        say(f"zsv: ... and {len(skipped) - shown} more skipped", sys.stderr)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]


def run_eval_classify(args: argparse.Namespace) -> int:
    """``zsv eval classify``: accuracy table, JSON, and a report folder."""
    from zeroshot_vision.eval.datasets import read_image_folder
    from zeroshot_vision.eval.report import (
        classification_json,
        model_slugs,
        threshold_summary,
        write_classification_report,
    )
    from zeroshot_vision.eval.run import DEFAULT_TEMPLATES, evaluate_classification

    dataset = read_image_folder(args.data)
    templates = tuple(args.template or DEFAULT_TEMPLATES)
    results = _each_model(
        args,
        lambda encoder: evaluate_classification(
            encoder,
            dataset,
            templates=templates,
            target_precision=args.precision,
            batch_size=args.batch_size,
        ),
    )
    _report_skips(results[0].skipped)
    if args.out:
        write_classification_report(results, args.out, dataset=str(args.data))
    if args.json:
        print_json(classification_json(results))
        return EXIT_OK
    rows = [["", *model_slugs([r.model for r in results])]]
    rows.append(["top-1", *(f"{100 * r.top1:.1f}%" for r in results)])
    rows.append(["top-5", *(f"{100 * r.top5:.1f}%" for r in results)])
    rows.append(["n", *(str(r.n) for r in results)])
    rows.append(
        [f"min_probability for precision {args.precision:g}", *map(threshold_summary, results)]
    )
    for line in _table(rows):
        say(line)
    for slug, result in zip(rows[0][1:], results):
        if result.confused:
            worst = result.confused[0]
            say(
                f"most confused ({slug}): {worst.truth} -> {worst.predicted} "
                f"({worst.count} images, {100 * worst.share:.0f}% of the class)"
            )
    if args.out:
        say(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


def run_eval_retrieval(args: argparse.Namespace) -> int:
    """``zsv eval retrieval``: Recall@K and MRR table, JSON, and a report folder."""
    from zeroshot_vision.eval.datasets import read_pairs
    from zeroshot_vision.eval.report import model_slugs, retrieval_json, write_retrieval_report
    from zeroshot_vision.eval.run import RETRIEVAL_KS, evaluate_retrieval

    dataset = read_pairs(args.data, args.images)
    results = _each_model(
        args, lambda encoder: evaluate_retrieval(encoder, dataset, batch_size=args.batch_size)
    )
    _report_skips(results[0].skipped)
    if args.out:
        write_retrieval_report(results, args.out, dataset=str(args.data))
    if args.json:
        print_json(retrieval_json(results))
        return EXIT_OK
    rows = [["", *model_slugs([r.model for r in results])]]
    for i, k in enumerate(RETRIEVAL_KS):
        rows.append([f"Recall@{k}", *(f"{100 * r.overall.recall[i]:.1f}%" for r in results)])
    rows.append(["MRR", *(f"{r.overall.mrr:.4f}" for r in results)])
    rows.append(["queries", *(str(r.n) for r in results)])
    rows.append(["images", *(str(r.n_images) for r in results)])
    for line in _table(rows):
        say(line)
    if args.out:
        say(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK
