"""``zsv``: the command line. A thin layer: parse arguments, call the library, format output.

Subcommands: ``download`` (Unsplash Lite photos), ``index`` (a folder into an index
folder), ``search`` (words, images, or both), ``classify`` (zero-shot labels for
images), ``tag`` (likely labels for a folder or an index), ``duplicates`` (near-duplicate
groups), ``export``/``import`` (vectors as Parquet), ``info`` (what an index holds),
``models`` (the model presets), ``app`` (the Streamlit app), ``serve`` (the HTTP API,
the model loaded once) and ``eval`` (measure a checkpoint); ``search``, ``classify``
and ``tag`` can hand their work to a running server (``--server URL``). Each lives in its
own module of this package and is registered by one small ``add_*_command`` function listed
in :data:`COMMANDS`, so adding a subcommand touches nothing else.

Exit codes (:mod:`~zeroshot_vision.cli.exits`): 0 success; 1 an error (one line on
stderr, no traceback, for every problem the library raises on purpose and for file-system
errors); 2 bad usage; 3 the command finished but some items failed (``download`` with
failed photos); 130 interrupted.

Building the parser imports no torch, transformers or faiss: each command imports what
it needs when it runs, so ``zsv --help`` and commands that load no model stay quick.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from zeroshot_vision.cli.app import add_app_command
from zeroshot_vision.cli.ask import add_ask_command
from zeroshot_vision.cli.classify import add_classify_command, add_tag_command
from zeroshot_vision.cli.download import add_download_command
from zeroshot_vision.cli.duplicates import add_duplicates_command
from zeroshot_vision.cli.eval import add_eval_command
from zeroshot_vision.cli.exits import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from zeroshot_vision.cli.export_import import add_export_command, add_import_command
from zeroshot_vision.cli.index import add_index_command
from zeroshot_vision.cli.info import add_info_command
from zeroshot_vision.cli.models import add_models_command
from zeroshot_vision.cli.output import error, os_error_message
from zeroshot_vision.cli.search import add_search_command
from zeroshot_vision.cli.serve import add_serve_command
from zeroshot_vision.errors import ZeroshotVisionError

if TYPE_CHECKING:
    from zeroshot_vision.cli.options import Subcommands

__all__ = [
    "COMMANDS",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "build_parser",
    "configure_logging",
    "main",
    "warnings_logged",
]

Handler = Callable[[argparse.Namespace], int]

COMMANDS: list[Callable[[Subcommands], None]] = [
    add_download_command,
    add_index_command,
    add_search_command,
    add_ask_command,
    add_classify_command,
    add_tag_command,
    add_duplicates_command,
    add_export_command,
    add_import_command,
    add_info_command,
    add_models_command,
    add_app_command,
    add_serve_command,
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


def configure_logging(verbosity: int) -> None:
    """Send the library's log records to stderr as ``zsv: LEVEL: logger: message``."""
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


@contextlib.contextmanager
def warnings_logged() -> Iterator[None]:
    """Show Python warnings as one ``zsv: WARNING:`` log line each, while a command runs.

    Python prints a warning as two raw lines (a source path, then the line of code that
    warned), which look like a crash; the library turns the warnings it expects (Pillow's
    about a damaged EXIF block) into log records naming the file, and this catches the
    rest. The previous hook is restored afterwards (``main`` may run inside a program).
    """
    log = logging.getLogger("zeroshot_vision.cli")

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        log.warning("%s (%s from %s)", message, category.__name__, Path(filename).name)

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zsv`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        with warnings_logged():
            return handler(args)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except ZeroshotVisionError as exc:
        error(str(exc))
        return EXIT_ERROR
    except OSError as exc:  # file-system trouble: permissions, a full disk, a missing file
        error(os_error_message(exc))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
