"""``zsv index``: a folder of images (or an Unsplash Lite folder), a Parquet export of
vectors or a Hugging Face dataset (:mod:`~zeroshot_vision._cli.index_sources`) into an
index folder."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.index_scale import (
    add_scale_options,
    budget_options,
    rebuild_index_store,
)
from zeroshot_vision._cli.index_sources import add_source_kind_options, run_source_kind
from zeroshot_vision._cli.options import (
    add_backend_options,
    add_index_option,
    add_model_options,
    add_wait_option,
    non_negative_float_arg,
    non_negative_int_arg,
    positive_int_arg,
    positive_seconds_arg,
    seconds_arg,
)
from zeroshot_vision._cli.output import interactive, print_json, progress_bar, say
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._types import FolderReport, Progress

__all__ = ["add_index_command", "add_watch_options", "run_index", "watch_sources"]


class _StoreKinds:
    """``--store``'s choices, looked up only when used: the registry imports the stores
    and reads entry points, which every other command (``--server`` ones above all)
    would pay for at start-up."""

    def _kinds(self) -> list[str]:
        from zeroshot_vision.stores._registry import store_kinds

        return list(store_kinds())

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds()

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())


def add_index_command(commands: Subcommands) -> None:
    """Register ``zsv index``."""
    parser = commands.add_parser(
        "index",
        help="index a folder of images (or an Unsplash Lite folder, a Parquet export, a "
        "Hugging Face dataset)",
        description=(
            "Embed every image under SOURCE and store the vectors in INDEX_DIR. Re-running "
            "encodes only new and changed files and removes deleted ones (of the SOURCE "
            "re-scanned); a killed run continues where it stopped. Several SOURCE folders "
            "share one index; ids of a second one start with its folder's name. Instead of "
            "folders: --parquet FILE (vectors given) or --dataset PATH_OR_NAME[:SPLIT]."
        ),
    )
    parser.add_argument(
        "source",
        nargs="*",
        metavar="SOURCE",
        help="folder of images, or Unsplash folder (several: one index for all; a later "
        "run with another SOURCE adds it)",
    )
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
    add_backend_options(parser)
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
    add_scale_options(parser)
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
    parser.add_argument(
        "--ocr",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read the text in photos for search (needs the ocr extra; about 1 s of CPU "
        "per photo). Switched on for an existing index, every photo is read once; the "
        "index remembers the choice (default: as the last run said, else off)",
    )
    parser.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="index videos (.mp4 .mov .webm .mkv .m4v) too, one vector per chosen frame "
        "(scene cuts plus one every --video-interval seconds); default: on when the "
        "video extra is installed",
    )
    parser.add_argument(
        "--video-interval",
        type=seconds_arg,
        default=None,
        metavar="S",
        help="at most S seconds between the chosen frames of a scene (default 5)",
    )
    parser.add_argument(
        "--places",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="city, region, country and country_code from GPS (default: on when the "
        "places extra is installed)",
    )
    parser.add_argument(
        "--rebuild-text",
        action="store_true",
        help="rebuild the index's text side (text.sqlite) when it is missing or damaged; "
        "vectors are reused",
    )
    add_wait_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    captions = parser.add_argument_group(
        "captions (extra 'ask')",
        "ask a vision-language model for a one-line caption of each photo, stored as "
        "metadata 'caption'; resumable and incremental; the key from OPENAI_API_KEY",
    )
    captions.add_argument("--captions", action="store_true", help="caption the photos")
    captions.add_argument("--llm-url", metavar="URL", help="the endpoint (or OPENAI_BASE_URL)")
    captions.add_argument("--llm-model", metavar="NAME", help="the model (or ZSV_LLM_MODEL)")
    add_watch_options(parser)
    add_source_kind_options(parser)
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


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """``--watch`` and ``--debounce``: keep the index current as the folders change."""
    parser.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep watching SOURCE and update the index as files are "
        "added, changed, renamed or removed, until Ctrl-C (needs zeroshot-vision[watch])",
    )
    parser.add_argument(
        "--debounce",
        type=positive_seconds_arg,
        default=2.0,
        metavar="S",
        help="--watch: seconds of quiet before re-indexing (default 2)",
    )


def watch_sources(engine: Any, args: argparse.Namespace) -> None:
    """``--watch``: re-index the sources as they change, one summary line per run."""
    from zeroshot_vision.ingest._watch import watch_folders

    def on_report(root: Path, report: FolderReport) -> None:
        if report.indexed or report.removed or report.failed:
            _print_report(report, str(root))

    def on_error(root: Path, exc: Exception) -> None:
        say(f"zsv: cannot update the index from {root}: {exc} (still watching)", sys.stderr)

    # SIGTERM (a service manager stopping it) ends the watch after the run in progress.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say(f"watching {', '.join(args.source)} (Ctrl-C to stop)", sys.stderr)
    try:
        watch_folders(
            engine,
            args.source,
            debounce=args.debounce,
            commit_every=max(args.commit_every, 1.0),
            stop=stop,
            on_report=on_report,
            on_error=on_error,
        )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    say("zsv: stopped watching; the index is up to date with what was seen", sys.stderr)


def _index_encoder(args: argparse.Namespace, model: str | None) -> Any:
    """The encoder ``zsv index`` gives the engine, or ``None`` to let the engine load one.

    For an existing index it is lazy (:class:`~zeroshot_vision._lazy_encoder.LazyEncoder`);
    for a new one the engine loads the model (it needs its dimension), unless
    ``--workers`` or ``--compile`` ask for options the engine does not take.
    """
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision._lazy_encoder import LazyEncoder

    if IndexFolder.exists(args.index):
        manifest = IndexFolder.open(args.index).manifest

        return LazyEncoder(
            model or manifest.model,
            manifest.dim,
            device=args.device,
            dtype=args.dtype,
            workers=args.workers,
            compile=args.compile,
            progress=interactive(),
            **_route_options(args, manifest.encoder),
        )
    if args.workers is None and not args.compile:
        return None  # the engine loads the given (or default) model
    from zeroshot_vision._encoder import Encoder

    return Encoder.from_pretrained(
        model,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        compile=args.compile,
        progress=interactive(),
        **_route_options(args, None),
    )


def _route_options(args: argparse.Namespace, recorded: Any) -> dict[str, Any]:
    """``backend`` and ``precision`` for the encoder: the options given, else the index's."""
    backend = getattr(args, "backend", None)
    precision = getattr(args, "precision", None)
    if backend is None and recorded is not None and recorded.backend != "torch":
        backend, precision = recorded.backend, precision or recorded.precision
    return {"backend": backend or "torch", "precision": precision}


def _checked_model(args: argparse.Namespace) -> str | None:
    """``--model`` for a new index; for an existing one, checked against its model."""
    from zeroshot_vision._cli.model_choice import check_index_model
    from zeroshot_vision._index import IndexFolder

    if not IndexFolder.exists(args.index):
        # None: the engine takes $ZSV_MODEL, else the default.
        return str(args.model) if args.model else None
    return check_index_model(IndexFolder.open(args.index), args)


def _pinecone_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Pinecone store options given on the command line."""
    pinecone = {
        "host": args.pinecone_host,
        "index_name": args.pinecone_index,
        "namespace": args.namespace,
    }
    return {key: value for key, value in pinecone.items() if value is not None}


def _store_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The store options of ``--pinecone-*``, ``--ann`` or ``--memory-budget`` (None: none)."""
    given = _pinecone_options(args)
    if args.ann is not None:
        if args.store not in (None, "faiss"):
            raise InvalidInputError("--ann is an option of the faiss store")
        given = {"index": args.ann}
    if args.memory_budget is not None:
        given = budget_options(args)
    return given or None


def _open_engine(
    args: argparse.Namespace, model: str | None, store_options: dict[str, Any] | None
) -> tuple[Any, Any]:
    """The engine of a local ``zsv index`` run, and the encoder handed to it (to close after
    the engine; ``None`` when the engine loads its own)."""
    from zeroshot_vision._engine import SearchEngine

    encoder = _index_encoder(args, model)
    engine = SearchEngine.create(
        args.index,
        model=model,
        store=args.store,
        store_options=store_options,
        encoder=encoder,
        device=args.device,
        dtype=args.dtype,
        exist_ok=True,
        progress=interactive(),
        backend=args.backend,
        precision=args.precision,
    )
    if engine.folder is not None:
        engine.folder.lock_wait = args.wait
    return engine, encoder


def _open_source_engine(args: argparse.Namespace, model: str | None) -> tuple[Any, Any]:
    """:func:`_open_engine` for ``--dataset``, with the store options its flags give."""
    return _open_engine(args, model, _store_options(args))


def run_index(args: argparse.Namespace) -> int:
    """``zsv index``: create or update an index folder (``SearchEngine.index_folder``)."""
    if _pinecone_options(args) and args.store != "pinecone":
        raise InvalidInputError(
            "--pinecone-host, --pinecone-index and --namespace need --store pinecone"
        )
    other = run_source_kind(
        args,
        open_engine=_open_source_engine,
        checked_model=_checked_model,
        print_report=_print_report,
    )
    if other is not None:
        return other
    if args.rebuild_store is not None:
        return rebuild_index_store(args)
    if not args.source:
        raise InvalidInputError(
            "give a SOURCE folder to index (or --parquet FILE, --dataset NAME, "
            "--rebuild-store KIND)"
        )
    given = _store_options(args)
    for source in args.source:
        if not Path(source).expanduser().is_dir():
            raise InvalidInputError(f"{source} is not a folder")
    ray_only = {"--address": args.address, "--gpus-per-actor": args.gpus_per_actor,
                "--shards": args.shards, "--actors": args.actors != 1 or None}  # fmt: skip
    misplaced = [flag for flag, value in ray_only.items() if value is not None]
    if misplaced and not args.ray:
        raise InvalidInputError(f"{', '.join(misplaced)} need --ray")
    if args.ray and (args.ocr or args.rebuild_text):
        raise InvalidInputError("--ocr and --rebuild-text run locally, not with --ray")
    if args.ray and (args.video or args.video_interval is not None):
        raise InvalidInputError("--ray indexes images only: index videos without --ray")
    if args.ray and (len(args.source) > 1 or args.watch):
        raise InvalidInputError("--ray indexes one SOURCE per run, without --watch")
    if args.ray and (args.backend not in (None, "torch") or args.precision):
        raise InvalidInputError("--ray runs the torch backend; drop --backend/--precision")
    if args.precision and args.backend == "torch":
        raise InvalidInputError("--precision applies to --backend onnx (torch takes --dtype)")
    if args.watch:
        if args.json:
            raise InvalidInputError("--watch prints a line per update; it has no --json")
        from zeroshot_vision._optional import require

        require("watchdog.observers", extra="watch", purpose="zsv index --watch")
    if args.images is not None and len(args.source) > 1:
        raise InvalidInputError("--images applies to one Unsplash SOURCE; index them one by one")
    model = _checked_model(args)
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
        report = _index_with_ray(args, model, given, on_progress)
        if bar is not None:
            bar.close()
        return _print_reports(args, [report])
    engine, encoder = _open_engine(args, model, given)
    reports = []
    extractors = None
    try:
        extractors = _caption_extractors(args)
        for source in args.source:
            reports.append(
                engine.index_folder(
                    source,
                    images_dir=args.images,
                    exclude=args.exclude,
                    batch_size=args.batch_size,
                    commit_every=args.commit_every,
                    allow_removal=args.allow_removal,
                    progress=on_progress,
                    ocr=args.ocr,
                    places=args.places,
                    rebuild_text=args.rebuild_text and source == args.source[0],
                    extractors=extractors,
                    video=_video(args),
                )
            )
            if bar is not None:
                bar.close()
                bar = None
        if args.watch:
            for source, report in zip(args.source, reports, strict=True):
                _print_report(report, source if len(reports) > 1 else None)
            watch_sources(engine, args)
            return EXIT_OK
    finally:
        if bar is not None:
            bar.close()
        engine.close()
        if encoder is not None:
            encoder.close()  # one the engine was handed stays open for its owner
        for extractor in extractors or ():
            llm = getattr(extractor, "llm", None)
            if llm is not None:
                llm.close()
    return _print_reports(args, reports)


def _caption_extractors(args: argparse.Namespace) -> list[Any] | None:
    """With ``--captions``: a caption extractor (run after the standard ones), after showing
    the cost (photos x seconds per caption, measured on two photos). Else ``None``."""
    if not args.captions:
        if args.llm_url or args.llm_model:
            raise InvalidInputError("--llm-url and --llm-model go with --captions")
        return None
    from zeroshot_vision._captions import CaptionExtractor, measure_caption_seconds
    from zeroshot_vision._images import IMAGE_SUFFIXES
    from zeroshot_vision._llm import LLMEndpoint

    photos = [
        path
        for source in args.source
        for path in sorted(Path(source).expanduser().rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    extractor = CaptionExtractor(LLMEndpoint(args.llm_url, args.llm_model, max_tokens=60))
    seconds = measure_caption_seconds(extractor, photos)
    total = seconds * len(photos)
    say(
        f"captions by {extractor.llm.resolved_model()}: {seconds:.2f} s per photo (measured on "
        f"2); {len(photos)} photos in the source(s) -> up to {total / 60:.1f} min (photos "
        "already captioned by this model are skipped)",
        sys.stderr,
    )
    return [extractor]


def _index_with_ray(
    args: argparse.Namespace, model: str | None, options: dict[str, Any] | None, on_progress: Any
) -> Any:
    """``zsv index --ray``: :func:`zeroshot_vision.distributed.index_with_ray`."""
    import logging

    from zeroshot_vision.distributed import index_with_ray

    # Ray Data logs each run's plan and progress; the bar here shows progress.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return index_with_ray(
        args.source[0],
        index=args.index,
        model=model,
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


def _print_reports(args: argparse.Namespace, reports: list[FolderReport]) -> int:
    """Print each source's report: one line each (or ``--json``)."""
    if args.json:
        if len(reports) == 1:
            print_json(reports[0].to_json())
        else:
            print_json(
                [{"source": s, **r.to_json()} for s, r in zip(args.source, reports, strict=True)]
            )
        return EXIT_OK
    for source, report in zip(args.source, reports, strict=True):
        _print_report(report, source if len(reports) > 1 else None)
    return EXIT_OK


def _print_report(report: FolderReport, source: str | None) -> None:
    for failure in report.unreadable:
        say(f"zsv: cannot read {failure.source}: {failure.reason} (kept)", sys.stderr)
    for failure in report.failed:
        say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    for failure in report.known_failed:
        say(
            f"zsv: skipped {failure.source}: {failure.reason} (unchanged since it failed)",
            sys.stderr,
        )
    rate = f" ({report.images_per_second:.1f} images/s)" if report.indexed else ""
    say(f"{source + ': ' if source else ''}{report}{rate}")


def _video(args: argparse.Namespace) -> Any:
    """``--video`` / ``--video-interval`` as ``index_folder``'s ``video``."""
    if args.video_interval is None or args.video is False:
        return args.video
    from zeroshot_vision._images.video import VideoOptions

    return VideoOptions(max_interval=args.video_interval)
