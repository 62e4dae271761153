"""``zsv export`` and ``zsv import``: an index's vectors to and from a Parquet file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import add_index_option, add_wait_option, positive_int_arg
from zeroshot_vision._cli.output import interactive, say

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = ["add_export_command", "add_import_command", "run_export", "run_import"]


def add_export_command(commands: Subcommands) -> None:
    """Register ``zsv export``."""
    parser = commands.add_parser(
        "export",
        help="write an index's vectors and metadata to a Parquet file",
        description=(
            "Write every record of INDEX_DIR (id, vector, metadata as JSON text) to a "
            "Parquet file that pandas, DuckDB, Spark or another index can read. Needs "
            "the 'parquet' extra."
        ),
    )
    add_index_option(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="the .parquet file to write")
    parser.add_argument(
        "--batch-size", type=positive_int_arg, default=1_000, metavar="N", help="rows per batch"
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``zsv export``: stream the index into a Parquet file."""
    from zeroshot_vision.ingest._exchange import export_index

    count = export_index(args.index, args.out, batch_size=args.batch_size, progress=interactive())
    say(f"exported {count} vectors to {args.out}")
    return EXIT_OK


def add_import_command(commands: Subcommands) -> None:
    """Register ``zsv import``."""
    parser = commands.add_parser(
        "import",
        help="add precomputed vectors from a Parquet file to an index",
        description=(
            "Upsert the records of FILE (columns id, vector and optionally metadata) into "
            "INDEX_DIR, creating it if needed. The vectors must come from the index's "
            "model: a file that records another is refused. Ids are at most 4,096 bytes. "
            "Needs the 'parquet' extra."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="a .parquet file, e.g. from zsv export")
    add_index_option(parser)
    parser.add_argument(
        "--model",
        metavar="M",
        help="the model that made the vectors (default: the one the file names, else, for a "
        "new index, $ZSV_MODEL or google/siglip-so400m-patch14-384); into an existing "
        "index, vectors of another model than its own are refused",
    )
    parser.add_argument(
        "--batch-size", type=positive_int_arg, default=1_000, metavar="N", help="rows per batch"
    )
    add_wait_option(parser)
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """``zsv import``: stream a Parquet file into an index folder."""
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision.ingest._exchange import check_import_model, import_index
    from zeroshot_vision.stores._parquet import ParquetVectors

    if IndexFolder.exists(args.index):  # refused before the file is read through
        check_import_model(
            IndexFolder.open(args.index).manifest.model,
            file_model=ParquetVectors.open(args.file).model,
            requested=args.model,
        )
    count = import_index(
        args.file,
        args.index,
        model=args.model,
        batch_size=args.batch_size,
        wait=args.wait,
        progress=interactive(),
    )
    say(f"imported {count} vectors into {args.index}")
    return EXIT_OK
