"""``zsv app``: the Streamlit app for an index, served in a subprocess."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from zeroshot_vision._cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from zeroshot_vision._cli.options import add_device_options, add_index_option, positive_int_arg

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = ["add_app_command", "run_app"]


def add_app_command(commands: Subcommands) -> None:
    """Register ``zsv app``."""
    parser = commands.add_parser(
        "app",
        help="search, browse and classify in the browser (Streamlit)",
        description="Serve the Streamlit app for INDEX_DIR. Needs the 'app' extra.",
    )
    add_index_option(parser)
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
    from zeroshot_vision._app import launch

    process = launch(
        args.index, host=args.host, port=args.port, model=args.model, device=args.device
    )
    if process.returncode == 0:
        return EXIT_OK
    # A negative code means a signal stopped the server: our Ctrl-C handling terminated it.
    return EXIT_INTERRUPTED if process.returncode < 0 else EXIT_ERROR
