"""Refuse requests whose ``Host`` does not name this app: the defence against DNS rebinding.

A web page on ``evil.example`` can point that name at 127.0.0.1 once the page has loaded
(DNS rebinding); its scripts then reach the app on loopback as a "same-origin" site and
could read thumbnails and metadata. What gives it away is the ``Host`` header, which
still says ``evil.example``. Listening on loopback and Streamlit's XSRF and CORS settings
do not stop this; checking ``Host`` on every request, HTTP and websocket, does.

Allowed: an IP address (a rebinding attack needs a name it controls), ``localhost``, or
the name the app was told to serve under (``zsv app --host NAME``), each with the app's
port. Everything else gets ``403 Forbidden``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["HostCheck", "host_allowed"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LOCAL_NAMES = frozenset({"localhost", "localhost."})


def _split(host: str) -> tuple[str, int | None] | None:
    """``("name", port)`` from a Host header value, or ``None`` when malformed."""
    if host.startswith("["):  # an IPv6 literal: [::1]:8501
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, _, port_text = host.partition(":")
        port_text = port_text if ":" in host else None
    if port_text is not None and not (port_text.isascii() and port_text.isdigit()):
        return None
    return name.lower(), int(port_text) if port_text else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, *, address: str, port: int) -> bool:
    """Whether a request's ``Host`` header names the app served at ``address:port``.

    Args:
        host: The ``Host`` header, or ``None`` when the request had none.
        address: The address the app was told to listen on (``--host``).
        port: The port the app listens on.
    """
    if not host:
        return False
    parts = _split(host.strip())
    if parts is None:
        return False
    name, given_port = parts
    if (given_port if given_port is not None else 80) != port:
        return False
    served = address.strip().lower().strip("[]")
    return _is_ip(name) or name in _LOCAL_NAMES or name.rstrip(".") == served.rstrip(".")


class HostCheck:
    """ASGI middleware: answer ``403`` to any request whose ``Host`` is not allowed.

    Args:
        app: The application to protect.
        served: Returns the ``(address, port)`` the app serves, looked up per request
            (the port may only be known once the server has started).
    """

    def __init__(self, app: ASGIApp, served: Callable[[], tuple[str, int]]) -> None:
        self.app = app
        self._served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"host"), None
        )
        address, port = self._served()
        if host_allowed(host, address=address, port=port):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"Forbidden: this app answers only to its own address (Host header refused)\n"
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
