"""``zsv classify`` (labels for a few images) and ``zsv tag`` (likely labels for many)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK, EXIT_PARTIAL
from zeroshot_vision._cli.options import (
    add_backend_options,
    add_model_options,
    positive_int_arg,
    probability_arg,
)
from zeroshot_vision._cli.output import columns, interactive, one_line, pad, print_json, say
from zeroshot_vision._cli.remote import (
    add_server_option,
    client_for,
    index_reference,
    read_image_file,
)
from zeroshot_vision._errors import ImageLoadError, InvalidInputError
from zeroshot_vision._text import printable

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._types import ClassifyReport, ImageLabels
    from zeroshot_vision.server._client import ServerClient

__all__ = [
    "REMOTE_BATCH",
    "TAG_MIN_PROBABILITY",
    "add_classify_command",
    "add_tag_command",
    "classify_remotely",
    "run_classify",
    "run_tag",
]

TAG_MIN_PROBABILITY = 0.1
"""``zsv tag``'s default threshold, the same as ``examples/tag_folder.py``'s."""


def add_classify_command(commands: Subcommands) -> None:
    """Register ``zsv classify``."""
    parser = commands.add_parser(
        "classify",
        help="score text labels against images",
        description="Zero-shot classification: how well each label describes each IMAGE.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LIST",
        help='comma-separated labels, e.g. "a dog,a cat,a car"',
    )
    add_model_options(
        parser,
        model_help="checkpoint name or folder (default $ZSV_MODEL or "
        "google/siglip-so400m-patch14-384)",
    )
    add_backend_options(parser)
    parser.add_argument(
        "--softmax",
        action="store_true",
        default=None,
        help="shares that sum to 1 (pick exactly one label); the default for CLIP models",
    )
    add_server_option(parser)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    """``zsv classify``: labels with probabilities, most likely first, for each image."""
    from zeroshot_vision._checks import clean_labels

    labels = clean_labels(args.labels)
    if len(args.images) == 1 and not Path(args.images[0]).is_file():
        raise InvalidInputError(f"{args.images[0]} is not a file")
    client = client_for(args)
    if client is not None:
        _no_route_with_server(args)
        with client:
            report = classify_remotely(client, args.images, labels, softmax=args.softmax)
    else:
        encoder = _local_encoder(args)
        report = encoder.classify_many(args.images, labels, softmax=args.softmax)
    if len(args.images) == 1 and report.failed:
        raise ImageLoadError(report.failed[0].source, report.failed[0].reason)
    for failure in report.failed:
        say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    if args.json:
        rows = [
            [{"label": s.label, "probability": s.probability, "score": s.score} for s in r.labels]
            for r in report.results
        ]
        if len(args.images) == 1:
            print_json(rows[0])
        else:
            print_json([{"image": r.source, "labels": row} for r, row in zip(report.results, rows)])
        return EXIT_PARTIAL if report.failed else EXIT_OK
    width = max(len("label"), *(columns(label) for label in labels))
    for n, result in enumerate(report.results):
        if len(args.images) > 1:
            if n > 0:
                say("")  # a blank line between images (say escapes an embedded newline)
            say(one_line(result.source, 200))
        say(f"{pad('label', width)}  {'prob':>6}  {'score':>7}")
        for s in result.labels:
            say(f"{pad(s.label, width)}  {s.probability:>6.4f}  {s.score:>7.4f}")
    return EXIT_PARTIAL if report.failed else EXIT_OK


def add_tag_command(commands: Subcommands) -> None:
    """Register ``zsv tag``."""
    parser = commands.add_parser(
        "tag",
        help="tag every image of a folder or an index with its likely labels",
        description=(
            "Score --labels against every image under SOURCE (a folder of images, or an "
            "index folder, whose stored vectors are used: nothing is re-encoded) and "
            "print one row per image with the labels at or above --min-probability: "
            "zero, one or several, as each label's probability is independent."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="folder of images, or an index folder")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LIST",
        help='comma-separated labels, e.g. "a dog,a cat,a beach"',
    )
    parser.add_argument(
        "--min-probability",
        type=probability_arg,
        default=TAG_MIN_PROBABILITY,
        metavar="P",
        help=f"keep labels at least this likely (default {TAG_MIN_PROBABILITY})",
    )
    parser.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default csv)"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="folders only: leave out files or folders matching GLOB (repeatable)",
    )
    parser.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="images per batch")
    add_model_options(
        parser,
        model_help="checkpoint (default: the index's; for a folder $ZSV_MODEL or "
        "google/siglip-so400m-patch14-384)",
    )
    add_backend_options(parser)
    add_server_option(parser)
    parser.set_defaults(handler=run_tag)


def run_tag(args: argparse.Namespace) -> int:
    """``zsv tag``: one CSV or JSON row per image with its likely labels."""
    import csv

    from zeroshot_vision._checks import clean_labels
    from zeroshot_vision._index import IndexFolder

    labels = clean_labels(args.labels)
    source = Path(args.source).expanduser()
    show_bar = interactive()
    client = client_for(args)
    if client is not None:
        _no_route_with_server(args)
        with client:
            report = _tag_remotely(client, args, source, labels)
    elif IndexFolder.exists(source):
        from zeroshot_vision._engine import SearchEngine

        if args.exclude:
            raise InvalidInputError("--exclude applies to folders of images, not to an index")
        from zeroshot_vision._cli.model_choice import check_index_model

        model = check_index_model(IndexFolder.open(source), args)
        with SearchEngine.open(
            source,
            model=model,
            device=args.device,
            dtype=args.dtype,
            progress=interactive(),
            backend=args.backend,  # None: the route the index recorded
            precision=args.precision,
        ) as engine:
            report = engine.classify_indexed(labels, progress=show_bar)
    elif source.is_dir():
        from zeroshot_vision.ingest._sources import folder_source

        scan = folder_source(source, exclude=args.exclude).scan()
        encoder = _local_encoder(args)
        report = encoder.classify_many(
            [image.pixels() for image in scan.images],
            labels,
            batch_size=args.batch_size,
            progress=show_bar,
        )
    else:
        raise InvalidInputError(f"{args.source} is neither a folder of images nor an index")
    for failure in report.failed:
        say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    rows = [(result, result.likely(args.min_probability)) for result in report.results]
    if args.format == "json":
        print_json(
            [
                {
                    "image": result.source,
                    "labels": [{"label": s.label, "probability": s.probability} for s in likely],
                }
                for result, likely in rows
            ]
        )
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["image", "labels", "probabilities"])
        for result, likely in rows:
            writer.writerow(_tag_row(result, likely))
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _no_route_with_server(args: argparse.Namespace) -> None:
    """``--backend``/``--precision`` choose a local model's route; a server runs its own."""
    if args.backend is not None or args.precision is not None:
        raise InvalidInputError(
            "--backend and --precision choose how a local model runs; with --server the "
            "server's own route is used (drop them, or drop --server)"
        )


REMOTE_BATCH = 32
"""Images per ``/v1/classify`` request when a command hands its images to a server."""


def classify_remotely(
    client: ServerClient,
    images: Sequence[Any],
    labels: list[str],
    *,
    softmax: bool | None = None,
    batch_size: int | None = None,
) -> ClassifyReport:
    """``Encoder.classify_many``'s report, computed by a server from the files' bytes.

    Files are read here, a batch at a time, and sent to ``POST /v1/classify``; a file
    that cannot be read, or that the server cannot decode, is listed in ``failed``.
    """
    from zeroshot_vision._checks import batched
    from zeroshot_vision._images import describe_source
    from zeroshot_vision._types import ClassifyReport, ImageFailure, ImageLabels

    results: list[ImageLabels] = []
    failed: list[ImageFailure] = []
    for chunk in batched(images, batch_size or REMOTE_BATCH):
        readable: list[tuple[str, bytes]] = []
        for image in chunk:
            try:
                readable.append((describe_source(image), read_image_file(image)))
            except OSError as exc:
                failed.append(
                    ImageFailure(source=describe_source(image), reason=exc.strerror or str(exc))
                )
            except InvalidInputError as exc:  # a device, a FIFO, a giant file
                failed.append(ImageFailure(source=describe_source(image), reason=str(exc)))
        if not readable:
            continue
        answers = client.classify([data for _, data in readable], labels, softmax=softmax)
        for (name, _), answer in zip(readable, answers):
            if isinstance(answer, str):
                failed.append(ImageFailure(source=name, reason=answer))
            else:
                results.append(ImageLabels(source=name, labels=answer))
    return ClassifyReport(results=tuple(results), failed=tuple(failed))


def _tag_remotely(
    client: ServerClient, args: argparse.Namespace, source: Path, labels: list[str]
) -> ClassifyReport:
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision._types import ClassifyReport

    if IndexFolder.exists(source):
        if args.exclude:
            raise InvalidInputError("--exclude applies to folders of images, not to an index")
        tagged = client.tag(index=index_reference(str(source)), labels=labels)
        return ClassifyReport(results=tuple(tagged))
    if not source.is_dir():
        raise InvalidInputError(f"{args.source} is neither a folder of images nor an index")
    from zeroshot_vision.ingest._sources import folder_source

    scan = folder_source(source, exclude=args.exclude).scan()
    return classify_remotely(
        client, [image.pixels() for image in scan.images], labels, batch_size=args.batch_size
    )


def _tag_row(result: ImageLabels, likely: Sequence[Any]) -> list[str]:
    # Control characters in a file name must not reach the terminal raw (see output.say).
    return [
        printable(result.source),
        ";".join(printable(s.label) for s in likely),
        ";".join(f"{s.probability:.4f}" for s in likely),
    ]


def _local_encoder(args: argparse.Namespace) -> Any:
    """The encoder that --model, --device, --dtype, --backend and --precision ask for."""
    from zeroshot_vision._encoder import Encoder

    return Encoder.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        progress=interactive(),
        backend=args.backend or "torch",
        precision=args.precision,
    )
