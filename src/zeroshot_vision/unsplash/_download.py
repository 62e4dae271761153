"""Downloading photos over HTTP: concurrent, retried, resumable, never fatal per photo.

:func:`download_photos` fetches the photos of an Unsplash Lite table (or any
:class:`~zeroshot_vision.unsplash._lite.UnsplashPhoto` list) into a folder, one file
per photo, written atomically and only once it decodes within the indexer's limits. Each
attempt has one deadline covering connecting, headers and body; a failure of one photo is
recorded in ``failures.tsv``, never raised. Needs ``httpx`` (the ``download`` extra).
"""

from __future__ import annotations

import contextlib
import csv
import email.utils
import errno
import io
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast

import pydantic

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._files import write_atomic
from zeroshot_vision._json import describe_problem
from zeroshot_vision._optional import require
from zeroshot_vision._pool import BoundedPool
from zeroshot_vision.unsplash._lite import (
    _PHOTO_ID,
    UnsplashPhoto,
    image_url,
    read_photos,
    table_files,
)

require("httpx", extra="download", purpose="downloading photos")  # a clear message if absent

import httpcore  # noqa: E402 - after the check above, which names the extra to install
import httpx  # noqa: E402

__all__ = [
    "FAILURES_FILE",
    "MAX_PHOTO_BYTES",
    "USER_AGENT",
    "DownloadFailure",
    "DownloadOutcome",
    "DownloadReport",
    "RetryPolicy",
    "download_dataset",
    "download_photos",
    "read_failures",
]

logger = logging.getLogger(__name__)

FAILURES_FILE = "failures.tsv"
"""Failed photos, one per row: photo_id, url, reason (tab-separated)."""
_MAX_FAILURE_FIELD = 65_536  # below csv's own field limit (131,072)
_MAX_FAILURES_BYTES = 1 << 30
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
USER_AGENT = "zeroshot-vision (Unsplash Lite downloader)"
MAX_PHOTO_BYTES = 64 * 2**20


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try before a photo counts as failed.

    Attributes:
        retries: Retries after the first attempt, on 5xx, 429 and connection errors.
        backoff: The first wait in seconds; it doubles each retry (with jitter).
        max_backoff: The longest wait between two attempts, in seconds.
        max_retry_after: The longest ``Retry-After`` honoured, in seconds; a server asking
            for more gets this much.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base: float = min(self.backoff * 2.0**attempt, self.max_backoff)
        return base * random.uniform(0.5, 1.0)


@dataclass(frozen=True, kw_only=True)
class DownloadFailure:
    """A photo that could not be fetched, after its retries.

    Attributes:
        photo_id: The photo's id.
        url: The URL tried.
        reason: Why it failed (``"HTTP 404"``, ``"timed out"``, ``"not an image: ..."``).
    """

    photo_id: str
    url: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class DownloadOutcome:
    """What happened to one photo; passed to the progress callback.

    Attributes:
        photo_id: The photo's id.
        status: ``"downloaded"``, ``"skipped"`` (already on disk) or ``"failed"``.
        reason: Why it failed, for ``"failed"``.
    """

    photo_id: str
    status: Literal["downloaded", "skipped", "failed"]
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class DownloadReport:
    """What :func:`download_photos` did.

    Attributes:
        downloaded: Photos fetched and written in this run.
        skipped: Photos already on disk (no request made).
        failed: Photos that failed for good, with their reasons.
        bytes_written: Bytes of image data written.
        seconds: Wall time of the run.
    """

    downloaded: int = 0
    skipped: int = 0
    failed: tuple[DownloadFailure, ...] = field(default_factory=tuple)
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every photo is now on disk."""
        return not self.failed

    def __str__(self) -> str:
        return f"downloaded {self.downloaded}, skipped {self.skipped}, failed {len(self.failed)}"


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_image(body: bytes, content_type: str) -> None:
    """Raise :class:`_Failed` unless ``body`` decodes completely as an image to index.

    This is the indexer's own check (:func:`~zeroshot_vision._images.load_image`), so a
    photo kept here is never refused there: its pixel count is checked against
    :data:`~zeroshot_vision._images.DEFAULT_MAX_PIXELS` from the header, before decoding,
    and any decoder failure (``NotImplementedError`` on a malformed DDS, say) is a
    failure of this photo.
    """
    from zeroshot_vision._errors import ImageLoadError, ImageTooLargeError
    from zeroshot_vision._images import load_image

    try:
        load_image(body)  # decodes every pixel: a truncated file fails here
    except ImageTooLargeError as exc:
        raise _Failed(f"too large to index: {exc.reason}") from exc
    except ImageLoadError as exc:
        kind = content_type.split(";")[0].strip() or "unknown type"
        raise _Failed(f"not an image ({kind}, {len(body)} bytes): {exc.reason}") from exc


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    # str.isdigit() also accepts "²" and Arabic-Indic digits; HTTP means ASCII digits.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


class _SlowBody(Exception):
    """The body did not finish arriving within the time allowed."""


# httpx's timeouts bound each network operation, not an attempt: a server sending its
# headers or body a byte at a time would hold a worker for as long as it likes. Each
# attempt sets a deadline for its thread, and the network backend below cuts every
# connect, read and write short at it.
_attempt = threading.local()


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with :class:`_DeadlineStream` streams."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpx's own transport takes no network backend; httpcore's connection pool, which it
# wraps, does (network_backend=). This transport is the small part of httpx's that the
# downloader needs (no proxy, HTTP/1.1), over a pool with the deadline backend.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones that callers of a client expect."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class _Body(httpx.SyncByteStream):
    """A response body read from httpcore, its errors made httpx's."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _DeadlineTransport(httpx.BaseTransport):
    """An ``httpx`` transport whose connections honour each attempt's deadline."""

    def __init__(self, *, connections: int) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=True, trust_env=True),
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(httpcore.SyncBackend()),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            # A sync pool answers with a sync body.
            stream=_Body(cast("Iterable[bytes]", response.stream)),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def _read_body(response: httpx.Response, deadline: float, stop: threading.Event) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_PHOTO_BYTES:
                raise _Failed(f"body larger than {MAX_PHOTO_BYTES // 2**20} MiB")
            if stop.is_set():
                raise _SlowBody("interrupted")
            if time.monotonic() > deadline:
                raise _SlowBody("body still arriving at the deadline")
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline:
            raise _SlowBody("body still arriving at the deadline") from exc
        raise
    return b"".join(chunks)


def _fetch(
    client: httpx.Client,
    photo_id: str,
    url: str,
    target: Path,
    policy: RetryPolicy,
    stop: threading.Event,
    timeout: float = 30.0,
) -> int:
    """Fetch one photo into ``target``; return its size. Raises :class:`_Failed`."""
    attempt = 0
    while True:
        retry_after: float | None = None
        # One deadline for the whole attempt: connecting, sending, headers and body.
        deadline = _attempt.deadline = time.monotonic() + timeout
        try:
            with client.stream("GET", url) as response:
                status = response.status_code
                body = _read_body(response, deadline, stop) if status == 200 else b""
                content_type = response.headers.get("content-type", "")
                retry_after_header = response.headers.get("retry-after")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _Failed(f"invalid URL: {exc}") from exc
        except (httpx.TimeoutException, _SlowBody) as exc:
            if isinstance(exc, _SlowBody):
                reason = f"timed out ({exc}, {timeout:g} s)"
            elif time.monotonic() >= deadline:
                reason = f"timed out (no response by the deadline, {timeout:g} s)"
            else:
                reason = f"timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            reason = f"connection error: {exc or type(exc).__name__}"
        except httpx.TooManyRedirects as exc:
            raise _Failed(f"too many redirects: {exc}") from exc
        except httpx.RequestError as exc:  # DecodingError: a body its encoding cannot undo
            raise _Failed(f"bad response: {exc or type(exc).__name__}") from exc
        else:
            if status == 200:
                _check_image(body, content_type)
                write_atomic(target, body)
                return len(body)
            reason = f"HTTP {status}"
            if status == 429:
                retry_after = _retry_after(retry_after_header)
            elif status < 500:
                raise _Failed(reason)
        finally:
            _attempt.deadline = None  # the backoff wait below is not part of an attempt
        if attempt >= policy.retries or stop.is_set():
            raise _Failed(reason)
        delay = policy.delay(attempt, retry_after)
        logger.debug("%s: %s; retry %d in %.2fs", photo_id, reason, attempt + 1, delay)
        if stop.wait(delay):  # the run was interrupted: give up rather than wait
            raise _Failed(reason)
        attempt += 1


class _FailureRow(pydantic.BaseModel):
    """One row of ``failures.tsv``, validated when read back."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    # Not _PHOTO_ID: photos with an invalid id are recorded as failures too.
    photo_id: str = pydantic.Field(pattern=r"^[^\x00-\x1f]+$", max_length=_MAX_FAILURE_FIELD)
    url: str = pydantic.Field(max_length=_MAX_FAILURE_FIELD)
    reason: str = pydantic.Field(max_length=_MAX_FAILURE_FIELD)


def read_failures(out_dir: str | os.PathLike[str]) -> list[DownloadFailure]:
    """The failures recorded in ``out_dir/failures.tsv`` (empty when there is none).

    Raises:
        InvalidInputError: The file is damaged (not UTF-8, not tab-separated rows of
            photo_id, url and reason, a bad photo id, a huge field); the message names
            the file, the line and the field.
    """
    path = Path(out_dir) / FAILURES_FILE
    if not path.exists():
        return []
    if not path.is_file():
        raise InvalidInputError(f"{path} is damaged: it is not a regular file")
    failures: list[DownloadFailure] = []
    line = 1
    try:
        if path.stat().st_size > _MAX_FAILURES_BYTES:
            raise InvalidInputError(
                f"{path} is damaged: it is larger than {_MAX_FAILURES_BYTES:,} bytes"
            )
        text = path.read_bytes().decode("utf-8")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
        header = next(reader, None)
        if header is None:
            return []
        if header != list(_FailureRow.model_fields):
            raise InvalidInputError(
                f"{path} is damaged: line 1 should be the header photo_id, url, reason"
            )
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != 3:
                raise InvalidInputError(
                    f"{path} is damaged: line {line} has {len(row)} fields, not 3"
                )
            checked = _FailureRow.model_validate(dict(zip(_FailureRow.model_fields, row)))
            failures.append(DownloadFailure(**checked.model_dump()))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is damaged: it is not UTF-8 text") from exc
    except csv.Error as exc:  # a NUL byte, a field beyond csv's limit, a stray quote
        raise InvalidInputError(f"{path} is damaged: line {line}: {exc}") from exc
    except pydantic.ValidationError as exc:
        raise InvalidInputError(f"{path} is damaged: line {line}, {describe_problem(exc)}") from exc
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    return failures


def _write_failures(
    out_dir: Path, failures: Sequence[DownloadFailure], attempted: set[str]
) -> None:
    # Keep earlier failures of photos this run did not try (say, beyond --limit) and that
    # are still missing; this run's outcome replaces the rest.
    try:
        earlier = read_failures(out_dir)
    except InvalidInputError as exc:  # only a record: this run's outcome replaces it
        logger.warning("%s; writing a new one", exc)
        earlier = []
    kept = [
        old
        for old in earlier
        if old.photo_id not in attempted and not (out_dir / f"{old.photo_id}.jpg").exists()
    ]
    rows = kept + list(failures)
    path = out_dir / FAILURES_FILE
    if not rows:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["photo_id", "url", "reason"])
    for row in rows:
        writer.writerow([row.photo_id, row.url, row.reason])
    write_atomic(path, buffer.getvalue().encode("utf-8"))


def _remove_stale_temp_files(out_dir: Path) -> None:
    # A run killed mid-write leaves write_atomic's hidden temp files behind.
    for stale in out_dir.glob(".*.jpg.*.tmp"):
        stale.unlink(missing_ok=True)


def download_photos(
    photos: Iterable[UnsplashPhoto],
    out_dir: str | os.PathLike[str],
    *,
    width: int = 640,
    params: Mapping[str, str] | None = None,
    workers: int = 8,
    timeout: float = 30.0,
    retry: RetryPolicy | None = None,
    client: httpx.Client | None = None,
    progress: Callable[[DownloadOutcome], None] | None = None,
) -> DownloadReport:
    """Download photos to ``out_dir/<photo_id>.jpg``, concurrently and resumably.

    Photos already in ``out_dir`` are skipped without a request. Each image is written
    through a temp file and a rename, only once it decodes, so a run killed at any moment
    leaves only complete photos. Permanent failures are written to ``out_dir/failures.tsv``
    (``photo_id``, ``url``, ``reason``), which is removed once nothing is missing.

    Args:
        photos: The photos to fetch (for example from :func:`read_photos`); streamed.
        out_dir: The folder for the images; created if needed.
        width: Width in pixels to ask imgix for.
        params: imgix parameters besides ``w``; default :data:`DEFAULT_IMAGE_PARAMS`.
        workers: Concurrent requests.
        timeout: Seconds allowed for each attempt as a whole: connecting, sending the
            request, the response headers and the whole body, so a server trickling
            bytes does not hold a worker. With your own ``client``, its timeouts apply to
            connecting and the headers, and this deadline to the body.
        retry: Retry and backoff settings; default :class:`RetryPolicy()`.
        client: An ``httpx.Client`` to use (its settings win); by default one is made.
        progress: Called in the calling thread with each photo's outcome.

    Returns:
        The counts and the failures of this run.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    policy = retry or RetryPolicy()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(folder)
    own_client = client is None
    http = client or httpx.Client(
        transport=_DeadlineTransport(connections=workers),
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
    )
    started = time.monotonic()
    downloaded = skipped = written = 0
    failures: list[DownloadFailure] = []
    attempted: set[str] = set()
    disk_full = False

    def report(outcome: DownloadOutcome) -> None:
        if progress is not None:
            progress(outcome)

    def settle(done: Iterable[tuple[tuple[str, str], Future[int]]]) -> None:
        nonlocal downloaded, written
        for (photo_id, url), future in done:
            try:
                written += future.result()
            except OSError as exc:
                if exc.errno not in _DISK_FULL:
                    raise
                # Every photo after this one would fail the same way: stop now (the
                # requests in flight end quickly, and are waited for: none is retried).
                nonlocal disk_full
                disk_full = True
                stop.set()
                raise OSError(
                    exc.errno,
                    f"no space left for photos in {folder}; the {downloaded} written are "
                    "complete, so free some space and run again to continue",
                ) from exc
            except Exception as exc:  # one photo must never end the run
                if isinstance(exc, _Failed):
                    reason = exc.reason
                    logger.info("failed %s (%s): %s", photo_id, url, reason)
                else:
                    detail = str(exc).strip().splitlines()
                    reason = type(exc).__name__ + (f": {detail[0]}" if detail else "")
                    logger.warning("failed %s (%s): %s", photo_id, url, reason, exc_info=exc)
                failures.append(DownloadFailure(photo_id=photo_id, url=url, reason=reason))
                report(DownloadOutcome(photo_id=photo_id, status="failed", reason=reason))
            else:
                downloaded += 1
                report(DownloadOutcome(photo_id=photo_id, status="downloaded"))

    stop = threading.Event()
    unrecorded: OSError | None = None
    # Bound the queue so memory stays flat however many photos there are.
    pool: BoundedPool[tuple[str, str], int] = BoundedPool(
        workers, limit=2 * workers, name="zsv-download"
    )
    try:
        for photo in photos:
            if photo.photo_id in attempted:
                continue
            attempted.add(photo.photo_id)
            problem: str | None
            try:
                url = image_url(photo.image_url, width=width, params=params)
            except InvalidInputError as exc:
                url, problem = photo.image_url, str(exc)
            else:
                problem = None if _PHOTO_ID.match(photo.photo_id) else "invalid photo id"
            if problem is not None:
                failures.append(DownloadFailure(photo_id=photo.photo_id, url=url, reason=problem))
                report(DownloadOutcome(photo_id=photo.photo_id, status="failed", reason=problem))
                continue
            target = folder / f"{photo.photo_id}.jpg"
            if target.exists():
                skipped += 1
                report(DownloadOutcome(photo_id=photo.photo_id, status="skipped"))
                continue
            if pool.full:
                settle(pool.wait_any())
            args = (http, photo.photo_id, url, target, policy, stop, timeout)
            pool.submit((photo.photo_id, url), _fetch, *args)
        while len(pool):
            settle(pool.wait_any())
    finally:
        stop.set()  # on an interrupt, requests in flight end without further retries
        unfinished = pool.keys()
        pool.shutdown(wait=disk_full or not unfinished, cancel_futures=True)
        if own_client and (disk_full or not unfinished):
            http.close()
        try:
            _write_failures(folder, failures, attempted - {pid for pid, _ in unfinished})
        except OSError as exc:  # a full disk: do not hide the error that ended the run
            logger.warning("cannot record failures in %s: %s", folder / FAILURES_FILE, exc)
            unrecorded = exc
    if unrecorded is not None:
        raise unrecorded
    result = DownloadReport(
        downloaded=downloaded,
        skipped=skipped,
        failed=tuple(failures),
        bytes_written=written,
        seconds=time.monotonic() - started,
    )
    logger.info("download into %s: %s", folder, result)
    return result


def download_dataset(
    dataset_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    limit: int | None = None,
    **options: Any,
) -> DownloadReport:
    """Download the photos of an Unsplash dataset folder (see :func:`download_photos`).

    Args:
        dataset_dir: The unzipped Unsplash Lite folder.
        out_dir: The folder for the images.
        limit: Only the first ``limit`` photos of the table.
        **options: Passed to :func:`download_photos`.

    Raises:
        DatasetNotFoundError: If ``dataset_dir`` holds no ``photos`` table.
    """
    table_files(dataset_dir, "photos")  # fail before creating anything
    return download_photos(read_photos(dataset_dir, limit=limit), out_dir, **options)
