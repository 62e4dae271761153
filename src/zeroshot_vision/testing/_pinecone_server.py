"""An in-process Pinecone data-plane server, for tests that use the real SDK.

:class:`PineconeTestServer` listens on ``127.0.0.1`` (a free port) and answers the REST
calls that the ``pinecone`` 10.x SDK makes against an index host: upsert, query, fetch,
delete, update, list and describe_index_stats. It keeps vectors in memory per namespace,
scores by cosine similarity, evaluates filters with the library's filter language, and
refuses what the service refuses with a 400: a body over 2 MB, more than 1,000 vectors or
ids, ``top_k`` out of 1..10,000, bad ids, bad metadata, a wrong dimension.

Tests can inspect what arrived (:attr:`PineconeTestServer.requests`,
:attr:`PineconeTestServer.max_in_flight`) and inject faults (:meth:`~PineconeTestServer.fail`,
:meth:`~PineconeTestServer.delay`).

Example:
    >>> from pinecone import Pinecone  # doctest: +SKIP
    >>> server = PineconeTestServer(dimension=4)
    >>> with server as host:  # doctest: +SKIP
    ...     index = Pinecone(api_key="test").Index(host=host)
    ...     store = PineconeStore(index)

It is a test double, not an emulator of every behaviour: writes are visible at once
(the service is eventually consistent), there is no sparse-vector support, and metadata
numbers come back as floats, as they do from the service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt

from zeroshot_vision._errors import InvalidFilterError
from zeroshot_vision.stores._filters import is_number, matches, validate_filter

__all__ = ["PineconeTestServer", "RecordedRequest"]

_loads: Callable[[bytes], Any]
_dumps: Callable[[Any], bytes]
try:  # orjson ships with pinecone 10.x and parses big upserts ~10x faster than json
    from orjson import dumps as _dumps
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the SDK, and so orjson, is normally there
    _loads = json.loads

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


logger = logging.getLogger(__name__)

OPERATIONS = (
    "upsert",
    "query",
    "fetch",
    "delete",
    "update",
    "list",
    "describe_index_stats",
)
_ROUTES = {
    ("POST", "/vectors/upsert"): "upsert",
    ("POST", "/query"): "query",
    ("GET", "/vectors/fetch"): "fetch",
    ("POST", "/vectors/delete"): "delete",
    ("POST", "/vectors/update"): "update",
    ("GET", "/vectors/list"): "list",
    ("POST", "/describe_index_stats"): "describe_index_stats",
    ("GET", "/describe_index_stats"): "describe_index_stats",
}
_DEFAULT_NAMESPACE_LABEL = "__default__"
# Bodies beyond this are not even read: the connection is answered and closed.
_MAX_READ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request the server answered.

    Attributes:
        operation: One of ``upsert``, ``query``, ``fetch``, ``delete``, ``update``,
            ``list``, ``describe_index_stats``, or ``unknown``.
        method: The HTTP method.
        path: The URL path and query string.
        body_bytes: Size of the request body in bytes.
        items: Vectors in an upsert, ids in a fetch or delete, else 0.
        namespace: The namespace the request named (``""`` for the default).
        status: The HTTP status the server answered.
        started: ``time.monotonic()`` when the request arrived.
        finished: ``time.monotonic()`` when the answer was sent.
        api_version: The ``X-Pinecone-Api-Version`` header, if sent.
    """

    operation: str
    method: str
    path: str
    body_bytes: int
    items: int
    namespace: str
    status: int
    started: float
    finished: float
    api_version: str | None = None


@dataclass
class _Fault:
    operation: str
    status: int
    on_call: int
    times: int
    message: str
    retry_after: str | None = None
    seen: int = 0
    fired: int = 0


@dataclass
class _Namespace:
    vectors: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PineconeTestServer:
    """A Pinecone index's data plane, in memory, over real HTTP on 127.0.0.1.

    Use it as a context manager, which starts it and returns its host URL, or call
    :meth:`start` and :meth:`stop`.

    Args:
        dimension: The index dimension. ``None`` takes it from the first upsert.
        metric: What ``describe_index_stats`` reports; scores are always cosine.
        api_key: When set, requests without this ``Api-Key`` header get a 401.
        echo_api_key: Error answers quote the ``Api-Key`` header the request carried, as
            some servers and proxies do; for testing that clients keep it out of their
            errors and logs.
        max_request_bytes: Largest request body accepted (the service's 2 MB, counted
            as 2,000,000 bytes like the store does).
        max_vectors_per_upsert: Most vectors one upsert may hold.
        max_ids_per_request: Most ids one fetch or delete may hold.
        max_metadata_bytes: Largest metadata, as compact JSON, on one vector.
        max_top_k: Largest ``topK`` a query may ask for.
        max_response_bytes: Largest query answer (the service's 4 MB); a larger one is
            refused with a 400, as the service does.
        list_page_size: Default page size of ``list``.
    """

    def __init__(
        self,
        *,
        dimension: int | None = None,
        metric: str = "cosine",
        api_key: str | None = None,
        echo_api_key: bool = False,
        max_request_bytes: int = 2_000_000,
        max_vectors_per_upsert: int = 1_000,
        max_ids_per_request: int = 1_000,
        max_metadata_bytes: int = 40 * 1024,
        max_top_k: int = 10_000,
        max_response_bytes: int = 4_000_000,
        list_page_size: int = 100,
    ) -> None:
        self.dimension = dimension
        self.metric = metric
        self.max_request_bytes = max_request_bytes
        self.max_vectors_per_upsert = max_vectors_per_upsert
        self.max_ids_per_request = max_ids_per_request
        self.max_metadata_bytes = max_metadata_bytes
        self.max_top_k = max_top_k
        self.max_response_bytes = max_response_bytes
        self.list_page_size = list_page_size
        self._api_key = api_key
        self._echo_api_key = echo_api_key
        self._lock = threading.Lock()
        self._namespaces: dict[str, _Namespace] = {}
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._delays: dict[str | None, float] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.host if self._httpd else "stopped"
        return f"PineconeTestServer({where}, dimension={self.dimension})"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free port of 127.0.0.1 and return the host URL."""
        if self._httpd is not None:
            return self.host
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pinecone-test-server",
            daemon=True,
        )
        self._thread.start()
        logger.debug("Pinecone test server listening at %s", self.host)
        return self.host

    def stop(self) -> None:
        """Stop serving and free the port (stored data is kept)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        # Keep-alive connections outlive the listening socket; end them too, so a stopped
        # server refuses everything like a dead host.
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """The URL to pass as ``Index(host=...)``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    # -- what tests look at ------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, in the order they finished (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        """The recorded requests of one operation, e.g. ``"upsert"``."""
        return [request for request in self.requests if request.operation == operation]

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being handled at the same moment."""
        with self._lock:
            return self._max_in_flight

    def clear_requests(self) -> None:
        """Forget recorded requests and the in-flight peak (stored data is kept)."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    def stored_ids(self, namespace: str = "") -> set[str]:
        """The ids stored in ``namespace``."""
        with self._lock:
            space = self._namespaces.get(namespace)
            return set(space.vectors) if space else set()

    def stored_metadata(self, namespace: str, item: str) -> dict[str, Any] | None:
        """The metadata stored for one id, or ``None`` when the id is absent."""
        with self._lock:
            space = self._namespaces.get(namespace)
            if space is None or item not in space.metadata:
                return None
            return dict(space.metadata[item])

    # -- fault injection ---------------------------------------------------------------

    def fail(
        self,
        operation: str,
        *,
        status: int = 400,
        on_call: int = 1,
        times: int = 1,
        message: str = "injected fault",
        retry_after: float | str | None = None,
    ) -> None:
        """Answer some future requests of ``operation`` with an error status.

        Counting starts now: ``on_call=2`` fails the second such request from here on,
        and ``times`` consecutive requests fail from that one. A failed request changes
        nothing. Remember the SDK retries 408, 429 and 5xx by itself (each retry counts
        as a call here), so a fast permanent failure is a 400.

        Args:
            operation: One of the operation names (see :class:`RecordedRequest`).
            status: The HTTP status to answer.
            on_call: Which request, counting from 1, fails first.
            times: How many consecutive requests fail.
            message: The error message in the body.
            retry_after: A ``Retry-After`` header to send with each failure (seconds, or
                any text, to test what clients make of it).
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; use one of {OPERATIONS}")
        if on_call < 1 or times < 1:
            raise ValueError("on_call and times must be at least 1")
        with self._lock:
            header = None if retry_after is None else str(retry_after)
            self._faults.append(_Fault(operation, status, on_call, times, message, header))

    def delay(self, seconds: float, operation: str | None = None) -> None:
        """Hold every answer (or only those of ``operation``) for ``seconds``."""
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; use one of {OPERATIONS}")
        with self._lock:
            self._delays[operation] = seconds

    def clear_faults(self) -> None:
        """Remove every injected fault and delay."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    # -- request handling (called from the handler threads) ----------------------------

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self, request: RecordedRequest) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests.append(request)

    def _delay_for(self, operation: str) -> float:
        with self._lock:
            return self._delays.get(operation, self._delays.get(None, 0.0))

    def _injected_fault(self, operation: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation != operation or fault.fired >= fault.times:
                    continue
                fault.seen += 1
                if fault.seen >= fault.on_call:
                    fault.fired += 1
                    return fault
            return None

    def _check_api_key(self, given: str | None) -> None:
        if self._api_key is not None and given != self._api_key:
            raise _BadRequest(401, "Invalid API Key")

    def _dispatch(self, operation: str, body: Any, query: dict[str, list[str]]) -> Any:
        handler = getattr(self, f"_op_{operation}")
        return handler(body if body is not None else {}, query)

    # -- the operations ----------------------------------------------------------------

    def _op_upsert(self, body: Any, query: dict[str, list[str]]) -> Any:
        _require_object(body)
        namespace = _namespace_of(body)
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _BadRequest(400, "vectors must be a non-empty list")
        if len(vectors) > self.max_vectors_per_upsert:
            raise _BadRequest(
                400,
                f"Batch size exceeds {self.max_vectors_per_upsert}. Reduce the number of "
                f"vectors per request (got {len(vectors)})",
            )
        prepared: list[tuple[str, npt.NDArray[np.float32], dict[str, Any]]] = []
        dimension = self.dimension
        for position, vector in enumerate(vectors):
            if not isinstance(vector, dict):
                raise _BadRequest(400, f"vectors[{position}] must be an object")
            item = _valid_id(vector.get("id"), where=f"vectors[{position}].id")
            values = vector.get("values")
            if not isinstance(values, list) or not all(
                is_number(value) and math.isfinite(value) for value in values
            ):
                raise _BadRequest(400, f"Vector {item!r} must have a list of finite numbers")
            if dimension is None:
                dimension = len(values)
            if len(values) != dimension:
                raise _BadRequest(
                    400,
                    f"Vector dimension {len(values)} does not match the dimension of the "
                    f"index {dimension}",
                )
            metadata = self._valid_metadata(vector.get("metadata"), item)
            prepared.append((item, np.asarray(values, dtype=np.float32), metadata))
        with self._lock:
            if self.dimension is None:
                self.dimension = dimension
            space = self._namespaces.setdefault(namespace, _Namespace())
            for item, array, metadata in prepared:
                space.vectors[item] = array
                space.metadata[item] = metadata
        return {"upsertedCount": len(prepared)}

    def _op_query(self, body: Any, query: dict[str, list[str]]) -> Any:
        _require_object(body)
        namespace = _namespace_of(body)
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool):
            raise _BadRequest(400, "topK must be an integer")
        if not 1 <= top_k <= self.max_top_k:
            raise _BadRequest(400, f"topK must be between 1 and {self.max_top_k}, got {top_k}")
        filter_ = body.get("filter")
        try:
            validate_filter(filter_)
        except InvalidFilterError as exc:
            raise _BadRequest(400, f"Invalid filter: {exc}") from exc
        with self._lock:
            space = self._namespaces.get(namespace, _Namespace())
            if "vector" in body:
                target = body["vector"]
                if not isinstance(target, list) or not all(is_number(v) for v in target):
                    raise _BadRequest(400, "vector must be a list of numbers")
                if self.dimension is not None and len(target) != self.dimension:
                    raise _BadRequest(
                        400,
                        f"Vector dimension {len(target)} does not match the dimension of the "
                        f"index {self.dimension}",
                    )
                query_vector = np.asarray(target, dtype=np.float64)
            elif "id" in body:
                stored = space.vectors.get(str(body["id"]))
                if stored is None:
                    return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
                query_vector = stored.astype(np.float64)
            else:
                raise _BadRequest(400, "one of vector or id is required")
            candidates = [item for item, meta in space.metadata.items() if matches(filter_, meta)]
            if not candidates:
                return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
            matrix = np.stack([space.vectors[item] for item in candidates]).astype(np.float64)
            metadata = [space.metadata[item] for item in candidates]
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query_vector)
        scores = matrix @ query_vector / np.where(norms == 0, 1.0, norms)
        order = np.argsort(-scores, kind="stable")[:top_k]
        include_values = bool(body.get("includeValues"))
        include_metadata = bool(body.get("includeMetadata"))
        found = []
        for position in order:
            match: dict[str, Any] = {
                "id": candidates[position],
                "score": float(scores[position]),
                "values": matrix[position].tolist() if include_values else [],
            }
            if include_metadata and metadata[position]:
                match["metadata"] = metadata[position]
            found.append(match)
        answer = {"matches": found, "namespace": namespace, "usage": {"readUnits": 1}}
        size = len(_dumps(answer))
        if size > self.max_response_bytes:
            raise _BadRequest(
                400,
                f"Query response size {size} bytes exceeds the limit of "
                f"{self.max_response_bytes} bytes; lower top_k or leave out metadata/values",
            )
        return answer

    def _op_fetch(self, body: Any, query: dict[str, list[str]]) -> Any:
        namespace = _plain_namespace(query.get("namespace", [""])[0])
        ids = query.get("ids", [])
        if not ids:
            raise _BadRequest(400, "ids must be non-empty")
        if len(ids) > self.max_ids_per_request:
            raise _BadRequest(
                400, f"fetch takes at most {self.max_ids_per_request} ids, got {len(ids)}"
            )
        out: dict[str, Any] = {}
        with self._lock:
            space = self._namespaces.get(namespace, _Namespace())
            for item in ids:
                if item in space.vectors:
                    record: dict[str, Any] = {
                        "id": item,
                        "values": space.vectors[item].tolist(),
                    }
                    if space.metadata[item]:
                        record["metadata"] = space.metadata[item]
                    out[item] = record
        return {"vectors": out, "namespace": namespace, "usage": {"readUnits": 1}}

    def _op_delete(self, body: Any, query: dict[str, list[str]]) -> Any:
        _require_object(body)
        namespace = _namespace_of(body)
        selectors = [key for key in ("ids", "deleteAll", "filter") if body.get(key)]
        if len(selectors) != 1:
            raise _BadRequest(400, "give exactly one of ids, deleteAll or filter")
        with self._lock:
            space = self._namespaces.get(namespace)
            if "ids" in selectors:
                ids = body["ids"]
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise _BadRequest(400, "ids must be a list of strings")
                if len(ids) > self.max_ids_per_request:
                    raise _BadRequest(
                        400,
                        f"delete takes at most {self.max_ids_per_request} ids, got {len(ids)}",
                    )
                doomed = [item for item in ids if space and item in space.vectors]
            elif "deleteAll" in selectors:
                doomed = list(space.vectors) if space else []
            else:
                try:
                    validate_filter(body["filter"])
                except InvalidFilterError as exc:
                    raise _BadRequest(400, f"Invalid filter: {exc}") from exc
                doomed = [
                    item
                    for item, meta in (space.metadata.items() if space else ())
                    if matches(body["filter"], meta)
                ]
            for item in doomed:
                assert space is not None
                del space.vectors[item]
                del space.metadata[item]
            if space is not None and not space.vectors:
                del self._namespaces[namespace]
        return {}

    def _op_update(self, body: Any, query: dict[str, list[str]]) -> Any:
        _require_object(body)
        namespace = _namespace_of(body)
        item = _valid_id(body.get("id"), where="id")
        values = body.get("values")
        set_metadata = body.get("setMetadata")
        if values is not None and (
            not isinstance(values, list)
            or not all(is_number(value) for value in values)
            or (self.dimension is not None and len(values) != self.dimension)
        ):
            raise _BadRequest(400, "values must be a list of numbers of the index dimension")
        with self._lock:
            space = self._namespaces.get(namespace)
            if space is None or item not in space.vectors:
                return {}
            merged = dict(space.metadata[item])
            if set_metadata is not None:
                merged.update(self._valid_metadata(set_metadata, item))
                self._check_metadata_size(merged, item)
            if values is not None:
                space.vectors[item] = np.asarray(values, dtype=np.float32)
            space.metadata[item] = merged
        return {}

    def _op_list(self, body: Any, query: dict[str, list[str]]) -> Any:
        namespace = _plain_namespace(query.get("namespace", [""])[0])
        prefix = query.get("prefix", [""])[0]
        try:
            limit = int(query.get("limit", [str(self.list_page_size)])[0])
        except ValueError as exc:
            raise _BadRequest(400, "limit must be an integer") from exc
        if not 1 <= limit <= 100:
            raise _BadRequest(400, f"limit must be between 1 and 100, got {limit}")
        token = query.get("paginationToken", [None])[0]
        after = ""
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError as exc:
                raise _BadRequest(400, "invalid pagination token") from exc
        with self._lock:
            space = self._namespaces.get(namespace, _Namespace())
            chosen = sorted(i for i in space.vectors if i.startswith(prefix) and i > after)
        page = chosen[:limit]
        out: dict[str, Any] = {
            "vectors": [{"id": item} for item in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(chosen) > limit:
            out["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
        return out

    def _op_describe_index_stats(self, body: Any, query: dict[str, list[str]]) -> Any:
        if isinstance(body, dict) and body.get("filter"):
            raise _BadRequest(400, "describe_index_stats does not support a filter on serverless")
        with self._lock:
            namespaces = {
                (name or _DEFAULT_NAMESPACE_LABEL): {"vectorCount": len(space.vectors)}
                for name, space in self._namespaces.items()
                if space.vectors
            }
        return {
            "namespaces": namespaces,
            "dimension": self.dimension or 0,
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }

    # -- metadata ----------------------------------------------------------------------

    def _valid_metadata(self, metadata: Any, item: str) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise _BadRequest(400, f"Metadata of vector {item!r} must be an object")
        # Measured as sent (2019, not the 2019.0 it is stored as), in the compact JSON
        # the SDK writes, before anything is converted.
        self._check_metadata_size(metadata, item, as_sent=True)
        out: dict[str, Any] = {}
        for key, value in metadata.items():
            if isinstance(value, (bool, str)):
                out[key] = value
            elif is_number(value):
                # The service stores numbers as 64-bit floats and returns them so.
                out[key] = float(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = list(value)
            else:
                raise _BadRequest(
                    400,
                    f"Metadata value for field {key!r} of vector {item!r} must be a string, "
                    "number, boolean or list of strings",
                )
        return out

    def _check_metadata_size(
        self, metadata: Mapping[str, Any], item: str, *, as_sent: bool = False
    ) -> None:
        # Stored numbers are floats; count whole ones as the integers a client sent
        # (below 1e15, where JSON writers switch to exponents).
        sent = (
            metadata
            if as_sent
            else {
                key: int(value)
                if isinstance(value, float) and value.is_integer() and abs(value) < 1e15
                else value
                for key, value in metadata.items()
            }
        )
        try:
            size = len(_dumps(sent))
        except TypeError as exc:  # e.g. an integer beyond 64 bits
            raise _BadRequest(400, f"Metadata of vector {item!r} cannot be encoded: {exc}") from exc
        if size > self.max_metadata_bytes:
            raise _BadRequest(
                400,
                f"Metadata size is {size} bytes, which exceeds the limit of "
                f"{self.max_metadata_bytes} bytes per vector (vector {item!r})",
            )


def _require_object(body: Any) -> None:
    if not isinstance(body, dict):
        raise _BadRequest(400, "the request body must be a JSON object")


def _namespace_of(body: Mapping[str, Any]) -> str:
    namespace = body.get("namespace", "") or ""
    if not isinstance(namespace, str):
        raise _BadRequest(400, "namespace must be a string")
    return _plain_namespace(namespace)


def _plain_namespace(namespace: str) -> str:
    # The service names the default namespace "__default__" too; both mean "".
    return "" if namespace == _DEFAULT_NAMESPACE_LABEL else namespace


def _valid_id(item: Any, *, where: str) -> str:
    if not isinstance(item, str) or not 1 <= len(item) <= 512:
        raise _BadRequest(400, f"{where} must be a string of 1 to 512 characters")
    if not item.isascii() or "\x00" in item:
        raise _BadRequest(400, f"{where} must be ASCII without NUL, got {item!r}")
    return item


def _make_handler(server: PineconeTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without this, Nagle's algorithm
        # and delayed ACKs add about 40 ms to every keep-alive request.
        disable_nagle_algorithm = True
        server_version = "PineconeTestServer/1"

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s - %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            started = time.monotonic()
            server._enter()
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            operation = _ROUTES.get((method, url.path), "unknown")
            status, payload, size, items, namespace = 500, {}, 0, 0, ""
            retry_after: str | None = None
            try:
                size = int(self.headers.get("Content-Length") or 0)
                too_big = size > server.max_request_bytes
                raw = self._read_body(size)
                if too_big:
                    raise _BadRequest(
                        400,
                        f"Request size {size / 1_000_000:.2f}MB exceeds the maximum "
                        f"supported size of {server.max_request_bytes} bytes",
                    )
                server._check_api_key(self.headers.get("Api-Key"))
                if operation == "unknown":
                    raise _BadRequest(404, f"no route for {method} {url.path}")
                body = self._parse(raw)
                items, namespace = _describe_request(operation, body, query)
                pause = server._delay_for(operation)
                if pause:
                    time.sleep(pause)
                fault = server._injected_fault(operation)
                if fault is not None:
                    retry_after = fault.retry_after
                    raise _BadRequest(fault.status, fault.message)
                status, payload = 200, server._dispatch(operation, body, query)
            except _BadRequest as exc:
                message = exc.message
                if server._echo_api_key:
                    message += f" (request had Api-Key: {self.headers.get('Api-Key')})"
                status, payload = exc.status, {"code": _grpc_code(exc.status), "message": message}
            except Exception as exc:  # a test server answers 500 rather than dying
                logger.exception("Pinecone test server failed on %s %s", method, url.path)
                status, payload = 500, {"code": 13, "message": f"internal error: {exc}"}
            finally:
                data = json.dumps(payload).encode()
                # Record before answering, so a client that has its answer always finds
                # its request in the record.
                server._leave(
                    RecordedRequest(
                        operation=operation,
                        method=method,
                        path=self.path,
                        body_bytes=size,
                        items=items,
                        namespace=namespace,
                        status=status,
                        started=started,
                        finished=time.monotonic(),
                        api_version=self.headers.get("X-Pinecone-Api-Version"),
                    )
                )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (e.g. its timeout)
                    self.close_connection = True

        def _read_body(self, size: int) -> bytes:
            if size > _MAX_READ_BYTES:
                self.close_connection = True
                return b""
            return self.rfile.read(size) if size else b""

        def _parse(self, raw: bytes) -> Any:
            if not raw:
                return None
            try:
                return _loads(raw)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
                raise _BadRequest(400, f"the body is not valid JSON: {exc}") from exc

    return Handler


def _describe_request(operation: str, body: Any, query: dict[str, list[str]]) -> tuple[int, str]:
    if operation in ("fetch", "list"):
        return len(query.get("ids", [])), query.get("namespace", [""])[0]
    if not isinstance(body, dict):
        return 0, ""
    namespace = body.get("namespace", "") or ""
    namespace = namespace if isinstance(namespace, str) else ""
    if operation == "upsert" and isinstance(body.get("vectors"), list):
        return len(body["vectors"]), namespace
    if operation == "delete" and isinstance(body.get("ids"), list):
        return len(body["ids"]), namespace
    return 0, namespace


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 503: 14}.get(status, 2)
