"""The in-process Pinecone data-plane server: protocol, limits, fault injection."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

pinecone = pytest.importorskip("pinecone")

from zeroshot_vision.testing._pinecone_server import PineconeTestServer  # noqa: E402

KEY = "server-test-key"


@pytest.fixture
def pinecone_server() -> Iterator[PineconeTestServer]:
    test_server = PineconeTestServer(dimension=3)
    test_server.start()
    yield test_server
    test_server.stop()


@pytest.fixture
def pinecone_client_index(pinecone_server: PineconeTestServer) -> Iterator[Any]:
    handle = pinecone.Index(host=pinecone_server.host, api_key=KEY)
    yield handle
    handle.close()


def _raw(
    pinecone_server: PineconeTestServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes = b"",
) -> tuple[int, Any]:
    """Send one request without the SDK (to reach what the SDK refuses to send)."""
    address = urlsplit(pinecone_server.host)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        data = raw or (json.dumps(body).encode() if body is not None else b"")
        headers = {"Content-Type": "application/json", "Api-Key": KEY}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _vector(item: str, values: list[float], **metadata: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item, "values": values}
    if metadata:
        out["metadata"] = metadata
    return out


def test_listens_on_loopback_only(pinecone_server: PineconeTestServer) -> None:
    assert pinecone_server.host.startswith("http://127.0.0.1:")
    assert (
        pinecone_server._httpd is not None
        and pinecone_server._httpd.server_address[0] == "127.0.0.1"
    )


def test_context_manager_returns_host_and_stops() -> None:
    test_server = PineconeTestServer()
    with test_server as host:
        assert host == test_server.host
    with pytest.raises(RuntimeError):
        _ = test_server.host


def test_upsert_query_fetch_through_the_sdk(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    response = pinecone_client_index.upsert(
        vectors=[
            _vector("a", [1, 0, 0], color="red", n=1),
            _vector("b", [1, 1, 0], color="blue", tags=["x", "y"]),
            _vector("c", [0, 0, 1]),
        ],
        namespace="ns",
    )
    assert response.upserted_count == 3
    result = pinecone_client_index.query(
        top_k=2, vector=[1, 0, 0], namespace="ns", include_metadata=True
    )
    assert [m.id for m in result.matches] == ["a", "b"]
    assert result.matches[0].score == pytest.approx(1.0)
    assert result.matches[1].score == pytest.approx(2**-0.5)
    assert result.matches[0].metadata == {"color": "red", "n": 1.0}
    filtered = pinecone_client_index.query(
        top_k=5, vector=[1, 0, 0], namespace="ns", filter={"tags": "y"}
    )
    assert [m.id for m in filtered.matches] == ["b"]
    by_id = pinecone_client_index.query(top_k=1, id="c", namespace="ns")
    assert [m.id for m in by_id.matches] == ["c"]
    fetched = pinecone_client_index.fetch(ids=["b", "zzz"], namespace="ns")
    assert set(fetched.vectors) == {"b"}
    assert fetched.vectors["b"].values == [1.0, 1.0, 0.0]
    assert fetched.vectors["b"].metadata == {"color": "blue", "tags": ["x", "y"]}


def test_namespaces_stats_and_default_namespace(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_client_index.upsert(vectors=[_vector("a", [1, 0, 0])])
    pinecone_client_index.upsert(
        vectors=[_vector("a", [1, 0, 0]), _vector("b", [0, 1, 0])], namespace="two"
    )
    stats = pinecone_client_index.describe_index_stats()
    assert stats.dimension == 3 and stats.metric == "cosine"
    assert stats.total_vector_count == 3
    assert {name: s.vector_count for name, s in stats.namespaces.items()} == {
        "__default__": 1,
        "two": 2,
    }
    assert pinecone_server.stored_ids("") == {"a"} and pinecone_server.stored_ids("two") == {
        "a",
        "b",
    }
    # "__default__" is the service's other name for the default namespace.
    assert pinecone_client_index.fetch(ids=["a"], namespace="__default__").vectors["a"].id == "a"
    pinecone_client_index.upsert(vectors=[_vector("c", [0, 0, 1])], namespace="__default__")
    assert pinecone_server.stored_ids("") == {"a", "c"}
    assert [
        v.id for page in pinecone_client_index.list(namespace="__default__") for v in page.vectors
    ] == [
        "a",
        "c",
    ]


def test_update_delete_and_list(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_client_index.upsert(vectors=[_vector(f"v{i:03d}", [1, i, 0], n=i) for i in range(250)])
    pinecone_client_index.update(id="v001", set_metadata={"extra": "yes"})
    assert pinecone_server.stored_metadata("", "v001") == {"n": 1.0, "extra": "yes"}
    pages = list(pinecone_client_index.list())
    assert [len(page.vectors) for page in pages] == [100, 100, 50]
    assert [v.id for page in pages for v in page.vectors] == [f"v{i:03d}" for i in range(250)]
    assert len([v for page in pinecone_client_index.list(prefix="v00") for v in page.vectors]) == 10
    pinecone_client_index.delete(ids=["v000", "missing"])
    pinecone_client_index.delete(filter={"n": {"$gte": 200}})
    assert len(pinecone_server.stored_ids()) == 199
    pinecone_client_index.delete(delete_all=True)
    assert pinecone_server.stored_ids() == set()


# -- limits ----------------------------------------------------------------------------


def test_body_over_2mb_is_a_400(pinecone_server: PineconeTestServer) -> None:
    padding = "x" * (2 * 1024 * 1024)
    status, body = _raw(
        pinecone_server,
        "POST",
        "/vectors/upsert",
        {"vectors": [_vector("a", [1, 0, 0], pad=padding)]},
    )
    assert status == 400 and "exceeds" in body["message"]
    assert pinecone_server.stored_ids() == set()
    assert pinecone_server.requests[-1].body_bytes > 2 * 1024 * 1024


def test_the_2mb_limit_is_2_000_000_bytes(pinecone_server: PineconeTestServer) -> None:
    # Padding outside the records (ignored by the server), so only the size matters.
    envelope = len(json.dumps({"vectors": [_vector("a", [1, 0, 0])], "pad": ""}))
    for size, status in ((2_000_000, 200), (2_000_001, 400)):
        body = {"vectors": [_vector("a", [1, 0, 0])], "pad": "x" * (size - envelope)}
        raw = json.dumps(body).encode()
        assert len(raw) == size
        got, _ = _raw(pinecone_server, "POST", "/vectors/upsert", raw=raw)
        assert got == status, size


def test_a_query_answer_over_4mb_is_a_400(pinecone_client_index: Any) -> None:
    with PineconeTestServer(dimension=3, max_response_bytes=20_000) as host:
        small = pinecone.Index(host=host, api_key=KEY)
        try:
            small.upsert(vectors=[_vector(f"v{i}", [1, i, 0], pad="x" * 300) for i in range(100)])
            with pytest.raises(pinecone.ApiError, match="exceeds the limit") as caught:
                small.query(vector=[1, 0, 0], top_k=100, include_metadata=True)
            assert caught.value.status_code == 400
            assert len(small.query(vector=[1, 0, 0], top_k=100).matches) == 100
            assert len(small.query(vector=[1, 0, 0], top_k=40, include_metadata=True).matches) == 40
        finally:
            small.close()
    assert PineconeTestServer().max_response_bytes == 4_000_000


def test_over_1000_vectors_is_a_400_through_the_sdk(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    with pytest.raises(pinecone.ApiError) as caught:
        pinecone_client_index.upsert(vectors=[_vector(f"v{i}", [1, 0, 0]) for i in range(1_001)])
    assert caught.value.status_code == 400
    assert pinecone_server.stored_ids() == set()
    pinecone_client_index.upsert(vectors=[_vector(f"v{i}", [1, 0, 0]) for i in range(1_000)])
    assert len(pinecone_server.stored_ids()) == 1_000


def test_over_1000_ids_is_a_400(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    ids = [f"v{i}" for i in range(1_001)]
    with pytest.raises(pinecone.ApiError):
        pinecone_client_index.fetch(ids=ids)
    with pytest.raises(pinecone.ApiError):
        pinecone_client_index.delete(ids=ids)


@pytest.mark.parametrize("top_k", [0, 10_001, "3"])
def test_top_k_out_of_range_is_a_400(pinecone_server: PineconeTestServer, top_k: Any) -> None:
    status, body = _raw(pinecone_server, "POST", "/query", {"topK": top_k, "vector": [1, 0, 0]})
    assert status == 400 and "topK" in body["message"]


@pytest.mark.parametrize(
    "metadata",
    [
        {"x": None},
        {"x": {"nested": 1}},
        {"x": [1, 2]},
        {"x": "y" * (40 * 1024)},
    ],
    ids=["null", "nested", "list-of-numbers", "over-40kb"],
)
def test_bad_metadata_is_a_400(
    pinecone_server: PineconeTestServer, metadata: dict[str, Any]
) -> None:
    vector = {"id": "a", "values": [1, 0, 0], "metadata": metadata}
    status, body = _raw(pinecone_server, "POST", "/vectors/upsert", {"vectors": [vector]})
    assert status == 400, body
    assert pinecone_server.stored_ids() == set()


@pytest.mark.parametrize(
    "vector",
    [
        {"id": "a", "values": [1, 0]},
        {"id": "", "values": [1, 0, 0]},
        {"id": "é", "values": [1, 0, 0]},
        {"id": "x" * 513, "values": [1, 0, 0]},
        {"id": "a", "values": [1, "0", 0]},
    ],
    ids=["wrong-dimension", "empty-id", "non-ascii-id", "long-id", "string-value"],
)
def test_bad_vectors_are_a_400(pinecone_server: PineconeTestServer, vector: dict[str, Any]) -> None:
    status, _ = _raw(pinecone_server, "POST", "/vectors/upsert", {"vectors": [vector]})
    assert status == 400


def test_bad_filter_and_bad_json_are_400s(pinecone_server: PineconeTestServer) -> None:
    status, body = _raw(
        pinecone_server,
        "POST",
        "/query",
        {"topK": 1, "vector": [1, 0, 0], "filter": {"n": {"$gtee": 1}}},
    )
    assert status == 400 and "$gtee" in body["message"]
    status, _ = _raw(pinecone_server, "POST", "/query", raw=b"{not json")
    assert status == 400


def test_unknown_route_is_a_404(pinecone_server: PineconeTestServer) -> None:
    status, _ = _raw(pinecone_server, "POST", "/nope", {})
    assert status == 404


def test_api_key_is_checked_when_configured() -> None:
    with PineconeTestServer(dimension=3, api_key=KEY) as host:
        wrong = pinecone.Index(host=host, api_key="wrong")
        right = pinecone.Index(host=host, api_key=KEY)
        try:
            with pytest.raises(pinecone.UnauthorizedError):
                wrong.describe_index_stats()
            assert right.describe_index_stats().total_vector_count == 0
        finally:
            wrong.close()
            right.close()


# -- recording and fault injection ------------------------------------------------------


def test_records_sizes_counts_and_api_version(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_client_index.upsert(
        vectors=[_vector("a", [1, 0, 0]), _vector("b", [0, 1, 0])], namespace="n"
    )
    pinecone_client_index.fetch(ids=["a", "b", "c"], namespace="n")
    upsert, fetch = pinecone_server.requests
    assert (upsert.operation, upsert.items, upsert.namespace, upsert.status) == (
        "upsert",
        2,
        "n",
        200,
    )
    assert upsert.body_bytes > 0 and upsert.api_version
    assert (fetch.operation, fetch.items, fetch.method) == ("fetch", 3, "GET")
    pinecone_server.clear_requests()
    assert pinecone_server.requests == []


def test_fail_the_nth_request_then_recover(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_server.fail("upsert", status=400, on_call=2, message="boom")
    pinecone_client_index.upsert(vectors=[_vector("a", [1, 0, 0])])
    with pytest.raises(pinecone.ApiError, match="boom"):
        pinecone_client_index.upsert(vectors=[_vector("b", [1, 0, 0])])
    pinecone_client_index.upsert(vectors=[_vector("c", [1, 0, 0])])
    assert pinecone_server.stored_ids() == {"a", "c"}
    assert [r.status for r in pinecone_server.requests_for("upsert")] == [200, 400, 200]
    with pytest.raises(ValueError):
        pinecone_server.fail("upsertt")


def test_delay_shows_concurrent_requests(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_server.delay(0.2, "describe_index_stats")
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: pinecone_client_index.describe_index_stats(), range(4)))
    assert pinecone_server.max_in_flight == 4
    assert time.monotonic() - started < 0.2 * 4
    pinecone_server.clear_faults()
    started = time.monotonic()
    pinecone_client_index.describe_index_stats()
    assert time.monotonic() - started < 0.2


def test_stopped_server_refuses_connections(
    pinecone_server: PineconeTestServer, pinecone_client_index: Any
) -> None:
    pinecone_client_index.describe_index_stats()  # leaves a keep-alive connection open
    address = urlsplit(pinecone_server.host)
    pinecone_server.stop()
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        connection.request("POST", "/describe_index_stats", body=b"{}")
    connection.close()
