"""HTTP/1.1 over a plain TCP socket: the ``http://`` transport of :class:`ServerClient`.

``zsv search --server URL`` is a process that lives for one request, and importing the
standard library's ``http.client`` costs a fifth of its client side (it imports the
``email`` package to parse headers, and ``ssl``: about 20 ms of CPU on a 2-core
machine, more than the request itself). For a plain ``http://`` server this module does
the little that request needs with :mod:`socket` alone: one request at a time on a
kept-alive connection, and an answer framed as RFC 9112 says (``Content-Length``, the
chunked transfer coding, or the end of the connection). ``https://`` goes through
``http.client``, where the TLS handshake costs more than the import.

A kept-alive connection that the server closed while it sat idle (uvicorn closes them
after 5 s) is noticed before any byte of the answer arrives, and the request is sent
once more on a new connection; the client's requests only read.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping
    from io import BufferedReader

__all__ = ["MAX_HEAD_BYTES", "PlainConnection", "ProtocolError", "TlsConnection"]

MAX_HEAD_BYTES = 64 << 10
"""The longest status line plus headers accepted (``http.client`` allows 64 KiB a line)."""

_MAX_HEADERS = 100
_NO_BODY = (204, 304)


class ProtocolError(Exception):
    """What came back is not an HTTP/1.x answer this client can read."""


class _StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


def _host_header(host: str, port: int, default_port: int) -> bytes:
    """``Host``'s value as ``http.client`` writes it: IPv6 in brackets, the port unless
    it is the scheme's default."""
    name = _encode_host(host)
    if b":" in name:
        name = b"[" + name + b"]"
    return name if port == default_port else name + b":%d" % port


def _encode_host(host: str) -> bytes:
    # The bytes go to getaddrinfo as they are: a str there would import the idna codec
    # (a few ms) for every name, ASCII ones too.
    return host.encode("ascii") if host.isascii() else host.encode("idna")


class PlainConnection:
    """One kept-alive HTTP/1.1 connection to ``host:port``, opened on first use.

    Args:
        host: The server's host name or address (IPv6 without brackets).
        port: Its port; ``None``: 80.
        timeout: Seconds each connect, send and receive may wait.
    """

    default_port = 80

    def __init__(self, host: str, port: int | None, *, timeout: float) -> None:
        self._address = (_encode_host(host), self.default_port if port is None else port)
        self._host = _host_header(host, self._address[1], self.default_port)
        self._timeout = timeout
        self._socket: socket.socket | None = None
        self._reader: BufferedReader | None = None

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        reader, sock = self._reader, self._socket
        self._reader = self._socket = None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def request(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer.

        Returns:
            The status code and the body (decoded from the chunked coding if it was sent
            so; no content coding is asked for).

        Raises:
            OSError: The connection failed or timed out (the connection is closed).
            ProtocolError: The answer is not HTTP/1.x (the connection is closed).
        """
        message = self._message(method, target, body, headers)
        for last_try in (self._socket is None, True):
            try:
                return self._exchange(method, message, reused=not last_try)
            except _StaleConnection:
                self.close()
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover

    def _message(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1".encode("ascii"), b"Host: " + self._host]
        lines.append(b"Accept-Encoding: identity")
        for name, value in headers.items():
            lines.append(f"{name}: {value}".encode("latin-1"))
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d" % len(body or b""))
        if any(b"\r" in line or b"\n" in line for line in lines):
            raise ValueError("a line break in the request line or a header")
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")

    def _connect(self) -> tuple[socket.socket, BufferedReader]:
        if self._socket is None or self._reader is None:
            # typeshed says str, but getaddrinfo takes bytes too (see _encode_host).
            address: tuple[Any, int] = self._address
            self._socket = socket.create_connection(address, timeout=self._timeout)
            self._reader = self._socket.makefile("rb")
        return self._socket, self._reader

    def _exchange(self, method: str, message: bytes, *, reused: bool) -> tuple[int, bytes]:
        sock, reader = self._connect()
        try:
            sock.sendall(message)
            status_line = reader.readline(MAX_HEAD_BYTES + 1)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            if reused:
                raise _StaleConnection from None
            raise
        if not status_line and reused:
            raise _StaleConnection
        while True:
            version, status = _status(status_line)
            fields = _headers(reader, len(status_line))
            if not 100 <= status < 200:
                break
            status_line = reader.readline(MAX_HEAD_BYTES + 1)  # an interim answer: skip it
        connection = {token.strip() for token in fields.get("connection", "").split(",")}
        will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        if method == "HEAD" or status in _NO_BODY:
            body = b""
        elif fields.get("transfer-encoding", "").rsplit(",", 1)[-1].strip() == "chunked":
            body = _chunked(reader)
        elif "content-length" in fields:
            body = _exactly(reader, _content_length(fields["content-length"]))
        else:
            body, will_close = reader.read(), True
        if will_close:
            self.close()
        return status, body


def _status(line: bytes) -> tuple[str, int]:
    if not line:
        raise ProtocolError("the server closed the connection without answering")
    if len(line) > MAX_HEAD_BYTES or not line.endswith(b"\n"):
        raise ProtocolError("the status line is too long")
    version, _, rest = line.decode("latin-1").strip().partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.0", "HTTP/1.1") or not (code.isdigit() and len(code) == 3):
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return version, int(code)


def _headers(reader: BufferedReader, used: int) -> dict[str, str]:
    """The header fields, names lowercased (repeated ones joined with commas)."""
    fields: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(MAX_HEAD_BYTES + 1)
        used += len(line)
        if used > MAX_HEAD_BYTES:
            raise ProtocolError(f"the headers are longer than {MAX_HEAD_BYTES} bytes")
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise ProtocolError("the connection closed in the middle of the headers")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ProtocolError(f"a malformed header line: {line[:80]!r}")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    raise ProtocolError(f"more than {_MAX_HEADERS} headers")


def _content_length(value: str) -> int:
    # A repeated header arrives joined ("12, 12"): valid only when every copy agrees.
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not (length := values.pop()).isdigit():
        raise ProtocolError(f"a malformed Content-Length: {value[:80]!r}")
    return int(length)


def _exactly(reader: BufferedReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ProtocolError(f"the connection closed after {len(data)} of {size} bytes")
    return data


def _chunked(reader: BufferedReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = reader.readline(MAX_HEAD_BYTES + 1)
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError(f"a malformed chunk size: {line[:80]!r}")
        size = int(size_text, 16)
        if size == 0:
            _headers(reader, 0)  # the trailer fields, up to the empty line
            return b"".join(parts)
        parts.append(_exactly(reader, size))
        if _exactly(reader, 2) != b"\r\n":
            raise ProtocolError("a chunk does not end with CRLF")


class TlsConnection:
    """The same interface over ``http.client``'s HTTPS connection (``https://`` URLs).

    Args:
        host: The server's host name or address.
        port: Its port; ``None``: 443.
        timeout: Seconds each connect, send and receive may wait.
    """

    def __init__(self, host: str, port: int | None, *, timeout: float) -> None:
        import http.client

        self._errors = http.client.HTTPException
        self._connection = http.client.HTTPSConnection(host, port, timeout=timeout)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        self._connection.close()

    def request(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """As :meth:`PlainConnection.request`."""
        try:
            self._connection.request(method, target, body, dict(headers))
            response = self._connection.getresponse()
            return response.status, response.read()
        except self._errors as exc:
            self._connection.close()
            raise ProtocolError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            self._connection.close()
            raise
