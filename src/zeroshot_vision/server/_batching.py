"""Dynamic batching: concurrent requests share one forward pass, on one model thread.

Every request that needs the model hands its texts or decoded images to a
:class:`Batcher` and waits. The batcher's thread takes the first waiting job, then keeps
taking more for at most ``max_wait_ms`` (or until ``max_batch_size`` items; or at once
when every request admitted through :meth:`Batcher.admit` is already in the batch, so a
lone request never waits for company that cannot come), and runs them as one batch: on
a CPU, eight texts in one pass cost far less than eight passes. One exception to not
waiting: when the batch was taken from a backlog (requests queued while the model was
busy, so more are likely on their way) and its texts leave a row of the encoder's last
text pass empty (:attr:`~zeroshot_vision._encoder.Encoder.text_pass_rows`), it waits
(within ``max_wait_ms``) for a text to fill that row, which the pass would otherwise
compute as filler. The queue is bounded; a full one raises :class:`ServerBusyError` at
once, which the server answers with 503 and ``Retry-After`` instead of letting the
backlog grow.

:class:`BatchedEncoder` is what the server's engines receive as their encoder: it is the
loaded :class:`~zeroshot_vision._encoder.Encoder` with ``encode_texts`` and
``encode_loaded`` sent through the batcher, so ``SearchEngine.search`` and friends batch
across requests without knowing it. Texts go through the encoder's own
``encode_texts``, so its text cache still answers repeated queries.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np

from zeroshot_vision._checks import batched, positive_int
from zeroshot_vision._errors import InvalidInputError, ServerBusyError, ZeroshotVisionError

if TYPE_CHECKING:
    import numpy.typing as npt
    from PIL import Image

    from zeroshot_vision._encoder import Encoder

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_WAIT_MS",
    "DEFAULT_QUEUE_SIZE",
    "BatchObserver",
    "BatchedEncoder",
    "Batcher",
    "ServerBusyError",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 32
"""Most texts or images in one forward pass."""

DEFAULT_MAX_WAIT_MS = 5.0
"""How long the first job of a batch waits for company, in milliseconds."""

DEFAULT_QUEUE_SIZE = 64
"""Most requests waiting for the model before new ones get 503."""

T = TypeVar("T")


class BatchObserver:
    """Receives what the batcher does, for metrics; the default ignores everything."""

    def batch(self, kind: str, size: int, seconds: float) -> None:
        """One forward pass of ``size`` items of ``kind`` (``text``/``image``) ran."""

    def depth(self, waiting: int) -> None:
        """``waiting`` requests are now admitted and not yet answered."""


@dataclass
class _Job(Generic[T]):
    kind: Literal["text", "image", "call"]
    items: list[Any]
    future: Future[T] = field(default_factory=Future)
    call: Callable[[], T] | None = None


_STOP = object()


class Batcher:
    """One model thread that runs queued jobs in batches.

    Args:
        encoder: The loaded encoder; only this batcher's thread runs it.
        max_batch_size: Most items (texts or images) in one forward pass; 1 turns
            batching off.
        max_wait_ms: How long the first job waits for others to join its batch.
        queue_size: Most admitted requests (:meth:`admit`) and queued jobs at a time.
        observer: Told about every batch and every change of the queue depth.

    Raises:
        InvalidInputError: A size that is not a positive integer, or a negative wait.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        observer: BatchObserver | None = None,
    ) -> None:
        self.encoder = encoder
        self.max_batch_size = positive_int(max_batch_size, "max_batch_size")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)):
            raise InvalidInputError(f"max_wait_ms must be a number, got {max_wait_ms!r}")
        if not 0 <= max_wait_ms <= 10_000:
            raise InvalidInputError(f"max_wait_ms must be from 0 to 10000, got {max_wait_ms}")
        self.max_wait = float(max_wait_ms) / 1000
        self.queue_size = positive_int(queue_size, "queue_size")
        self.observer = observer or BatchObserver()
        self._queue: queue.Queue[_Job[Any] | object] = queue.Queue(maxsize=self.queue_size)
        self._admitted = 0
        self._admitted_lock = threading.Lock()
        self._carry: _Job[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="zsv-model", daemon=True)
        self._closed = False
        self._thread.start()

    # -- callers' side -------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the model thread is running."""
        return self._thread.is_alive() and not self._closed

    @property
    def waiting(self) -> int:
        """Requests admitted and not yet finished."""
        return self._admitted

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the ``queue_size`` places for a request that will need the model.

        Raises:
            ServerBusyError: Every place is taken.
        """
        with self._admitted_lock:
            if self._admitted >= self.queue_size:
                raise ServerBusyError(
                    f"the model has {self._admitted} requests waiting (the limit); retry soon"
                )
            self._admitted += 1
            self.observer.depth(self._admitted)
        try:
            yield
        finally:
            with self._admitted_lock:
                self._admitted -= 1
                self.observer.depth(self._admitted)

    def encode_texts(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed texts on the model thread, batched with other callers' (blocks)."""
        if not texts:
            return np.zeros((0, self.encoder.dim), np.float32)
        return self._submit(_Job("text", list(texts)))

    def encode_images(self, images: list[Image.Image]) -> npt.NDArray[np.float32]:
        """Embed decoded RGB images on the model thread, batched with others' (blocks)."""
        if not images:
            return np.zeros((0, self.encoder.dim), np.float32)
        return self._submit(_Job("image", list(images)))

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the model thread between batches, alone, and return its value.

        For work that drives the encoder itself (indexing an uploaded image).
        """
        job: _Job[T] = _Job("call", [], call=function)
        return self._submit(job)

    def submit(
        self, kind: Literal["text", "image"], items: list[Any]
    ) -> Future[npt.NDArray[np.float32]]:
        """Queue texts or decoded images for the model thread without waiting: the future
        of their vectors (in order), or of the encoder's error for them.

        For callers on an event loop, which await the future instead of blocking a thread
        (``asyncio.wrap_future``). Nothing is queued for no items.

        Raises:
            ServerBusyError: The queue is full, or the batcher is closing.
        """
        job: _Job[npt.NDArray[np.float32]] = _Job(kind, list(items))
        if not job.items:
            job.future.set_result(np.zeros((0, self.encoder.dim), np.float32))
            return job.future
        self._enqueue(job)
        return job.future

    def _submit(self, job: _Job[T]) -> T:
        self._enqueue(job)
        return job.future.result()

    def _enqueue(self, job: _Job[Any]) -> None:
        if self._closed:
            raise ServerBusyError("the server is shutting down")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise ServerBusyError("the model's queue is full; retry soon") from None

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, then stop the model thread. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the model thread ----------------------------------------------------------------

    def _next(self, timeout: float | None) -> _Job[Any] | object:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _run(self) -> None:
        while True:
            # Work that queued while the model was busy: the server is under load.
            backlog = self._carry is not None or not self._queue.empty()
            first = self._next(None)
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            if first.kind == "call":
                self._run_call(first)
                continue
            batch, stop = self._gather(first, backlog)
            self._run_batch(batch)
            if stop:
                return

    def _gather(self, first: _Job[Any], backlog: bool = False) -> tuple[list[_Job[Any]], bool]:
        """``first`` and the jobs that join it within the wait and the size limit.

        ``backlog``: ``first`` was waiting while the model was busy, so other clients are
        likely sending more; then a batch whose texts leave a row of their last pass empty
        waits for one, even when every admitted request is in it already.
        """
        batch, size = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            if (
                self._carry is None
                and self._queue.empty()
                and 0 < self._admitted <= len(batch)
                and not (backlog and self._pass_has_room(batch))
            ):
                # Every admitted request is already in this batch: nobody can join it, so
                # waiting would only add max_wait_ms to a lone request's latency.
                break
            try:
                job = self._next(deadline - time.monotonic())
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            assert isinstance(job, _Job)
            if job.kind == "call" or size + len(job.items) > self.max_batch_size:
                self._carry = job  # it starts the next batch
                break
            batch.append(job)
            size += len(job.items)
        return batch, False

    def _pass_has_room(self, batch: list[_Job[Any]]) -> bool:
        """Whether the texts of ``batch`` leave a row of their last forward pass to filler."""
        texts = sum(len(job.items) for job in batch if job.kind == "text")
        return texts % self.encoder.text_pass_rows != 0

    def _run_call(self, job: _Job[Any]) -> None:
        assert job.call is not None
        try:
            job.future.set_result(job.call())
        except BaseException as exc:  # noqa: BLE001  # the caller re-raises it
            job.future.set_exception(exc)

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        for kind in ("text", "image"):
            jobs = [job for job in batch if job.kind == kind]
            if jobs:
                self._run_kind(kind, jobs)

    def _run_kind(self, kind: str, jobs: list[_Job[Any]]) -> None:
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        try:
            vectors = self._encode(kind, items)
        except ZeroshotVisionError:
            if len(jobs) == 1:
                self._fail(jobs[0])
                return
            # One caller's bad input must not fail the others': answer each on its own.
            for job in jobs:
                self._run_kind(kind, [job])
            return
        except BaseException:  # noqa: BLE001  # handed to every caller
            for job in jobs:
                self._fail(job)
            return
        self.observer.batch(kind, len(items), time.perf_counter() - started)
        offset = 0
        for job in jobs:
            job.future.set_result(vectors[offset : offset + len(job.items)])
            offset += len(job.items)

    def _fail(self, job: _Job[Any]) -> None:
        try:
            self._encode(job.kind, job.items)
        except BaseException as exc:  # noqa: BLE001  # the caller re-raises it
            job.future.set_exception(exc)
        else:  # pragma: no cover - it failed in a batch but not alone
            job.future.set_exception(RuntimeError("encoding failed"))

    def _encode(self, kind: str, items: list[Any]) -> npt.NDArray[np.float32]:
        if kind == "text":
            return self.encoder.encode_texts(items)
        chunks = [
            self.encoder.encode_loaded(chunk) for chunk in batched(items, self.max_batch_size)
        ]
        return np.concatenate(chunks)


class BatchedEncoder:
    """An :class:`~zeroshot_vision._encoder.Encoder` whose forward passes go through a batcher.

    Everything but ``encode_texts`` and ``encode_loaded`` is the encoder's own (its
    ``dim``, ``probability``, ``draft_size``, ...), so a ``SearchEngine`` given this
    object behaves exactly as with the encoder, and its vectors are the encoder's.

    Args:
        batcher: The batcher of the encoder to wrap.
    """

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.encoder = batcher.encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def __repr__(self) -> str:
        return f"BatchedEncoder({self.encoder!r})"

    def encode_texts(
        self, texts: str | Iterable[str], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """The encoder's ``encode_texts``, run on the model thread in a shared batch."""
        return self.batcher.encode_texts([texts] if isinstance(texts, str) else list(texts))

    def encode_loaded(self, images: list[Image.Image]) -> npt.NDArray[np.float32]:
        """The encoder's ``encode_loaded``, run on the model thread in a shared batch."""
        return self.batcher.encode_images(images)
