"""A thread pool that keeps a bounded number of tasks in flight, each with a key.

Pinecone's batched upserts and the photo downloader both submit work from an iterator
that may be far longer than memory allows to queue: they wait for the first task to
finish whenever ``limit`` are in flight, and need to know which item each finished
task was for.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

from zeroshot_vision._checks import positive_int

K = TypeVar("K")
R = TypeVar("R")


class BoundedPool(Generic[K, R]):
    """``workers`` threads and at most ``limit`` tasks (default ``workers``) in flight.

    Finished tasks come back as ``(key, future)`` pairs from :meth:`wait_any` and
    :meth:`wait_all`; a task's exception stays in its future for the caller to judge.
    """

    def __init__(self, workers: int, *, limit: int | None = None, name: str) -> None:
        workers = positive_int(workers, "workers")
        self._limit = positive_int(limit, "limit") if limit is not None else workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._in_flight: dict[Future[R], K] = {}

    def __len__(self) -> int:
        return len(self._in_flight)

    @property
    def full(self) -> bool:
        """Whether ``limit`` tasks are in flight: wait for one before submitting more."""
        return len(self._in_flight) >= self._limit

    def keys(self) -> list[K]:
        """The keys of the tasks still in flight."""
        return list(self._in_flight.values())

    def submit(self, key: K, function: Callable[..., R], *args: Any) -> None:
        """Start ``function(*args)`` for ``key``."""
        self._in_flight[self._executor.submit(function, *args)] = key

    def wait_any(self) -> list[tuple[K, Future[R]]]:
        """Wait until at least one task is done; those done, removed from the pool."""
        if not self._in_flight:
            return []
        done, _ = wait(list(self._in_flight), return_when=FIRST_COMPLETED)
        return [(self._in_flight.pop(future), future) for future in done]

    def wait_all(self) -> list[tuple[K, Future[R]]]:
        """Wait for every task in flight; all of them, removed from the pool."""
        done, _ = wait(list(self._in_flight))
        return [(self._in_flight.pop(future), future) for future in done]

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the threads (see :meth:`concurrent.futures.Executor.shutdown`)."""
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __enter__(self) -> BoundedPool[K, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
