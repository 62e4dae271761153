"""``zsv reindex``: move an index to another model (every photo re-encoded, then a switch)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import (
    add_device_options,
    add_index_option,
    add_wait_option,
    positive_int_arg,
)
from zeroshot_vision._cli.output import interactive, print_json, progress_bar, say

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._types import Progress

__all__ = ["add_reindex_command", "run_reindex"]


def add_reindex_command(commands: Subcommands) -> None:
    """Register ``zsv reindex``."""
    parser = commands.add_parser(
        "reindex",
        help="re-encode an index with another model",
        description="Re-encode every photo of an index with another model into a new store "
        "inside the index folder, then switch to it in one step. Searches use the old model "
        "until the switch. Killed, it goes on where it stopped when run again with the same "
        "model. Photos whose file is gone or unreadable are left out and listed.",
    )
    add_index_option(parser)
    parser.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="the new model: a preset name (zsv models), a hub id or a folder",
    )
    parser.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="images per batch")
    add_device_options(parser)
    add_wait_option(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_reindex)


def run_reindex(args: argparse.Namespace) -> int:
    """``zsv reindex``: :func:`zeroshot_vision.ingest._reindex.reindex`."""
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision.ingest._reindex import reindex

    IndexFolder.open(args.index)  # no index: said before the slow model load
    bar: Any = None

    def on_progress(progress: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(progress.total or 0, unit="img", desc="reindex")
            if bar is None:
                return
        bar.update(progress.advanced)

    encoder = Encoder.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, progress=interactive()
    )
    try:
        report = reindex(
            args.index,
            encoder,
            batch_size=args.batch_size,
            wait=args.wait,
            progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.close()
        encoder.close()
    if args.json:
        print_json(report.to_json())
        return EXIT_OK
    for failure in report.left_out:
        say(f"zsv: left out {failure.source}: {failure.reason}", sys.stderr)
    resumed = f", {report.resumed} from the interrupted run" if report.resumed else ""
    say(
        f"{args.index}: now {report.model} ({report.dim}-d), was {report.previous_model}: "
        f"{len(report.encoded)} images re-encoded{resumed}, {len(report.left_out)} left out, "
        f"{report.count} in the index ({report.seconds:.1f} s)"
    )
    return EXIT_OK
