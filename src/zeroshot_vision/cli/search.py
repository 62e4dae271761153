"""``zsv search``: words, images or both against an index; ``--filter`` and the table."""

from __future__ import annotations

import argparse
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
from zeroshot_vision.errors import InvalidFilterError, InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands
    from zeroshot_vision.query import Query
    from zeroshot_vision.types import SearchResult

__all__ = [
    "IMAGE_WEIGHT",
    "MAX_FILTER_BYTES",
    "NEGATIVE_WEIGHT",
    "add_search_command",
    "parse_filter",
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
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_search)


def search_query(args: argparse.Namespace) -> Query:
    """The query ``zsv search`` was asked for, or an error saying what is wrong."""
    from zeroshot_vision.images import IMAGE_SUFFIXES
    from zeroshot_vision.query import Query

    images = args.image or []
    text = args.query
    if text is not None and not text.strip():
        raise InvalidInputError("the query is empty; type some words to search for")
    if text is None and not images:
        raise InvalidInputError('give words to look for (zsv search "a red bicycle") or --image')
    if (
        text is not None
        and not images
        and Path(text).suffix.lower() in IMAGE_SUFFIXES
        and Path(text).is_file()
    ):
        # Searching for the words "photos/chelsea.png" is never what was meant.
        raise InvalidInputError(
            f"{text} is an image file; to find images like it, use --image {text}"
        )
    parts = []
    if text is not None:
        parts.append(Query.text(text))
    weight = args.image_weight or (IMAGE_WEIGHT if text is not None else 1.0)
    for image in images:
        if not Path(image).is_file():
            raise InvalidInputError(f"--image {image}: no such file")
        parts.append(Query.image(image, weight=weight))
    query = parts[0]
    for part in parts[1:]:
        query = query + part
    for negative in [*(args.negatives or []), *([args.negative] if args.negative else [])]:
        query = query - Query.text(negative, weight=NEGATIVE_WEIGHT)
    return query


MAX_FILTER_BYTES = 1 << 20
"""The longest ``--filter`` accepted: room for ``$in`` lists of thousands of values."""


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """Parse a ``--filter`` argument (a JSON object), or raise :class:`InvalidFilterError`."""
    from zeroshot_vision._json import loads_bounded
    from zeroshot_vision._text import short_repr
    from zeroshot_vision.stores.filters import MAX_FILTER_DEPTH, validate_filter

    if text is None:
        return None
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
    """``zsv search``: print the best matches."""
    from zeroshot_vision.engine import SearchEngine

    query_filter = parse_filter(args.filter)
    query = search_query(args)
    with SearchEngine.open(
        args.index, model=args.model, device=args.device, dtype=args.dtype, progress=interactive()
    ) as engine:
        results = engine.search(
            query, k=args.k, filter=query_filter, min_probability=args.min_probability
        )
    if args.json:
        print(printable_json(results.to_json(indent=2)))
    elif not results:
        say("no results")
    else:
        for line in results_table(results):
            say(line)
    return EXIT_OK
