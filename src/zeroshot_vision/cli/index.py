"""``zsv index``: a folder of images (or an Unsplash Lite folder) into an index folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import (
    add_index_option,
    add_model_options,
    add_wait_option,
    non_negative_int_arg,
    positive_int_arg,
    seconds_arg,
)
from zeroshot_vision.cli.output import interactive, print_json, progress_bar, say
from zeroshot_vision.errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands
    from zeroshot_vision.types import Progress

__all__ = ["add_index_command", "run_index"]


def add_index_command(commands: Subcommands) -> None:
    """Register ``zsv index``."""
    from zeroshot_vision.stores.registry import store_kinds

    parser = commands.add_parser(
        "index",
        help="index a folder of images (or an Unsplash Lite folder)",
        description=(
            "Embed every image under SOURCE and store the vectors in INDEX_DIR. Re-running "
            "encodes only new and changed files and removes deleted ones; a killed run "
            "continues where it stopped."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="folder of images, or Unsplash folder")
    add_index_option(parser)
    parser.add_argument(
        "--images",
        metavar="IMAGES_DIR",
        help="Unsplash only: where 'zsv download' put the photos (default: inside SOURCE)",
    )
    add_model_options(
        parser,
        model_help="checkpoint name or folder (default: the index's, else $ZSV_MODEL or "
        "google/siglip-so400m-patch14-384; 'tiny' for an offline test model)",
    )
    parser.add_argument(
        "--store", choices=store_kinds(), help="vector store for a new index (default: faiss)"
    )
    parser.add_argument(
        "--ann",
        choices=("hnsw", "hnsw-sq8"),
        help="faiss only, for a new index: approximate search for large collections "
        "(hnsw: fast; hnsw-sq8: fast, a quarter of the memory); default exact search",
    )
    parser.add_argument("--pinecone-host", metavar="HOST", help="Pinecone index host")
    parser.add_argument("--pinecone-index", metavar="NAME", help="Pinecone index name")
    parser.add_argument("--namespace", metavar="NS", help="Pinecone namespace")
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="leave out files or folders matching GLOB (relative path or name; repeatable)",
    )
    parser.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="images per batch")
    parser.add_argument(
        "--workers",
        type=non_negative_int_arg,
        metavar="N",
        help="processes decoding images ahead of the model (default: one per core, "
        "at most 16; 0: threads)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the image model: about 30 s more at start, faster on a GPU",
    )
    parser.add_argument(
        "--commit-every",
        type=seconds_arg,
        default=0.0,
        metavar="S",
        help="commit at most every S seconds instead of every batch (default 0)",
    )
    parser.add_argument(
        "--allow-removal",
        action="store_true",
        help="allow removing more than half of the indexed images (files really deleted)",
    )
    add_wait_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(handler=run_index)


def _index_encoder(args: argparse.Namespace) -> Any:
    """The encoder ``zsv index`` loads itself, for options the engine does not take."""
    if args.workers is None and not args.compile:
        return None  # the engine loads the index's (or the given) model
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.index import IndexFolder

    model = args.model
    if model is None and IndexFolder.exists(args.index):
        model = IndexFolder.open(args.index).manifest.model
    return Encoder.from_pretrained(
        model,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        compile=args.compile,
        progress=interactive(),
    )


def run_index(args: argparse.Namespace) -> int:
    """``zsv index``: create or update an index folder (``SearchEngine.index_folder``)."""
    from zeroshot_vision.engine import SearchEngine

    pinecone = {
        "host": args.pinecone_host,
        "index_name": args.pinecone_index,
        "namespace": args.namespace,
    }
    given = {key: value for key, value in pinecone.items() if value is not None}
    if given and args.store != "pinecone":
        raise InvalidInputError(
            "--pinecone-host, --pinecone-index and --namespace need --store pinecone"
        )
    if args.ann is not None:
        if args.store not in (None, "faiss"):
            raise InvalidInputError("--ann is an option of the faiss store")
        given = {"index": args.ann}
    if not Path(args.source).expanduser().is_dir():
        raise InvalidInputError(f"{args.source} is not a folder")
    bar: Any = None

    def on_progress(progress: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(progress.total or 0, unit="img", desc="index")
            if bar is None:
                return
        bar.update(progress.advanced)
        if progress.failed:
            bar.set_postfix(failed=progress.failed, refresh=False)

    engine = SearchEngine.create(
        args.index,
        model=args.model,
        store=args.store,
        store_options=given or None,
        encoder=_index_encoder(args),
        device=args.device,
        dtype=args.dtype,
        exist_ok=True,
        progress=interactive(),
    )
    if engine.folder is not None:
        engine.folder.lock_wait = args.wait
    try:
        report = engine.index_folder(
            args.source,
            images_dir=args.images,
            exclude=args.exclude,
            batch_size=args.batch_size,
            commit_every=args.commit_every,
            allow_removal=args.allow_removal,
            progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.close()
        engine.close()
    if args.json:
        print_json(report.to_json())
        return EXIT_OK
    for failure in report.unreadable:
        say(f"zsv: cannot read {failure.source}: {failure.reason} (kept)", sys.stderr)
    for failure in (*report.failed, *report.known_failed):
        say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    rate = f" ({report.images_per_second:.1f} images/s)" if report.indexed else ""
    say(f"{report}{rate}")
    return EXIT_OK
