"""Who may talk to ``zsv serve``: the API key, the ``Host`` check, the body size limit.

* **Loopback by default.** Binding any other address needs an API key
  (:func:`check_exposure`): an open port on a network with a model behind it is free
  compute for anyone, and the index's metadata may be private.
* **The API key** comes from a file (``--api-key-file``) or ``ZSV_API_KEY``, is compared
  in constant time against the ``Authorization: Bearer`` header, and is never logged nor
  shown: :class:`ApiKey` prints as ``ApiKey(***)``.
* **DNS rebinding** (a web page that points its own name at 127.0.0.1) is refused by the
  same ``Host`` rule as the app's (:func:`zeroshot_vision._host_check.host_allowed`).
* **Bodies** larger than the limit are refused while they arrive, before being buffered.

All three are ASGI middleware and answer in OpenAI's error envelope.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._host_check import host_allowed
from zeroshot_vision._json import json_depth

__all__ = [
    "API_KEY_ENV",
    "ApiKey",
    "BodyLimit",
    "BodyRefused",
    "Guard",
    "check_exposure",
    "error_response",
    "is_loopback",
    "load_api_key",
]

API_KEY_ENV = "ZSV_API_KEY"
"""The environment variable that holds the API key when no key file is given."""
MAX_API_KEY_FILE_BYTES = 64 << 10
"""The largest API key file read: a key is a line, not a document."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiKey:
    """A secret that never shows itself in a ``repr``, a log line or a traceback.

    Args:
        value: The key; surrounding whitespace is dropped.

    Raises:
        InvalidInputError: An empty key, or one that is not printable ASCII (an HTTP
            header could not carry it).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise InvalidInputError("the API key is empty")
        if not value.isascii() or not value.isprintable() or " " in value:
            raise InvalidInputError(
                "the API key must be printable ASCII without spaces (it travels in a header)"
            )
        self._value = value.encode("ascii")

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__

    def matches(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this key as a bearer token.

        The comparison takes the same time wherever the first difference is.
        """
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = token.strip().encode("utf-8", "replace")
        return secrets.compare_digest(given, self._value)


def load_api_key(
    key_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> ApiKey | None:
    """The API key from ``key_file``, else from ``$ZSV_API_KEY``, else ``None``.

    Raises:
        InvalidInputError: The file cannot be read, is not a regular file, is larger than
            :data:`MAX_API_KEY_FILE_BYTES`, or holds an unusable key.
    """
    if key_file is not None:
        from zeroshot_vision._files import read_regular

        try:  # bounded, and a regular file only: /dev/zero or a FIFO would never end
            text = read_regular(
                key_file, max_bytes=MAX_API_KEY_FILE_BYTES, what="the API key file"
            ).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read the API key file {key_file}: {exc}") from exc
        return ApiKey(text)
    value = (os.environ if environ is None else environ).get(API_KEY_ENV)
    return ApiKey(value) if value and value.strip() else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) reaches this machine only."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: ApiKey | None) -> None:
    """Refuse to listen beyond loopback without an API key.

    Raises:
        InvalidInputError: ``host`` is not a loopback address and no key is set.
    """
    if api_key is None and not is_loopback(host):
        raise InvalidInputError(
            f"listening on {host} exposes the server beyond this machine; give it an API key "
            f"(--api-key-file FILE or ${API_KEY_ENV}) or listen on 127.0.0.1"
        )


def error_response(
    status: int, message: str, *, type: str, code: str | None = None, param: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An error in OpenAI's envelope, as ``(status, headers, body)`` for raw ASGI."""
    body = json.dumps(
        {"error": {"message": message, "type": type, "param": param, "code": code}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, headers, body


async def _send_error(
    send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes], extra: Collection[Any] = ()
) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Guard:
    """ASGI middleware: the ``Host`` check, then the API key.

    Args:
        app: The application to protect.
        served: Returns the ``(address, port)`` the server listens on.
        api_key: The key every request must carry, or ``None`` for none.
        open_paths: Paths answered without a key (health checks for orchestrators).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        served: Callable[[], tuple[str, int]],
        api_key: ApiKey | None,
        open_paths: Collection[str] = ("/healthz", "/readyz"),
    ) -> None:
        self.app = app
        self._served = served
        self._api_key = api_key
        self._open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address, port = self._served()
        if not host_allowed(_header(scope, b"host"), address=address, port=port):
            await _send_error(
                send,
                error_response(
                    403,
                    "this server answers only to its own address (Host header refused)",
                    type="permission_error",
                    code="host_not_allowed",
                ),
            )
            return
        if (
            self._api_key is not None
            and scope["path"] not in self._open_paths
            and not self._api_key.matches(_header(scope, b"authorization"))
        ):
            missing = _header(scope, b"authorization") is None
            await _send_error(
                send,
                error_response(
                    401,
                    "no API key given (send Authorization: Bearer KEY)"
                    if missing
                    else "the API key is wrong",
                    type="authentication_error",
                    code="missing_api_key" if missing else "invalid_api_key",
                ),
                [(b"www-authenticate", b"Bearer")],
            )
            return
        await self.app(scope, receive, send)


class BodyRefused(HTTPException):
    """A request body refused while it arrives; ``code`` is the envelope's code."""

    def __init__(self, status_code: int, detail: str, *, code: str) -> None:
        super().__init__(status_code, detail)
        self.code = code


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, and JSON bodies
    nested deeper than ``max_depth`` with 400 ``invalid_json``.

    A declared ``Content-Length`` over the limit is refused before reading anything; a
    chunked body is counted as it arrives and cut off once it passes the limit. The
    nesting is measured on the whole body, without parsing it, before the app's JSON
    parser sees it: Python's parser recurses once per level, and a body nested some
    thousands of levels deep would end in ``RecursionError`` instead of a clear answer.

    Args:
        app: The application.
        max_bytes: The largest body accepted.
        max_depth: The deepest nesting of JSON arrays and objects accepted (``None``:
            not checked).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    @property
    def _too_large_message(self) -> str:
        return f"the request body is over the limit of {self.max_bytes:,} bytes"

    def _too_large(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return error_response(
            413, self._too_large_message, type="invalid_request_error", code="body_too_large"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, self._too_large())
            return
        seen = 0
        chunks: list[bytes] = []

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    # Raised inside the app's body reading: its handler answers 413.
                    raise BodyRefused(413, self._too_large_message, code="body_too_large")
                if self.max_depth is not None:
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        self._check_depth(b"".join(chunks))
                        chunks.clear()
            return message

        await self.app(scope, counting_receive, send)

    def _check_depth(self, body: bytes) -> None:
        assert self.max_depth is not None
        if body.count(b"[") + body.count(b"{") <= self.max_depth:
            return  # cannot be deeper: skip the measurement of most bodies
        depth = json_depth(body.decode("utf-8", "replace"))
        if depth > self.max_depth:
            raise BodyRefused(
                400,
                f"the request body is JSON nested {depth:,} levels deep; "
                f"the limit is {self.max_depth}",
                code="invalid_json",
            )
