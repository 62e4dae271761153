"""``zsv index`` options for large collections: ``--memory-budget`` and ``--rebuild-store``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import positive_int_arg
from zeroshot_vision.cli.output import say
from zeroshot_vision.errors import InvalidInputError

__all__ = ["add_scale_options", "budget_options", "rebuild_index_store"]

_KINDS = ("flat", "hnsw", "hnsw-sq8", "ivfpq")
_DEFAULT_DIM = 1152  # google/siglip-so400m-patch14-384, the default model


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    """``--memory-budget``, ``--capacity`` and ``--rebuild-store``."""
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="faiss only, for a new index: RAM the search index may take (4GB, 512MiB); "
        "picks the kind that fits --capacity vectors and says which",
    )
    parser.add_argument(
        "--capacity",
        type=positive_int_arg,
        metavar="N",
        help="--memory-budget: vectors to plan for (default 1000000)",
    )
    parser.add_argument(
        "--rebuild-store",
        choices=_KINDS,
        metavar="KIND",
        help="rebuild the index's faiss store as KIND (flat, hnsw, hnsw-sq8, ivfpq) from "
        "its stored vectors, without re-encoding; resumes if interrupted (no SOURCE)",
    )


def budget_options(args: argparse.Namespace) -> dict[str, Any]:
    """The store options of ``--memory-budget``; says which kind it picks."""
    from zeroshot_vision.index import IndexFolder
    from zeroshot_vision.stores.faiss_budget import plan_index

    if args.store not in (None, "faiss") or args.ann is not None:
        raise InvalidInputError("--memory-budget picks a faiss index kind: drop --ann/--store")
    dim = IndexFolder.open(args.index).manifest.dim if IndexFolder.exists(args.index) else None
    plan = plan_index(dim or _DEFAULT_DIM, args.memory_budget, capacity=args.capacity)
    say(f"zsv: memory budget {args.memory_budget}: {plan.summary()}", sys.stderr)
    options: dict[str, Any] = {"memory_budget": args.memory_budget}
    if args.capacity is not None:
        options["capacity"] = args.capacity
    return options


def rebuild_index_store(args: argparse.Namespace) -> int:
    """``zsv index --rebuild-store KIND``: the index's faiss store rebuilt as KIND."""
    from zeroshot_vision.index import IndexFolder
    from zeroshot_vision.stores.faiss_rebuild import rebuild_store

    if args.source:
        raise InvalidInputError("--rebuild-store works on INDEX_DIR alone: drop SOURCE")
    folder = IndexFolder.open(args.index)
    if folder.manifest.store.kind != "faiss":
        raise InvalidInputError("--rebuild-store rebuilds a faiss store; this index is on "
                                f"{folder.manifest.store.kind}")  # fmt: skip
    folder.lock(wait=args.wait if getattr(args, "wait", None) is not None else None)
    try:

        def progress(done: int, total: int) -> None:
            say(f"rebuilding: {done:,} of {total:,} vectors", sys.stderr)

        store = rebuild_store(folder.store_path, args.rebuild_store, progress=progress)
    finally:
        folder.unlock()
    say(f"zsv: the store of {args.index} is now {store!r}", sys.stderr)
    return EXIT_OK
