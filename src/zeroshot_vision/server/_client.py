"""A small client for ``zsv serve``: what ``zsv search|classify|tag --server URL`` uses.

It imports nothing heavy (no torch, no transformers, no FastAPI, not even an HTTP
library, whose import alone would cost a tenth of a second): ``http://`` is spoken over a
plain socket (:mod:`~zeroshot_vision.server._wire`), ``https://`` with the standard
library's ``http.client``, so a command that hands its work to a running server starts
in a fraction of a second. Answers come back as the library's own result types, and the
server's errors as the library's errors, so the command prints exactly what it prints
without a server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageTooLargeError,
    IndexNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    ServerResponseError,
    ServerUnreachableError,
)
from zeroshot_vision._results import SearchResults
from zeroshot_vision._search_result import SearchResult
from zeroshot_vision.server._wire import PlainConnection, ProtocolError, TlsConnection

if TYPE_CHECKING:
    from zeroshot_vision._types import ImageLabels, LabelScore

__all__ = [
    "SERVER_ENV",
    "ServerClient",
    "ServerResponseError",
    "ServerUnreachableError",
    "server_url",
]

SERVER_ENV = "ZSV_SERVER"
"""The environment variable naming a running server, when ``--server`` is not given."""


def server_url(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The server to use: ``given`` (``--server``), else ``$ZSV_SERVER``, else ``None``.

    Raises:
        InvalidInputError: The URL is not ``http://`` or ``https://``, or is malformed.
    """
    url = (
        given if given is not None else (os.environ if environ is None else environ).get(SERVER_ENV)
    )
    if url is None or not url.strip():
        return None
    url = url.strip().rstrip("/")
    example = "(e.g. http://127.0.0.1:8000)"
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(
            f"--server must be an http:// or https:// URL, got {url!r} {example}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed on access: a port out of range raises here)
    except ValueError as exc:  # an unclosed [ of an IPv6 address, a port that is no number
        raise InvalidInputError(f"--server {url!r} is not a valid URL: {exc} {example}") from None
    if not parts.hostname:
        raise InvalidInputError(f"--server {url!r} names no host {example}")
    return url


def _raise_for(status: int, body: Any) -> None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise ServerResponseError(f"the server answered HTTP {status}", status=status)
    message = str(error.get("message") or f"HTTP {status}")
    code = error.get("code")
    if status == 400:
        if code == "invalid_filter":
            raise InvalidFilterError(message)
        if code == "invalid_metadata":
            raise InvalidMetadataError(message)
        if code in ("invalid_image", "image_too_large"):
            source, _, reason = message.removeprefix("cannot read image ").partition(": ")
            kind = ImageTooLargeError if code == "image_too_large" else ImageDecodeError
            raise kind(source, reason or message)
        raise InvalidInputError(message)
    if status == 404 and code == "index_not_found":
        raise IndexNotFoundError(message)
    hint = " (give the key in ZSV_API_KEY)" if status == 401 else ""
    raise ServerResponseError(f"the server refused: {message}{hint}", status=status, code=code)


def _labels(rows: Sequence[Mapping[str, Any]]) -> tuple[LabelScore, ...]:
    # Imported here: a search (zsv search --server) needs none of _types' other dataclasses.
    from zeroshot_vision._types import LabelScore

    return tuple(
        LabelScore(label=row["label"], probability=row["probability"], score=row["score"])
        for row in rows
    )


class ServerClient:
    """Talks to a running ``zsv serve`` over one kept-alive connection.

    Over ``http://``, a connection the server closed while it sat idle is reopened once,
    before any answer was read (the requests only read, so sending one again is safe).

    Args:
        url: The server's base URL (``http://127.0.0.1:8000``); a path in it prefixes
            every route, percent-encoded where it needs to be.
        api_key: Its key, sent as a bearer token; default ``$ZSV_API_KEY``.
        timeout: Seconds to wait for an answer.

    Raises:
        InvalidInputError: The URL is not ``http://`` or ``https://`` (or names a host
            that cannot be encoded), or the key holds a character a header cannot carry.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"not an http:// or https:// URL: {url!r}")
        key = api_key if api_key is not None else os.environ.get("ZSV_API_KEY")
        self.url = url.rstrip("/")
        # A path with spaces or non-ASCII letters is sent percent-encoded, as a browser would.
        self._prefix = quote(parts.path.rstrip("/"), safe="/%!$&'()*+,;=:@~")
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        token = (key or "").strip()
        if token:
            if not token.isprintable() or max(map(ord, token)) > 0xFF:
                # A header cannot carry it (the key itself is never shown).
                raise InvalidInputError(
                    "the API key (ZSV_API_KEY) holds a control character or a letter "
                    "outside Latin-1"
                )
            self._headers["authorization"] = f"Bearer {token}"
        kind = TlsConnection if parts.scheme == "https" else PlainConnection
        try:
            self._connection = kind(parts.hostname, parts.port, timeout=timeout)
        except UnicodeError:  # a non-ASCII host name that IDNA cannot encode
            raise InvalidInputError(f"not a valid host name in {url!r}") from None

    def __repr__(self) -> str:
        return f"ServerClient({self.url!r})"

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._request("POST", path, json.dumps(body, ensure_ascii=False).encode())

    def _get(self, path: str) -> Any:
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        try:
            status, data = self._connection.request(
                method, self._prefix + path, body, self._headers
            )
        except (OSError, ProtocolError) as exc:
            raise ServerUnreachableError(
                f"no zsv server answers at {self.url} ({exc}); start one with: zsv serve "
                "--index DIR, or leave out --server (and ZSV_SERVER)"
            ) from exc
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        if status >= 400:
            _raise_for(status, answer)
        return answer

    @staticmethod
    def encode_image(data: bytes) -> str:
        """An image file's bytes as the API carries them (base64)."""
        import base64

        return base64.b64encode(data).decode("ascii")

    def search(
        self,
        *,
        index: str | None,
        query: str | None = None,
        images: Sequence[bytes] = (),
        image_weight: float | None = None,
        negative: Sequence[str] = (),
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        min_probability: float | None = None,
        mode: str | None = None,
        text_weight: float | None = None,
        group_by: str | None = None,
    ) -> SearchResults:
        """``POST /v1/search``: the results, best first, as ``SearchEngine.search`` gives."""
        body: dict[str, Any] = {"index": index, "k": k, "negative": list(negative)}
        if query is not None:
            body["query"] = query
        if images:
            body["images"] = [self.encode_image(data) for data in images]
        if image_weight is not None:
            body["image_weight"] = image_weight
        if filter is not None:
            body["filter"] = dict(filter)
        if min_probability is not None:
            body["min_probability"] = min_probability
        if mode is not None:
            body["mode"] = mode
        if text_weight is not None:
            body["text_weight"] = text_weight
        if group_by is not None:
            body["group_by"] = group_by
        answer = self._post("/v1/search", body)
        results = [
            SearchResult(
                id=row["id"],
                score=row["score"],
                probability=row["probability"],
                metadata=row["metadata"],
                found_by=tuple(row.get("found_by") or ("vector",)),
                snippet=row.get("snippet"),
                fused_score=row.get("fused_score"),
                moments=tuple(
                    SearchResult(
                        id=m["id"],
                        score=m["score"],
                        probability=m["probability"],
                        metadata={"timestamp": m["timestamp"]}
                        if m.get("timestamp") is not None
                        else {},
                    )
                    for m in row.get("moments") or ()
                ),
            )
            for row in answer["results"]
        ]
        return SearchResults(results, warnings=answer.get("warnings") or ())

    def classify(
        self, images: Sequence[bytes], labels: Sequence[str], *, softmax: bool | None = None
    ) -> list[tuple[LabelScore, ...] | str]:
        """``POST /v1/classify``: per image, its labels (most likely first) or why not."""
        answer = self._post(
            "/v1/classify",
            {
                "images": [self.encode_image(data) for data in images],
                "labels": list(labels),
                "softmax": softmax,
            },
        )
        return [
            _labels(row["labels"]) if row.get("labels") is not None else str(row["error"])
            for row in answer["results"]
        ]

    def tag(self, *, index: str | None, labels: Sequence[str]) -> list[ImageLabels]:
        """``POST /v1/tag``: every stored image's labels, from its stored vector."""
        from zeroshot_vision._types import ImageLabels

        answer = self._post("/v1/tag", {"index": index, "labels": list(labels)})
        return [
            ImageLabels(source=row["image"], labels=_labels(row["labels"]))
            for row in answer["results"]
        ]

    def indexes(self) -> list[dict[str, Any]]:
        """``GET /v1/indexes``."""
        return list(self._get("/v1/indexes")["data"])
