"""``zsv``: the command line. A thin layer: parse arguments, call the library, format output.

Subcommands: ``download`` (Unsplash Lite photos), ``index`` (a folder into an index
folder), ``search`` (text queries), ``classify`` (zero-shot labels for one image),
``info`` (what an index holds) and ``app`` (the Streamlit app). Each is registered by one
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

from zeroshot_vision._text import printable, printable_json
from zeroshot_vision.errors import InvalidFilterError, InvalidInputError, ZeroshotVisionError

if TYPE_CHECKING:
    from typing import TypeAlias

    from zeroshot_vision.datasets.unsplash import DownloadOutcome
    from zeroshot_vision.pipeline import IndexProgress
    from zeroshot_vision.types import SearchResult

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "COMMANDS",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "build_parser",
    "main",
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


def _default_model() -> str:
    from zeroshot_vision.encoder import DEFAULT_MODEL

    return os.environ.get("ZSV_MODEL") or DEFAULT_MODEL


def _add_model_options(parser: argparse.ArgumentParser, *, model_help: str) -> None:
    parser.add_argument("--model", metavar="M", help=model_help)
    parser.add_argument(
        "--device", metavar="D", help="torch device: cpu, cuda, cuda:1, mps (default: best)"
    )
    parser.add_argument(
        "--dtype", metavar="T", help="torch dtype: float32, bfloat16, float16 (default: auto)"
    )


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
        "--width", type=int, default=640, metavar="PX", help="width in pixels (default 640)"
    )
    parser.add_argument(
        "--workers", type=int, default=8, metavar="N", help="parallel requests (default 8)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N photos")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds per request (default 30)"
    )
    parser.add_argument(
        "--retries", type=int, default=3, metavar="N", help="retries on 5xx/429/errors (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    """``zsv download``: fetch the photos, print a one-line summary."""
    from zeroshot_vision.datasets.unsplash import (
        FAILURES_FILE,
        RetryPolicy,
        download_photos,
        read_photos,
    )

    for name in ("width", "workers", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name} must be a positive number, got {value}")
    if args.retries < 0:
        raise InvalidInputError(f"--retries must be 0 or more, got {args.retries}")
    if not 0 < args.timeout < float("inf"):  # also refuses nan
        raise InvalidInputError(
            f"--timeout must be a positive number of seconds, got {args.timeout}"
        )
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
        "google/siglip-so400m-patch14-384)",
    )
    parser.add_argument(
        "--store", choices=("faiss", "pinecone"), help="vector store (default: faiss)"
    )
    parser.add_argument("--pinecone-host", metavar="HOST", help="Pinecone index host")
    parser.add_argument("--pinecone-index", metavar="NAME", help="Pinecone index name")
    parser.add_argument("--namespace", metavar="NS", help="Pinecone namespace")
    parser.add_argument("--batch-size", type=int, metavar="N", help="images per batch")
    parser.add_argument(
        "--commit-every",
        type=float,
        default=0.0,
        metavar="S",
        help="commit at most every S seconds instead of every batch (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(handler=run_index)


def run_index(args: argparse.Namespace) -> int:
    """``zsv index``: create or update an index folder."""
    from zeroshot_vision.pipeline import index_source

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
    if args.batch_size is not None and args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be a positive number, got {args.batch_size}")
    bar: Any = None

    def on_progress(progress: IndexProgress) -> None:
        nonlocal bar
        if bar is None:
            bar = _progress_bar(progress.total, unit="img", desc="index")
            if bar is None:
                return
        bar.update(progress.advanced)
        if progress.failed:
            bar.set_postfix(failed=progress.failed, refresh=False)

    try:
        report = index_source(
            args.source,
            args.index,
            model=args.model,
            store=args.store,
            store_options=given or None,
            images_dir=args.images,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            commit_every=args.commit_every,
            progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        _print_json(report.to_json())
        return EXIT_OK
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
        help="search an index with words",
        description="Find the images in INDEX_DIR that best match QUERY.",
    )
    parser.add_argument("query", metavar="QUERY", help='what to look for, e.g. "a red bicycle"')
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    parser.add_argument(
        "-k", type=int, default=10, metavar="N", help="how many results (default 10)"
    )
    parser.add_argument(
        "--filter",
        metavar="JSON",
        help='metadata filter, e.g. \'{"country": "Iceland", "year": {"$gte": 2020}}\'',
    )
    parser.add_argument("--min-probability", type=float, metavar="P", help="drop weaker hits")
    parser.add_argument("--negative", metavar="TEXT", help="steer away from this description")
    _add_model_options(parser, model_help="use this checkpoint instead of the index's")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_search)


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
    for key in ("description", "ai_description", "path"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


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
    from zeroshot_vision.index_dir import close_store, open_engine

    query_filter = parse_filter(args.filter)
    if args.k < 1:
        raise InvalidInputError(f"-k must be a positive number, got {args.k}")
    engine = open_engine(args.index, model=args.model, device=args.device, dtype=args.dtype)
    try:
        results = engine.search(
            args.query,
            k=args.k,
            filter=query_filter,
            min_probability=args.min_probability,
            negative=args.negative,
        )
    finally:
        close_store(engine.store)
    if args.json:
        _print_json(
            [
                {
                    "rank": rank,
                    "id": r.id,
                    "score": r.score,
                    "probability": r.probability,
                    "metadata": dict(r.metadata),
                }
                for rank, r in enumerate(results, start=1)
            ]
        )
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
        help="score text labels against one image",
        description="Zero-shot classification: how well each label describes IMAGE.",
    )
    parser.add_argument("image", metavar="IMAGE", help="an image file")
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
        "--softmax", action="store_true", help="shares that sum to 1 (pick exactly one label)"
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    """``zsv classify``: print labels with probabilities, most likely first."""
    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.stores.faiss import FaissStore

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise InvalidInputError("--labels holds no label; give e.g. --labels 'a dog,a cat'")
    if not Path(args.image).is_file():
        raise InvalidInputError(f"{args.image} is not a file")
    encoder = Encoder.from_pretrained(
        args.model or _default_model(), device=args.device, dtype=args.dtype
    )
    # Classification needs no stored vectors: an empty in-memory store completes the engine.
    engine = SearchEngine(encoder, FaissStore(encoder.dim))
    scores = engine.classify(args.image, labels, softmax=args.softmax)  # best first
    if args.json:
        _print_json(
            [{"label": s.label, "probability": s.probability, "score": s.score} for s in scores]
        )
        return EXIT_OK
    width = max(len("label"), *(_columns(s.label) for s in scores))
    _say(f"{_pad('label', width)}  {'prob':>6}  {'score':>7}")
    for s in scores:
        _say(f"{_pad(s.label, width)}  {s.probability:>6.4f}  {s.score:>7.4f}")
    return EXIT_OK


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
    from zeroshot_vision.index_dir import (
        close_store,
        index_size_bytes,
        open_store,
        read_settings,
    )
    from zeroshot_vision.pipeline import read_state_summary

    settings = read_settings(args.index)
    store = open_store(args.index, settings)
    try:
        count = len(store)
    finally:
        close_store(store)
    size = index_size_bytes(args.index)
    summary = read_state_summary(args.index)
    info: dict[str, Any] = {
        "index": str(Path(args.index).resolve()),
        "count": count,
        "model": settings.model,
        "dim": settings.dim,
        "store": settings.store,
        "store_options": dict(settings.store_options),
        "size_bytes": size,
        "source": summary.source,
        "bad_images": summary.failed,
    }
    if args.json:
        _print_json(info)
        return EXIT_OK
    rows = [
        ("index", info["index"]),
        ("count", str(count)),
        ("model", settings.model),
        ("dim", str(settings.dim)),
        ("store", settings.store + "".join(f" {k}={v}" for k, v in info["store_options"].items())),
        ("size", _human_size(size)),
        ("source", summary.source or "-"),
        ("bad images", str(summary.failed)),
    ]
    for key, value in rows:
        _say(f"{key + ':':<12}{value}")
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
        "--port", type=int, default=8501, metavar="N", help="TCP port (default 8501)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--model", metavar="M", help="use this checkpoint instead of the index's")
    parser.add_argument(
        "--device", metavar="D", help="torch device: cpu, cuda, cuda:1, mps (default: best)"
    )
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
    add_info_command,
    add_app_command,
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
