"""``zsv duplicates``: near-duplicate groups from an index's stored vectors."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import add_index_option, threshold_arg
from zeroshot_vision.cli.output import interactive, one_line, print_json, say

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands

__all__ = ["THRESHOLD_TEXT", "add_duplicates_command", "run_duplicates"]

THRESHOLD_TEXT = "0.99"
"""``DEFAULT_DUPLICATE_THRESHOLD`` as the help shows it."""


def add_duplicates_command(commands: Subcommands) -> None:
    """Register ``zsv duplicates``."""
    parser = commands.add_parser(
        "duplicates",
        help="find near-duplicate images in an index",
        description=(
            "Group the images of INDEX_DIR whose stored vectors have a cosine of "
            "--threshold or more (resized, re-compressed or slightly cropped copies). "
            "Nothing is re-encoded and no model is loaded."
        ),
    )
    add_index_option(parser)
    parser.add_argument(
        "--threshold",
        type=threshold_arg,
        metavar="T",
        # The number is DEFAULT_DUPLICATE_THRESHOLD's (a test keeps them equal), written
        # out: importing zeroshot_vision.duplicates (numpy, the stores) to build the
        # parser would slow every zsv command down, --server ones above all.
        help=f"cosine for a near-duplicate, in (0, 1] (default {THRESHOLD_TEXT})",
    )
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    parser.set_defaults(handler=run_duplicates)


def run_duplicates(args: argparse.Namespace) -> int:
    """``zsv duplicates``: the groups, each with its pairs and their scores."""
    from zeroshot_vision.duplicates import DEFAULT_DUPLICATE_THRESHOLD, find_duplicates
    from zeroshot_vision.index import IndexFolder

    threshold = DEFAULT_DUPLICATE_THRESHOLD if args.threshold is None else args.threshold
    store = IndexFolder.open(args.index).open_store()
    try:
        groups = find_duplicates(
            store, threshold=threshold, progress=interactive() and not args.json
        )
        paths = _paths_of(store, [item for group in groups for item in group.ids])
    finally:
        store.close()
    if args.json:
        print_json(
            [{**group.to_json(), "paths": [paths.get(i) for i in group.ids]} for group in groups]
        )
        return EXIT_OK
    if not groups:
        say(f"no near-duplicates at threshold {args.threshold}")
        return EXIT_OK
    for n, group in enumerate(groups, start=1):
        say(f"group {n}: {len(group.ids)} images")
        for item in group.ids:
            say(f"  {one_line(paths.get(item) or item, 200)}")
        for pair in group.pairs:
            say(f"    {pair.score:.4f}  {one_line(pair.first, 60)}  {one_line(pair.second, 60)}")
    images = sum(len(group.ids) for group in groups)
    plural = "s" if len(groups) != 1 else ""
    say(f"{len(groups)} group{plural}, {images} images (threshold {args.threshold})")
    return EXIT_OK


def _paths_of(store: Any, ids: list[str]) -> dict[str, str]:
    records = store.fetch(ids) if ids else {}
    return {
        item: record.metadata["path"]
        for item, record in records.items()
        if isinstance(record.metadata.get("path"), str)
    }
