"""``zsv index``: a folder of images (or an Unsplash Lite folder) into an index folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision.cli.exits import EXIT_OK
from zeroshot_vision.cli.options import (
    add_index_option,
    add_model_options,
    non_negative_float_arg,
    non_negative_int_arg,
    positive_int_arg,
    seconds_arg,
)
from zeroshot_vision.cli.output import interactive, print_json, progress_bar, say
from zeroshot_vision.errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands
    from zeroshot_vision.types import FolderReport, Progress

__all__ = ["add_index_command", "run_index"]


class _StoreKinds:
    """``--store``'s choices, looked up only when used: the registry imports the stores
    and reads entry points, which every other command (``--server`` ones above all)
    would pay for at start-up."""

    def _kinds(self) -> list[str]:
        from zeroshot_vision.stores.registry import store_kinds

        return list(store_kinds())

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds()

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())


def add_index_command(commands: Subcommands) -> None:
    """Register ``zsv index``."""
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
        "--store",
        choices=_StoreKinds(),  # type: ignore[arg-type]
        metavar="KIND",
        help="vector store for a new index: faiss (default), pinecone, or a registered kind",
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
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    ray = parser.add_argument_group(
        "distributed (Ray Data)", "encode on a Ray cluster: many GPUs or machines (extra 'ray')"
    )
    ray.add_argument("--ray", action="store_true", help="run on Ray: a local cluster, or --address")
    ray.add_argument(
        "--address",
        metavar="ADDRESS",
        help="a Ray cluster to join ('auto', 'ray://head:10001'); the cluster is yours to "
        "secure (default: a local cluster on 127.0.0.1)",
    )
    ray.add_argument(
        "--actors", type=positive_int_arg, default=1, metavar="N", help="encoder actors (default 1)"
    )
    ray.add_argument(
        "--gpus-per-actor",
        type=non_negative_float_arg,
        metavar="G",
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)",
    )
    ray.add_argument(
        "--shards",
        metavar="DIR_OR_URI",
        help="FAISS indexes: keep the Parquet shards here (a folder every node reaches, or "
        "s3://...); default: inside INDEX_DIR, removed once imported",
    )
    parser.set_defaults(handler=run_index)


class _LazyEncoder:
    """The encoder of an existing index, loaded only when an image needs encoding.

    ``zsv index`` on a folder with nothing new or changed then finishes without importing
    torch or loading the model: the engine needs only the dimension and the model name
    until then, and both are in the index's manifest.
    """

    def __init__(self, args: argparse.Namespace, model: str, dim: int) -> None:
        self._args = args
        self.model_name = model
        self.dim = dim
        self._encoder: Any = None

    def _loaded(self) -> Any:
        if self._encoder is None:
            from zeroshot_vision.encoder import Encoder
            from zeroshot_vision.errors import DimensionMismatchError

            self._encoder = Encoder.from_pretrained(
                self.model_name,
                device=self._args.device,
                dtype=self._args.dtype,
                workers=self._args.workers,
                compile=self._args.compile,
                progress=interactive(),
            )
            if self._encoder.dim != self.dim:
                raise DimensionMismatchError(
                    f"model {self.model_name!r} makes vectors of dimension "
                    f"{self._encoder.dim}, but the index holds dimension {self.dim}",
                    expected=self.dim,
                    actual=self._encoder.dim,
                )
        return self._encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loaded(), name)

    @property
    def loaded(self) -> bool:
        """Whether the model was needed (and loaded)."""
        return self._encoder is not None

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()


def _index_encoder(args: argparse.Namespace) -> Any:
    """The encoder ``zsv index`` gives the engine, or ``None`` to let the engine load one.

    For an existing index it is lazy (:class:`_LazyEncoder`); for a new one the engine
    loads the model (it needs its dimension), unless ``--workers`` or ``--compile`` ask
    for options the engine does not take.
    """
    from zeroshot_vision.index import IndexFolder

    if IndexFolder.exists(args.index):
        manifest = IndexFolder.open(args.index).manifest
        return _LazyEncoder(args, args.model or manifest.model, manifest.dim)
    if args.workers is None and not args.compile:
        return None  # the engine loads the given (or default) model
    from zeroshot_vision.encoder import Encoder

    return Encoder.from_pretrained(
        args.model,
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
    ray_only = {"--address": args.address, "--gpus-per-actor": args.gpus_per_actor,
                "--shards": args.shards, "--actors": args.actors != 1 or None}  # fmt: skip
    misplaced = [flag for flag, value in ray_only.items() if value is not None]
    if misplaced and not args.ray:
        raise InvalidInputError(f"{', '.join(misplaced)} need --ray")
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

    if args.ray:
        if args.workers is not None or args.compile or args.device is not None:
            raise InvalidInputError(
                "--workers, --compile and --device are not for --ray: Ray's tasks decode, "
                "and each actor gets a GPU (--gpus-per-actor) or the CPU"
            )
        report = _index_with_ray(args, given or None, on_progress)
        if bar is not None:
            bar.close()
        return _print_report(args, report)
    encoder = _index_encoder(args)
    engine = SearchEngine.create(
        args.index,
        model=args.model,
        store=args.store,
        store_options=given or None,
        encoder=encoder,
        device=args.device,
        dtype=args.dtype,
        exist_ok=True,
        progress=interactive(),
    )
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
        if encoder is not None:
            encoder.close()  # one the engine was handed stays open for its owner
    return _print_report(args, report)


def _index_with_ray(
    args: argparse.Namespace, options: dict[str, Any] | None, on_progress: Any
) -> Any:
    """``zsv index --ray``: :func:`zeroshot_vision.distributed.index_with_ray`."""
    import logging

    from zeroshot_vision.distributed import index_with_ray

    # Ray Data logs each run's plan and progress; the bar here shows progress.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return index_with_ray(
        args.source,
        index=args.index,
        model=args.model,
        images_dir=args.images,
        exclude=args.exclude,
        allow_removal=args.allow_removal,
        store=args.store,
        store_options=options,
        shards=args.shards,
        address=args.address,
        actors=args.actors,
        gpus_per_actor=args.gpus_per_actor,
        batch_size=args.batch_size,
        dtype=args.dtype,
        commit_every=args.commit_every,
        progress=on_progress,
    )


def _print_report(args: argparse.Namespace, report: FolderReport) -> int:
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
