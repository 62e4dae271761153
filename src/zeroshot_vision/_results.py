"""``SearchResults``: a list of search results that also converts, prints and renders.

It is a plain ``list`` of :class:`~zeroshot_vision._types.SearchResult` (indexing,
``len``, iteration and ``==`` to a list work as before), with conversions for the tools
people hand results to: :meth:`~SearchResults.to_dicts` (flat rows), ``to_pandas`` (a
DataFrame; needs pandas), :meth:`~SearchResults.to_json`, a short ``repr``, and in
Jupyter a grid of thumbnails (``_repr_html_``) in which every piece of text is escaped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from zeroshot_vision._optional import require
from zeroshot_vision._search_result import SearchResult, caption

if TYPE_CHECKING:
    import pandas

__all__ = [
    "GROUP_BY",
    "THUMBNAIL_SIZE",
    "SearchResults",
    "clock",
    "describe",
    "file_key",
    "flatten_metadata",
    "group_by_file",
]


THUMBNAIL_SIZE = 160
"""The longest side, in pixels, of the thumbnails in :meth:`SearchResults._repr_html_`."""

_REPR_ROWS = 10


def flatten_metadata(metadata: Mapping[str, Any], prefix: str = "metadata.") -> dict[str, Any]:
    """Nested mappings as dotted columns: ``{"a": {"b": 1}}`` -> ``{"metadata.a.b": 1}``.

    Lists are kept as values: a column of lists is what pandas and parquet expect.
    """
    flat: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten_metadata(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _found(result: SearchResult) -> dict[str, Any]:
    """``found_by`` and ``snippet`` of a hybrid or text search's result (else nothing)."""
    if result.fused_score is None and result.found_by == ("vector",):
        return {}
    return {"found_by": list(result.found_by), "snippet": result.snippet}


def _moments(result: SearchResult) -> dict[str, Any]:
    """A video frame's ``timestamp``, and a grouped result's other moments (id, score,
    probability and timestamp each); nothing for an ungrouped photo."""
    found: dict[str, Any] = {}
    if result.timestamp is not None:
        found["timestamp"] = result.timestamp
    if not result.moments:
        return found
    return {
        **found,
        "moments": [
            {"id": m.id, "score": m.score, "probability": m.probability, "timestamp": m.timestamp}
            for m in result.moments
        ],
    }


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class SearchResults(list[SearchResult]):
    """The results of one query, best first: a ``list`` with conversions.

    Example:
        >>> results = engine.search("a red bicycle", k=5)  # doctest: +SKIP
        >>> results[0].id, len(results)  # doctest: +SKIP
        >>> results.to_pandas()[["id", "score", "metadata.country"]]  # doctest: +SKIP
    """

    def __init__(
        self,
        results: Iterable[SearchResult] = (),
        *,
        query: str | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        super().__init__(results)
        self.query = query
        """A printable description of the query, when known (shown by ``repr``)."""
        self.warnings: tuple[str, ...] = tuple(warnings)
        """One line each for what may make these results poor, such as a query in a
        language the model cannot read (see ``Encoder.reading_warning``); the results are
        still the model's best answer."""

    def to_dicts(self) -> list[dict[str, Any]]:
        """One flat dict per result: ``rank``, ``id``, ``score``, ``probability`` and the
        metadata as ``metadata.<key>`` entries (nested keys dotted)."""
        return [
            {
                "rank": rank,
                "id": result.id,
                "score": result.score,
                "probability": result.probability,
                **_found(result),
                **flatten_metadata(result.metadata),
            }
            for rank, result in enumerate(self, start=1)
        ]

    def to_pandas(self) -> pandas.DataFrame:
        """The results as a DataFrame, one row per result (see :meth:`to_dicts`).

        Raises:
            MissingDependencyError: pandas is not installed (the ``pandas`` extra).
        """
        pd = require("pandas", extra="pandas", purpose="SearchResults.to_pandas")
        columns = ["rank", "id", "score", "probability"]
        return pd.DataFrame(self.to_dicts(), columns=None if self else columns)

    def to_json(self, **dumps: Any) -> str:
        """The results as a JSON array; metadata stays nested under ``"metadata"``.

        Args:
            **dumps: Passed to :func:`json.dumps` (``indent=2``, ...).
        """
        dumps.setdefault("ensure_ascii", False)
        return json.dumps(
            [
                {
                    "rank": rank,
                    "id": r.id,
                    "score": r.score,
                    "probability": r.probability,
                    **_found(r),
                    "metadata": dict(r.metadata),
                    **_moments(r),
                }
                for rank, r in enumerate(self, start=1)
            ],
            **dumps,
        )

    def __repr__(self) -> str:
        head = f"SearchResults({len(self)} result{'s' if len(self) != 1 else ''}"
        head += f" for {self.query})" if self.query else ")"
        lines = [head]
        for rank, r in enumerate(self[:_REPR_ROWS], start=1):
            text = " ".join(describe(r.metadata).split())
            text = "" if text == r.id else text if len(text) <= 60 else text[:59] + "…"
            lines.append(
                f"  {rank:>2}. {r.id}  score={_short(r.score)}  p={_short(r.probability)}"
                + (f"  {text}" if text else "")
            )
        if len(self) > _REPR_ROWS:
            lines.append(f"  … {len(self) - _REPR_ROWS} more")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """A grid of thumbnails (from metadata ``path``) with id, scores and caption.

        Every piece of text is HTML-escaped, so metadata cannot inject markup; images are
        embedded as small base64 JPEGs, never linked, so the notebook stays self-contained.
        """
        import html  # here: its entity table is a cost ``zsv search --server`` need not pay

        cells = []
        for rank, r in enumerate(self, start=1):
            thumbnail = _thumbnail(r.metadata.get("path"))
            picture = (
                f'<img src="data:image/jpeg;base64,{thumbnail}" '
                f'style="max-width:{THUMBNAIL_SIZE}px;max-height:{THUMBNAIL_SIZE}px" alt="">'
                if thumbnail
                else f'<div style="width:{THUMBNAIL_SIZE}px;height:{THUMBNAIL_SIZE // 2}px;'
                'background:#eee"></div>'
            )
            text = describe(r.metadata)
            cells.append(
                f'<figure style="margin:4px;width:{THUMBNAIL_SIZE}px;font-size:11px">'
                f"{picture}<figcaption><b>{rank}. {html.escape(r.id)}</b><br>"
                f"score {_short(r.score)} · p {_short(r.probability)}"
                + (f"<br>{html.escape(text[:200])}" if text else "")
                + "</figcaption></figure>"
            )
        title = f"{len(self)} results" + (f" for {self.query}" if self.query else "")
        return (
            f"<div><div><b>{html.escape(title)}</b></div>"
            '<div style="display:flex;flex-wrap:wrap">' + "".join(cells) + "</div></div>"
        )


def describe(metadata: Mapping[str, Any]) -> str:
    """The text that describes a result: its caption (see :func:`~zeroshot_vision._types.caption`),
    else its ``path`` (``path @ 01:23`` for a video frame), else ``""``. The CLI's table
    and the notebook view show the same."""
    path = metadata.get("path")
    if isinstance(path, str) and isinstance(metadata.get("timestamp"), (int, float)):
        path = f"{path} @ {clock(float(metadata['timestamp']))}"
    return caption(metadata) or (path if isinstance(path, str) else "")


def clock(seconds: float) -> str:
    """A moment as a player shows it: ``01:23``, or ``1:02:03`` past an hour."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


GROUP_BY = ("file",)
"""What ``search(..., group_by=...)`` can fold results by."""


def file_key(result_id: str) -> str:
    """The file a result belongs to: a frame's id less its ``#t=`` part, else the id."""
    return result_id.split("#t=", 1)[0]


def group_by_file(results: Iterable[SearchResult], k: int) -> list[SearchResult]:
    """The best result of each file, best first, at most ``k``; the file's other results
    (the other moments of a video) folded into its ``moments``."""
    groups: dict[str, list[SearchResult]] = {}
    for result in results:  # best first: the first of a file is its best
        groups.setdefault(file_key(result.id), []).append(result)
    return [
        dataclasses.replace(found[0], moments=tuple(found[1:]))
        for found in list(groups.values())[:k]
    ]


def _thumbnail(path: object) -> str | None:
    """A small base64 JPEG of the image at ``path``, or ``None`` if it cannot be read."""
    if not isinstance(path, str) or not path:
        return None
    # Imported here, as Pillow is: zsv search --server prints results without them.
    import base64
    import io
    import logging

    from zeroshot_vision._errors import ImageLoadError
    from zeroshot_vision._images import load_image

    try:
        image = load_image(path, draft_size=(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    except ImageLoadError as exc:
        logging.getLogger(__name__).debug("no thumbnail for %s: %s", path, exc.reason)
        return None
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
