"""``zsv``: the command line. A thin layer: parse arguments, call the library, format output.

Subcommands: ``download`` (Unsplash Lite photos), ``index`` (a folder into an index
folder), ``search`` (words, images, or both), ``classify`` (zero-shot labels for
images), ``tag`` (likely labels for a folder or an index), ``duplicates`` (near-duplicate
groups), ``export``/``import`` (vectors as Parquet), ``info`` (what an index holds),
``reindex`` (move an index to another model), ``models`` (the model presets), ``app``
(the Streamlit app), ``serve`` (the HTTP API, the model loaded once) and ``eval``
(measure a checkpoint); ``search``, ``classify`` and ``tag`` can hand their work to a
running server (``--server URL``). Each lives in its own module of this package and is
registered by one small ``add_*_command`` function listed in :data:`COMMANDS`, so adding
a subcommand touches nothing else.

Exit codes (:mod:`~zeroshot_vision._cli.exits`): 0 success; 1 an error (one line on
stderr, no traceback, for every problem the library raises on purpose and for file-system
errors); 2 bad usage; 3 the command finished but some items failed (``download`` with
failed photos); 130 interrupted.

Building the parser imports no torch, transformers or faiss: each command imports what
it needs when it runs, so ``zsv --help`` and commands that load no model stay quick.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zeroshot_vision._cli.exits import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from zeroshot_vision._cli.output import error, os_error_message
from zeroshot_vision._cli.remote import uses_server
from zeroshot_vision._errors import ZeroshotVisionError

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = [
    "COMMANDS",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "LazyCommand",
    "build_parser",
    "configure_logging",
    "main",
    "run",
    "warnings_logged",
]

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True, kw_only=True)
class LazyCommand:
    """A subcommand registrar named by its module, imported only when its parser is built.

    ``zsv search --server URL`` then imports the search command's module alone, not the
    eleven others (about 40 ms of imports on a 2-core machine).

    Attributes:
        names: The subcommand names the registrar adds.
        module: The module (in :mod:`zeroshot_vision._cli`) defining it.
        function: The registrar's name in that module.
    """

    names: tuple[str, ...]
    module: str
    function: str

    def __call__(self, commands: Subcommands) -> None:
        register = getattr(importlib.import_module(self.module), self.function)
        register(commands)


def _command(names: str, module: str, function: str) -> LazyCommand:
    return LazyCommand(
        names=tuple(names.split()), module=f"zeroshot_vision._cli.{module}", function=function
    )


COMMANDS: list[Callable[[Subcommands], None]] = [
    _command("download", "download", "add_download_command"),
    _command("index", "index", "add_index_command"),
    _command("search", "search", "add_search_command"),
    _command("ask", "ask", "add_ask_command"),
    _command("classify", "classify", "add_classify_command"),
    _command("tag", "classify", "add_tag_command"),
    _command("duplicates", "duplicates", "add_duplicates_command"),
    _command("export", "export_import", "add_export_command"),
    _command("import", "export_import", "add_import_command"),
    _command("info", "info", "add_info_command"),
    _command("reindex", "reindex", "add_reindex_command"),
    _command("models", "models", "add_models_command"),
    _command("app", "app", "add_app_command"),
    _command("serve", "serve", "add_serve_command"),
    _command("eval", "eval", "add_eval_command"),
]
"""The subcommand registrars, in ``--help`` order; each adds one parser to the subparsers."""


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for.

    ``importlib.metadata.version`` scans the installed distributions (tens of
    milliseconds), which every other run of ``zsv`` would pay for nothing.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            package_version = version("zeroshot-vision")
        except PackageNotFoundError:
            package_version = "unknown"
        sys.stdout.write(f"zsv {package_version}\n")
        parser.exit()


def _named_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if any."""
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``zsv`` argument parser.

    Args:
        command: Build only this subcommand's parser (with any registrar that is not a
            :class:`LazyCommand`), when it names one; ``None`` or an unknown name: every
            subcommand in :data:`COMMANDS`, as ``zsv --help`` lists them.
    """
    known = {name for entry in COMMANDS if isinstance(entry, LazyCommand) for name in entry.names}
    only = command if command in known else None
    parser = argparse.ArgumentParser(
        prog="zsv",
        description="Zero-shot semantic image search with SigLIP.",
        epilog=(
            "Set ZSV_MODEL to a local checkpoint folder to use it by default. Exit codes: "
            "0 success, 1 error, 2 bad usage, 3 some items failed, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        if only is None or not isinstance(register, LazyCommand) or only in register.names:
            register(commands)
    for subparser in commands.choices.values():
        # -v also works after the subcommand (zsv index ... -v), where users type it.
        subparser.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def configure_logging(verbosity: int) -> None:
    """Send the library's log records to stderr as ``zsv: LEVEL: logger: message``."""
    import logging

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
        logging.getLogger("zeroshot_vision._engine").setLevel(logging.ERROR)
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

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        import logging

        logging.getLogger("zeroshot_vision._cli").warning(
            "%s (%s from %s)", message, category.__name__, Path(filename).name
        )

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zsv`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser(_named_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.verbose or not uses_server(args):
        # A command answered by a server loads no model here and logs nothing of its own:
        # leaving logging alone keeps its import (about 7 ms) out of a 150 ms process.
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


def run() -> int:
    """The ``zsv`` process (the console script, ``python -m zeroshot_vision``): :func:`main`
    on ``sys.argv``, its exit code returned for ``sys.exit``.

    Before the interpreter shuts down, the garbage there is now is collected (its
    finalizers run as usual), and what is still alive is frozen out of the cyclic
    collector (:func:`gc.freeze`): the shutdown's collections would otherwise walk every
    object the imports made, about 6 ms of a ``zsv search --server`` that should answer in
    150 ms. Output is flushed, ``atexit`` handlers run and modules are torn down as in any
    exit. :func:`main` itself leaves the collector alone: programs and tests call it.
    """
    code = main()
    gc.collect()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
