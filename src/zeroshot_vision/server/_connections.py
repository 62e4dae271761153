"""The connections of ``zsv serve``: what one client may hold open, and for how long.

A client that opens connections and sends half a request head ("slowloris") costs
nothing to send and, unchecked, ties up a file descriptor each forever: with a thousand
of them the process runs out of descriptors, every new connection fails to be accepted
(each failure logged), and no normal request is answered. uvicorn (0.55) has a
keep-alive timeout, a head-size limit and a backlog, but no deadline for the request
head and no cap on open connections (its ``limit_concurrency`` counts connections too,
and answers the *new* ones, the normal clients, with 503). So:

* :class:`GuardedH11Protocol`, uvicorn's h11 protocol given through its public
  ``http=`` option, closes a connection that has not sent a complete request head
  within ``header_timeout`` seconds of connecting (or of its previous response), and
  keeps at most ``max_connections`` open: past that, a new connection makes the one that
  has waited longest for its head to be closed (a slow client, never a request being
  answered), and only when every connection is busy answering is the new one refused.
* :func:`connection_limit` keeps that cap, plus the connections asyncio accepts in one
  go (as many as the backlog) before any of them is handled, under the process's
  file-descriptor limit, so accepting never fails with "too many open files" (which
  asyncio logs with a traceback for each connection it could not accept).
* :class:`RateLimitedLog` lets a few lines of one cause through per minute and counts
  the rest, so a flood of bad connections cannot fill the disk with log lines.
* :func:`uvicorn_config` puts them together with uvicorn's own limits.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio

    import uvicorn

__all__ = [
    "ConnectionLimits",
    "GuardedH11Protocol",
    "RateLimitedLog",
    "connection_limit",
    "limit_log_floods",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)

_RESERVED_FILES = 64
"""File descriptors kept for everything but connections (index files, model, threads)."""

_ACCEPT_BURSTS = 3
"""Backlogs' worth of connections that may be accepted before the connections closed to
make room for them are gone: a closed socket is released on a later turn of the event
loop, and asyncio accepts up to a backlog of connections each turn."""


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """What connections may hold, with ``zsv serve``'s defaults.

    Attributes:
        header_timeout: Seconds a connection has to send a complete request head, from
            when it opens or its previous response ends.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open.
        max_connections: Most connections open at once (lowered to fit the process's
            file-descriptor limit, see :func:`connection_limit`).
        max_header_bytes: Largest request head (h11's incomplete-event limit); larger is
            answered 400.
        backlog: Connections the kernel queues before they are accepted (asyncio also
            accepts up to this many at once).
    """

    header_timeout: float = 10.0
    keep_alive_timeout: int = 5
    max_connections: int = 1000
    max_header_bytes: int = 16 * 1024
    backlog: int = 128


DEFAULT_CONNECTION_LIMITS = ConnectionLimits()


def connection_limit(wanted: int, *, backlog: int = 0) -> int:
    """``wanted``, lowered so that the connections, and the few backlogs' worth accepted
    before the ones closed to make room are released, fit under the process's limit of
    open files (``RLIMIT_NOFILE``) with some left for everything else."""
    try:
        import resource
    except ImportError:  # not POSIX
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, int(soft) - _RESERVED_FILES - _ACCEPT_BURSTS * backlog))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for request heads and a connection cap.

    Subclass it through :meth:`configured` to set the limits; uvicorn creates one
    instance per connection.
    """

    header_timeout: float = DEFAULT_CONNECTION_LIMITS.header_timeout
    max_connections: int = DEFAULT_CONNECTION_LIMITS.max_connections

    @classmethod
    def configured(cls, *, header_timeout: float, max_connections: int) -> type[H11Protocol]:
        """A subclass with these limits, to pass as uvicorn's ``http=``."""
        return type(
            cls.__name__,
            (cls,),
            {"header_timeout": header_timeout, "max_connections": max_connections},
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            self._arm_head_deadline()  # a next request began after a response
        else:
            self._disarm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn's keep-alive timer covers the wait for the next request's first byte;
        # the head deadline covers it too, should that first byte come and no more.
        if self._waiting_for_head():
            self._arm_head_deadline()

    def _waiting_for_head(self) -> bool:
        """Whether the connection is between requests or inside an incomplete head."""
        return self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            return
        self._head_since = self.loop.time()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        logger.info(
            "closed a connection that sent no complete request head within %gs",
            self.header_timeout,
        )
        self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has waited longest for its head, or refuse this one."""
        oldest: GuardedH11Protocol | None = None
        for other in self.connections:
            if (
                other is not self
                and isinstance(other, GuardedH11Protocol)
                and other._waiting_for_head()
                and not other.transport.is_closing()
                and (oldest is None or other._head_since < oldest._head_since)
            ):
                oldest = other
        victim = oldest if oldest is not None else self
        logger.warning(
            "%d connections open, the limit is %d: closed the %s",
            len(self.connections),
            self.max_connections,
            "one that waited longest for its request head" if oldest else "new one",
        )
        victim._disarm_head_deadline()
        victim.transport.close()


class RateLimitedLog(logging.Filter):
    """Let at most ``burst`` records of one cause through per ``period`` seconds.

    A cause is the logger and the start of the message template with numbers and
    addresses blanked out (asyncio formats object addresses into its messages), so a
    thousand "Invalid HTTP request received." lines become a few, and the next line let
    through says how many were left out.
    """

    def __init__(self, *, burst: int = 5, period: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = str(record.msg).split("\n", 1)[0][:_CAUSE_CHARS]
        key = (record.name, _NUMBERS.sub("#", first_line))
        now = time.monotonic()
        with self._lock:
            started, passed, dropped = self._windows.get(key, (now, 0, 0))
            if now - started >= self.period:
                started, passed = now, 0
            if passed >= self.burst:
                self._windows[key] = (started, passed, dropped + 1)
                return False
            self._windows[key] = (started, passed + 1, 0)
            if len(self._windows) > 1000:  # many causes: forget the oldest windows
                for old in sorted(self._windows, key=lambda k: self._windows[k][0])[:500]:
                    del self._windows[old]
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this left out]"
        return True


_CAUSE_CHARS = 60
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")

_FLOODED_LOGGERS = ("uvicorn.error", "asyncio", __name__)


def limit_log_floods(filter: RateLimitedLog | None = None) -> RateLimitedLog:
    """Rate-limit the loggers a flood of connections writes to (uvicorn's, asyncio's,
    this module's); idempotent. Returns the filter in place."""
    for name in _FLOODED_LOGGERS:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, RateLimitedLog):
                return existing
    chosen = filter or RateLimitedLog()
    for name in _FLOODED_LOGGERS:
        logging.getLogger(name).addFilter(chosen)
    return chosen


def uvicorn_config(
    app: Any,
    *,
    limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
    access_log: bool = False,
    graceful_seconds: int | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration ``zsv serve`` runs ``app`` with.

    Args:
        app: The ASGI app.
        limits: Timeouts and caps.
        access_log: Log one line per request.
        graceful_seconds: How long requests in flight may finish after SIGTERM.
    """
    import uvicorn

    cap = connection_limit(limits.max_connections, backlog=limits.backlog)
    limit_log_floods()
    return uvicorn.Config(
        app,
        http=GuardedH11Protocol.configured(
            header_timeout=limits.header_timeout, max_connections=cap
        ),
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=graceful_seconds,
        timeout_keep_alive=limits.keep_alive_timeout,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=limits.backlog,
        # uvicorn answers 503 past this many connections or tasks. The cap above keeps
        # connections (and so tasks, one per connection) at or under it, give or take the
        # few closed but not yet gone in a burst: this is only a backstop.
        limit_concurrency=cap + _RESERVED_FILES,
        lifespan="off",
        server_header=False,
    )
