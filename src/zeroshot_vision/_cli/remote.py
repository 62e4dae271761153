"""``--server URL`` (or ``$ZSV_SERVER``): hand ``search``, ``classify`` and ``tag`` to a
running ``zsv serve`` instead of loading the model in this process.

The commands print exactly what they print without a server; the answers come back as
the library's own types (:class:`~zeroshot_vision.server._client.ServerClient`). Nothing
here imports torch or transformers, which is the point: the command starts in a fraction
of a second.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from zeroshot_vision._constants import INDEX_MANIFEST
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.server._client import ServerClient

__all__ = [
    "MAX_REMOTE_IMAGE_BYTES",
    "add_server_option",
    "client_for",
    "index_reference",
    "read_image_file",
    "uses_server",
]

MAX_REMOTE_IMAGE_BYTES = 64 << 20
"""The largest image file sent to a server (its own limit, 10 MiB by default, is lower)."""


def read_image_file(path: str) -> bytes:
    """The bytes of an image file to send to a server: a regular file, read bounded.

    Raises:
        InvalidInputError: Not a regular file (``/dev/zero``, a FIFO), or larger than
            :data:`MAX_REMOTE_IMAGE_BYTES`.
        OSError: It cannot be read.
    """
    from zeroshot_vision._files import read_regular

    return read_regular(path, max_bytes=MAX_REMOTE_IMAGE_BYTES, what="the image")


def add_server_option(parser: argparse.ArgumentParser) -> None:
    """``--server URL``: use a running ``zsv serve`` (default ``$ZSV_SERVER``)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help="use the model of a running `zsv serve` at URL, e.g. http://127.0.0.1:8000 "
        "(default $ZSV_SERVER; its key from $ZSV_API_KEY)",
    )


def uses_server(args: argparse.Namespace) -> bool:
    """Whether the command takes ``--server`` and has one (given, or ``$ZSV_SERVER``), by
    :func:`~zeroshot_vision.server._client.server_url`'s rule; a malformed URL counts
    (:func:`client_for` reports it)."""
    if not hasattr(args, "server"):
        return False
    from zeroshot_vision.server._client import server_url

    try:
        return server_url(args.server) is not None
    except InvalidInputError:
        return True


def client_for(args: argparse.Namespace) -> ServerClient | None:
    """A client of the server the command should use, or ``None`` to work locally.

    Raises:
        InvalidInputError: A URL that is not http(s), or options that choose a local
            model (``--model``, ``--device``, ``--dtype``) together with a server.
    """
    from zeroshot_vision.server._client import ServerClient, server_url

    url = server_url(args.server)
    if url is None:
        return None
    local = [f"--{name}" for name in ("model", "device", "dtype") if getattr(args, name, None)]
    if local:
        raise InvalidInputError(
            f"{', '.join(local)} choose a model in this process; with --server (or "
            "ZSV_SERVER) the server's model answers: leave them out"
        )
    return ServerClient(url)


def index_reference(index: str) -> str:
    """What to send as ``index``: a local index folder as its absolute path, else a name.

    The server matches a path against the folders it serves, and anything else against
    their names (a folder that merely shares an index's name is not one).
    """
    path = Path(index).expanduser()
    if (path / INDEX_MANIFEST).is_file():
        return os.path.abspath(path)  # noqa: PTH100
    return index
