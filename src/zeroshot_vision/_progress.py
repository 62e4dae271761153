"""Progress for every long operation, written once: a callback, a bar, or nothing.

Each long operation takes ``progress=`` with one meaning everywhere: ``None``/``False``
for nothing, ``True`` for a ``tqdm.auto`` bar (a widget in Jupyter, text on a terminal),
or a callable that receives a :class:`~zeroshot_vision._types.Progress` before the first
batch and after every batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._types import Progress

__all__ = ["ProgressCallback", "ProgressOption", "Tracker"]

ProgressCallback = Callable[[Progress], object]
"""Receives a :class:`~zeroshot_vision._types.Progress` after every batch."""

ProgressOption = bool | ProgressCallback | None
"""What ``progress=`` accepts: ``True`` (a bar), a callable, or ``None``/``False``."""


class Tracker:
    """Counts a long operation's items and reports them the way ``progress`` asks.

    Args:
        progress: ``True``, a callable, or ``None``/``False`` (see the module doc).
        task: What is running, shown on the bar and passed on in ``Progress.task``.
        total: How many items there are, when known.
        unit: The bar's unit ("img", "vec").

    Raises:
        InvalidInputError: ``progress`` is none of the accepted kinds.
    """

    def __init__(
        self, progress: ProgressOption, *, task: str, total: int | None, unit: str = "img"
    ) -> None:
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            raise InvalidInputError(
                f"progress must be True, False, None or a callable, got {progress!r}"
            )
        self._callback: ProgressCallback | None = (
            progress if callable(progress) and not isinstance(progress, bool) else None
        )
        self._bar: Any = None
        if progress is True:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=task, unit=unit, dynamic_ncols=True)
        self.state = Progress(task=task, total=total)
        if self._callback is not None:
            self._callback(self.state)

    def advance(self, count: int, *, failed: int = 0) -> None:
        """Record ``count`` more items handled, ``failed`` of them unsuccessfully."""
        state = self.state
        self.state = Progress(
            task=state.task,
            total=state.total,
            done=state.done + count,
            advanced=count,
            indexed=state.indexed + count - failed,
            failed=state.failed + failed,
        )
        if self._bar is not None:
            if failed:
                self._bar.set_postfix(failed=self.state.failed, refresh=False)
            self._bar.update(count)
        if self._callback is not None:
            self._callback(self.state)

    def close(self) -> None:
        """Close the bar, if there is one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
