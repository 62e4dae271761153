"""Run the server: bind, load, serve, and stop cleanly (what ``zsv serve`` does).

The order matters. The port is bound first, so "address already in use" is reported in a
second rather than after the model has loaded (uvicorn would bind only after its startup
hook). Then the models load and the indexes open, then uvicorn serves on the bound
socket. SIGTERM (or Ctrl-C) makes uvicorn stop accepting connections and finish the
requests in flight; then the batchers finish their queues, the indexes close (committing
what the server wrote), and :func:`serve` returns normally.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._optional import require
from zeroshot_vision.server._security import ApiKey, check_exposure

__all__ = ["GRACEFUL_SECONDS", "OPENMP_WAIT_POLICY", "bind", "passive_openmp_threads", "serve"]

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 30
"""How long requests in flight may take to finish after SIGTERM."""


OPENMP_WAIT_POLICY = "OMP_WAIT_POLICY"
"""The variable OpenMP (torch's CPU thread pool) reads once, when torch is imported."""


def passive_openmp_threads() -> bool:
    """Make torch's idle CPU threads sleep rather than spin, unless the user chose.

    With the default (active) policy each of torch's OpenMP threads spins for a while
    after every parallel region, waiting for the next one. A server's text pass is a few
    hundred small regions; on cores that other processes share, the spinning threads take
    turns from the one doing the work: a lone base text query cost 1,445 ms of CPU on two
    threads against 180 ms on one, at load 6 on this project's two-core machine
    (docs/benchmarks.md has the server's split with and without). ``PASSIVE`` threads
    sleep at once, so a busy machine loses little and an idle one a wake-up per region.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` only when the variable is unset and torch is not
    imported yet (OpenMP reads it once, at torch's import; later it would change nothing).

    Returns:
        Whether it set the variable.
    """
    if OPENMP_WAIT_POLICY in os.environ:
        return False
    if "torch" in sys.modules:
        logger.debug("torch is already imported: its OpenMP threads keep their wait policy")
        return False
    os.environ[OPENMP_WAIT_POLICY] = "PASSIVE"
    return True


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), or a clear error.

    Raises:
        InvalidInputError: The port is in use, the address is not this machine's, or the
            host name does not resolve.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer from 0 to 65535, got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInputError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInputError(
                f"port {port} on {host} is already in use (another zsv serve?); "
                "pick another with --port"
            ) from exc
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


@contextmanager
def _stopped_by_signal_is_success() -> Iterator[None]:
    """Let a SIGTERM that uvicorn handled end this process normally.

    uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler
    that was there before it; with the default one the process would die of the signal
    (exit status -15) after having shut down cleanly. While serving, that handler is one
    that ignores it, so the caller's code after :func:`serve` runs and the exit is 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    indexes: Sequence[Any] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    api_key: ApiKey | None = None,
    allow_writes: bool = False,
    batching: Any = None,
    limits: Any = None,
    cors_origins: Sequence[str] = (),
    access_log: bool = False,
    progress: bool = False,
    on_listening: Callable[[str, int], None] | None = None,
    connections: Any = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C; return once everything is closed.

    Args:
        indexes: :class:`~zeroshot_vision.server._service.IndexSpec` of each index to serve.
        host: The address to listen on; loopback unless asked. Any other needs ``api_key``.
        port: The TCP port (0: any free one, passed to ``on_listening``).
        model: Use this checkpoint for every index (or serve it without an index).
        device: Torch device of the encoders.
        dtype: Torch dtype of the encoders.
        api_key: The bearer token requests must carry.
        allow_writes: Let the API add and remove records.
        batching: :class:`~zeroshot_vision.server._service.BatchOptions`.
        limits: :class:`~zeroshot_vision.server._inputs.Limits`.
        cors_origins: Browser origins allowed to call (none: CORS off).
        access_log: Log one line per request (uvicorn's access log; no headers).
        progress: Show the model loading on stderr.
        on_listening: Called with the address and port once the socket is bound, before
            the model loads.
        connections: :class:`~zeroshot_vision.server._connections.ConnectionLimits`
            (request-head and keep-alive timeouts, connection cap, backlog).

    torch's CPU threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``, see
    :func:`passive_openmp_threads`) unless the environment says otherwise.

    Raises:
        InvalidInputError: A port in use or an exposed address without a key (both before
            the model loads), or bad options.
        MissingDependencyError: The ``server`` extra is not installed.
    """
    passive_openmp_threads()
    uvicorn = require("uvicorn", extra="server", purpose="zsv serve")
    require("fastapi", extra="server", purpose="zsv serve")
    from zeroshot_vision.server._app import ServerSettings, create_app
    from zeroshot_vision.server._connections import DEFAULT_CONNECTION_LIMITS, uvicorn_config
    from zeroshot_vision.server._inputs import DEFAULT_LIMITS
    from zeroshot_vision.server._metrics import ServerMetrics
    from zeroshot_vision.server._service import BatchOptions, Service

    check_exposure(host, api_key)
    sock = bind(host, port)
    try:
        bound_port = int(sock.getsockname()[1])
        if on_listening is not None:
            on_listening(host, bound_port)
        metrics = ServerMetrics()
        service = Service.load(
            list(indexes),
            model=model,
            device=device,
            dtype=dtype,
            allow_writes=allow_writes,
            batching=batching or BatchOptions(),
            observer=metrics,
            progress=progress,
        )
        try:
            settings = ServerSettings(
                host=host,
                port=bound_port,
                api_key=api_key,
                limits=limits or DEFAULT_LIMITS,
                cors_origins=tuple(cors_origins),
            )
            app = create_app(service, settings=settings, metrics=metrics)
            config = uvicorn_config(
                app,
                limits=connections or DEFAULT_CONNECTION_LIMITS,
                access_log=access_log,
                graceful_seconds=GRACEFUL_SECONDS,
            )
            server = uvicorn.Server(config)
            logger.info("serving on http://%s:%d", host, bound_port)
            with _stopped_by_signal_is_success():
                server.run(sockets=[sock])
        finally:
            logger.info("stopping: finishing queued work and closing the indexes")
            service.close()
    finally:
        sock.close()
