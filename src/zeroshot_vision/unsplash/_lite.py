"""Unsplash Lite: read the dataset's tables and download its photos.

The Unsplash Lite zip holds tab-separated tables with a header row (``photos``,
``keywords``, ...) but no images. File names changed across versions: ``photos.tsv000``
(1.2.x and older), ``photos.csv000`` (1.3.x, still tab-separated) and ``photos.tsv``
(1.4.1+); the Full dataset shards a table into ``000``, ``001``, ... each with its own
header. :func:`table_files` finds whichever is there, and the readers use real CSV quoting
rules, so quoted descriptions holding tabs or newlines come through intact.

:func:`download_photos` fetches each ``photo_image_url`` with imgix resize parameters,
concurrently, with a deadline on each attempt as a whole (connecting, headers and body),
retries with exponential backoff on 5xx and connection errors, and ``Retry-After`` on 429.
A photo is written to ``<photo_id>.jpg`` through a temp file and a rename, and only after
its body decodes as an image the indexer accepts (within
:data:`~zeroshot_vision._images.DEFAULT_MAX_PIXELS`, checked before decoding), so a
truncated body, an HTML error page or a decompression bomb never lands as a photo. Photos
already on disk are skipped without a request; permanent failures (and anything else that
goes wrong with one photo) are listed in ``failures.tsv`` in the output folder.

Example:
    >>> report = download_dataset("unsplash-research-dataset-lite-latest", "photos",
    ...                           limit=100)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    downloaded 100, skipped 0, failed 0
"""

from __future__ import annotations

import csv
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeroshot_vision._errors import DatasetNotFoundError, InvalidInputError

__all__ = [
    "DEFAULT_IMAGE_PARAMS",
    "DatasetNotFoundError",
    "UnsplashPhoto",
    "image_url",
    "is_unsplash_dir",
    "iter_table",
    "read_conversions",
    "read_keywords",
    "read_photos",
    "table_files",
]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_PARAMS: Mapping[str, str] = {"fit": "max", "fm": "jpg", "q": "80"}
"""imgix parameters added to every image URL besides ``w`` (the width)."""

# Photo ids become file names: accept only what Unsplash uses, nothing path-like.
_PHOTO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUFFIXES = (".tsv", ".csv")
"""The largest image body accepted; a resized Unsplash photo is well under 1 MiB."""
_SHARD = re.compile(r"^\d{3}$")


# -- reading the tables --------------------------------------------------------------------


def table_files(dataset_dir: str | os.PathLike[str], table: str = "photos") -> list[Path]:
    """The files of one table in an Unsplash dataset folder, shards in order.

    Looks for ``<table>.tsv``, then ``<table>.tsv000``/``001``/..., then
    ``<table>.csv000``/...; the first naming scheme found wins.

    Raises:
        DatasetNotFoundError: If the folder holds none of them.
    """
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder")
    single = folder / f"{table}.tsv"
    if single.is_file():
        return [single]
    for suffix in _SUFFIXES:
        shards = sorted(
            path
            for path in folder.glob(f"{table}{suffix}*")
            if path.is_file() and _SHARD.match(path.name[len(table) + len(suffix) :])
        )
        if shards:
            return shards
    raise DatasetNotFoundError(
        f"no {table} table in {folder} (looked for {table}.tsv, {table}.tsv000, "
        f"{table}.csv000); point at the unzipped Unsplash Lite folder"
    )


def is_unsplash_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding an Unsplash ``photos`` table."""
    try:
        table_files(path, "photos")
    except DatasetNotFoundError:
        return False
    return True


def _raise_field_limit() -> None:
    # Descriptions can exceed csv's default 128 KiB field limit in the Full dataset.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # C long is 32 bits on some platforms
            limit //= 10


def iter_table(
    dataset_dir: str | os.PathLike[str], table: str, *, required: Sequence[str] = ()
) -> Iterator[dict[str, str]]:
    """Yield each row of a table as a dict keyed by the header's column names.

    Rows stream from disk one at a time, across all shards.

    Args:
        dataset_dir: The dataset folder.
        table: The table's name (``"photos"``, ``"keywords"``, ...).
        required: Columns each file's header must name.

    Raises:
        DatasetNotFoundError: If the table is not there.
        InvalidInputError: If a file's header lacks a ``required`` column.
    """
    _raise_field_limit()
    for path in table_files(dataset_dir, table):
        # utf-8-sig: a table saved by a spreadsheet starts with a byte-order mark, which
        # would otherwise become part of the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from _table_rows(path, handle, required)


def _table_rows(path: Path, handle: Any, required: Sequence[str]) -> Iterator[dict[str, str]]:
    """The rows of one open table file; a file that is not UTF-8 TSV is one clear error."""
    reader = csv.DictReader(handle, delimiter="\t")
    try:
        header = reader.fieldnames or []
        missing = [column for column in required if column not in header]
        if missing:
            shown = ", ".join(header[:5]) + (", ..." if len(header) > 5 else "")
            raise InvalidInputError(
                f"{path} lacks the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (its header: {shown or 'empty'});"
                " is it a tab-separated Unsplash table?"
            )
        for row in reader:
            yield {key: value for key, value in row.items() if isinstance(key, str)}
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not UTF-8 text ({exc.reason}); is it a tab-separated Unsplash table?"
        ) from exc
    except csv.Error as exc:
        raise InvalidInputError(f"{path} is damaged at line {reader.line_num}: {exc}") from exc


def _text(row: Mapping[str, str | None], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _year(timestamp: str | None) -> int | None:
    if not timestamp or len(timestamp) < 4 or not timestamp[:4].isdigit():
        return None
    return int(timestamp[:4])


@dataclass(frozen=True, kw_only=True)
class UnsplashPhoto:
    """One row of the ``photos`` table, with the fields this library uses.

    Attributes:
        photo_id: Unsplash's id (at most 11 characters); the image is ``<photo_id>.jpg``.
        image_url: The imgix URL of the image, without query string.
        page_url: The photo's page on unsplash.com.
        description: The photographer's description.
        ai_description: A machine-written caption.
        photographer: The photographer's name (or username when the name is empty).
        photographer_username: The photographer's Unsplash username.
        location: The location name.
        country: The location's country.
        city: The location's city.
        year: The year the photo was submitted to Unsplash.
        width: The original width in pixels.
        height: The original height in pixels.
    """

    photo_id: str
    image_url: str
    page_url: str | None = None
    description: str | None = None
    ai_description: str | None = None
    photographer: str | None = None
    photographer_username: str | None = None
    location: str | None = None
    country: str | None = None
    city: str | None = None
    year: int | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, str | None]) -> UnsplashPhoto:
        """Build a photo from a ``photos`` row; columns that are missing become ``None``."""
        first = _text(row, "photographer_first_name")
        last = _text(row, "photographer_last_name")
        username = _text(row, "photographer_username")
        name = " ".join(part for part in (first, last) if part) or username

        def number(column: str) -> int | None:
            value = _text(row, column)
            return int(value) if value and value.isdigit() else None

        return cls(
            photo_id=_text(row, "photo_id") or "",
            image_url=_text(row, "photo_image_url") or "",
            page_url=_text(row, "photo_url"),
            description=_text(row, "photo_description"),
            ai_description=_text(row, "ai_description"),
            photographer=name,
            photographer_username=username,
            location=_text(row, "photo_location_name"),
            country=_text(row, "photo_location_country"),
            city=_text(row, "photo_location_city"),
            year=_year(_text(row, "photo_submitted_at")),
            width=number("photo_width"),
            height=number("photo_height"),
        )

    def metadata(self, keywords: Sequence[str] = ()) -> dict[str, Any]:
        """The photo's fields as store metadata (``None`` fields left out).

        Args:
            keywords: The photo's keywords, stored as a list so that filters such as
                ``{"keywords": "dog"}`` match any element.
        """
        fields: dict[str, Any] = {
            "photo_id": self.photo_id,
            "url": self.page_url,
            "description": self.description,
            "ai_description": self.ai_description,
            "photographer": self.photographer,
            "photographer_username": self.photographer_username,
            "location": self.location,
            "country": self.country,
            "city": self.city,
            "year": self.year,
        }
        out = {key: value for key, value in fields.items() if value is not None}
        if keywords:
            out["keywords"] = list(keywords)
        return out


def read_photos(
    dataset_dir: str | os.PathLike[str], *, limit: int | None = None
) -> Iterator[UnsplashPhoto]:
    """Yield the photos of an Unsplash dataset folder, in table order.

    Rows without a photo id or image URL are skipped with a log message.

    Args:
        dataset_dir: The unzipped Unsplash Lite (or Full) folder.
        limit: Stop after this many photos.

    Raises:
        DatasetNotFoundError: If the folder holds no ``photos`` table.
        InvalidInputError: If the table has no ``photo_id`` or ``photo_image_url`` column.
    """
    count = 0
    rows = iter_table(dataset_dir, "photos", required=("photo_id", "photo_image_url"))
    for record, row in enumerate(rows, start=1):
        if limit is not None and count >= limit:
            return
        photo = UnsplashPhoto.from_row(row)
        if not photo.photo_id or not photo.image_url:
            logger.warning("photos record %d has no photo_id or photo_image_url; skipped", record)
            continue
        count += 1
        yield photo


def _confidence(row: Mapping[str, str | None]) -> float:
    best = 0.0
    for column in ("ai_service_1_confidence", "ai_service_2_confidence"):
        value = _text(row, column)
        if value:
            try:
                best = max(best, float(value))
            except ValueError:
                continue
    return best


def read_keywords(
    dataset_dir: str | os.PathLike[str],
    *,
    photo_ids: Iterable[str] | None = None,
    min_confidence: float = 50.0,
    max_per_photo: int = 20,
) -> dict[str, list[str]]:
    """Map each photo id to its best keywords, from the ``keywords`` table.

    A keyword is kept when a user suggested it (``suggested_by_user`` is ``t``) or an AI
    service gave it at least ``min_confidence`` (the table's confidences run 0-100).
    User keywords come first, then the rest by confidence, at most ``max_per_photo``.

    Args:
        dataset_dir: The dataset folder.
        photo_ids: Keep only these photos (saves memory on a sample); ``None`` keeps all.
        min_confidence: The AI confidence a keyword needs when no user suggested it.
        max_per_photo: The most keywords kept per photo.

    Returns:
        ``{photo_id: [keyword, ...]}``; empty when the folder has no keywords table.
    """
    wanted = set(photo_ids) if photo_ids is not None else None
    scored: dict[str, dict[str, float]] = {}
    try:
        rows = iter_table(dataset_dir, "keywords")
        for row in rows:
            photo_id = _text(row, "photo_id")
            keyword = _text(row, "keyword")
            if not photo_id or not keyword or (wanted is not None and photo_id not in wanted):
                continue
            by_user = (_text(row, "suggested_by_user") or "").lower() in ("t", "true")
            confidence = _confidence(row)
            if not by_user and confidence < min_confidence:
                continue
            # User suggestions rank above every AI confidence (which stays below 1000).
            score = 1000.0 + confidence if by_user else confidence
            keywords = scored.setdefault(photo_id, {})
            keywords[keyword] = max(score, keywords.get(keyword, score))
    except DatasetNotFoundError:
        logger.info("no keywords table in %s; photos get no keywords", dataset_dir)
        return {}
    return {
        photo_id: sorted(keywords, key=lambda k: (-keywords[k], k))[:max_per_photo]
        for photo_id, keywords in scored.items()
    }


def read_conversions(dataset_dir: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """Yield ``(query, photo_id)`` from the ``conversions`` table, in table order.

    Each row is a real search on Unsplash (its ``keyword``) followed by a download of the
    photo: relevance judgments for retrieval. Rows without a query or a photo id are
    skipped; a pair that occurs twice is yielded twice.

    Raises:
        DatasetNotFoundError: If the folder holds no ``conversions`` table.
        InvalidInputError: If the table lacks the ``keyword`` or ``photo_id`` column.
    """
    for row in iter_table(dataset_dir, "conversions", required=("keyword", "photo_id")):
        query = _text(row, "keyword")
        photo_id = _text(row, "photo_id")
        if query and photo_id:
            yield query, photo_id


# -- downloading ---------------------------------------------------------------------------


def image_url(
    photo_image_url: str, *, width: int = 640, params: Mapping[str, str] | None = None
) -> str:
    """The URL to fetch a photo at ``width`` pixels wide (never upscaled, with ``fit=max``).

    Args:
        photo_image_url: The ``photo_image_url`` column (an imgix URL).
        width: The wanted width in pixels.
        params: Other imgix parameters; default :data:`DEFAULT_IMAGE_PARAMS`.

    Raises:
        InvalidInputError: ``photo_image_url`` is not an http(s) URL with a host.
    """
    query = {"w": str(width), **(DEFAULT_IMAGE_PARAMS if params is None else params)}
    try:
        parts = urllib.parse.urlsplit(photo_image_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
    except ValueError as exc:
        raise InvalidInputError(f"invalid URL: {exc}") from exc
    kept = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if key not in query
    ]
    merged = urllib.parse.urlencode([*kept, *query.items()])
    return urllib.parse.urlunsplit(parts._replace(query=merged))
