"""Keeping an index current while its folders change (``zsv index --watch``).

:func:`watch_folders` watches the source folders with the ``watchdog`` library (inotify,
FSEvents or ReadDirectoryChangesW underneath) and, once the folders have been quiet for
``debounce`` seconds, runs the usual incremental :meth:`SearchEngine.index_folder` on each
folder that changed. So every guarantee of a folder run holds: new and changed files are
encoded, renamed ones re-identified, removed ones dropped (with the "more than half" guard),
writes commit in batches (``commit_every``), and a kill at any moment leaves an index that
opens and that the next run completes. A burst (thousands of files copied in) becomes one
run: events only mark a folder dirty and push its quiet deadline back, bounded by
``max_delay`` so that a folder that never stops changing is still indexed.

The watcher stops when ``stop`` is set, and a Ctrl-C (``KeyboardInterrupt``) in the loop
stops it too, after the observer thread is shut down; the run in progress commits what
it wrote (the engine's writer) and the rest is picked up next time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import InvalidInputError, ZeroshotVisionError
from zeroshot_vision._optional import require

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import FolderReport

__all__ = ["WatchState", "watch_folders"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class WatchState:
    """Which folders changed and when, fed by the observer's thread (thread-safe)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self._lock = threading.Lock()
        self._first: dict[Path, float] = {}
        self._last: dict[Path, float] = {}
        self.events = 0

    def touch(self, path: str) -> None:
        """Record a change at ``path`` (a file or folder under one of the folders)."""
        where = Path(path)
        now = time.monotonic()
        with self._lock:
            self.events += 1
            for folder in self.folders:
                if where == folder or where.is_relative_to(folder):
                    self._first.setdefault(folder, now)
                    self._last[folder] = now

    def due(self, *, debounce: float, max_delay: float) -> list[Path]:
        """The folders quiet for ``debounce`` s (or dirty for ``max_delay``), now clean."""
        now = time.monotonic()
        with self._lock:
            ready = [
                folder
                for folder, last in self._last.items()
                if now - last >= debounce or now - self._first[folder] >= max_delay
            ]
            for folder in ready:
                del self._last[folder], self._first[folder]
        return ready


def _handler(state: WatchState, index_dir: Path) -> Any:
    events = require("watchdog.events", extra="watch", purpose="zsv index --watch")
    base: Any = events.FileSystemEventHandler

    class Handler(base):  # type: ignore[misc]
        def on_any_event(self, event: Any) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # reading a file changes nothing
            for path in (event.src_path, getattr(event, "dest_path", "")):
                text = os.fsdecode(path) if path else ""
                # The index's own files (an index inside a source) are not the library's.
                if text and not Path(text).is_relative_to(index_dir):
                    state.touch(text)

    return Handler()


def watch_folders(
    engine: SearchEngine,
    folders: Sequence[PathLike],
    *,
    debounce: float = 2.0,
    max_delay: float = 60.0,
    commit_every: float = 5.0,
    stop: threading.Event | None = None,
    on_report: Callable[[Path, FolderReport], None] | None = None,
    on_error: Callable[[Path, Exception], None] | None = None,
    poll: float = 0.2,
) -> None:
    """Re-index ``folders`` into ``engine``'s index whenever they change, until stopped.

    Args:
        engine: An engine with an index folder (``SearchEngine.create``/``open``).
        folders: Source folders of that index (already indexed once, or new ones).
        debounce: Seconds without a change before a folder is re-indexed.
        max_delay: Seconds after its first change a folder is re-indexed at the latest.
        commit_every: Seconds between commits within a run (batched commits).
        stop: Set it to stop watching (from another thread or a signal handler).
        on_report: Called after each run with the folder and its report.
        on_error: Called when a run fails with a library or file-system error (the
            watcher keeps going); without it the error is logged.
        poll: How often the loop checks for due folders, in seconds.

    Raises:
        InvalidInputError: A folder is not a folder, or the engine has no index folder.
        MissingDependencyError: ``watchdog`` is not installed (``pip install
            zeroshot-vision[watch]``).
    """
    observers = require("watchdog.observers", extra="watch", purpose="zsv index --watch")
    if engine.folder is None:
        raise InvalidInputError("watching needs an index folder: SearchEngine.create(path)")
    roots = [Path(folder).expanduser().resolve() for folder in folders]
    for root in roots:
        if not root.is_dir():
            raise InvalidInputError(f"{root} is not a folder")
    stop = stop or threading.Event()
    state = WatchState(roots)
    observer = observers.Observer()
    handler = _handler(state, Path(engine.folder.path).resolve())
    for root in roots:
        observer.schedule(handler, str(root), recursive=True)
    observer.start()
    logger.info("watching %s", ", ".join(str(root) for root in roots))
    try:
        while not stop.is_set():
            for root in state.due(debounce=debounce, max_delay=max_delay):
                try:
                    report = engine.index_folder(root, commit_every=commit_every)
                except (ZeroshotVisionError, OSError) as exc:
                    if on_error is None:
                        logger.error("cannot update the index from %s: %s", root, exc)
                    else:
                        on_error(root, exc)
                    continue
                if on_report is not None:
                    on_report(root, report)
            stop.wait(poll)
    finally:
        observer.stop()
        observer.join(timeout=10)
        logger.info("stopped watching")
