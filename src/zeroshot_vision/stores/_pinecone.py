"""``PineconeStore``: the managed, distributed backend on Pinecone (SDK 10.x).

The store speaks to one namespace of one Pinecone index through the SDK's index handle
and keeps the :class:`~zeroshot_vision.stores.VectorStore` contract, so code written
against :class:`~zeroshot_vision.stores.FaissStore` runs unchanged.

What the store does so the caller does not have to:

* **Request limits.** Upserts are split so every request holds at most
  :data:`MAX_VECTORS_PER_REQUEST` vectors *and* at most :data:`MAX_REQUEST_BYTES` bytes of
  JSON, measured by serializing each record exactly as the SDK will. Fetch and delete send
  at most :data:`MAX_IDS_PER_REQUEST` ids per request. Upsert batches go out concurrently
  on a bounded thread pool (``max_concurrency``).
* **Validation before the network.** Pinecone is stricter than the protocol: metadata
  values must be a string, number, bool or list of strings (no ``None``, no nested
  objects), at most :data:`MAX_METADATA_BYTES` per vector. One bad record rejects the
  whole call and nothing is sent. Filters are checked with the shared filter code, so a
  typo fails locally.
* **Any id.** Pinecone ids must be 1 to 512 ASCII characters; a photo library has
  accented and CJK file names. Such ids are stored percent-encoded (``Crème.png`` as
  ``Cr%C3%A8me.png``), which maps back exactly; one still too long is stored under a hash
  with the original id in the reserved metadata field :data:`ID_FIELD`. Callers only ever
  see their own ids.
* **Plain Python on the wire.** Vectors are unit-normalized float32 and sent in float32's
  shortest decimal form (about 13 KB of JSON for 1152 dimensions instead of 24 KB), which
  parses back to exactly the same float32 values.
* **Faults.** The SDK retries 408, 429, 5xx and dropped connections itself. A failure that
  survives its retries stops the upsert from sending further batches and raises
  :class:`~zeroshot_vision._errors.PartialWriteError` listing the ids that were written and
  those that were not (retry those). Other SDK failures become
  :class:`~zeroshot_vision._errors.StoreError` chaining the original.

The index's metric should be ``cosine``. ``dotproduct`` is accepted too, because the
store normalizes every stored and query vector, which makes a dot product a cosine;
``euclidean`` is refused (its scores are distances, lowest first). The metric is checked
when the store reads the index stats, that is when ``dim`` is not given.

Pinecone is eventually consistent: a write is acknowledged before every reader sees it,
so on the real service ``len()``, ``ids()`` and queries may lag a write by a few seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import positive_int
from zeroshot_vision._errors import (
    InvalidInputError,
    InvalidMetadataError,
    PartialWriteError,
    StoreError,
)
from zeroshot_vision._optional import require
from zeroshot_vision._pool import BoundedPool
from zeroshot_vision._types import Hit, Metadata, Record
from zeroshot_vision.stores._base import check_ids, prepare_query, prepare_upsert

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "MAX_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_TOP_K",
    "MAX_VECTORS_PER_REQUEST",
    "PineconeStore",
    "RedactedSDKError",
    "create_pinecone_index",
]

logger = logging.getLogger(__name__)

MAX_VECTORS_PER_REQUEST = 1_000
"""Pinecone refuses an upsert of more vectors than this."""
MAX_REQUEST_BYTES = 2_000_000
"""Pinecone refuses a request body over 2 MB; counted in decimal bytes to stay clear of it."""
MAX_IDS_PER_REQUEST = 1_000
"""Pinecone refuses a fetch or delete of more ids than this."""
MAX_METADATA_BYTES = 40 * 1024
"""Pinecone refuses metadata larger than 40 KB (as compact JSON) on one vector."""
MAX_ID_LENGTH = 512
ID_FIELD = "_zsv_id"
"""Reserved metadata field: the original id of a record stored under a hashed id."""
_HASHED = "%sha256:"  # never produced by percent-encoding, so never a mapped readable id
"""Pinecone ids are 1 to this many ASCII characters."""
MAX_TOP_K = 10_000
"""Pinecone refuses ``top_k`` above this; larger ``k`` is clamped to it."""

# Room left in every upsert body for the envelope ({"vectors":[...],"namespace":...})
# and commas, on top of the exactly measured records.
_ENVELOPE_MARGIN = 1_024
# A fetch carries its ids in the URL; keep the query string well under common
# request-line limits (Python's http.server stops at 64 KiB).
_MAX_FETCH_QUERY_BYTES = 32_000
_SUPPORTED_METRICS = frozenset({"cosine", "dotproduct"})
_API_KEY_ENV = "PINECONE_API_KEY"

_T = TypeVar("_T")
_E = TypeVar("_E", bound=BaseException)


class _Encoder(Protocol):
    """The part of ``orjson`` the store uses (orjson ships with pinecone 10.x)."""

    OPT_SERIALIZE_NUMPY: int

    def dumps(self, obj: Any, /, default: Any = ..., option: int | None = ...) -> bytes: ...

    def loads(self, obj: bytes | str, /) -> Any: ...


def _pinecone() -> ModuleType:
    return require("pinecone", extra="pinecone", purpose="PineconeStore")


def _orjson() -> _Encoder:
    module: Any = require("orjson", extra="pinecone", purpose="PineconeStore")
    return module  # type: ignore[no-any-return]


class PineconeStore:
    """A vector store on one namespace of a Pinecone index.

    Args:
        index: The SDK's index handle, ``pinecone.Pinecone(api_key=...).Index(host=...)``.
        dim: Vector dimension. When ``None`` it is read from ``describe_index_stats``
            (one request), which also checks that the index's metric is usable.
        namespace: The Pinecone namespace holding this store's records (``""`` is the
            index's default namespace).
        max_concurrency: How many upsert requests may be in flight at once.
        api_key: The key ``index`` was opened with, blanked out of every error and log
            line this store writes (the SDK's handle does not tell it); default
            ``$PINECONE_API_KEY``. Never stored anywhere else, never printed.

    Raises:
        InvalidInputError: If ``dim`` or ``max_concurrency`` is not a positive integer,
            or the namespace is not a string.
        StoreError: If the index stats cannot be read, the index reports no dimension, or
            its metric is euclidean.

    Example:
        >>> from pinecone import Pinecone  # doctest: +SKIP
        >>> index = Pinecone(api_key=key).Index(host=host)  # doctest: +SKIP
        >>> store = PineconeStore(index, namespace="photos", api_key=key)  # doctest: +SKIP
    """

    remote = True
    """Every call is a network round trip: batched helpers (``stores.batch.query_many``)
    run this store's queries concurrently, bounded."""

    def __init__(
        self,
        index: Any,
        *,
        dim: int | None = None,
        namespace: str = "",
        max_concurrency: int = 4,
        api_key: str | None = None,
    ) -> None:
        if not isinstance(namespace, str):
            raise InvalidInputError(f"namespace must be a string, got {namespace!r}")
        max_concurrency = positive_int(max_concurrency, "max_concurrency")
        self._index = index
        self._api_key = api_key if api_key is not None else os.environ.get("PINECONE_API_KEY")
        self._owns_index = False
        self._namespace = namespace
        self._max_concurrency = max_concurrency
        self._pc_errors = _sdk_error_types()
        self._json = _orjson()
        if dim is None:
            self._dim = self._dim_from_stats()
        else:
            self._dim = positive_int(dim, "dim")

    @classmethod
    def connect(
        cls,
        *,
        host: str | None = None,
        index_name: str | None = None,
        namespace: str = "",
        api_key: str | None = None,
        dim: int | None = None,
        max_concurrency: int = 4,
        timeout: float = 30.0,
    ) -> PineconeStore:
        """Open a store on an index given by host or name, with the key from the environment.

        With neither ``host`` nor ``index_name``, the ``PINECONE_INDEX_HOST`` or
        ``PINECONE_INDEX`` environment variable names the index.

        Args:
            host: The index's data-plane host, e.g. ``"https://photos-abc.svc...pinecone.io"``.
            index_name: The index's name; resolving it costs one control-plane request.
            namespace: The namespace holding this store's records.
            api_key: The API key; by default the ``PINECONE_API_KEY`` environment variable.
            dim: Vector dimension; read from the index stats when ``None``.
            max_concurrency: How many upsert requests may be in flight at once.
            timeout: Seconds one attempt of one request may take.

        Raises:
            InvalidInputError: If no API key is set, or not exactly one index is named.
            StoreError: If the index cannot be reached.
        """
        key = api_key or os.environ.get(_API_KEY_ENV, "")
        if not key:
            raise InvalidInputError(
                f"no Pinecone API key: set the {_API_KEY_ENV} environment variable"
            )
        if host is None and index_name is None:
            host = os.environ.get("PINECONE_INDEX_HOST") or None
            index_name = None if host else (os.environ.get("PINECONE_INDEX") or None)
        if (host is None) == (index_name is None):
            raise InvalidInputError(
                "name the index by exactly one of its host or its name (zsv: --pinecone-host "
                "or --pinecone-index; Python: host= or index_name=; or set "
                "PINECONE_INDEX_HOST or PINECONE_INDEX)"
            )
        pinecone = _pinecone()
        errors = _sdk_error_types()
        failure: StoreError | None = None
        try:
            if host is None:
                host = str(pinecone.Pinecone(api_key=key).describe_index(name=index_name).host)
            index = pinecone.Index(host=host, api_key=key, timeout=timeout)
        except errors as exc:
            failure = _chained(
                StoreError(
                    f"cannot open Pinecone index {host or index_name!r}: "
                    f"{_describe(exc, secrets=(key,))}"
                ),
                exc,
                secrets=(key,),
            )
        if failure is not None:
            raise failure
        try:
            store = cls(
                index,
                dim=dim,
                namespace=namespace,
                max_concurrency=max_concurrency,
                api_key=key,
            )
        except BaseException:
            index.close()
            raise
        store._owns_index = True
        return store

    def commit(self) -> None:
        """Nothing to do: every upsert and delete is durable once it returns."""

    def close(self) -> None:
        """Close the index handle if this store opened it (:meth:`connect`).

        A handle passed to the constructor belongs to the caller and stays open.
        """
        if self._owns_index:
            self._index.close()

    def __enter__(self) -> PineconeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the protocol ------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension of every stored vector."""
        return self._dim

    @property
    def namespace(self) -> str:
        """The Pinecone namespace this store reads and writes."""
        return self._namespace

    def __repr__(self) -> str:
        host = getattr(self._index, "host", "?")
        return f"PineconeStore(host={host!r}, namespace={self._namespace!r}, dim={self._dim})"

    def __len__(self) -> int:
        stats = self._call("describe_index_stats", self._index.describe_index_stats)
        summary = _namespace_summary(stats, self._namespace)
        return int(getattr(summary, "vector_count", 0) or 0) if summary is not None else 0

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert or overwrite records (see :class:`~zeroshot_vision.stores.VectorStore`).

        Every record is validated before the first request; the records then go out in
        requests within Pinecone's count and size limits, up to ``max_concurrency`` at
        once.

        Raises:
            InvalidInputError: If any id, vector or metadata is rejected (nothing is sent).
            PartialWriteError: If a request failed after the SDK's retries; its
                ``written_ids`` are stored and its ``failed_ids`` may not be.
        """
        id_list, matrix, meta_list = prepare_upsert(ids, vectors, metadata, self._dim)
        if not id_list:
            return
        record_budget = MAX_REQUEST_BYTES - _ENVELOPE_MARGIN - len(self._namespace) * 6
        # Upper bound of one float32 in shortest JSON form plus its comma ("-1.2345678e-05,").
        vector_bytes_bound = 16 * self._dim
        remote_ids = []
        for i, (item, meta) in enumerate(zip(id_list, meta_list, strict=True)):
            if ID_FIELD in meta:
                raise InvalidMetadataError(
                    f"metadata of id {item!r} uses the reserved {ID_FIELD!r}"
                )
            remote = _remote_id(item)
            if remote.startswith(_HASHED):
                meta_list[i] = meta = {**meta, ID_FIELD: item}
            remote_ids.append(remote)
            meta_bytes = _check_metadata(item, meta, self._json)
            if vector_bytes_bound + meta_bytes + len(remote) + 64 > record_budget:
                raise InvalidInputError(
                    f"record {item!r} would not fit in one {MAX_REQUEST_BYTES}-byte request"
                )
        batches = _batches(
            self._records(remote_ids, matrix, meta_list), record_budget, MAX_VECTORS_PER_REQUEST
        )
        self._send_upserts(batches, remote_ids)

    def query(
        self, vector: npt.ArrayLike, k: int = 10, filter: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The ``k`` most similar records that pass ``filter``, highest score first.

        ``k`` above :data:`MAX_TOP_K` is clamped to it (Pinecone's limit).
        """
        query, k = prepare_query(vector, k, filter, self._dim)
        top_k = min(k, MAX_TOP_K)
        response = self._call(
            "query",
            self._index.query,
            top_k=top_k,
            vector=self._values(query[0]),
            namespace=self._namespace,
            filter=dict(filter) if filter else None,
            include_values=False,
            include_metadata=True,
        )
        hits = []
        for match in response.matches or []:
            if match.id:
                item, meta = _local(str(match.id), dict(match.metadata or {}))
                score = float(np.clip(float(match.score), -1.0, 1.0))
                hits.append(Hit(id=item, score=score, metadata=meta))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[:k]

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records for ``ids``; absent ids are left out."""
        wanted = [_remote_id(item) for item in dict.fromkeys(check_ids(ids))]
        return {record.id: record for record in self._fetch_remote(wanted).values()}

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; absent ids are ignored.

        Raises:
            PartialWriteError: If a request failed part way; ``written_ids`` lists the
                ids whose deletion went through, ``failed_ids`` those to retry.
        """
        local_of = {_remote_id(item): item for item in dict.fromkeys(check_ids(ids))}
        wanted = list(local_of)
        done: list[str] = []
        for chunk in _id_chunks(wanted):
            try:
                self._index.delete(ids=chunk, namespace=self._namespace)
            except self._pc_errors as exc:
                failure = self._chained(
                    PartialWriteError(
                        f"Pinecone delete failed after {len(done)} of {len(wanted)} ids: "
                        f"{self._describe(exc)}",
                        written_ids=[local_of[item] for item in done],
                        failed_ids=[local_of[item] for item in wanted[len(done) :]],
                    ),
                    exc,
                )
            else:
                done.extend(chunk)
                continue
            raise failure  # outside the except block: no __context__ to carry the key

    def ids(self) -> Iterator[str]:
        """Every stored id, page by page (pages are requested as the iterator advances)."""
        pages = self._call("list", self._index.list, namespace=self._namespace)
        iterator = iter(pages)
        while True:
            page = self._call("list", next, iterator, None)
            if page is None:
                return
            remote = [str(item.id) for item in page.vectors or []]
            hashed = [item for item in remote if item.startswith(_HASHED)]
            # A hashed id's original lives in its metadata, which listing does not return.
            originals = {item: record.id for item, record in self._fetch_remote(hashed).items()}
            for item in remote:
                if item in originals:
                    yield originals[item]
                elif not item.startswith(_HASHED):
                    yield _local(item, {})[0]

    # -- internals ---------------------------------------------------------------------

    def _fetch_remote(self, remote_ids: list[str]) -> dict[str, Record]:
        """The records stored under ``remote_ids``, keyed by those ids, with the caller's
        ids and metadata inside."""
        out: dict[str, Record] = {}
        for chunk in _id_chunks(remote_ids, query_budget=_MAX_FETCH_QUERY_BYTES):
            response = self._call("fetch", self._index.fetch, ids=chunk, namespace=self._namespace)
            for remote, found in (response.vectors or {}).items():
                item, meta = _local(str(remote), dict(found.metadata or {}))
                vector = np.asarray(found.values, dtype=np.float32)
                out[str(remote)] = Record(id=item, vector=vector, metadata=meta)
        return out

    def _dim_from_stats(self) -> int:
        stats = self._call("describe_index_stats", self._index.describe_index_stats)
        metric = getattr(stats, "metric", None)
        if metric and str(metric).lower() not in _SUPPORTED_METRICS:
            raise StoreError(
                f"the Pinecone index uses the {metric!r} metric; PineconeStore needs "
                "'cosine' (or 'dotproduct', equal to cosine on the unit vectors it stores). "
                "Create the index with metric='cosine'"
            )
        dimension = getattr(stats, "dimension", None)
        if not dimension:
            raise StoreError("the Pinecone index reports no dimension; pass dim= explicitly")
        return int(dimension)

    def _values(self, row: npt.NDArray[np.float32]) -> list[float]:
        # Round-tripping through float32's shortest repr gives plain Python floats whose
        # own shortest repr is short too, and which parse back to the same float32.
        values: list[float] = self._json.loads(
            self._json.dumps(row, option=self._json.OPT_SERIALIZE_NUMPY)
        )
        return values

    def _records(
        self,
        id_list: list[str],
        matrix: npt.NDArray[np.float32],
        meta_list: list[dict[str, Any]],
    ) -> Iterator[tuple[dict[str, Any], int]]:
        for item, row, meta in zip(id_list, matrix, meta_list, strict=True):
            record: dict[str, Any] = {"id": item, "values": self._values(row)}
            if meta:
                record["metadata"] = meta
            # +1 for the comma between records in the body's list.
            yield record, len(self._json.dumps(record)) + 1

    def _send_upserts(self, batches: Iterable[list[dict[str, Any]]], id_list: list[str]) -> None:
        written: list[str] = []
        failures: list[tuple[list[str], BaseException]] = []
        sent: set[str] = set()

        def collect(done: Iterable[tuple[list[str], Future[None]]]) -> None:
            for batch_ids, future in done:
                error = future.exception()
                if error is None:
                    written.extend(batch_ids)
                else:
                    failures.append((batch_ids, error))

        pool: BoundedPool[list[str], None] = BoundedPool(
            self._max_concurrency, name="pinecone-upsert"
        )
        with pool:
            for batch in batches:
                if failures:
                    break
                if pool.full:
                    collect(pool.wait_any())
                    if failures:
                        break
                batch_ids = [record["id"] for record in batch]
                sent.update(batch_ids)
                pool.submit(batch_ids, self._upsert_batch, batch)
            collect(pool.wait_all())

        if failures:
            stored = set(written)
            failed_ids = [item for item in id_list if item not in stored]
            first = failures[0][1]
            raise self._chained(
                PartialWriteError(
                    f"Pinecone upsert stored {len(written)} of {len(id_list)} records; "
                    f"{len(failed_ids)} were not stored ({len(failures)} request(s) failed, "
                    f"{len(id_list) - len(sent)} not sent): {self._describe(first)}",
                    written_ids=written,
                    failed_ids=failed_ids,
                ),
                first,
            )
        logger.debug("upserted %d records into namespace %r", len(written), self._namespace)

    def _upsert_batch(self, batch: list[dict[str, Any]]) -> None:
        self._index.upsert(vectors=batch, namespace=self._namespace)

    def _call(self, what: str, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return function(*args, **kwargs)
        except self._pc_errors as exc:
            failure = self._chained(
                StoreError(f"Pinecone {what} failed: {self._describe(exc)}"), exc
            )
        raise failure  # outside the except block: no __context__ to carry the key

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._api_key,)

    def _describe(self, exc: BaseException) -> str:
        return _describe(exc, secrets=self._secrets())

    def _chained(self, error: _E, cause: BaseException) -> _E:
        return _chained(error, cause, secrets=self._secrets())


def _sdk_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the request failed", as opposed to a bug."""
    pinecone = _pinecone()
    # PineconeError covers ApiError, PineconeConnectionError, PineconeTimeoutError and
    # ResponseParsingError; the OS-level ones cover transports the SDK does not wrap.
    return (pinecone.PineconeError, ConnectionError, TimeoutError)


class RedactedSDKError(Exception):
    """Stands in for an SDK exception whose text held the API key.

    A server may echo the key in an error body, which the SDK's exception quotes; chained
    under a :class:`~zeroshot_vision._errors.StoreError` it would print in every traceback
    and ``logger.exception``. This copy keeps the original's type name (in
    :attr:`sdk_type`), its text with the key blanked out, and its traceback.
    """

    def __init__(self, message: str, *, sdk_type: str) -> None:
        super().__init__(message)
        self.sdk_type = sdk_type

    def __str__(self) -> str:
        return f"{self.sdk_type}: {self.args[0]}" if self.args[0] else self.sdk_type


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def _redacted_chain(exc: BaseException, secrets: tuple[str | None, ...]) -> BaseException:
    """``exc`` itself when no secret shows in its traceback, else a redacted copy chain."""
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    if not any(secret and secret in shown for secret in secrets):
        return exc
    copies: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(copies) < 16:
        copy = RedactedSDKError(
            _redact(str(link), secrets), sdk_type=f"{type(link).__module__}.{type(link).__name__}"
        )
        copy.__traceback__ = link.__traceback__
        if copies:
            copies[-1].__cause__ = copy
        copies.append(copy)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return copies[0]


def _chained(error: _E, cause: BaseException, *, secrets: Iterable[str | None]) -> _E:
    """``error`` caused by ``cause``, or by a redacted copy of it where it shows a secret.

    Raise the result outside the ``except`` block that caught ``cause``: raised inside,
    Python would also keep ``cause`` itself as ``__context__``.
    """
    error.__cause__ = _redacted_chain(cause, tuple(secrets))
    error.__suppress_context__ = True
    return error


def _describe(exc: BaseException, *, secrets: Iterable[str | None]) -> str:
    """A one-line account of ``exc`` with any secret blanked out."""
    status = getattr(exc, "status_code", None)
    text = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    detail = str(exc).strip()
    if detail:
        text += f": {detail}"
    hint = _STATUS_HINTS.get(status) if isinstance(status, int) else None
    if hint:
        text += f" ({hint})"
    return _redact(text, secrets)


_STATUS_HINTS = {
    401: f"the API key was refused: check {_API_KEY_ENV}",
    403: "the API key may not use this index",
    404: "no such index or route: check the host",
    429: "still rate limited after the SDK's retries: wait, or lower max_concurrency",
}


def _namespace_summary(stats: Any, namespace: str) -> Any:
    namespaces = getattr(stats, "namespaces", None) or {}
    if namespace in namespaces:
        return namespaces[namespace]
    # The service lists the default namespace as "__default__" in newer API versions.
    if namespace == "" and "__default__" in namespaces:
        return namespaces["__default__"]
    return None


# Printable ASCII stays readable; '%' itself is escaped so that decoding is exact.
_SAFE_ID_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _remote_id(item: str) -> str:
    """The id Pinecone stores for ``item``: itself, percent-encoded, or a hash."""
    if item.isascii() and item.isprintable() and "%" not in item and len(item) <= MAX_ID_LENGTH:
        return item
    encoded = urllib.parse.quote(item, safe=_SAFE_ID_CHARACTERS, errors="strict")
    if len(encoded) <= MAX_ID_LENGTH:
        return encoded
    return _HASHED + hashlib.sha256(item.encode("utf-8")).hexdigest()


def _local(remote: str, metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The caller's id and metadata for a stored record (the inverse of ``_remote_id``)."""
    original = metadata.pop(ID_FIELD, None)
    if remote.startswith(_HASHED) and isinstance(original, str):
        return original, metadata
    return (urllib.parse.unquote(remote) if "%" in remote else remote), metadata


def _check_metadata(item: str, meta: Mapping[str, Any], encoder: _Encoder) -> int:
    """Check one record's metadata against Pinecone's rules; return its JSON size.

    ``prepare_upsert`` has already refused what no store can save, integers beyond the
    64-bit range that orjson (the SDK's JSON encoder) can write among them.
    """
    for key, value in meta.items():
        where = f"metadata of id {item!r}, field {key!r}"
        if value is None:
            raise InvalidMetadataError(
                f"{where} is None; Pinecone cannot store null (leave the field out)"
            )
        if isinstance(value, (str, bool, int, float)):
            continue
        if isinstance(value, list):
            if not all(isinstance(element, str) for element in value):
                raise InvalidMetadataError(
                    f"{where} is a list holding non-strings; Pinecone lists hold strings only"
                )
            continue
        raise InvalidMetadataError(
            f"{where} is a {type(value).__name__}; Pinecone metadata values are strings, "
            "numbers, bools or lists of strings (no nested objects)"
        )
    size = len(encoder.dumps(dict(meta))) if meta else 0
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"metadata of id {item!r} is {size} bytes as JSON; Pinecone allows at most "
            f"{MAX_METADATA_BYTES}"
        )
    return size


def _batches(
    records: Iterable[tuple[dict[str, Any], int]], max_bytes: int, max_count: int
) -> Iterator[list[dict[str, Any]]]:
    """Group sized records greedily into lists within both limits, in order."""
    batch: list[dict[str, Any]] = []
    size = 0
    for record, record_size in records:
        if batch and (len(batch) >= max_count or size + record_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


def _id_chunks(ids: list[str], *, query_budget: int | None = None) -> Iterator[list[str]]:
    """Split ids into requests of at most MAX_IDS_PER_REQUEST (and a URL budget)."""
    chunk: list[str] = []
    size = 0
    for item in ids:
        # "ids=" plus "&", with every character percent-encoded at worst.
        cost = 5 + 3 * len(item)
        if chunk and (
            len(chunk) >= MAX_IDS_PER_REQUEST
            or (query_budget is not None and size + cost > query_budget)
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += cost
    if chunk:
        yield chunk


def create_pinecone_index(
    name: str,
    *,
    dim: int | None = None,
    encoder: Any = None,
    cloud: str = "aws",
    region: str = "us-east-1",
    api_key: str | None = None,
    timeout: int = 300,
) -> str:
    """Create a serverless cosine index sized for an encoder, and return its host.

    Needs a Pinecone account; it waits until the index is ready.

    Args:
        name: The new index's name (lowercase letters, digits and hyphens).
        dim: The vector dimension; give this or ``encoder``.
        encoder: An encoder whose ``dim`` gives the dimension.
        cloud: The serverless cloud (``"aws"``, ``"gcp"`` or ``"azure"``).
        region: The cloud region, e.g. ``"us-east-1"``.
        api_key: The API key; by default the ``PINECONE_API_KEY`` environment variable.
        timeout: Seconds to wait for the index to become ready.

    Returns:
        The index's data-plane host, for :meth:`PineconeStore.connect`.

    Raises:
        InvalidInputError: If no API key is set, or not exactly one of ``dim`` and
            ``encoder`` is given.
        StoreError: If Pinecone refuses or the request fails.

    Example:
        >>> host = create_pinecone_index("photos", encoder=encoder)  # doctest: +SKIP
        >>> store = PineconeStore.connect(host=host, namespace="holiday")  # doctest: +SKIP
    """
    if (dim is None) == (encoder is None):
        raise InvalidInputError("give exactly one of dim= and encoder=")
    dimension = positive_int(encoder.dim if encoder is not None else dim, "dim")
    key = api_key or os.environ.get(_API_KEY_ENV, "")
    if not key:
        raise InvalidInputError(f"no Pinecone API key: set the {_API_KEY_ENV} environment variable")
    pinecone = _pinecone()
    failure: StoreError | None = None
    try:
        client = pinecone.Pinecone(api_key=key)
        client.create_index(
            name=name,
            dimension=dimension,
            metric="cosine",
            spec=pinecone.ServerlessSpec(cloud=cloud, region=region),
            timeout=timeout,
        )
        host = str(client.describe_index(name=name).host)
    except _sdk_error_types() as exc:
        failure = _chained(
            StoreError(f"cannot create Pinecone index {name!r}: {_describe(exc, secrets=(key,))}"),
            exc,
            secrets=(key,),
        )
    if failure is not None:
        raise failure  # outside the except block: no __context__ to carry the key
    logger.info("created Pinecone index %r (dim %d, cosine) at %s", name, dimension, host)
    return host
