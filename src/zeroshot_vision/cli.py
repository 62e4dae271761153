"""``zsv``: the command line. A thin layer: parse arguments, call the library, format output.

Subcommands: ``download`` (Unsplash Lite photos), ``index`` (a folder into an index
folder), ``search`` (words, images, or both), ``classify`` (zero-shot labels for
images), ``tag`` (likely labels for a folder or an index), ``duplicates`` (near-duplicate
groups), ``export``/``import`` (vectors as Parquet), ``info`` (what an index holds) and
``app`` (the Streamlit app). Each is registered by one
small ``add_*_command`` function listed in :data:`COMMANDS`, so adding a subcommand touches
nothing else.

Exit codes: 0 success; 1 an error (one line on stderr, no traceback, for every problem the
library raises on purpose and for file-system errors); 2 bad usage; 3 the command finished
but some items failed (``download`` with failed photos); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zeroshot_vision._checks import (
    add_device_options,
    argparse_number,
    non_negative_int_arg,
    positive_int_arg,
    positive_seconds_arg,
    probability_arg,
    seconds_arg,
)
from zeroshot_vision._text import printable, printable_json
from zeroshot_vision.errors import (
    ImageLoadError,
    InvalidFilterError,
    InvalidInputError,
    ZeroshotVisionError,
)
from zeroshot_vision.eval._command import add_eval_command

if TYPE_CHECKING:
    from typing import TypeAlias

    from zeroshot_vision.datasets.download import DownloadOutcome
    from zeroshot_vision.query import Query
    from zeroshot_vision.types import ImageLabels, Progress, SearchResult

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "COMMANDS",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "add_app_command",
    "add_classify_command",
    "add_download_command",
    "add_duplicates_command",
    "add_export_command",
    "add_import_command",
    "add_index_command",
    "add_info_command",
    "add_search_command",
    "add_tag_command",
    "build_parser",
    "main",
    "parse_filter",
    "run_app",
    "run_classify",
    "run_download",
    "run_duplicates",
    "run_export",
    "run_import",
    "run_index",
    "run_info",
    "run_search",
    "run_tag",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


# -- output helpers -------------------------------------------------------------------------
# Everything printed goes through these. File names, ids and descriptions come from file
# systems and datasets: an escape sequence in one could retitle or clear the terminal, and
# a newline would break a one-line message, so control characters are shown as escapes.


def _say(message: str, stream: TextIO | None = None) -> None:
    """Print one line; control characters in it (newlines too) are shown as escapes."""
    print(printable(message), file=stream or sys.stdout)


def _error(message: str) -> None:
    # One line, whatever the exception's text holds.
    print(f"zsv: error: {printable(' '.join(message.split()))}", file=sys.stderr)


def _os_error_message(exc: OSError) -> str:
    # "[Errno 28] No space left on device" says neither what nor where; the strerror and
    # the file name do, without the errno noise.
    if not exc.strerror:
        return str(exc) or type(exc).__name__
    if exc.filename is None:
        return exc.strerror
    return f"{exc.filename}: {exc.strerror}"


def _progress_bar(total: int, *, unit: str, desc: str) -> Any:
    """A tqdm bar on a terminal, ``None`` otherwise (logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, smoothing=0.1)


def _interactive() -> bool:
    """Whether to draw progress (bars, the model loading): only on a terminal."""
    return sys.stderr.isatty()


def _print_json(value: Any) -> None:
    # Still valid JSON: what json.dumps leaves raw is escaped as \uXXXX inside its strings.
    print(printable_json(json.dumps(value, ensure_ascii=False, indent=2)))


def _columns(text: str) -> int:
    """How many terminal columns ``text`` takes once printed (see :func:`_say`): wide (CJK,
    emoji) characters take two, control characters their escapes."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in printable(text)
    )


def _one_line(text: str, width: int) -> str:
    """``text`` on one line, control characters escaped, cut with an ellipsis to at most
    ``width`` terminal columns."""
    flat = printable(" ".join(text.split()))
    if _columns(flat) <= width:
        return flat
    kept = ""
    for char in flat:
        if _columns(kept + char) > max(width - 1, 0):
            break
        kept += char
    return kept + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _columns(text), 0)


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _add_model_options(parser: argparse.ArgumentParser, *, model_help: str) -> None:
    parser.add_argument("--model", metavar="M", help=model_help)
    add_device_options(parser)


# -- download -------------------------------------------------------------------------------


def add_download_command(commands: Subcommands) -> None:
    """Register ``zsv download``."""
    parser = commands.add_parser(
        "download",
        help="download the photos of an Unsplash Lite dataset",
        description=(
            "Download the photos listed in an unzipped Unsplash Lite folder to OUT/<id>.jpg. "
            "Photos already there are skipped; failures are listed in OUT/failures.tsv."
        ),
    )
    parser.add_argument("dataset_dir", metavar="DATASET_DIR", help="the unzipped Unsplash folder")
    parser.add_argument("--out", required=True, metavar="IMAGES_DIR", help="where photos go")
    parser.add_argument(
        "--width",
        type=positive_int_arg,
        default=640,
        metavar="PX",
        help="width in pixels (default 640)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int_arg,
        default=8,
        metavar="N",
        help="parallel requests (default 8)",
    )
    parser.add_argument(
        "--limit", type=positive_int_arg, metavar="N", help="only the first N photos"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds_arg,
        default=30.0,
        metavar="S",
        help="seconds per attempt, connecting, headers and body together (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int_arg,
        default=3,
        metavar="N",
        help="retries on 5xx/429/errors (default 3)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    """``zsv download``: fetch the photos, print a one-line summary."""
    from zeroshot_vision.datasets.download import FAILURES_FILE, RetryPolicy, download_photos
    from zeroshot_vision.datasets.unsplash import read_photos

    photos = list(read_photos(args.dataset_dir, limit=args.limit))
    bar = _progress_bar(len(photos), unit="photo", desc="download")
    failed = 0

    def on_outcome(outcome: DownloadOutcome) -> None:
        nonlocal failed
        if bar is not None:
            if outcome.status == "failed":
                failed += 1
                bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

    try:
        report = download_photos(
            photos,
            args.out,
            width=args.width,
            workers=args.workers,
            timeout=args.timeout,
            retry=RetryPolicy(retries=args.retries),
            progress=on_outcome,
        )
    finally:
        if bar is not None:
            bar.close()
    rate = report.downloaded / report.seconds if report.seconds > 0 else 0.0
    if args.json:
        _print_json(
            {
                "downloaded": report.downloaded,
                "skipped": report.skipped,
                "failed": [
                    {"photo_id": f.photo_id, "url": f.url, "reason": f.reason}
                    for f in report.failed
                ],
                "bytes": report.bytes_written,
                "seconds": round(report.seconds, 3),
                "photos_per_second": round(rate, 2),
            }
        )
    else:
        line = f"{report} ({rate:.1f} photos/s, {_human_size(report.bytes_written)})"
        if report.failed:
            line += f"; failures listed in {Path(args.out) / FAILURES_FILE}"
        _say(line)
    return EXIT_OK if report.ok else EXIT_PARTIAL


# -- index ----------------------------------------------------------------------------------


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
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "--images",
        metavar="IMAGES_DIR",
        help="Unsplash only: where 'zsv download' put the photos (default: inside SOURCE)",
    )
    _add_model_options(
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
        progress=_interactive(),
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
            bar = _progress_bar(progress.total or 0, unit="img", desc="index")
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
        progress=_interactive(),
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
    if args.json:
        _print_json(report.to_json())
        return EXIT_OK
    for failure in report.unreadable:
        _say(f"zsv: cannot read {failure.source}: {failure.reason} (kept)", sys.stderr)
    for failure in (*report.failed, *report.known_failed):
        _say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    rate = f" ({report.images_per_second:.1f} images/s)" if report.indexed else ""
    _say(f"{report}{rate}")
    return EXIT_OK


# -- search ---------------------------------------------------------------------------------


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
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "--image",
        action="append",
        metavar="PATH",
        help="look for images like this one (repeatable; alone, or combined with QUERY)",
    )
    parser.add_argument(
        "--image-weight",
        type=_weight_arg,
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
    _add_model_options(parser, model_help="use this checkpoint instead of the index's")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_search)


def _check_weight(value: float, name: str) -> float:
    from zeroshot_vision.query import check_weight

    return check_weight(value)


_weight_arg = argparse_number(_check_weight, float)


NEGATIVE_WEIGHT = 0.5
"""Weight of each ``--not`` part, as ``SearchEngine.search``'s ``negative_weight``."""

IMAGE_WEIGHT = 0.5
"""Weight of each ``--image`` next to words: image-to-image cosines are far larger than
text-to-image ones, so an image of weight 1 would drown the words (see ``query``)."""


def _search_query(args: argparse.Namespace) -> Query:
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


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """Parse a ``--filter`` argument (a JSON object), or raise :class:`InvalidFilterError`."""
    from zeroshot_vision.stores.filters import validate_filter

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"--filter is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidFilterError(f"--filter must be a JSON object, got {text}")
    validate_filter(value)
    return value


def _describe(metadata: Mapping[str, Any]) -> str:
    from zeroshot_vision.types import caption

    path = metadata.get("path")
    return caption(metadata) or (path if isinstance(path, str) else "")


def _results_table(results: Sequence[SearchResult]) -> list[str]:
    width = shutil.get_terminal_size((120, 24)).columns
    id_width = max([2, *(_columns(" ".join(r.id.split())) for r in results)])
    id_width = min(id_width, 40)
    header = f"{'rank':>4}  {_pad('id', id_width)}  {'score':>7}  {'prob':>6}  path/description"
    lines = [header]
    for rank, result in enumerate(results, start=1):
        probability = "-" if result.probability is None else f"{result.probability:.4f}"
        left = (
            f"{rank:>4}  {_pad(_one_line(result.id, id_width), id_width)}  "
            f"{result.score:>7.4f}  {probability:>6}  "
        )
        room = max(width - _columns(left), 20)
        lines.append(left + _one_line(_describe(result.metadata), room))
    return lines


def run_search(args: argparse.Namespace) -> int:
    """``zsv search``: print the best matches."""
    from zeroshot_vision.engine import SearchEngine

    query_filter = parse_filter(args.filter)
    query = _search_query(args)
    with SearchEngine.open(
        args.index, model=args.model, device=args.device, dtype=args.dtype, progress=_interactive()
    ) as engine:
        results = engine.search(
            query, k=args.k, filter=query_filter, min_probability=args.min_probability
        )
    if args.json:
        print(printable_json(results.to_json(indent=2)))
    elif not results:
        _say("no results")
    else:
        for line in _results_table(results):
            _say(line)
    return EXIT_OK


# -- classify -------------------------------------------------------------------------------


def add_classify_command(commands: Subcommands) -> None:
    """Register ``zsv classify``."""
    parser = commands.add_parser(
        "classify",
        help="score text labels against images",
        description="Zero-shot classification: how well each label describes each IMAGE.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LIST",
        help='comma-separated labels, e.g. "a dog,a cat,a car"',
    )
    _add_model_options(
        parser,
        model_help="checkpoint name or folder (default $ZSV_MODEL or "
        "google/siglip-so400m-patch14-384)",
    )
    parser.add_argument(
        "--softmax",
        action="store_true",
        default=None,
        help="shares that sum to 1 (pick exactly one label); the default for CLIP models",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    """``zsv classify``: labels with probabilities, most likely first, for each image."""
    from zeroshot_vision._checks import clean_labels
    from zeroshot_vision.encoder import Encoder

    labels = clean_labels(args.labels)
    if len(args.images) == 1 and not Path(args.images[0]).is_file():
        raise InvalidInputError(f"{args.images[0]} is not a file")
    encoder = Encoder.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, progress=_interactive()
    )
    report = encoder.classify_many(args.images, labels, softmax=args.softmax)
    if len(args.images) == 1 and report.failed:
        raise ImageLoadError(report.failed[0].source, report.failed[0].reason)
    for failure in report.failed:
        _say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    if args.json:
        rows = [
            [{"label": s.label, "probability": s.probability, "score": s.score} for s in r.labels]
            for r in report.results
        ]
        if len(args.images) == 1:
            _print_json(rows[0])
        else:
            _print_json(
                [{"image": r.source, "labels": row} for r, row in zip(report.results, rows)]
            )
        return EXIT_PARTIAL if report.failed else EXIT_OK
    width = max(len("label"), *(_columns(label) for label in labels))
    for n, result in enumerate(report.results):
        if len(args.images) > 1:
            _say(("" if n == 0 else "\n") + _one_line(result.source, 200))
        _say(f"{_pad('label', width)}  {'prob':>6}  {'score':>7}")
        for s in result.labels:
            _say(f"{_pad(s.label, width)}  {s.probability:>6.4f}  {s.score:>7.4f}")
    return EXIT_PARTIAL if report.failed else EXIT_OK


# -- info -----------------------------------------------------------------------------------


def add_info_command(commands: Subcommands) -> None:
    """Register ``zsv info``."""
    parser = commands.add_parser(
        "info",
        help="describe an index folder",
        description="Count, model, dimension, store and size on disk of an index.",
    )
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    """``zsv info``: what an index folder holds."""
    from zeroshot_vision.index import IndexFolder

    folder = IndexFolder.open(args.index)
    store = folder.open_store()
    try:
        count = len(store)
    finally:
        store.close()
    counts = folder.counts()
    manifest = folder.manifest
    info: dict[str, Any] = {
        "index": str(Path(args.index).resolve()),
        "count": count,
        "model": manifest.model,
        "dim": manifest.dim,
        "store": manifest.store.kind,
        "store_options": dict(manifest.store.options),
        "size_bytes": folder.size_bytes(),
        "source": folder.source(),
        "files": counts["indexed"],
        "bad_images": counts["failed"],
        "format_version": manifest.version,
    }
    if args.json:
        _print_json(info)
        return EXIT_OK
    options = "".join(f" {k}={v}" for k, v in info["store_options"].items())
    rows = [
        ("index", info["index"]),
        ("count", str(count)),
        ("model", manifest.model),
        ("dim", str(manifest.dim)),
        ("store", manifest.store.kind + options),
        ("size", _human_size(info["size_bytes"])),
        ("source", info["source"] or "-"),
        ("bad images", str(counts["failed"])),
    ]
    for key, value in rows:
        _say(f"{key + ':':<12}{_one_line(value, 400)}")
    return EXIT_OK


# -- tag ------------------------------------------------------------------------------------


def add_tag_command(commands: Subcommands) -> None:
    """Register ``zsv tag``."""
    parser = commands.add_parser(
        "tag",
        help="tag every image of a folder or an index with its likely labels",
        description=(
            "Score --labels against every image under SOURCE (a folder of images, or an "
            "index folder, whose stored vectors are used: nothing is re-encoded) and "
            "print one row per image with the labels at or above --min-probability: "
            "zero, one or several, as each label's probability is independent."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="folder of images, or an index folder")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LIST",
        help='comma-separated labels, e.g. "a dog,a cat,a beach"',
    )
    parser.add_argument(
        "--min-probability",
        type=probability_arg,
        default=TAG_MIN_PROBABILITY,
        metavar="P",
        help=f"keep labels at least this likely (default {TAG_MIN_PROBABILITY})",
    )
    parser.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default csv)"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="folders only: leave out files or folders matching GLOB (repeatable)",
    )
    parser.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="images per batch")
    _add_model_options(
        parser,
        model_help="checkpoint (default: the index's; for a folder $ZSV_MODEL or "
        "google/siglip-so400m-patch14-384)",
    )
    parser.set_defaults(handler=run_tag)


TAG_MIN_PROBABILITY = 0.1
"""``zsv tag``'s default threshold, the same as ``examples/tag_folder.py``'s."""


def run_tag(args: argparse.Namespace) -> int:
    """``zsv tag``: one CSV or JSON row per image with its likely labels."""
    import csv

    from zeroshot_vision._checks import clean_labels
    from zeroshot_vision.index import IndexFolder

    labels = clean_labels(args.labels)
    source = Path(args.source).expanduser()
    show_bar = sys.stderr.isatty()
    if IndexFolder.exists(source):
        from zeroshot_vision.engine import SearchEngine

        if args.exclude:
            raise InvalidInputError("--exclude applies to folders of images, not to an index")
        with SearchEngine.open(
            source, model=args.model, device=args.device, dtype=args.dtype, progress=_interactive()
        ) as engine:
            report = engine.classify_indexed(labels, progress=show_bar)
    elif source.is_dir():
        from zeroshot_vision.encoder import Encoder
        from zeroshot_vision.index.scan import check_exclude, scan_source

        scan = scan_source(source, exclude=check_exclude(args.exclude))
        encoder = Encoder.from_pretrained(
            args.model, device=args.device, dtype=args.dtype, progress=_interactive()
        )
        report = encoder.classify_many(
            [image.path for image in scan.images],
            labels,
            batch_size=args.batch_size,
            progress=show_bar,
        )
    else:
        raise InvalidInputError(f"{args.source} is neither a folder of images nor an index")
    for failure in report.failed:
        _say(f"zsv: skipped {failure.source}: {failure.reason}", sys.stderr)
    rows = [(result, result.likely(args.min_probability)) for result in report.results]
    if args.format == "json":
        _print_json(
            [
                {
                    "image": result.source,
                    "labels": [{"label": s.label, "probability": s.probability} for s in likely],
                }
                for result, likely in rows
            ]
        )
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["image", "labels", "probabilities"])
        for result, likely in rows:
            writer.writerow(_tag_row(result, likely))
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _tag_row(result: ImageLabels, likely: Sequence[Any]) -> list[str]:
    # Control characters in a file name must not reach the terminal raw (see _say).
    return [
        printable(result.source),
        ";".join(printable(s.label) for s in likely),
        ";".join(f"{s.probability:.4f}" for s in likely),
    ]


# -- duplicates -----------------------------------------------------------------------------


def _threshold(value: float, name: str) -> float:
    from zeroshot_vision.duplicates import check_threshold

    return check_threshold(value)


threshold_arg = argparse_number(_threshold, float)


def add_duplicates_command(commands: Subcommands) -> None:
    """Register ``zsv duplicates``."""
    from zeroshot_vision.duplicates import DEFAULT_DUPLICATE_THRESHOLD

    parser = commands.add_parser(
        "duplicates",
        help="find near-duplicate images in an index",
        description=(
            "Group the images of INDEX_DIR whose stored vectors have a cosine of "
            "--threshold or more (resized, re-compressed or slightly cropped copies). "
            "Nothing is re-encoded and no model is loaded."
        ),
    )
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "--threshold",
        type=threshold_arg,
        default=DEFAULT_DUPLICATE_THRESHOLD,
        metavar="T",
        help=f"cosine for a near-duplicate, in (0, 1] (default {DEFAULT_DUPLICATE_THRESHOLD})",
    )
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    parser.set_defaults(handler=run_duplicates)


def run_duplicates(args: argparse.Namespace) -> int:
    """``zsv duplicates``: the groups, each with its pairs and their scores."""
    from zeroshot_vision.duplicates import find_duplicates
    from zeroshot_vision.index import IndexFolder

    store = IndexFolder.open(args.index).open_store()
    try:
        groups = find_duplicates(
            store, threshold=args.threshold, progress=sys.stderr.isatty() and not args.json
        )
        paths = _paths_of(store, [item for group in groups for item in group.ids])
    finally:
        store.close()
    if args.json:
        _print_json(
            [{**group.to_json(), "paths": [paths.get(i) for i in group.ids]} for group in groups]
        )
        return EXIT_OK
    if not groups:
        _say(f"no near-duplicates at threshold {args.threshold}")
        return EXIT_OK
    for n, group in enumerate(groups, start=1):
        _say(f"group {n}: {len(group.ids)} images")
        for item in group.ids:
            _say(f"  {_one_line(paths.get(item) or item, 200)}")
        for pair in group.pairs:
            _say(f"    {pair.score:.4f}  {_one_line(pair.first, 60)}  {_one_line(pair.second, 60)}")
    images = sum(len(group.ids) for group in groups)
    plural = "s" if len(groups) != 1 else ""
    _say(f"{len(groups)} group{plural}, {images} images (threshold {args.threshold})")
    return EXIT_OK


def _paths_of(store: Any, ids: list[str]) -> dict[str, str]:
    records = store.fetch(ids) if ids else {}
    return {
        item: record.metadata["path"]
        for item, record in records.items()
        if isinstance(record.metadata.get("path"), str)
    }


# -- export / import ------------------------------------------------------------------------


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
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .parquet file to write")
    parser.add_argument(
        "--batch-size", type=positive_int_arg, default=1_000, metavar="N", help="rows per batch"
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``zsv export``: stream the index into a Parquet file."""
    from zeroshot_vision.index.exchange import export_index

    count = export_index(
        args.index, args.out, batch_size=args.batch_size, progress=sys.stderr.isatty()
    )
    _say(f"exported {count} vectors to {args.out}")
    return EXIT_OK


def add_import_command(commands: Subcommands) -> None:
    """Register ``zsv import``."""
    parser = commands.add_parser(
        "import",
        help="add precomputed vectors from a Parquet file to an index",
        description=(
            "Upsert the records of FILE (columns id, vector and optionally metadata) into "
            "INDEX_DIR, creating it if needed. The vectors must come from the index's "
            "model. Needs the 'parquet' extra."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="a .parquet file, e.g. from zsv export")
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "--model",
        metavar="M",
        help="for a new index: the model that made the vectors (default: the one the file "
        "names, else $ZSV_MODEL or google/siglip-so400m-patch14-384)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int_arg, default=1_000, metavar="N", help="rows per batch"
    )
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """``zsv import``: stream a Parquet file into an index folder."""
    from zeroshot_vision.index.exchange import import_index

    count = import_index(
        args.file,
        args.index,
        model=args.model,
        batch_size=args.batch_size,
        progress=sys.stderr.isatty(),
    )
    _say(f"imported {count} vectors into {args.index}")
    return EXIT_OK


# -- app ------------------------------------------------------------------------------------


def add_app_command(commands: Subcommands) -> None:
    """Register ``zsv app``."""
    parser = commands.add_parser(
        "app",
        help="search, browse and classify in the browser (Streamlit)",
        description="Serve the Streamlit app for INDEX_DIR. Needs the 'app' extra.",
    )
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "--port", type=positive_int_arg, default=8501, metavar="N", help="TCP port (default 8501)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--model", metavar="M", help="use this checkpoint instead of the index's")
    add_device_options(parser, dtype=False)
    parser.set_defaults(handler=run_app)


def run_app(args: argparse.Namespace) -> int:
    """``zsv app``: serve the app until Ctrl-C (the server runs in a subprocess)."""
    from zeroshot_vision.app import launch

    process = launch(
        args.index, host=args.host, port=args.port, model=args.model, device=args.device
    )
    if process.returncode == 0:
        return EXIT_OK
    # A negative code means a signal stopped the server: our Ctrl-C handling terminated it.
    return EXIT_INTERRUPTED if process.returncode < 0 else EXIT_ERROR


# -- entry point ----------------------------------------------------------------------------

COMMANDS: list[Callable[[Subcommands], None]] = [
    add_download_command,
    add_index_command,
    add_search_command,
    add_classify_command,
    add_tag_command,
    add_duplicates_command,
    add_export_command,
    add_import_command,
    add_info_command,
    add_app_command,
    add_eval_command,
]
"""The subcommand registrars, in ``--help`` order; each adds one parser to the subparsers."""


def build_parser() -> argparse.ArgumentParser:
    """The ``zsv`` argument parser with every subcommand in :data:`COMMANDS`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("zeroshot-vision")
    except PackageNotFoundError:
        package_version = "unknown"
    parser = argparse.ArgumentParser(
        prog="zsv",
        description="Zero-shot semantic image search with SigLIP.",
        epilog=(
            "Set ZSV_MODEL to a local checkpoint folder to use it by default. Exit codes: "
            "0 success, 1 error, 2 bad usage, 3 some items failed, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"zsv {package_version}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(commands)
    for subparser in commands.choices.values():
        # -v also works after the subcommand (zsv index ... -v), where users type it.
        subparser.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("zsv: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger("zeroshot_vision")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if verbosity < 2:
        # httpx logs every request at INFO.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if verbosity < 1:
        # The engine warns about each unreadable image; ``zsv index`` lists them at the end.
        logging.getLogger("zeroshot_vision.engine").setLevel(logging.ERROR)
        # transformers' advisories (no torchvision, config defaults) are noise for a CLI
        # user; -v shows them. Set before transformers is first imported, which reads it.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zsv`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except ZeroshotVisionError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except OSError as exc:  # file-system trouble: permissions, a full disk, a missing file
        _error(_os_error_message(exc))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
