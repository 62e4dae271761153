"""The ``http://`` transport of the server's client (``server/_wire.py``), against a raw
loopback socket server that answers with exactly the bytes each test gives it, framed
each way HTTP/1.1 allows; the real server's answers are covered by test_server_client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from zeroshot_vision._errors import InvalidInputError, ServerUnreachableError
from zeroshot_vision.server._client import ServerClient
from zeroshot_vision.server._wire import PlainConnection, ProtocolError

Answer = Callable[[socket.socket, bytes], bool]
"""Given a connection and one request's bytes, answer it; ``False``: close the connection."""


class RawServer:
    """A loopback TCP server that hands each request (head and body) to ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # closing does not wake accept(): poll for the end
        self.stopped = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(10)
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    request = head + reader.read(length)
                    self.requests.append(request)
                    if not self.answer(conn, request):
                        break
                conn.shutdown(socket.SHUT_RDWR)  # the end of the body, for the until-close one

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def replying(*answers: bytes, keep: bool = True) -> Answer:
    """Answer the n-th request with ``answers[n]`` (the last one from then on)."""
    count = [0]

    def answer(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(answers[min(count[0], len(answers) - 1)])
        count[0] += 1
        return keep

    return answer


JSON = b'{"data": [1, 2]}'


@pytest.mark.parametrize(
    "framing",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\ncontent-type: application/json\r\n\r\n" + JSON,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\n" + JSON[:5] + b"\r\nB\r\n" + JSON[5:] + b"\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + JSON,
        b"HTTP/1.0 200 OK\r\n\r\n" + JSON,  # the body ends with the connection
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 16\r\n\r\n" + JSON,
    ],
    ids=["content-length", "chunked", "interim-100", "until-close", "connection-close"],
)
def test_every_framing_of_an_answer_reads_the_same_body(
    raw_server: Callable[[Answer], RawServer], framing: bytes
) -> None:
    closes = b"HTTP/1.0" in framing or b"Connection: close" in framing
    server = raw_server(replying(framing, keep=not closes))
    connection = PlainConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(2):
        assert connection.request("GET", "/v1/indexes", None, {}) == (200, JSON)
    # A kept-alive answer reuses its connection; one that closes opens the next anew.
    assert server.connections == (2 if closes else 1)
    connection.close()


def test_the_request_carries_host_length_and_headers(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    server = raw_server(replying(b"HTTP/1.1 204 No Content\r\n\r\n"))
    connection = PlainConnection("127.0.0.1", server.port, timeout=10)
    body = '{"query": "café"}'.encode()
    assert connection.request("POST", "/p/v1/search", body, {"accept": "application/json"}) == (
        204,
        b"",
    )
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /p/v1/search HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"accept: application/json" in lines
    assert sent == body
    connection.close()


def test_the_host_header_brackets_ipv6_and_leaves_out_the_default_port() -> None:
    assert PlainConnection("::1", 8000, timeout=1)._host == b"[::1]:8000"
    assert PlainConnection("example.org", None, timeout=1)._host == b"example.org"
    assert PlainConnection("bücher.example", 80, timeout=1)._host == b"xn--bcher-kva.example"


def test_a_kept_alive_connection_the_server_closed_is_reopened_once(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    """The server closes after each answer without saying so (as an idle timeout does):
    the next request notices before any answer arrives and goes out on a new connection."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + JSON
    server = raw_server(replying(ok, keep=False))
    connection = PlainConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):
        assert connection.request("POST", "/v1/search", b"{}", {}) == (200, JSON)
    assert server.connections == 3
    assert len(server.requests) == 3  # each request was answered once, none lost
    connection.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "without answering"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort", "closed after 5 of 99 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (70 << 10) + b"\r\n\r\n", "longer than"),
    ],
    ids=["silent", "not-http", "truncated", "two-lengths", "bad-chunk", "header", "many", "long"],
)
def test_an_answer_that_is_not_http_is_a_protocol_error(
    raw_server: Callable[[Answer], RawServer], answer: bytes, message: str
) -> None:
    server = raw_server(replying(answer, keep=False))
    connection = PlainConnection("127.0.0.1", server.port, timeout=10)
    with pytest.raises(ProtocolError, match=message):
        connection.request("GET", "/v1/indexes", None, {})
    assert connection._socket is None  # closed: the next request starts clean


def test_the_client_turns_transport_failures_into_its_errors(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    server = raw_server(replying(b"garbage\r\n", keep=False))
    with (
        ServerClient(f"http://127.0.0.1:{server.port}") as client,
        pytest.raises(ServerUnreachableError, match=r"no zsv server answers .*not an HTTP"),
    ):
        client.indexes()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with (
            ServerClient(url, timeout=0.3) as client,
            pytest.raises(ServerUnreachableError, match="timed out"),
        ):
            client.indexes()
    finally:
        silent.close()


def test_a_path_prefix_is_percent_encoded_and_a_bad_key_refused(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    server = raw_server(replying(b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"data": []}'))
    with ServerClient(f"http://127.0.0.1:{server.port}/zsv api/é/", api_key="k") as client:
        assert client.indexes() == []
    first_line, *headers = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert first_line == b"GET /zsv%20api/%C3%A9/v1/indexes HTTP/1.1"
    assert b"authorization: Bearer k" in headers
    with pytest.raises(InvalidInputError, match="not a valid host name"):
        ServerClient("http://" + "a" * 70 + "ü.example:8000")
    with pytest.raises(InvalidInputError, match="control character") as info:
        ServerClient("http://127.0.0.1:1", api_key="secret\nInjected: 1")
    assert "secret" not in str(info.value)
