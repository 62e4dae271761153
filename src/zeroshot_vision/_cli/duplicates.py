"""``zsv duplicates``: near-duplicate groups from an index's stored vectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK, EXIT_PARTIAL
from zeroshot_vision._cli.options import add_index_option, threshold_arg
from zeroshot_vision._cli.output import interactive, one_line, print_json, say
from zeroshot_vision._constants import DEFAULT_DUPLICATE_THRESHOLD, KEEP_RULES
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = [
    "add_action_options",
    "add_duplicates_command",
    "run_duplicates",
    "run_moves",
    "run_undo",
]


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
        # From _constants, not near_duplicates: importing numpy and the stores to build
        # the parser would slow every zsv command down, --server ones above all.
        help=f"cosine for a near-duplicate, in (0, 1] (default {DEFAULT_DUPLICATE_THRESHOLD:g})",
    )
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    add_action_options(parser)
    parser.set_defaults(handler=run_duplicates)


def add_action_options(parser: argparse.ArgumentParser) -> None:
    """``--keep --move-to --apply --undo``: acting on the groups, safely."""
    actions = parser.add_argument_group("acting on duplicates (files are moved, never deleted)")
    actions.add_argument(
        "--keep",
        choices=KEEP_RULES,
        help="which photo of each group stays: largest (pixels, then bytes), newest or "
        "oldest (date taken, else modification time)",
    )
    actions.add_argument(
        "--move-to", metavar="DIR", help="move the others here (outside the indexed folders)"
    )
    actions.add_argument(
        "--apply",
        action="store_true",
        help="do it (without it, only print what would move); writes a log for --undo",
    )
    actions.add_argument(
        "--undo", metavar="LOG", help="move the files of an --apply run back, from its log"
    )


def run_duplicates(args: argparse.Namespace) -> int:
    """``zsv duplicates``: the groups, each with its pairs and their scores."""
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision._near_duplicates import DEFAULT_DUPLICATE_THRESHOLD, find_duplicates

    if args.undo is not None:
        return run_undo(args)
    if (args.keep is None) != (args.move_to is None):
        raise InvalidInputError("--keep and --move-to go together (and --apply to act)")
    if args.apply and args.keep is None:
        raise InvalidInputError("--apply needs --keep and --move-to")
    if args.keep is not None:
        return run_moves(args)
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
        say(f"no near-duplicates at threshold {threshold}")
        return EXIT_OK
    for n, group in enumerate(groups, start=1):
        say(f"group {n}: {len(group.ids)} images")
        for item in group.ids:
            say(f"  {one_line(paths.get(item) or item, 200)}")
        for pair in group.pairs:
            say(f"    {pair.score:.4f}  {one_line(pair.first, 60)}  {one_line(pair.second, 60)}")
    images = sum(len(group.ids) for group in groups)
    plural = "s" if len(groups) != 1 else ""
    say(f"{len(groups)} group{plural}, {images} images (threshold {threshold})")
    return EXIT_OK


def run_moves(args: argparse.Namespace) -> int:
    """``--keep K --move-to DIR [--apply]``: plan the moves, print them, make them."""
    from zeroshot_vision._duplicate_moves import apply_moves, log_name, plan_moves
    from zeroshot_vision._index import IndexFolder, IndexWriter
    from zeroshot_vision._near_duplicates import DEFAULT_DUPLICATE_THRESHOLD, find_duplicates

    threshold = DEFAULT_DUPLICATE_THRESHOLD if args.threshold is None else args.threshold

    folder = IndexFolder.open(args.index)
    store = folder.open_store()
    try:
        groups = find_duplicates(store, threshold=threshold, progress=False)
        ids = [item for group in groups for item in group.ids]
        metadata = {item: dict(r.metadata) for item, r in (store.fetch(ids) if ids else {}).items()}
        moves = plan_moves(groups, folder, metadata, keep=args.keep, move_to=args.move_to)
        if not args.apply:
            for move in moves:
                say(f"would move {one_line(move.source, 200)} -> {one_line(move.target, 200)}")
            say(f"{len(moves)} files would move (dry run; --apply to move them)")
            return EXIT_OK
        with IndexWriter(store, folder) as writer:
            report = apply_moves(moves, writer, log=Path(args.move_to).expanduser() / log_name())
    finally:
        store.close()
    for source, reason in report.skipped:
        say(f"zsv: not moved {source}: {reason}", sys.stderr)
    for source, target in report.moved:
        say(f"moved {one_line(source, 200)} -> {one_line(target, 200)}")
    say(
        f"moved {len(report.moved)} files; undo with: zsv duplicates --index {args.index} "
        f"--undo {report.log}"
        if report.moved
        else "nothing moved"
    )
    return EXIT_OK


def run_undo(args: argparse.Namespace) -> int:
    """``--undo LOG``: move the files back and return their vectors to the index."""
    from zeroshot_vision._duplicate_moves import read_log, undo_moves
    from zeroshot_vision._index import IndexFolder, IndexWriter

    index = read_log(args.undo).index
    if Path(index) != Path(args.index).resolve():
        raise InvalidInputError(f"{args.undo} is the log of the index {index}, not {args.index}")
    folder = IndexFolder.open(args.index)
    store = folder.open_store()
    try:
        with IndexWriter(store, folder) as writer:
            report = undo_moves(args.undo, writer)
    finally:
        store.close()
    for target, reason in report.skipped:
        say(f"zsv: not moved back {target}: {reason}", sys.stderr)
    for line, reason in report.damaged:
        say(f"zsv: line {line} of {args.undo} is damaged, left alone: {reason}", sys.stderr)
    say(f"moved {len(report.moved)} files back; the index holds them again")
    return EXIT_PARTIAL if report.damaged else EXIT_OK


def _paths_of(store: Any, ids: list[str]) -> dict[str, str]:
    records = store.fetch(ids) if ids else {}
    return {
        item: record.metadata["path"]
        for item, record in records.items()
        if isinstance(record.metadata.get("path"), str)
    }
