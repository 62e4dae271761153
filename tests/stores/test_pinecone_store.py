"""PineconeStore through the real pinecone SDK, against the in-process protocol server."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pinecone = pytest.importorskip("pinecone")

from tests.factories import memory_engine  # noqa: E402

from zeroshot_vision._errors import (  # noqa: E402
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    MissingDependencyError,
    PartialWriteError,
    StoreError,
)
from zeroshot_vision.stores._pinecone import (  # noqa: E402
    MAX_IDS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    MAX_VECTORS_PER_REQUEST,
    PineconeStore,
)
from zeroshot_vision.testing._contract import VectorStoreContract  # noqa: E402
from zeroshot_vision.testing._pinecone_server import PineconeTestServer  # noqa: E402

API_KEY = "pcsk_test_6Zq1VbXwSECRETvalue_do_not_leak"


_open_indexes: list[Any] = []


def _index(host: str, *, api_key: str = API_KEY, timeout: float = 10.0) -> Any:
    index = pinecone.Index(host=host, api_key=api_key, timeout=timeout)
    _open_indexes.append(index)
    return index


@pytest.fixture(autouse=True)
def _close_indexes() -> Iterator[None]:
    """Close every SDK handle a test opened (open sockets are a ResourceWarning)."""
    opened = len(_open_indexes)
    yield
    while len(_open_indexes) > opened:
        _open_indexes.pop().close()


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the SDK's retry backoff sleeps (its own test seam) so fault tests stay fast."""
    from pinecone._internal import http_client

    monkeypatch.setattr(http_client, "_retry_sleep", lambda _seconds: None, raising=False)


@pytest.fixture
def pinecone_server() -> Iterator[PineconeTestServer]:
    test_server = PineconeTestServer(dimension=8)
    test_server.start()
    yield test_server
    test_server.stop()


def _store(pinecone_server: PineconeTestServer, **kwargs: Any) -> PineconeStore:
    kwargs.setdefault("dim", pinecone_server.dimension)
    return PineconeStore(_index(pinecone_server.host), **kwargs)


# -- the contract suite ----------------------------------------------------------------


@pytest.fixture(scope="module")
def contract_servers() -> Iterator[dict[int, tuple[PineconeTestServer, Any]]]:
    servers: dict[int, tuple[PineconeTestServer, Any]] = {}
    yield servers
    for test_server, index in servers.values():
        index.close()
        test_server.stop()


_namespaces = itertools.count()


class TestPineconeContract(VectorStoreContract):
    """The store contract, through the real SDK, one fresh namespace per store."""

    @pytest.fixture
    def make_store(
        self, contract_servers: dict[int, tuple[PineconeTestServer, Any]]
    ) -> Callable[[int], PineconeStore]:
        def make(dim: int) -> PineconeStore:
            if dim not in contract_servers:
                test_server = PineconeTestServer(dimension=dim)
                index = pinecone.Index(host=test_server.start(), api_key=API_KEY)
                contract_servers[dim] = (test_server, index)
            _, index = contract_servers[dim]
            return PineconeStore(index, dim=dim, namespace=f"contract-{next(_namespaces)}")

        return make

    @pytest.fixture
    def open_durable(
        self,
        make_store: Callable[[int], PineconeStore],
        contract_servers: dict[int, tuple[PineconeTestServer, Any]],
    ) -> Callable[[], PineconeStore]:
        make_store(self.DIM)  # starts the server for this dimension
        _, index = contract_servers[self.DIM]
        namespace = f"durable-{next(_namespaces)}"
        # Each call is a new store on the same namespace; the index handle is the
        # module's, so the stores' close() leaves it open (it belongs to the caller).
        return lambda: PineconeStore(index, dim=self.DIM, namespace=namespace)


# -- construction ----------------------------------------------------------------------


def test_dim_and_metric_come_from_index_stats(pinecone_server: PineconeTestServer) -> None:
    store = PineconeStore(_index(pinecone_server.host), namespace="x")
    assert store.dim == 8
    assert [r.operation for r in pinecone_server.requests] == ["describe_index_stats"]


@pytest.mark.parametrize("metric", ["euclidean"])
def test_refuses_a_distance_metric(metric: str) -> None:
    with (
        PineconeTestServer(dimension=4, metric=metric) as host,
        pytest.raises(StoreError, match="cosine"),
    ):
        PineconeStore(_index(host))


def test_accepts_dotproduct_because_vectors_are_unit_length() -> None:
    with PineconeTestServer(dimension=4, metric="dotproduct") as host:
        store = PineconeStore(_index(host))
        store.upsert(["a", "b"], [[3, 0, 0, 0], [1, 1, 0, 0]])
        hits = store.query([2, 0, 0, 0], k=2)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(2**-0.5, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_rejects_bad_dim_and_concurrency(pinecone_server: PineconeTestServer, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        PineconeStore(_index(pinecone_server.host), dim=bad)
    with pytest.raises(InvalidInputError):
        PineconeStore(_index(pinecone_server.host), dim=8, max_concurrency=bad)


def test_namespaces_are_separate_stores(pinecone_server: PineconeTestServer) -> None:
    one, two = _store(pinecone_server, namespace="one"), _store(pinecone_server, namespace="two")
    default = _store(pinecone_server)
    one.upsert(["a", "b"], _vectors(2, 8))
    two.upsert(["a"], _vectors(1, 8))
    default.upsert(["z"], _vectors(1, 8))
    assert (len(one), len(two), len(default)) == (2, 1, 1)
    assert sorted(one.ids()) == ["a", "b"]
    assert list(default.ids()) == ["z"]
    assert pinecone_server.stored_ids("two") == {"a"}


def test_ids_pages_through_long_listings(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    ids = [f"img-{i:04d}" for i in range(250)]
    store.upsert(ids, _vectors(250, 8))
    pinecone_server.clear_requests()
    assert sorted(store.ids()) == ids
    assert len(pinecone_server.requests_for("list")) == 3  # pages of 100


def test_k_above_pinecone_limit_is_clamped(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    store.upsert(["a"], _vectors(1, 8))
    assert [h.id for h in store.query(np.ones(8), k=50_000)] == ["a"]


# -- request limits --------------------------------------------------------------------


def test_wide_upsert_is_split_by_payload_size() -> None:
    """2,500 x 1152 goes out in requests under both 2 MB and 1,000 vectors."""
    # The server refuses anything over 2,000,000 bytes here, stricter than the service.
    wide_server = PineconeTestServer(dimension=1152, max_request_bytes=MAX_REQUEST_BYTES)
    with wide_server as host:
        store = PineconeStore(_index(host), dim=1152, namespace="wide")
        ids = [f"photo-{i:05d}" for i in range(2_500)]
        metadata = [{"path": f"/data/photos/{i}.jpg", "tags": ["a", "b"]} for i in ids]
        store.upsert(ids, _vectors(2_500, 1152, seed=1), metadata)
        assert len(store) == 2_500
        fetched = store.fetch(ids[:3])
    server_requests = wide_server.requests_for("upsert")
    assert all(r.status == 200 for r in server_requests)
    assert sum(r.items for r in server_requests) == 2_500
    assert max(r.body_bytes for r in server_requests) <= MAX_REQUEST_BYTES
    assert max(r.items for r in server_requests) <= MAX_VECTORS_PER_REQUEST
    # The size limit binds long before the count limit at 1152 dimensions.
    assert len(server_requests) > 3
    # Requests are packed, not needlessly small: all but the smallest are over 90% full.
    assert sorted(r.body_bytes for r in server_requests)[1] > 0.9 * MAX_REQUEST_BYTES
    expected = _vectors(2_500, 1152, seed=1)[0]
    np.testing.assert_allclose(
        fetched[ids[0]].vector, expected / np.linalg.norm(expected), atol=1e-7
    )


def test_narrow_upsert_is_split_by_count(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    store.upsert([f"v{i}" for i in range(2_500)], _vectors(2_500, 8))
    counts = sorted(r.items for r in pinecone_server.requests_for("upsert"))
    assert counts == [500, 1_000, 1_000]
    assert len(store) == 2_500


def test_fetch_and_delete_send_at_most_1000_ids(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    ids = [f"v{i}" for i in range(2_500)]
    store.upsert(ids, _vectors(2_500, 8))
    assert len(store.fetch([*ids, "missing"])) == 2_500
    store.delete(ids[:2_400])
    fetches, deletes = pinecone_server.requests_for("fetch"), pinecone_server.requests_for("delete")
    assert max(r.items for r in fetches) <= MAX_IDS_PER_REQUEST
    assert sum(r.items for r in fetches) == 2_501
    assert [r.items for r in deletes] == [1_000, 1_000, 400]
    assert len(store) == 100


def test_long_ids_keep_fetch_urls_short(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    ids = [f"{i:04d}-" + "x" * 400 for i in range(300)]
    store.upsert(ids, _vectors(300, 8))
    assert set(store.fetch(ids)) == set(ids)
    assert all(r.status == 200 for r in pinecone_server.requests_for("fetch"))
    assert len(pinecone_server.requests_for("fetch")) > 1


def test_numpy_values_reach_the_sdk_as_plain_python(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    meta = {"n": np.int32(7), "f": np.float64(0.25), "ok": np.bool_(True), "s": np.str_("x")}
    store.upsert(np.array(["a"]), _vectors(1, 8).astype(np.float16), [meta])  # type: ignore[arg-type]
    assert pinecone_server.stored_metadata("", "a") == {"n": 7, "f": 0.25, "ok": True, "s": "x"}
    assert store.query(np.float32(2) * _vectors(1, 8)[0], k=np.int64(1))[0].id == "a"


# -- concurrency -----------------------------------------------------------------------


def test_upsert_batches_overlap_up_to_max_concurrency(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server, max_concurrency=3)
    pinecone_server.delay(0.2, "upsert")
    started = time.monotonic()
    store.upsert([f"v{i}" for i in range(6_000)], _vectors(6_000, 8))
    elapsed = time.monotonic() - started
    assert len(pinecone_server.requests_for("upsert")) == 6
    assert pinecone_server.max_in_flight == 3
    assert elapsed < 6 * 0.2  # serial would take at least 1.2 s
    assert len(store) == 6_000


def test_max_concurrency_one_is_serial(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server, max_concurrency=1)
    pinecone_server.delay(0.05, "upsert")
    store.upsert([f"v{i}" for i in range(3_000)], _vectors(3_000, 8))
    assert pinecone_server.max_in_flight == 1


# -- faults ----------------------------------------------------------------------------


def test_400_on_one_batch_reports_exact_written_and_failed_ids(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server, max_concurrency=1)
    ids = [f"v{i}" for i in range(3_000)]
    pinecone_server.fail("upsert", status=400, on_call=2, message="injected bad batch")
    with pytest.raises(PartialWriteError, match="injected bad batch") as caught:
        store.upsert(ids, _vectors(3_000, 8))
    error = caught.value
    assert error.written_ids == ids[:1_000]
    assert error.failed_ids == ids[1_000:]
    assert pinecone_server.stored_ids() == set(ids[:1_000])
    # It stopped after the failure instead of sending the third batch.
    assert [r.status for r in pinecone_server.requests_for("upsert")] == [200, 400]
    assert isinstance(error.__cause__, pinecone.ApiError)
    # The caller can resume with exactly the failed ids.
    store.upsert(error.failed_ids, _vectors(3_000, 8)[1_000:])
    assert len(store) == 3_000


def test_failed_batch_under_concurrency_accounts_for_every_id(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server, max_concurrency=4)
    ids = [f"v{i}" for i in range(8_000)]
    pinecone_server.fail("upsert", status=400, on_call=3)
    with pytest.raises(PartialWriteError) as caught:
        store.upsert(ids, _vectors(8_000, 8))
    written, failed = caught.value.written_ids, caught.value.failed_ids
    assert set(written) == pinecone_server.stored_ids()
    assert set(written) | set(failed) == set(ids)
    assert not set(written) & set(failed)
    assert len(failed) >= 1_000


@pytest.mark.usefixtures("fast_retries")
def test_5xx_is_retried_by_the_sdk_then_reported(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    pinecone_server.fail("upsert", status=503, times=1)
    store.upsert(["a"], _vectors(1, 8))  # one 503, then the SDK's retry succeeds
    assert [r.status for r in pinecone_server.requests_for("upsert")] == [503, 200]
    pinecone_server.clear_requests()
    pinecone_server.fail("upsert", status=503, times=100)
    with pytest.raises(PartialWriteError) as caught:
        store.upsert(["b", "c"], _vectors(2, 8))
    assert caught.value.failed_ids == ["b", "c"]
    assert caught.value.written_ids == []
    assert len(pinecone_server.requests_for("upsert")) == 4  # the first try and 3 retries


@pytest.mark.usefixtures("fast_retries")
def test_connection_refused_is_a_store_error() -> None:
    test_server = PineconeTestServer(dimension=8)
    host = test_server.start()
    test_server.stop()
    with pytest.raises(StoreError, match="Connection"):
        PineconeStore(_index(host))
    store = PineconeStore(_index(host), dim=8)
    for call in (
        lambda: store.query(np.ones(8)),
        lambda: store.fetch(["a"]),
        lambda: len(store),
        lambda: list(store.ids()),
    ):
        with pytest.raises(StoreError, match="PineconeConnectionError"):
            call()
    with pytest.raises(PartialWriteError) as caught:
        store.upsert(["a", "b"], _vectors(2, 8))
    assert caught.value.written_ids == [] and caught.value.failed_ids == ["a", "b"]
    with pytest.raises(PartialWriteError):
        store.delete(["a"])


@pytest.mark.usefixtures("fast_retries")
def test_timeouts_are_store_errors(pinecone_server: PineconeTestServer) -> None:
    store = PineconeStore(_index(pinecone_server.host, timeout=0.1), dim=8)
    pinecone_server.delay(0.5, "query")
    with pytest.raises(StoreError, match="Timeout") as caught:
        store.query(np.ones(8))
    assert isinstance(caught.value.__cause__, pinecone.PineconeTimeoutError)
    pinecone_server.delay(0.5, "upsert")
    with pytest.raises(PartialWriteError, match="Timeout") as partial:
        store.upsert(["a"], _vectors(1, 8))
    assert partial.value.failed_ids == ["a"]


def test_delete_failing_part_way_says_what_was_deleted(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    ids = [f"v{i}" for i in range(2_500)]
    store.upsert(ids, _vectors(2_500, 8))
    pinecone_server.fail("delete", status=400, on_call=2)
    with pytest.raises(PartialWriteError) as caught:
        store.delete(ids)
    assert caught.value.written_ids == ids[:1_000]
    assert caught.value.failed_ids == ids[1_000:]
    assert pinecone_server.stored_ids() == set(ids[1_000:])


def test_other_api_errors_chain_the_sdk_error(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    pinecone_server.fail("query", status=404, message="namespace gone")
    with pytest.raises(StoreError, match=r"HTTP 404.*namespace gone") as caught:
        store.query(np.ones(8))
    assert isinstance(caught.value.__cause__, pinecone.NotFoundError)


# -- validation before the network -----------------------------------------------------

BAD_RECORDS = [
    pytest.param("a", {"x": None}, InvalidMetadataError, "None", id="null"),
    pytest.param("a", {"x": {"nested": 1}}, InvalidMetadataError, "nested", id="nested"),
    pytest.param("a", {"x": [1, 2]}, InvalidMetadataError, "strings only", id="list-of-ints"),
    pytest.param("a", {"x": ["s", None]}, InvalidMetadataError, "strings only", id="list-null"),
    pytest.param("a", {"x": "y" * 41_000}, InvalidMetadataError, "40960", id="over-40kb"),
    pytest.param("a", {"x": 2**70}, InvalidMetadataError, "64-bit", id="huge-int"),
    pytest.param("a", {"x": float("nan")}, InvalidMetadataError, "non-finite", id="nan"),
    pytest.param("a", {"x": np.float32("inf")}, InvalidMetadataError, "non-finite", id="np-inf"),
    pytest.param("a", {"x": [["a"]]}, InvalidMetadataError, "strings only", id="nested-list"),
    pytest.param("a", {"x": np.array(["a", "b"])}, InvalidMetadataError, "ndarray", id="array"),
    pytest.param("a", {"_zsv_id": "x"}, InvalidMetadataError, "reserved", id="reserved-field"),
]

MAPPED_IDS = [
    "Crème brûlée.png",
    "写真/猫.jpg",
    "100% cotton.jpg",
    "a\x00b",
    "tab\there",
    "x" * 600,
    "長い" * 200,
]


def test_ids_pinecone_cannot_hold_are_mapped_and_come_back_unchanged(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server, namespace="mapped")
    vectors = np.random.default_rng(5).standard_normal((len(MAPPED_IDS) + 1, 8))
    ids = [*MAPPED_IDS, "plain.jpg"]
    store.upsert(ids, vectors, [{"path": item[:50]} for item in ids])
    stored = pinecone_server.stored_ids("mapped")
    assert all(item.isascii() and 0 < len(item) <= 512 for item in stored)
    assert "plain.jpg" in stored and "Cr%C3%A8me br%C3%BBl%C3%A9e.png" in stored
    assert sorted(store.ids()) == sorted(ids)
    fetched = store.fetch(ids)
    assert sorted(fetched) == sorted(ids)
    assert all(record.metadata == {"path": item[:50]} for item, record in fetched.items())
    hits = store.query(vectors[5], k=len(ids))
    assert hits[0].id == MAPPED_IDS[5] and "_zsv_id" not in hits[0].metadata
    assert {hit.id for hit in hits} == set(ids)
    store.delete(MAPPED_IDS)
    assert list(store.ids()) == ["plain.jpg"]


@pytest.mark.parametrize(("bad_id", "meta", "error", "reason"), BAD_RECORDS)
def test_invalid_record_rejects_the_whole_call_before_any_request(
    pinecone_server: PineconeTestServer, bad_id: str, meta: dict[str, Any], error: type, reason: str
) -> None:
    store = _store(pinecone_server)
    ids = [f"ok{i}" for i in range(1_500)] + [bad_id]
    metadata: list[dict[str, Any] | None] = [None] * 1_500 + [meta]
    with pytest.raises(error, match=reason) as caught:
        store.upsert(ids, _vectors(1_501, 8), metadata)
    assert isinstance(caught.value, ValueError)
    assert repr(bad_id[:20])[:-1] in str(caught.value)  # it names the id
    assert pinecone_server.requests == []


def test_metadata_at_the_limit_is_accepted(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    meta = {"x": "y" * (40 * 1024 - 10)}  # {"x":"..."} is exactly 40 KiB
    store.upsert(["a"], _vectors(1, 8), [meta])
    assert pinecone_server.stored_metadata("", "a") == meta


@pytest.mark.parametrize("over", [0, 1])
def test_metadata_limit_counts_numbers_as_sent(
    pinecone_server: PineconeTestServer, over: int
) -> None:
    # Numbers come back as floats (2019 -> 2019.0); the limit is on what is sent.
    import orjson

    base = {"year": 2019, "big": 1e16, "x": ""}
    meta = dict(base, x="y" * (40 * 1024 - len(orjson.dumps(base)) + over))
    assert len(orjson.dumps(meta)) == 40 * 1024 + over
    store = _store(pinecone_server)
    if over:
        with pytest.raises(InvalidMetadataError, match="40961 bytes"):
            store.upsert(["a"], _vectors(1, 8), [meta])
        assert pinecone_server.requests == []
    else:
        store.upsert(["a"], _vectors(1, 8), [meta])
        assert pinecone_server.stored_metadata("", "a") == meta


def test_numpy_scalars_in_metadata_become_plain_values(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    meta = {"half": np.float16(1.5), "byte": np.int8(-3), "flag": np.bool_(True)}
    store.upsert(["a"], _vectors(1, 8), [meta])
    assert pinecone_server.stored_metadata("", "a") == {"half": 1.5, "byte": -3.0, "flag": True}
    assert store.fetch(["a"])["a"].metadata == {"half": 1.5, "byte": -3.0, "flag": True}


def test_ids_of_exactly_512_ascii_characters_round_trip(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server)
    longest = "x" * 511 + "~"
    store.upsert([longest], _vectors(1, 8))
    assert list(store.fetch([longest])) == [longest] and list(store.ids()) == [longest]
    store.delete([longest])
    assert len(store) == 0


def test_filter_typo_fails_before_any_request(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    with pytest.raises(InvalidFilterError, match=r"\$gtee"):
        store.query(np.ones(8), k=3, filter={"year": {"$gtee": 2019}})
    assert pinecone_server.requests == []


def test_fetch_and_delete_of_absent_mapped_ids(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    store.upsert(["a"], _vectors(1, 8))
    assert set(store.fetch(["a", "é"])) == {"a"}
    store.delete(["é", "x" * 600])  # absent: not an error
    assert set(store.ids()) == {"a"}
    with pytest.raises(InvalidInputError):
        store.fetch(["a", ""])


# -- secrets ---------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_retries")
def test_api_key_never_appears_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def remember(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    # A store made from an SDK handle blanks out $PINECONE_API_KEY by default.
    monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
    with PineconeTestServer(dimension=8, api_key="the-server-wants-another-key") as host:
        store = PineconeStore(_index(host), dim=8)
        texts.append(repr(store))
        with pytest.raises(StoreError) as refused:
            store.query(np.ones(8))
        remember(refused.value)
        with pytest.raises(PartialWriteError) as unauthorized:
            store.upsert(["a"], _vectors(1, 8))
        remember(unauthorized.value)
    plain_server = PineconeTestServer(dimension=8)
    with plain_server as host:
        monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
        store = PineconeStore.connect(host=host, namespace="n")
        _open_indexes.append(store)
        texts.append(repr(store))
        store.upsert(["a"], _vectors(1, 8), [{"k": "v"}])
        store.query(np.ones(8))
        plain_server.fail("upsert", status=400, message="bad")
        with pytest.raises(PartialWriteError) as failed:
            store.upsert(["b"], _vectors(1, 8))
        remember(failed.value)
    with pytest.raises(StoreError) as gone:
        store.fetch(["a"])
    remember(gone.value)
    assert caplog.records, "expected the SDK and the store to log something"
    for text in [*texts, caplog.text]:
        assert API_KEY not in text
        assert "6Zq1VbXw" not in text


def test_connect_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(InvalidInputError, match="PINECONE_API_KEY"):
        PineconeStore.connect(host="http://127.0.0.1:9")


def test_connect_needs_exactly_one_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_INDEX_HOST", raising=False)
    monkeypatch.delenv("PINECONE_INDEX", raising=False)
    with pytest.raises(InvalidInputError, match="exactly one"):
        PineconeStore.connect(api_key="k")
    with pytest.raises(InvalidInputError, match="exactly one"):
        PineconeStore.connect(api_key="k", host="http://127.0.0.1:9", index_name="x")


def test_connect_reads_host_from_the_environment(
    pinecone_server: PineconeTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
    monkeypatch.setenv("PINECONE_INDEX_HOST", pinecone_server.host)
    with PineconeStore.connect(namespace="env") as store:
        assert store.dim == 8 and store.namespace == "env"


# -- the optional dependency -----------------------------------------------------------


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pinecone", None)
    with pytest.raises(MissingDependencyError, match=r"zeroshot-vision\[pinecone\]"):
        PineconeStore(object(), dim=4)


def test_importing_the_module_does_not_import_pinecone() -> None:
    code = (
        "import sys, zeroshot_vision, zeroshot_vision.stores._pinecone, "
        "zeroshot_vision.stores._transfer\n"
        "assert 'pinecone' not in sys.modules, 'pinecone was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- end to end ------------------------------------------------------------------------


def test_search_engine_end_to_end_matches_faiss(tiny_encoder: Any, photo_paths: list) -> None:
    """SearchEngine(encoder, PineconeStore) finds what SearchEngine(encoder, FaissStore) finds."""
    from zeroshot_vision import SearchEngine

    photos = photo_paths[:4]
    kinds = [{"kind": "space" if "rocket" in p.name else "earth"} for p in photos]
    with PineconeTestServer(dimension=tiny_encoder.dim) as host:
        pinecone_engine = SearchEngine(tiny_encoder, PineconeStore(_index(host), namespace="e2e"))
        faiss_engine = memory_engine(tiny_encoder)
        report = pinecone_engine.index_images(photos, metadata=kinds)
        faiss_engine.index_images(photos, metadata=kinds)
        assert report.ok and len(report.indexed) == 4
        assert len(pinecone_engine.store) == 4
        for query, search_filter in [("a rocket launch", None), ("a cat", {"kind": "earth"})]:
            got = pinecone_engine.search(query, k=3, filter=search_filter)
            want = faiss_engine.search(query, k=3, filter=search_filter)
            assert [r.id for r in got] == [r.id for r in want]
            for mine, theirs in zip(got, want):
                assert mine.score == pytest.approx(theirs.score, abs=1e-5)
                assert mine.metadata == theirs.metadata
        space = pinecone_engine.search("stars", k=10, filter={"kind": "space"})
        assert [r.id for r in space] == [str(p) for p in photos if "rocket" in p.name]


@pytest.mark.usefixtures("fast_retries")
def test_a_refused_key_says_so_without_showing_it() -> None:
    with (
        PineconeTestServer(dimension=8, api_key="the-right-key") as host,
        pytest.raises(StoreError) as caught,
    ):
        PineconeStore(_index(host), namespace="n")
    message = str(caught.value)
    assert "HTTP 401" in message and "API key was refused" in message
    assert "PINECONE_API_KEY" in message and API_KEY not in message


@pytest.mark.usefixtures("fast_retries")
def test_a_429_storm_that_outlasts_the_retries(pinecone_server: PineconeTestServer) -> None:
    store = _store(pinecone_server)
    store.upsert(["a"], _vectors(1, 8))
    pinecone_server.fail("query", status=429, times=100)
    pinecone_server.fail("upsert", status=429, times=100)
    pinecone_server.clear_requests()
    with pytest.raises(StoreError, match=r"HTTP 429.*rate limited") as caught:
        store.query(np.ones(8))
    assert isinstance(caught.value.__cause__, pinecone.RateLimitError)
    attempts = len(pinecone_server.requests_for("query"))
    assert 2 <= attempts <= 10  # the SDK retried, then gave up
    with pytest.raises(PartialWriteError, match="rate limited") as failed:
        store.upsert(["b", "c"], _vectors(2, 8))
    assert failed.value.written_ids == [] and failed.value.failed_ids == ["b", "c"]
    pinecone_server.clear_faults()
    assert [hit.id for hit in store.query(np.ones(8), k=1)] == ["a"]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


@pytest.mark.usefixtures("fast_retries")
def test_api_key_echoed_by_the_server_never_reaches_chained_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's exception quotes the server, which quotes the key; ours must not, at any depth."""
    caught: list[BaseException] = []
    log = logging.getLogger("tests.pinecone.redaction")
    with PineconeTestServer(dimension=8, api_key="another-key", echo_api_key=True) as host:
        store = PineconeStore(_index(host), dim=8, api_key=API_KEY)  # the key given here
        operations: list[Callable[[], object]] = [
            lambda: store.query(np.ones(8)),
            lambda: store.upsert(["a"], _vectors(1, 8)),
            lambda: store.fetch(["a"]),
            lambda: store.delete(["a"]),
            lambda: len(store),
        ]
        for operation in operations:
            with pytest.raises(StoreError) as failed:
                operation()
            caught.append(failed.value)
            try:
                raise failed.value
            except StoreError:
                log.exception("pinecone failed")
        with pytest.raises(StoreError) as opening:
            PineconeStore.connect(host=host, api_key=API_KEY)
        caught.append(opening.value)
    for error in caught:
        text = "".join(traceback.format_exception(error))
        assert "Invalid API Key" in text  # the detail that helps debugging is kept
        assert API_KEY not in text and "<redacted>" in text
        for link in _chain(error):
            assert API_KEY not in str(link) and API_KEY not in repr(link)
            assert all(API_KEY not in repr(arg) for arg in link.args)
    assert caplog.text.count("pinecone failed") == len(caught) - 1
    assert API_KEY not in caplog.text


def test_every_sdk_exception_is_mapped() -> None:
    """Like httpx's test of its httpcore mapping: a new SDK exception type cannot slip past
    the store's translation into StoreError / PartialWriteError."""
    import inspect

    import pinecone.exceptions

    from zeroshot_vision.stores._pinecone import _sdk_error_types

    mapped = _sdk_error_types()
    found = [
        cls
        for _, cls in inspect.getmembers(pinecone.exceptions, inspect.isclass)
        if issubclass(cls, BaseException)
    ]
    assert found, "the SDK's exceptions module moved"
    assert [cls.__name__ for cls in found if not issubclass(cls, mapped)] == []


# -- faults in the middle of a batched upsert (issue 20) ------------------------------------


def test_a_429_storm_with_retry_after_is_honoured_bounded_and_exact(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server, max_concurrency=1)
    ids = [f"v{i}" for i in range(3_000)]
    # The second batch meets a storm that outlasts the SDK's retries, each 429 asking
    # for a 0.2 s pause.
    pinecone_server.fail("upsert", status=429, on_call=2, times=100, retry_after=0.2)
    started = time.monotonic()
    with pytest.raises(PartialWriteError, match="rate limited") as caught:
        store.upsert(ids, _vectors(3_000, 8))
    elapsed = time.monotonic() - started
    assert caught.value.written_ids == ids[:1_000]  # exactly the first batch
    assert caught.value.failed_ids == ids[1_000:]
    assert pinecone_server.stored_ids() == set(ids[:1_000])
    storm = [r for r in pinecone_server.requests_for("upsert") if r.status == 429]
    # Bounded retries (fewer when the SDK's process-wide retry budget is spent by
    # earlier storms), each after the pause Retry-After asked for, never hammered.
    assert 1 <= len(storm) <= 10
    gaps = [b.started - a.finished for a, b in itertools.pairwise(storm)]
    assert all(gap >= 0.19 for gap in gaps)
    assert elapsed < 30  # and the whole call ended, well within a deadline


@pytest.mark.usefixtures("fast_retries")
def test_5xx_in_the_middle_of_a_concurrent_upsert_is_exact_about_what_was_written(
    pinecone_server: PineconeTestServer,
) -> None:
    store = _store(pinecone_server, max_concurrency=4)
    ids = [f"v{i}" for i in range(6_000)]
    pinecone_server.fail("upsert", status=503, on_call=3, times=100)
    with pytest.raises(PartialWriteError) as caught:
        store.upsert(ids, _vectors(6_000, 8))
    written, failed = caught.value.written_ids, caught.value.failed_ids
    assert set(written) == pinecone_server.stored_ids()  # exact: what it says was written, was
    assert set(written) | set(failed) == set(ids) and not set(written) & set(failed)
    pinecone_server.clear_faults()
    store.upsert(failed, _vectors(6_000, 8)[[ids.index(i) for i in failed]])  # resume
    assert pinecone_server.stored_ids() == set(ids)


@pytest.mark.usefixtures("fast_retries")
def test_a_stalling_server_ends_in_a_bounded_time_with_nothing_claimed(
    pinecone_server: PineconeTestServer,
) -> None:
    store = PineconeStore(_index(pinecone_server.host, timeout=0.2), dim=8, max_concurrency=2)
    pinecone_server.delay(1.0, "upsert")  # every answer comes long after the client's timeout
    ids = [f"v{i}" for i in range(2_500)]
    started = time.monotonic()
    with pytest.raises(PartialWriteError, match="Timeout") as caught:
        store.upsert(ids, _vectors(2_500, 8))
    assert time.monotonic() - started < 20  # four attempts of 0.2 s per batch, at most
    # A timed-out request may still have been applied: it is reported as failed (retry
    # it; upserts overwrite), never as written.
    assert caught.value.written_ids == []
    assert set(caught.value.failed_ids) == set(ids)
    pinecone_server.clear_faults()
