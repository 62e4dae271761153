"""``zsv eval``: the evaluation subcommands (``classify`` and ``retrieval``).

A thin layer: parse, call :mod:`zeroshot_vision.eval` (a library package that knows
nothing of the command line), print a side-by-side table (or ``--json``) and write a
report folder with ``--out``. Library errors become one-line messages in
:func:`zeroshot_vision._cli.parser.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import (
    add_device_options,
    positive_int_arg,
    precision_arg,
    template_arg,
)
from zeroshot_vision._cli.output import interactive, print_json, say
from zeroshot_vision._models import default_model

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision.eval._labelled_data import Skipped

__all__ = [
    "add_eval_command",
    "run_eval_ask",
    "run_eval_classify",
    "run_eval_hybrid",
    "run_eval_retrieval",
]

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
            "relative to the file), an unzipped Unsplash Lite folder, whose conversions "
            "(search query -> downloaded photo), user keywords and AI captions are the "
            "judgments (--images is where 'zsv download' put its photos), or multilingual "
            "captions scored per language: a Crossmodal-3600 folder (captions.jsonl and "
            "images/) or a .jsonl file of {image, language, caption} lines."
        ),
    )
    retrieval.add_argument(
        "--data", required=True, metavar="PAIRS", help="TSV, Unsplash, XM3600 or JSONL"
    )
    retrieval.add_argument(
        "--images", metavar="DIR", help="Unsplash only: the downloaded photos (<photo_id>.jpg)"
    )
    _add_common(retrieval)
    retrieval.set_defaults(handler=run_eval_retrieval)
    hybrid = kinds.add_parser(
        "hybrid",
        help="an index's vector, text and hybrid search: Recall@1/5/10 and MRR",
        description=(
            "Ask an index every query of PAIRS (a TSV file: image path <TAB> query, paths "
            "relative to the file) in each search mode, and score where the image ranks."
        ),
    )
    hybrid.add_argument("--data", required=True, metavar="PAIRS", help="the TSV file")
    hybrid.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    hybrid.add_argument("--json", action="store_true", help="print the results as JSON")
    hybrid.set_defaults(handler=run_eval_hybrid)
    _add_ask(kinds)


def run_eval_hybrid(args: argparse.Namespace) -> int:
    """``zsv eval hybrid``: :func:`zeroshot_vision.eval._hybrid.evaluate_hybrid`."""
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.eval._hybrid import evaluate_hybrid
    from zeroshot_vision.eval._labelled_data import read_pairs_tsv

    dataset = read_pairs_tsv(args.data)
    with SearchEngine.open(args.index, progress=interactive()) as engine:
        lexical = engine.text_index is not None
        result = evaluate_hybrid(
            engine, dataset, modes=("vector", "text", "hybrid") if lexical else ("vector",)
        )
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    say(f"{result.name}: {result.queries} queries ({len(result.not_indexed)} not indexed)")
    say(f"{'mode':<8}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'MRR':>8}{'ms/query':>10}")
    for scores in result.modes:
        recall = [scores.recall.get(cut, float("nan")) for cut in (1, 5, 10)]
        say(
            f"{scores.mode:<8}" + "".join(f"{value:>8.3f}" for value in recall)
            + f"{scores.mrr:>8.3f}{scores.ms_per_query:>10.1f}"
        )  # fmt: skip
    return EXIT_OK


def _add_ask(kinds: Any) -> None:
    ask = kinds.add_parser(
        "ask",
        help="ask's retrieval recall@k and citation precision, per VLM and prompt",
        description=(
            'Ask each question of CASES (JSONL: {"question": ..., "ids": [...]} per '
            "line, the ids of the photos that answer it) of INDEX_DIR and report retrieval "
            "recall@k, citation recall and citation precision. Repeat --llm-model or "
            "--prompt-file to compare models and prompts side by side on the same questions."
        ),
    )
    ask.add_argument("--data", required=True, metavar="CASES", help="the JSONL file of cases")
    ask.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    ask.add_argument("--llm-url", metavar="URL", help="the endpoint (or OPENAI_BASE_URL)")
    ask.add_argument(
        "--llm-model", action="append", metavar="NAME", help="a model; repeat to compare"
    )
    ask.add_argument(
        "--prompt-file", action="append", metavar="FILE", help="a prompt template; repeatable"
    )
    ask.add_argument("-k", type=positive_int_arg, default=4, metavar="N", help="photos (default 4)")
    ask.add_argument(
        "--max-tokens", type=positive_int_arg, default=512, metavar="N", help="longest answer"
    )
    ask.add_argument("--json", action="store_true", help="print the results as JSON")
    ask.add_argument("--model", metavar="M", help="a local copy of the index's model")
    add_device_options(ask)
    ask.set_defaults(handler=run_eval_ask)


def _models(args: argparse.Namespace) -> list[str]:
    return list(dict.fromkeys(args.model or [default_model()]))


def _each_model(args: argparse.Namespace, evaluate: Callable[[Encoder], T]) -> list[T]:
    """Load each model in turn, evaluate, and let it go before the next one loads."""
    from zeroshot_vision._encoder import Encoder

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
    from zeroshot_vision.eval._labelled_data import read_image_folder
    from zeroshot_vision.eval._report import (
        classification_json,
        model_slugs,
        threshold_summary,
        write_classification_report,
    )
    from zeroshot_vision.eval._run import DEFAULT_TEMPLATES, evaluate_classification

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
    from zeroshot_vision.eval._labelled_data import read_pairs
    from zeroshot_vision.eval._report import model_slugs, retrieval_json, write_retrieval_report
    from zeroshot_vision.eval._run import RETRIEVAL_KS, evaluate_retrieval

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
    if results[0].grouped_by == "language" and results[0].by_source:
        from zeroshot_vision.eval._report import group_table

        header, group_rows = group_table(results)
        say("")
        for line in _table([header, *group_rows]):
            say(line)
    if args.out:
        say(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


def run_eval_ask(args: argparse.Namespace) -> int:
    """``zsv eval ask``: one column per model and prompt."""
    from zeroshot_vision._ask import check_prompt
    from zeroshot_vision._cli.model_choice import check_index_model
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision._llm import LLMEndpoint
    from zeroshot_vision.eval._ask import evaluate_ask, read_ask_cases, results_json

    cases = read_ask_cases(args.data)
    prompts: list[tuple[str | None, str | None]] = [
        (name, check_prompt(Path(name).read_text(encoding="utf-8")))
        for name in args.prompt_file or []
    ] or [(None, None)]
    model = check_index_model(IndexFolder.open(args.index), args)
    results = []
    labels = []
    with SearchEngine.open(
        args.index, model=model, device=args.device, dtype=args.dtype, progress=interactive()
    ) as engine:
        for llm_model in args.llm_model or [None]:
            with LLMEndpoint(args.llm_url, llm_model, max_tokens=args.max_tokens) as llm:
                for name, prompt in prompts:
                    results.append(evaluate_ask(engine, cases, llm=llm, k=args.k, prompt=prompt))
                    labels.append(llm.resolved_model() + (f" + {Path(name).name}" if name else ""))
    if args.json:
        print_json(results_json(results))
        return EXIT_OK

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    rows = [["", *labels]]
    rows.append([f"retrieval recall@{args.k}", *(share(r.retrieval_recall) for r in results)])
    rows.append(["citation recall", *(share(r.citation_recall) for r in results)])
    rows.append(["citation precision", *(share(r.citation_precision) for r in results)])
    rows.append(["uncited answers", *(str(r.uncited) for r in results)])
    rows.append(["invalid citations", *(str(r.invalid_citations) for r in results)])
    rows.append(["seconds per question", *(f"{r.seconds:.2f}" for r in results)])
    rows.append(["questions", *(str(r.n) for r in results)])
    for line in _table(rows):
        say(line)
    return EXIT_OK
