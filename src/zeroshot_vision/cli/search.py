"""``zsv search``: words, images or both against an index; ``--filter`` and the table."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._text import printable_json
from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import (
    add_index_option,
    add_model_options,
    positive_int_arg,
    probability_arg,
    weight_arg,
)
from zeroshot_vision.cli.output import columns, interactive, one_line, pad, say
from zeroshot_vision.cli.remote import add_server_option, client_for, index_reference
from zeroshot_vision.errors import InvalidFilterError, InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands
    from zeroshot_vision.query import Query
    from zeroshot_vision.types import SearchResult

__all__ = [
    "IMAGE_WEIGHT",
    "NEGATIVE_WEIGHT",
    "add_search_command",
    "check_search_args",
    "negatives",
    "parse_filter",
    "print_results",
    "results_table",
    "run_search",
    "search_query",
]

NEGATIVE_WEIGHT = 0.5
"""Weight of each ``--not`` part, as ``SearchEngine.search``'s ``negative_weight``."""

IMAGE_WEIGHT = 0.5
"""Weight of each ``--image`` next to words: image-to-image cosines are far larger than
text-to-image ones, so an image of weight 1 would drown the words (see ``query``)."""


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
    add_model_options(parser, model_help="use this checkpoint instead of the index's")
    add_server_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_search)


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
        from zeroshot_vision.images import IMAGE_SUFFIXES

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
    from zeroshot_vision.query import Query

    check_search_args(args)
    text = args.query
    parts = []
    if text is not None:
        parts.append(Query.text(text))
    weight = args.image_weight or (IMAGE_WEIGHT if text is not None else 1.0)
    for image in args.image or []:
        parts.append(Query.image(image, weight=weight))
    query = parts[0]
    for part in parts[1:]:
        query = query + part
    for negative in negatives(args):
        query = query - Query.text(negative, weight=NEGATIVE_WEIGHT)
    return query


def negatives(args: argparse.Namespace) -> list[str]:
    """The ``--not`` texts (and the older ``--negative``), in order."""
    return [*(args.negatives or []), *([args.negative] if args.negative else [])]


def parse_filter(text: str | None, *, validate: bool = True) -> dict[str, Any] | None:
    """Parse a ``--filter`` argument (a JSON object), or raise :class:`InvalidFilterError`.

    ``validate=False`` leaves the filter language to whoever runs the search (a server,
    which answers with the same error).
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"--filter is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidFilterError(f"--filter must be a JSON object, got {text}")
    if validate:
        from zeroshot_vision.stores.filters import validate_filter

        validate_filter(value)
    return value


def results_table(results: Sequence[SearchResult]) -> list[str]:
    """The lines of the results table, each cut to the terminal's width."""
    from zeroshot_vision.results import describe

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
    return lines


def run_search(args: argparse.Namespace) -> int:
    """``zsv search``: print the best matches (found here, or by ``--server``)."""
    client = client_for(args)
    if client is not None:
        query_filter = parse_filter(args.filter, validate=False)
        check_search_args(args)
        with client:
            found = client.search(
                index=index_reference(args.index),
                query=args.query,
                images=[Path(image).read_bytes() for image in args.image or []],
                image_weight=args.image_weight,
                negative=negatives(args),
                k=args.k,
                filter=query_filter,
                min_probability=args.min_probability,
            )
        print_results(found, as_json=args.json)
        return EXIT_OK
    from zeroshot_vision.engine import SearchEngine

    query_filter = parse_filter(args.filter)
    query = search_query(args)
    with SearchEngine.open(
        args.index, model=args.model, device=args.device, dtype=args.dtype, progress=interactive()
    ) as engine:
        results = engine.search(
            query, k=args.k, filter=query_filter, min_probability=args.min_probability
        )
    print_results(results, as_json=args.json)
    return EXIT_OK


def print_results(results: Sequence[SearchResult], *, as_json: bool) -> None:
    """Print search results as ``zsv search`` does: a table, or ``--json``."""
    from zeroshot_vision.results import SearchResults

    if as_json:
        print(printable_json(SearchResults(results).to_json(indent=2)))
    elif not results:
        say("no results")
    else:
        for line in results_table(results):
            say(line)
