"""``zsv serve``: the model loaded once, behind an HTTP API (see docs/server.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import (
    add_device_options,
    argparse_number,
    non_negative_int_arg,
    positive_int_arg,
)
from zeroshot_vision._cli.output import interactive, say
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = ["add_serve_command", "run_serve"]


def _wait_ms(value: float, name: str) -> float:
    if not 0 <= value <= 10_000:
        raise InvalidInputError(f"{name} must be from 0 to 10000 milliseconds, got {value}")
    return value


_wait_ms_arg = argparse_number(_wait_ms, float)


def add_serve_command(commands: Subcommands) -> None:
    """Register ``zsv serve``."""
    parser = commands.add_parser(
        "serve",
        help="serve search, classify and embeddings over HTTP, the model loaded once",
        description=(
            "Load the model once and serve an HTTP API: OpenAI-compatible /v1/embeddings "
            "(texts and images), /v1/search, /v1/classify, /v1/tag, index info, health "
            "and Prometheus metrics, with dynamic batching. `zsv search --server URL` "
            "uses it. Needs the 'server' extra. See docs/server.md."
        ),
    )
    parser.add_argument(
        "--index",
        dest="indexes",
        action="append",
        metavar="[NAME=]DIR",
        help="an index folder to serve, named NAME in the API (default: the folder's "
        "name); repeatable",
    )
    parser.add_argument(
        "--model",
        metavar="M",
        help="use this checkpoint for every index; alone, serve it for embeddings and "
        "classify without an index",
    )
    add_device_options(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; any other needs an API key)",
    )
    parser.add_argument(
        "--port",
        type=non_negative_int_arg,
        default=8000,
        metavar="N",
        help="TCP port (default 8000; 0 picks a free one)",
    )
    parser.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="require this file's key as a bearer token (default: $ZSV_API_KEY, if set)",
    )
    parser.add_argument(
        "--allow-writes", action="store_true", help="let the API add and remove records"
    )
    parser.add_argument(
        "--max-batch-size",
        type=positive_int_arg,
        default=None,
        metavar="N",
        help="most texts or images in one forward pass (default 32; 1 turns batching off)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=_wait_ms_arg,
        default=None,
        metavar="MS",
        help="how long a request waits for others to share its batch (default 5)",
    )
    parser.add_argument(
        "--queue-size",
        type=positive_int_arg,
        default=None,
        metavar="N",
        help="most requests waiting for the model; more get 503 (default 64)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let browser pages from ORIGIN call the API (repeatable; default: CORS off)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log one line per request (no headers)"
    )
    parser.set_defaults(handler=run_serve)


def _log_uvicorn(*, access_log: bool) -> None:
    """uvicorn's records on stderr like the library's; its access lines when asked for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("zsv: %(levelname)s: %(name)s: %(message)s"))
    server_log = logging.getLogger("uvicorn")
    server_log.handlers[:] = [handler]
    server_log.setLevel(logging.WARNING)
    server_log.propagate = False
    # The access log has its own level: its lines are INFO records.
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)


def run_serve(args: argparse.Namespace) -> int:
    """``zsv serve``: serve until Ctrl-C or SIGTERM, then finish the requests in flight."""
    from zeroshot_vision._optional import require

    require("fastapi", extra="server", purpose="zsv serve")
    require("uvicorn", extra="server", purpose="zsv serve")
    from zeroshot_vision.server._batching import (
        DEFAULT_MAX_BATCH_SIZE,
        DEFAULT_MAX_WAIT_MS,
        DEFAULT_QUEUE_SIZE,
    )
    from zeroshot_vision.server._run import serve
    from zeroshot_vision.server._security import load_api_key
    from zeroshot_vision.server._service import BatchOptions, parse_index_spec

    if not args.indexes and args.model is None:
        raise InvalidInputError("give an index to serve (--index DIR) or a model (--model M)")
    specs = [parse_index_spec(text) for text in args.indexes or []]
    batching = BatchOptions(
        max_batch_size=args.max_batch_size or DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms=DEFAULT_MAX_WAIT_MS if args.max_wait_ms is None else args.max_wait_ms,
        queue_size=args.queue_size or DEFAULT_QUEUE_SIZE,
    )

    _log_uvicorn(access_log=args.access_log)

    def listening(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        say(
            f"zsv: serving http://{shown}:{port} once the model has loaded "
            f"(API docs at /docs; Ctrl-C stops)",
            sys.stderr,
        )

    serve(
        specs,
        host=args.host,
        port=args.port,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        api_key=load_api_key(args.api_key_file),
        allow_writes=args.allow_writes,
        batching=batching,
        cors_origins=args.cors_origin or (),
        access_log=args.access_log,
        progress=interactive(),
        on_listening=listening,
    )
    say("zsv: stopped", sys.stderr)
    return EXIT_OK
