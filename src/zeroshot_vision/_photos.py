"""Searching a photo library: date, folder and camera filters, sorting by date taken.

Folder indexes store each photo's EXIF fields (see :mod:`zeroshot_vision._images.exif`:
``taken``, ``year``, ``month``, ``camera_make``, ``camera_model``, ``lens``,
``latitude``, ``longitude``, ``width``, ``height``) and its ``folders`` (the folders that
hold it, see :func:`~zeroshot_vision._index.scan.folder_ancestors`). These helpers build
filters over them in the one filter language every store speaks, so they work on
Pinecone as on FAISS::

    engine.search("a beach", filter=photo_filter(since="2021-06", under=["/photos/trips"]))

``zsv search --since --until --under --sort`` is sugar over these. :func:`image_path_for_id`
finds the file of a stored photo, for the app and the server to show the original.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import InvalidFilterError

if TYPE_CHECKING:
    from zeroshot_vision._index.folder import IndexFolder
    from zeroshot_vision._types import SearchResult
    from zeroshot_vision.stores._base import VectorStore

__all__ = [
    "SORT_KEYS",
    "combine_filters",
    "date_bounds",
    "filter_fields",
    "image_path_for_id",
    "moment_for_id",
    "photo_filter",
    "record_fields",
    "sort_results",
]

SORT_KEYS = ("score", "taken")
"""How results can be ordered: by relevance (the stores' order), or by date taken."""

PathLike = str | os.PathLike[str]


def date_bounds(text: str) -> tuple[int, int]:
    """The Unix seconds ``[start, end)`` a date names: ``2021``, ``2021-07``, ``2021-07-14``.

    The bounds are midnights UTC, compared with the stored ``taken``. For a photo whose
    EXIF has no offset, ``taken`` is its local time read as UTC, so the bounds fall on
    its local calendar. With an offset, ``taken`` is the true instant, and a photo taken
    within the offset's hours of a bound's midnight (2022-01-01 00:30 at +09:00 is
    2021-12-31 15:30 UTC) falls on the UTC side of it; its ``year`` and ``month`` fields
    keep the local date, for filtering on the calendar the camera showed.

    Raises:
        InvalidFilterError: Not one of those forms, or not a real date.
    """
    # Imported here: zsv search --server builds its (often empty) filter with this module.
    import calendar
    import datetime as dt

    parts = text.strip().split("-")
    try:
        numbers = [int(part) for part in parts]
        if not 1 <= len(numbers) <= 3 or len(parts[0]) != 4:
            raise ValueError(text)
        year, month, day = [*numbers, 1, 1][:3]
        start = dt.datetime(year, month, day, tzinfo=dt.timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise InvalidFilterError(
            f"{text!r} is not a date; write YYYY, YYYY-MM or YYYY-MM-DD (e.g. 2021-07-14)"
        ) from exc
    # The end is counted in days from the start, not built as a date: the day after
    # 9999-12-31 is a valid bound (Unix seconds) but no datetime.
    if len(numbers) == 1:
        days = 366 if calendar.isleap(year) else 365
    elif len(numbers) == 2:
        days = calendar.monthrange(year, month)[1]
    else:
        days = 1
    first = int(start.timestamp())
    return first, first + days * 86_400


def photo_filter(
    *,
    since: str | None = None,
    until: str | None = None,
    under: Sequence[PathLike] = (),
) -> dict[str, Any] | None:
    """A filter for photos taken in a period and lying under some folders.

    Args:
        since: Taken on or after this date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; from
            its midnight UTC, see :func:`date_bounds`).
        until: Taken on or before this date, the whole of it: ``until="2021"`` keeps all of
            2021 (to the next midnight UTC).
        under: Folders (absolute, or relative to the working folder); a photo passes when
            it lies in any of them, at any depth.

    Returns:
        The filter, or ``None`` when nothing narrows.

    Raises:
        InvalidFilterError: A bad date, or ``since`` after ``until``.
    """
    conditions: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    if since is not None:
        taken["$gte"] = date_bounds(since)[0]
    if until is not None:
        taken["$lt"] = date_bounds(until)[1]
    if "$gte" in taken and "$lt" in taken and taken["$gte"] >= taken["$lt"]:
        raise InvalidFilterError(f"the period {since} to {until} is empty (since is after until)")
    if taken:
        conditions.append({"taken": taken})
    if under:
        from zeroshot_vision._index.scan import absolute, displayable

        folders = sorted({displayable(str(absolute(folder))) for folder in under})
        conditions.append({"folders": {"$in": folders}})
    return combine_filters(*conditions)


def combine_filters(*filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The filters that are given, combined with *and* (``None`` when none is)."""
    given = [dict(f) for f in filters if f]
    if not given:
        return None
    return given[0] if len(given) == 1 else {"$and": given}


def filter_fields(filter: Mapping[str, Any] | None) -> set[str]:
    """The metadata fields a (valid) filter names, through ``$and`` and ``$or``."""
    fields: set[str] = set()
    for key, value in (filter or {}).items():
        if key in ("$and", "$or") and isinstance(value, list):
            for part in value:
                if isinstance(part, Mapping):
                    fields |= filter_fields(part)
        elif not key.startswith("$"):
            fields.add(key)
    return fields


def record_fields(store: VectorStore, *, sample: int = 500) -> set[str]:
    """The metadata fields found in up to ``sample`` records of ``store``."""
    from zeroshot_vision._checks import batched

    fields: set[str] = set()
    for batch in batched(islice(store.ids(), sample), 100):
        for record in store.fetch(batch).values():
            fields.update(record.metadata or {})
    return fields


def sort_results(results: Iterable[SearchResult], by: str) -> list[SearchResult]:
    """``results`` ordered by ``by``: ``"score"`` (as given) or ``"taken"`` (oldest first,
    photos without a date last).

    Raises:
        InvalidFilterError: An unknown sort key.
    """
    if by not in SORT_KEYS:
        raise InvalidFilterError(f"cannot sort by {by!r}; use one of {', '.join(SORT_KEYS)}")
    listed = list(results)
    if by == "score":
        return listed

    def when(result: SearchResult) -> tuple[bool, float]:
        taken = result.metadata.get("taken")
        if isinstance(taken, int | float) and not isinstance(taken, bool):
            return (False, float(taken))
        return (True, 0.0)

    return sorted(listed, key=when)


def image_path_for_id(
    store: VectorStore, image_id: str, *, folder: IndexFolder | None = None
) -> Path | None:
    """The file of an indexed image, or ``None``.

    The path comes only from the stored metadata of ``image_id``, and is given only when
    :func:`~zeroshot_vision._index.serving.servable_image` allows it: an image file under
    the index's source folders (``folder``'s). An id that is not in the store, or whose
    stored path names no such file, gives ``None``.
    """
    from zeroshot_vision._index.serving import servable_image

    if not isinstance(image_id, str) or not image_id:
        return None
    record = store.fetch([image_id]).get(image_id)
    if record is None:
        return None
    return servable_image(record.metadata.get("path"), folder)


def moment_for_id(
    store: VectorStore, frame_id: str, *, folder: IndexFolder | None = None
) -> tuple[Path, float] | None:
    """The video file and the moment (seconds) of an indexed video frame, or ``None``.

    The same rule as :func:`image_path_for_id`: the path comes from the stored metadata
    and is given only for a video file under the index's source folders.
    """
    from zeroshot_vision._index.serving import servable_video

    if not isinstance(frame_id, str) or not frame_id:
        return None
    record = store.fetch([frame_id]).get(frame_id)
    if record is None:
        return None
    timestamp = record.metadata.get("timestamp")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return None
    path = servable_video(record.metadata.get("path"), folder)
    return None if path is None else (path, float(timestamp))
