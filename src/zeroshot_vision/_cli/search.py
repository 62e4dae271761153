"""``zsv search``: words, images or both against an index; ``--filter`` and the table."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import (
    add_backend_options,
    add_index_option,
    add_model_options,
    positive_int_arg,
    probability_arg,
    weight_arg,
)
from zeroshot_vision._cli.output import columns, interactive, one_line, pad, say
from zeroshot_vision._cli.remote import (
    add_server_option,
    client_for,
    index_reference,
    read_image_file,
)
from zeroshot_vision._constants import MAX_FILTER_DEPTH
from zeroshot_vision._errors import InvalidFilterError, InvalidInputError
from zeroshot_vision._text import printable, printable_json

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._query import Query
    from zeroshot_vision._types import SearchResult

__all__ = [
    "MAX_FILTER_BYTES",
    "add_photo_options",
    "add_search_command",
    "check_search_args",
    "missing_fields_hint",
    "negatives",
    "parse_filter",
    "print_results",
    "result_paths",
    "results_table",
    "run_search",
    "search_filter",
    "search_query",
]


def add_search_command(commands: Subcommands) -> None:
    """Register ``zsv search``."""
    parser = commands.add_parser(
        "search",
        help="search an index with words, images, or both",
        description=(
            "Find the images in INDEX_DIR that best match QUERY (words), --image (a "
            "reference image), or both combined; --not steers away from words."
        ),
    )
    parser.add_argument(
        "query", nargs="?", metavar="QUERY", help='what to look for, e.g. "a red bicycle"'
    )
    add_index_option(parser)
    parser.add_argument(
        "--image",
        action="append",
        metavar="PATH",
        help="look for images like this one (repeatable; alone, or combined with QUERY)",
    )
    parser.add_argument(
        "--image-weight",
        type=weight_arg,
        metavar="W",
        help="weight of each --image against QUERY's 1 (default 0.5 with QUERY, else 1)",
    )
    parser.add_argument(
        "--not",
        dest="negatives",
        action="append",
        metavar="TEXT",
        help="steer away from this description (repeatable)",
    )
    parser.add_argument(
        "--negative", metavar="TEXT", help="the same as --not (kept for existing scripts)"
    )
    parser.add_argument(
        "-k", type=positive_int_arg, default=10, metavar="N", help="how many results (default 10)"
    )
    parser.add_argument(
        "--filter",
        metavar="JSON",
        help='metadata filter, e.g. \'{"country": "Iceland", "year": {"$gte": 2020}}\'',
    )
    parser.add_argument(
        "--min-probability", type=probability_arg, metavar="P", help="drop weaker hits"
    )
    parser.add_argument(
        "--mode",
        choices=("hybrid", "vector", "text"),
        help="hybrid: what photos look like and the words in them, their places and "
        "captions, fused; vector: looks only; text: words only (default: hybrid where "
        "the index has a text side)",
    )
    parser.add_argument(
        "--text-weight",
        type=weight_arg,
        default=1.0,
        metavar="W",
        help="hybrid: weight of the words' ranking against the looks' 1 (default 1)",
    )
    parser.add_argument(
        "--group-by",
        choices=("file",),
        help="file: one result per file, a video's best moment with its other moments "
        "folded in (-k then counts files)",
    )
    add_model_options(parser, model_help="a local copy of the index's model to load instead")
    add_backend_options(parser)
    add_server_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_photo_options(parser)
    parser.set_defaults(handler=run_search)


def add_photo_options(parser: argparse.ArgumentParser) -> None:
    """``--since --until --under --sort`` (photo fields of folder indexes) and ``--format``."""
    from zeroshot_vision._photos import SORT_KEYS

    photos = parser.add_argument_group("photo libraries (folder indexes)")
    photos.add_argument(
        "--since",
        metavar="DATE",
        help="taken on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD; from its midnight UTC)",
    )
    photos.add_argument(
        "--until",
        metavar="DATE",
        help="taken on or before DATE (the whole day, month or year, to midnight UTC)",
    )
    photos.add_argument(
        "--under",
        action="append",
        metavar="FOLDER",
        help="only photos under FOLDER, at any depth (repeatable: any of them)",
    )
    photos.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="score",
        help="order of the k best matches: score (default) or taken (oldest first)",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "paths"),
        help="table (default), json (as --json), or paths: one file path per line",
    )
    parser.add_argument(
        "--preview",
        action="store_true",
        help="show thumbnails in terminals that can (kitty, iTerm2, sixel); text elsewhere",
    )


def search_filter(args: argparse.Namespace, *, validate: bool = True) -> dict[str, Any] | None:
    """``--filter`` and the photo options, combined with *and* (see :func:`parse_filter`)."""
    from zeroshot_vision._photos import combine_filters, photo_filter

    sugar = photo_filter(since=args.since, until=args.until, under=args.under or ())
    return combine_filters(parse_filter(args.filter, validate=validate), sugar)


def missing_fields_hint(engine: Any, query_filter: dict[str, Any] | None) -> str | None:
    """A hint for a filter that found nothing because no record has a field it names."""
    from zeroshot_vision._photos import filter_fields, record_fields

    wanted = filter_fields(query_filter)
    if not wanted:
        return None
    present = record_fields(engine.store)
    missing = sorted(wanted - present)
    if not missing or not present:
        return None
    names = ", ".join(repr(name) for name in missing)
    have = ", ".join(sorted(present))
    return f"zsv: hint: no record in this index has the field {names}; its records have: {have}"


def check_search_args(args: argparse.Namespace) -> None:
    """Refuse a ``zsv search`` that asks for nothing, or for words that name an image file.

    Cheap (no image library is imported unless QUERY names an existing file), so the
    ``--server`` path checks exactly what the local path checks.
    """
    images = args.image or []
    text = args.query
    if text is not None and not text.strip():
        raise InvalidInputError("the query is empty; type some words to search for")
    if text is None and not images:
        raise InvalidInputError('give words to look for (zsv search "a red bicycle") or --image')
    if text is not None and not images and Path(text).is_file():
        from zeroshot_vision._images import IMAGE_SUFFIXES

        if Path(text).suffix.lower() in IMAGE_SUFFIXES:
            # Searching for the words "photos/chelsea.png" is never what was meant.
            raise InvalidInputError(
                f"{text} is an image file; to find images like it, use --image {text}"
            )
    for image in images:
        if not Path(image).is_file():
            raise InvalidInputError(f"--image {image}: no such file")


def search_query(args: argparse.Namespace) -> Query:
    """The query ``zsv search`` was asked for, or an error saying what is wrong."""
    from zeroshot_vision._query import compose

    check_search_args(args)
    return compose(args.query, args.image or [], negatives(args), image_weight=args.image_weight)


def negatives(args: argparse.Namespace) -> list[str]:
    """The ``--not`` texts (and the older ``--negative``), in order."""
    return [*(args.negatives or []), *([args.negative] if args.negative else [])]


MAX_FILTER_BYTES = 1 << 20
"""The longest ``--filter`` accepted: room for ``$in`` lists of thousands of values."""


def parse_filter(text: str | None, *, validate: bool = True) -> dict[str, Any] | None:
    """Parse a ``--filter`` argument (a JSON object), or raise :class:`InvalidFilterError`.

    ``validate=False`` leaves the filter language to whoever runs the search (a server,
    which answers with the same error).
    """
    if text is None:
        return None
    from zeroshot_vision._json import loads_bounded
    from zeroshot_vision._text import short_repr

    # Each level of $and/$or is a list and an object: twice the filter's own depth limit
    # (plus the field level) lets that limit speak first, with its more telling message.
    value = loads_bounded(
        text,
        max_depth=2 * MAX_FILTER_DEPTH + 4,
        max_bytes=MAX_FILTER_BYTES,
        what="--filter",
        error=InvalidFilterError,
    )
    if not isinstance(value, dict):
        raise InvalidFilterError(f"--filter must be a JSON object, got {short_repr(text)}")
    if validate:
        from zeroshot_vision.stores._filters import validate_filter

        validate_filter(value)
    return value


def results_table(results: Sequence[SearchResult]) -> list[str]:
    """The lines of the results table, each cut to the terminal's width."""
    from zeroshot_vision._results import describe

    width = shutil.get_terminal_size((120, 24)).columns
    id_width = max([2, *(columns(" ".join(r.id.split())) for r in results)])
    id_width = min(id_width, 40)
    header = f"{'rank':>4}  {pad('id', id_width)}  {'score':>7}  {'prob':>6}  path/description"
    lines = [header]
    for rank, result in enumerate(results, start=1):
        probability = "-" if result.probability is None else f"{result.probability:.4f}"
        left = (
            f"{rank:>4}  {pad(one_line(result.id, id_width), id_width)}  "
            f"{result.score:>7.4f}  {probability:>6}  "
        )
        room = max(width - columns(left), 20)
        lines.append(left + one_line(describe(result.metadata), room))
        if result.snippet:
            lead = " " * (columns(left) - 6) + "text: "
            lines.append(lead + one_line(result.snippet, max(width - columns(lead), 20)))
    return lines


def run_search(args: argparse.Namespace) -> int:
    """``zsv search``: print the best matches (found here, or by ``--server``)."""
    client = client_for(args)
    if client is not None:
        query_filter = search_filter(args, validate=False)
        check_search_args(args)
        with client:
            found = client.search(
                index=index_reference(args.index),
                query=args.query,
                images=[read_image_file(image) for image in args.image or []],
                image_weight=args.image_weight,
                negative=negatives(args),
                k=args.k,
                filter=query_filter,
                min_probability=args.min_probability,
                mode=args.mode,
                text_weight=args.text_weight,
                group_by=args.group_by,
            )
        print_results(found, args)
        return EXIT_OK
    from zeroshot_vision._cli.model_choice import check_index_model
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._index import IndexFolder

    query_filter = search_filter(args)
    query = search_query(args)
    model = check_index_model(IndexFolder.open(args.index), args)
    hint = None
    with SearchEngine.open(
        args.index,
        model=model,
        device=args.device,
        dtype=args.dtype,
        progress=interactive(),
        backend=args.backend,
        precision=args.precision,
    ) as engine:
        results = engine.search(
            query,
            k=args.k,
            filter=query_filter,
            min_probability=args.min_probability,
            mode=args.mode,
            text_weight=args.text_weight,
            group_by=args.group_by,
        )
        if not results and query_filter:
            hint = missing_fields_hint(engine, query_filter)
    if hint:
        say(hint, sys.stderr)
    print_results(results, args)
    return EXIT_OK


def print_results(results: Sequence[SearchResult], args: argparse.Namespace) -> None:
    """Print search results as ``zsv search`` does: sorted by ``--sort``, then a table,
    ``--json``, ``--format paths`` or ``--preview`` thumbnails."""
    from zeroshot_vision._photos import sort_results
    from zeroshot_vision._results import SearchResults

    for warning in getattr(results, "warnings", ()):
        say(f"zsv: warning: {printable(warning)}", sys.stderr)
    results = SearchResults(sort_results(results, args.sort), query=getattr(results, "query", None))
    output = "json" if args.json else (args.format or "table")
    if output == "json":
        print(printable_json(results.to_json(indent=2)))
    elif output == "paths":
        for path in result_paths(results):
            say(path)
    elif not results:
        say("no results")
    elif args.preview:
        from zeroshot_vision._cli.preview import print_previews

        print_previews(results, results_table(results))
    else:
        for line in results_table(results):
            say(line)


def result_paths(results: Sequence[SearchResult]) -> list[str]:
    """The file path of each result that has one (``--format paths``)."""
    return [
        str(result.metadata["path"])
        for result in results
        if isinstance(result.metadata.get("path"), str)
    ]
