"""What the app's pages compute, without Streamlit.

The Streamlit script (:mod:`zeroshot_vision._app.streamlit_app`) only lays out widgets and
calls these functions, so every behaviour of the app is reachable and testable from
Python.

Safety rules kept here:

* An image is read only for an id that exists in the store, from the path stored in that
  id's metadata (:func:`image_path_for_id`). Nothing a user types or puts in a URL is ever
  used as a path.
* Uploaded bytes are size-checked and decoded through
  :func:`zeroshot_vision._images.load_image` with a pixel limit, which refuses corrupt files
  and decompression bombs (:func:`decode_upload`).
* Text from the index (ids, descriptions, field names) and from the user is shown as
  text, never as Markdown or HTML: :func:`escape_markdown` and :func:`inline_code` make
  a description like ``![x](http://evil/)`` or ``<img onerror=...>`` print as typed.
"""

from __future__ import annotations

import argparse
import heapq
import io
import math
import mimetypes
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._checks import batched, clean_labels
from zeroshot_vision._errors import (
    ImageDecodeError,
    ImageTooLargeError,
    InvalidInputError,
)
from zeroshot_vision._types import caption
from zeroshot_vision.stores._filters import is_number

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._ask import Answer
    from zeroshot_vision._types import Progress, SearchResult
    from zeroshot_vision.stores._base import VectorStore

__all__ = [
    "LOADING_STEPS",
    "MAX_RESULTS",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "PAGE_SIZE",
    "PROBABILITY_STEPS",
    "AppArgs",
    "AskView",
    "ChoiceFacet",
    "Facet",
    "RangeFacet",
    "ResultCard",
    "ask_view",
    "build_filter",
    "clean_query",
    "decode_upload",
    "discover_facets",
    "escape_markdown",
    "frame_thumbnail_jpeg",
    "inline_code",
    "iter_metadata",
    "loading_step",
    "more_results",
    "original_mime",
    "parse_app_args",
    "parse_labels",
    "result_cards",
    "sample_ids",
    "snippet_markdown",
    "thumbnail_jpeg",
    "video_mime",
    "video_player_html",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest accepted upload (10 MiB); ``launch`` gives Streamlit the same limit."""

MAX_UPLOAD_PIXELS = 40_000_000
"""Largest accepted image (40 megapixels); bigger ones are refused as decompression bombs."""

THUMBNAIL_SIDE = 384
"""Longest side of a result thumbnail, in pixels."""

MAX_CHOICES = 300
"""A text field with more distinct values than this is not offered as a filter.

Large enough for the countries of Unsplash Lite; photographers and keywords exceed it.
"""

HIDDEN_FIELDS = frozenset(
    {
        "path",
        "url",
        "description",
        "ai_description",
        "photo_id",
        "photographer_username",
        # Photo fields of folder indexes better offered through year, month and folders:
        "taken",
        "latitude",
        "longitude",
        "width",
        "height",
    }
)
"""Metadata fields never offered as filters (ids, free text, locations of files)."""

CAPTION_FIELDS = ("description", "ai_description", "photographer", "location", "country", "year")


@dataclass(frozen=True, kw_only=True)
class AppArgs:
    """The app's command line (what follows ``--`` in ``streamlit run``).

    Attributes:
        index: The index folder to search, or ``None`` for the classify page only.
        model: A model name or folder; with an index, overrides the index's own model.
        device: The torch device, or ``None`` for the encoder's default.
    """

    index: Path | None = None
    model: str | None = None
    device: str | None = None


def parse_app_args(argv: Sequence[str]) -> AppArgs:
    """Parse the app's arguments.

    Raises:
        ValueError: For unknown arguments or a missing value, with a one-line message.
    """
    parser = argparse.ArgumentParser(prog="zeroshot-vision app", exit_on_error=False)
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default=None)
    try:
        known, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        raise ValueError(f"bad app arguments: {exc}") from exc
    if unknown:
        raise ValueError(f"unknown app arguments: {' '.join(unknown)}")
    return AppArgs(index=known.index, model=known.model, device=known.device)


# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the
# ones that start Markdown, HTML, entities, Streamlit's LaTeX ($), colored text
# (:red[...]) and icons (:material/...:).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def escape_markdown(text: object) -> str:
    """``text`` as Markdown that renders literally, on one line.

    Streamlit renders Markdown in ``st.markdown``, ``st.caption``, messages and widget
    labels. Text from an index (descriptions, ids, field names) or from a user must not
    become an image fetched from elsewhere, a link, a heading or HTML, so every
    character that could start one is escaped and line breaks become spaces.
    """
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def snippet_markdown(snippet: str) -> str:
    """A search snippet as Markdown on one line: its text escaped, matched words in bold."""
    from zeroshot_vision._lexical import MARK_END, MARK_START

    pieces = []
    for n, piece in enumerate(
        re.split(f"({re.escape(MARK_START)}.*?{re.escape(MARK_END)})", snippet)
    ):
        if n % 2 and piece:
            pieces.append(f"**{escape_markdown(piece[len(MARK_START) : -len(MARK_END)])}**")
        elif piece:
            pieces.append(escape_markdown(piece))
    return " ".join(" ".join(pieces).split())


def inline_code(text: object) -> str:
    """``text`` as a Markdown code span, whatever backticks or line breaks it holds."""
    flat = _CONTROL.sub(" ", str(text))
    if not flat:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each side of a span that starts and ends with one.
    pad = " " if flat[0] in "` " or flat[-1] in "` " else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def clean_query(text: str | None) -> str | None:
    """The query to run, or ``None`` when ``text`` is empty or only whitespace."""
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None


def parse_labels(text: str) -> list[str]:
    """Split labels typed one per line or separated by commas; drop blanks and repeats.

    The library's one rule (:func:`zeroshot_vision._encoder.Encoder.classify` applies it
    too), except that no label at all gives an empty list for the page to explain.
    """
    try:
        return clean_labels(text)
    except InvalidInputError:
        return []


@dataclass(frozen=True, kw_only=True)
class ChoiceFacet:
    """A text field with few distinct values (``country``): filtered with ``$in``.

    Attributes:
        key: The metadata field.
        options: Its distinct values, sorted.
    """

    key: str
    options: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RangeFacet:
    """A numeric field (``year``): filtered with ``$gte`` and ``$lte``.

    Attributes:
        key: The metadata field.
        low: The smallest value in the index.
        high: The largest value in the index.
        integer: Whether every value is an integer.
    """

    key: str
    low: float
    high: float
    integer: bool


Facet = ChoiceFacet | RangeFacet


def iter_metadata(store: VectorStore, *, batch_size: int = 512) -> Iterator[Mapping[str, Any]]:
    """Every record's metadata, fetched in batches so memory stays bounded."""
    for batch in batched(store.ids(), batch_size):
        for record in store.fetch(batch).values():
            yield record.metadata


def _is_finite_number(value: object) -> bool:
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def discover_facets(metadata: Iterable[Mapping[str, Any]]) -> list[Facet]:
    """The filters worth offering, from the metadata actually present in an index.

    A field becomes a :class:`ChoiceFacet` when all its values are strings (or lists of
    strings) with 2 to :data:`MAX_CHOICES` distinct values, and a :class:`RangeFacet` when
    all its values are numbers spanning more than one value. Paths and free text never
    become filters.
    """
    texts: dict[str, set[str]] = {}
    numbers: dict[str, list[float]] = {}
    rejected: set[str] = set(HIDDEN_FIELDS)
    for row in metadata:
        for key, value in row.items():
            if key in rejected or value is None:
                continue
            if _is_finite_number(value) and key not in texts:
                numbers.setdefault(key, []).append(float(value))
                continue
            items = value if isinstance(value, list) else [value]
            if key not in numbers and all(isinstance(item, str) for item in items):
                seen = texts.setdefault(key, set())
                seen.update(items)
                if len(seen) <= MAX_CHOICES:
                    continue
            rejected.add(key)
            texts.pop(key, None)
            numbers.pop(key, None)
    facets: list[Facet] = []
    for key in sorted(texts.keys() | numbers.keys()):
        if key in texts and len(texts[key]) >= 2:
            facets.append(ChoiceFacet(key=key, options=tuple(sorted(texts[key]))))
        elif key in numbers and min(numbers[key]) < max(numbers[key]):
            values = numbers[key]
            integer = all(v.is_integer() for v in values)
            facets.append(RangeFacet(key=key, low=min(values), high=max(values), integer=integer))
    return facets


def build_filter(
    facets: Sequence[Facet],
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any] | None:
    """A store filter from the user's picks, or ``None`` when nothing narrows the search.

    Args:
        facets: The facets on offer (from :func:`discover_facets`).
        choices: For a choice facet, the values picked (none picked means any).
        ranges: For a range facet, the ``(low, high)`` picked (the full span means any).
    """
    choices = choices or {}
    ranges = ranges or {}
    conditions: dict[str, Any] = {}
    for facet in facets:
        if isinstance(facet, ChoiceFacet):
            picked = [value for value in choices.get(facet.key, ()) if value in facet.options]
            if picked:
                conditions[facet.key] = {"$in": picked}
        elif facet.key in ranges:
            low, high = ranges[facet.key]
            condition: dict[str, float] = {}
            if low > facet.low:
                condition["$gte"] = low
            if high < facet.high:
                condition["$lte"] = high
            if condition:
                conditions[facet.key] = condition
    return conditions or None


@dataclass(frozen=True, kw_only=True)
class ResultCard:
    """One search result as the grid shows it.

    Attributes:
        rank: 1 for the best match.
        id: The image's id.
        score: Cosine similarity with the query.
        probability: SigLIP's probability, or ``None`` for image-to-image search.
        heading: ``"#1 · p 0.912 · cos 0.143"`` (``"words only"`` for a hit only the
            lexical side found, which has no probability).
        details: Description, photographer and location lines, when the index has them.
        snippet: The matching text (OCR line, description, place) as Markdown, the
            matched words in bold; ``None`` when the words did not find it.
    """

    rank: int
    id: str
    score: float
    probability: float | None
    heading: str
    details: tuple[str, ...]
    snippet: str | None = None


def _details(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    lines: list[str] = []
    description = caption(metadata)
    if description:
        lines.append(description.strip())
    photographer = metadata.get("photographer")
    if isinstance(photographer, str) and photographer.strip():
        lines.append(f"by {photographer.strip()}")
    place: list[str] = []
    for key in ("location", "city", "country"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip() and not any(value in p for p in place):
            place.append(value.strip())
    year = metadata.get("year")
    if isinstance(year, (int, float)) and _is_finite_number(year):
        place.append(str(int(year)) if float(year).is_integer() else str(year))
    if place:
        lines.append(", ".join(place))
    return tuple(lines)


def result_cards(results: Sequence[SearchResult]) -> list[ResultCard]:
    """The grid's cards, in rank order."""
    cards = []
    for rank, result in enumerate(results, start=1):
        parts = [f"#{rank}"]
        if result.probability is not None:
            parts.append(f"p {result.probability:.3f}")
        elif result.found_by == ("text",):
            parts.append("words only")
        parts.append(f"cos {result.score:.3f}")
        cards.append(
            ResultCard(
                rank=rank,
                id=result.id,
                score=result.score,
                probability=result.probability,
                heading=" · ".join(parts),
                details=_details(result.metadata),
                snippet=snippet_markdown(result.snippet) if result.snippet else None,
            )
        )
    return cards


def original_mime(path: Path) -> str:
    """The media type to serve an original image file with, from its name's suffix.

    Unknown suffixes get ``application/octet-stream``, so a browser saves the file
    rather than guessing what it is.
    """
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    if guessed is None or not guessed.startswith("image/"):
        return "application/octet-stream"
    return guessed


def sample_ids(store: VectorStore, count: int) -> list[str]:
    """Up to ``count`` ids, the same ones every time (the smallest in sort order).

    Memory stays bounded by ``count`` however many ids the store lists.
    """
    return heapq.nsmallest(count, store.ids())


def thumbnail_jpeg(
    path: Path, *, side: int = THUMBNAIL_SIDE, max_pixels: int = MAX_UPLOAD_PIXELS
) -> bytes:
    """A JPEG thumbnail of an indexed image, decoded safely.

    Raises:
        ImageLoadError: If the file is unreadable, corrupt or too large.
    """
    from zeroshot_vision._images import load_image

    # draft_size lets a big JPEG decode at a fraction of its size: much faster.
    image = load_image(path, max_pixels=max_pixels, draft_size=(side, side))
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def frame_thumbnail_jpeg(path: Path, seconds: float, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG thumbnail of a video's frame at ``seconds`` (needs the ``video`` extra).

    Raises:
        ImageLoadError: The video cannot be read there.
        MissingDependencyError: The ``video`` extra is not installed.
    """
    from zeroshot_vision._images.video import frame_at

    image = frame_at(path, seconds, max_side=side)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def video_mime(path: Path) -> str:
    """The media type a browser is told for a video file (``video/webm`` for WebM and
    Matroska, which Chromium plays as WebM; ``video/mp4`` for the rest)."""
    return "video/webm" if path.suffix.lower() in {".webm", ".mkv"} else "video/mp4"


def video_player_html(url: str, seconds: float) -> str:
    """An HTML5 player for the video at ``url`` that starts at ``seconds``.

    The start is the W3C media fragment ``#t=<seconds>``: the browser seeks there as the
    video loads, to the millisecond (Streamlit's own player rounds its start time down to
    whole seconds). Only the metadata is fetched until the person presses play.
    """
    import html

    start = f"{max(0.0, seconds):.3f}"
    return (
        f'<video class="zsv-moment" controls preload="metadata" data-start="{start}" '
        f'src="{html.escape(url, quote=True)}#t={start}" style="width: 100%"></video>'
    )


def decode_upload(
    data: bytes,
    *,
    name: str = "<upload>",
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Image.Image:
    """Decode an uploaded image, refusing oversized files and decompression bombs.

    Raises:
        ImageDecodeError: If the upload is empty, not an image, or damaged.
        ImageTooLargeError: If the file has too many bytes or the image too many pixels.
    """
    if not data:
        raise ImageDecodeError(name, "the file is empty")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            name, f"the file is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:g} MiB"
        )
    from zeroshot_vision._images import UNRECOGNIZED_FORMAT, load_image

    try:
        return load_image(bytes(data), max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        # Pillow's own words name its internal limit; say it plainly.
        raise ImageTooLargeError(
            name,
            f"it claims more than {max_pixels:,} pixels, too many to decode safely "
            "(possible decompression bomb)",
        ) from exc
    except ImageDecodeError as exc:
        raise ImageDecodeError(
            name,
            "it is not an image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"
            if exc.reason == UNRECOGNIZED_FORMAT
            else exc.reason,
        ) from exc


PROBABILITY_STEPS: tuple[float, ...] = (
    0.0, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05,
    *(round(0.05 + 0.01 * n, 2) for n in range(1, 96)),
)  # fmt: skip
"""The minimum-probability control's values: fine below 0.05, where SigLIP's calibrated
probabilities for a good match often lie, then steps of 0.01 up to 1."""

PAGE_SIZE = 24
"""Results added by each "Show more"."""
MAX_RESULTS = 1_000
"""The most results the search page shows."""


def more_results(shown: int) -> int:
    """How many results to show after "Show more" when ``shown`` are on the page."""
    return min(shown + PAGE_SIZE, MAX_RESULTS)


LOADING_STEPS = ("reading the weights", "placing them on the device", "warming up", "ready")
"""What :meth:`~zeroshot_vision._encoder.Encoder.from_pretrained` is doing after each of
its three reported steps (none finished, one, two, all three)."""


def loading_step(progress: Progress) -> tuple[float, str]:
    """The model-loading bar's fill (0 to 1) and the step under way.

    ``progress`` is what ``Encoder.from_pretrained(progress=...)`` reports: it counts
    finished steps, so after two of three the warm-up is running, not done.
    """
    total = progress.total or len(LOADING_STEPS) - 1
    done = min(max(progress.done, 0), total)
    return done / total, LOADING_STEPS[min(done, len(LOADING_STEPS) - 1)]


# -- the ask page --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AskView:
    """An answer as the Ask page shows it.

    Attributes:
        text: The answer's text.
        photos: Cards of the photos it rests on (its citations, else every photo it was
            shown), headed ``[n]`` as the prompt numbered them.
        cited: Whether ``photos`` are citations (else the fallback: every photo shown).
        notes: Warnings to show under the answer (invalid citations, unreadable photos,
            why the model was not asked).
        footer: Model, tokens and where the time went, when the model answered.
    """

    text: str
    photos: tuple[ResultCard, ...]
    cited: bool
    notes: tuple[str, ...]
    footer: str | None


def ask_view(answer: Answer) -> AskView:
    """What the Ask page shows of ``answer``."""
    photos = []
    for photo_id in answer.sources:
        hit = answer.hit(photo_id)
        if hit is None:
            continue
        number = answer.shown.index(photo_id) + 1
        (card,) = result_cards([hit])
        photos.append(
            ResultCard(
                rank=number,
                id=card.id,
                score=card.score,
                probability=card.probability,
                heading=f"[{number}]" + card.heading.removeprefix("#1"),
                details=card.details,
            )
        )
    notes = []
    if answer.status == "answered" and not answer.cited:
        notes.append("The answer cites no photo; these are the photos it was shown.")
    if answer.invalid_citations:
        markers = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        notes.append(f"The answer cites {markers}, which name no photo it was shown (ignored).")
    if answer.unreadable:
        notes.append(f"Unreadable, sent without the image: {', '.join(answer.unreadable)}.")
    footer = None
    if answer.model is not None:
        tokens = (
            f", {answer.usage.prompt_tokens} + {answer.usage.completion_tokens} tokens"
            if answer.usage is not None
            else ""
        )
        t = answer.timings
        footer = (
            f"{answer.model}{tokens} · retrieve {t.retrieve:.2f} s, images "
            f"{t.encode_images:.2f} s, model {t.model:.2f} s"
        )
    return AskView(
        text=answer.text,
        photos=tuple(photos),
        cited=answer.cited,
        notes=tuple(notes),
        footer=footer,
    )
