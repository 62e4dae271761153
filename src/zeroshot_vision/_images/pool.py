"""The decoding processes an encoder keeps: forked once, replaced when one dies.

Resizing and Python-level decoding hold the GIL, so threads cannot scale them; forked
processes can, and forking (not spawning) re-imports nothing. A :class:`DecoderPool`
lives as long as its encoder, which stops it with ``Encoder.close()``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import ParamSpec, TypeVar

__all__ = ["MAX_WORKERS", "DecoderPool", "default_workers"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

MAX_WORKERS = 16
"""Most decoding processes started by default (16 kept an H100 fed in measurements)."""

_ORPHAN_CHECK_SECONDS = 0.2


def default_workers() -> int:
    """Decoding processes for this machine: one per core, at most :data:`MAX_WORKERS`."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


class DecoderPool:
    """Decoding processes kept for an encoder's life, started at first use.

    Forking once, rather than for every call, keeps small calls cheap; a pool whose
    worker died (a decoder crash, the OOM killer) is replaced at the next use. Processes
    exist on Linux only (forked: nothing is re-imported, not even the caller's
    ``__main__``, which ``spawn`` needs and a script without a main guard breaks);
    elsewhere ``fork`` is unsafe (macOS) or missing (Windows), and images decode on
    threads.

    Args:
        workers: Processes to start; 0 means threads.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers if sys.platform.startswith("linux") else 0
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        # Set when a job of the running pool failed with BrokenProcessPool (a worker
        # died): the executor's own flag is private, so the pool keeps its own.
        self._broken = False
        self._submitter = _Submitter(self)

    def executor(self) -> Executor:
        """The pool's executor, its processes started (or replaced, when broken) now.

        Its ``submit`` goes to the running processes; one that finds them broken (a
        worker died while they were idle) starts new ones and submits there.
        """
        self._running()
        return self._submitter

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is not None and self._broken:
                logger.warning("a decoding process died; starting new ones")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_worker_setup,
                    initargs=(os.getpid(),),
                )
                pool.submit(int).result()  # with fork, every worker starts at the first submit
                self._pool = pool
                self._broken = False
            return self._pool

    def _mark_broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if pool is self._pool:
                self._broken = True

    def _watch(self, pool: ProcessPoolExecutor, future: Future[object]) -> None:
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            self._mark_broken(pool)

    def close(self) -> None:
        """Stop the processes (a later use starts new ones)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _worker_setup(parent: int) -> None:
    """In a decoding process: leave Ctrl-C to the parent, and never outlive it."""
    # Ctrl-C reaches the whole process group; the parent stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def exit_when_orphaned() -> None:
        # A killed parent (SIGKILL, the OOM killer) must not leave its workers behind,
        # holding its pipes open. (Linux's PR_SET_PDEATHSIG follows the forking thread,
        # not the process, and would kill a pool started by a short-lived thread.)
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, name="zsv-orphan-check", daemon=True).start()


class _Submitter(Executor):
    """Submits to a :class:`DecoderPool`'s running processes, noting when they broke."""

    def __init__(self, owner: DecoderPool) -> None:
        self._owner = owner

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        pool = self._owner._running()
        try:
            future = pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:  # a worker died while no job was running
            self._owner._mark_broken(pool)
            pool = self._owner._running()
            future = pool.submit(fn, *args, **kwargs)
        future.add_done_callback(partial(self._owner._watch, pool))
        return future
