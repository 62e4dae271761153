"""Ask your photos: an answer from a vision-language model, grounded in retrieved photos.

:func:`ask` retrieves the photos that best match a question (the engine's search), sends
the question and those photos (``data:`` URLs, scaled down, at most ``max_images``) to an
OpenAI-compatible chat endpoint (:class:`~zeroshot_vision._llm.LLMEndpoint`), and returns an
:class:`Answer`: the text, the photos it cites, the retrieved hits with their
probabilities, the model, the token usage and where the time went. :func:`ask_stream`
yields the text as it comes and the :class:`Answer` last.

**Citations.** The prompt numbers the photos ``[1]``, ``[2]``, ... and asks the model to
cite them by number. Markers are parsed from the answer and validated against the photos
that were sent: a marker naming no photo sent (``[9]`` of four) is dropped from
:attr:`Answer.citations` and flagged in :attr:`Answer.invalid_citations`. An answer with
no marker has no citations (:attr:`Answer.cited` is false); :attr:`Answer.sources` then
falls back to every photo the model was shown.

**Nothing to show.** When the index is empty, or no photo reaches ``min_probability``, the
model is not called: the answer says so (:attr:`Answer.status` is ``"empty-index"`` or
``"nothing-retrieved"``), unless ``answer_without_photos=True`` asks the model anyway.

**The prompt** is :data:`DEFAULT_PROMPT`, a :meth:`str.format` template with
``{question}`` and ``{photos}`` (one line per photo: its number, id, file name and
probability); pass ``prompt=`` to use your own.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zeroshot_vision._checks import positive_int, probability
from zeroshot_vision._errors import ImageLoadError, InvalidInputError
from zeroshot_vision._llm import DEFAULT_IMAGE_SIDE, Completion, LLMEndpoint, TokenUsage

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._types import SearchResult

__all__ = [
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MIN_PROBABILITY",
    "DEFAULT_PROMPT",
    "MAX_QUESTION_CHARS",
    "Answer",
    "AskTimings",
    "ask",
    "ask_stream",
    "build_messages",
    "check_prompt",
    "parse_citations",
]

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "You answer questions about a person's photos. An image search retrieved the photos "
    "below for the question; they are attached in this order:\n"
    "{photos}\n\n"
    "Answer the question using only what these photos show. Cite the photos each "
    "statement relies on by their numbers in square brackets, like [1] or [2][3]. If the "
    "photos do not answer the question, say so.\n\n"
    "Question: {question}"
)
"""The prompt: ``{photos}`` becomes one line per photo (``[1] id=..., file ..., probability
...``), ``{question}`` the question. Each photo follows as an image, after a ``[n]`` label."""

NO_PHOTOS_PROMPT = (
    "No photo in the person's collection matched the question. Say so, and answer only "
    "if it can be answered without the photos.\n\nQuestion: {question}"
)
"""The prompt when ``answer_without_photos=True`` and nothing was retrieved."""

DEFAULT_MAX_IMAGES = 4
"""At most this many photos go to the model: more rarely help and each costs hundreds of
prompt tokens (and several endpoints cap images per request)."""

DEFAULT_MIN_PROBABILITY = 0.001
"""Photos whose calibrated probability of matching the question is lower are not shown:
SigLIP gives unrelated photos about 1e-4 or less, related ones 0.01 and up."""

MAX_QUESTION_CHARS = 4000
"""Longer questions are refused before anything is retrieved or sent."""

Status = Literal["answered", "nothing-retrieved", "empty-index"]

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")


@dataclass(frozen=True, kw_only=True)
class AskTimings:
    """Where the time of one :func:`ask` went, in seconds.

    Attributes:
        retrieve: Embedding the question and searching the index.
        encode_images: Reading, scaling and JPEG-encoding the photos for the prompt.
        model: The endpoint's answer, from request to last token.
        first_token: From request to the first piece of text (streamed answers only).
    """

    retrieve: float = 0.0
    encode_images: float = 0.0
    model: float = 0.0
    first_token: float | None = None

    @property
    def total(self) -> float:
        """All three together."""
        return self.retrieve + self.encode_images + self.model


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A vision-language model's answer to a question about the indexed photos.

    Attributes:
        question: The question asked.
        text: The answer (or, when the model was not called, why not).
        citations: Ids of the photos the answer cites, in order of first citation, each
            one of the photos sent; empty when the answer cites none.
        invalid_citations: Markers that named no photo sent (``"9"`` for ``[9]`` of four):
            dropped from ``citations``, kept here so a caller can flag the answer.
        hits: The retrieved photos, best first, with score and probability (also those
            below ``min_probability`` or past ``max_images``, which were not sent).
        shown: Ids of the photos sent to the model, in the prompt's order (``[1]`` first).
        unreadable: Ids of photos retrieved to be shown whose file could not be read;
            the prompt lists them as unavailable.
        model: The model that answered; ``None`` when it was not called.
        usage: Token counts, when the endpoint reports them.
        status: ``"answered"``, or why the model was not called: ``"empty-index"``,
            ``"nothing-retrieved"`` (no photo reached ``min_probability``).
        timings: Where the time went (see :class:`AskTimings`).
    """

    question: str
    text: str
    citations: tuple[str, ...] = ()
    invalid_citations: tuple[str, ...] = ()
    hits: tuple[SearchResult, ...] = ()
    shown: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    model: str | None = None
    usage: TokenUsage | None = None
    status: Status = "answered"
    timings: AskTimings = field(default_factory=AskTimings)

    @property
    def cited(self) -> bool:
        """Whether the answer cites at least one photo that was sent."""
        return bool(self.citations)

    @property
    def sources(self) -> tuple[str, ...]:
        """The photos the answer rests on: its citations, else every photo it was shown."""
        return self.citations or self.shown

    def hit(self, photo_id: str) -> SearchResult | None:
        """The retrieved hit of ``photo_id`` (its metadata, score, probability), if any."""
        return next((h for h in self.hits if h.id == photo_id), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the server's and ``zsv ask --json``'s shape)."""
        return {
            "question": self.question,
            "text": self.text,
            "status": self.status,
            "citations": list(self.citations),
            "invalid_citations": list(self.invalid_citations),
            "shown": list(self.shown),
            "unreadable": list(self.unreadable),
            "model": self.model,
            "usage": None
            if self.usage is None
            else {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "hits": [
                {
                    "id": h.id,
                    "score": h.score,
                    "probability": h.probability,
                    "metadata": dict(h.metadata),
                }
                for h in self.hits
            ],
            "timings": {
                "retrieve_s": self.timings.retrieve,
                "encode_images_s": self.timings.encode_images,
                "model_s": self.timings.model,
                "first_token_s": self.timings.first_token,
            },
        }


def check_prompt(prompt: str) -> str:
    """``prompt`` if it is a usable template: ``{question}`` required, ``{photos}`` allowed.

    Raises:
        InvalidInputError: Another placeholder, no ``{question}``, or a malformed brace.
    """
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise InvalidInputError(f"the prompt template is malformed: {exc}") from exc
    unknown = fields - {"question", "photos"}
    if unknown:
        raise InvalidInputError(
            f"the prompt template has unknown placeholders {sorted(unknown)}; it may use "
            "{question} and {photos} (double a brace to write one: {{ }})"
        )
    if "question" not in fields:
        raise InvalidInputError("the prompt template must contain {question}")
    return prompt


def parse_citations(text: str, shown: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ids an answer cites (``[1]``, ``[2, 3]``), and the markers that name no photo.

    Args:
        text: The answer.
        shown: The ids of the photos sent, ``[1]`` first.

    Returns:
        ``(citations, invalid)``: cited ids in order of first citation, without repeats;
        markers out of range (as written, without repeats).
    """
    cited: list[str] = []
    invalid: list[str] = []
    for match in _MARKER.finditer(text):
        for number in re.split(r"\s*[,;]\s*", match.group(1).strip()):
            index = int(number)
            if 1 <= index <= len(shown):
                if shown[index - 1] not in cited:
                    cited.append(shown[index - 1])
            elif number not in invalid:
                invalid.append(number)
    return tuple(cited), tuple(invalid)


@dataclass(frozen=True, kw_only=True)
class _Prepared:
    """What goes to the model, or the answer given without it."""

    question: str
    hits: tuple[SearchResult, ...]
    shown: tuple[str, ...]
    unreadable: tuple[str, ...]
    messages: list[dict[str, Any]]
    retrieve_s: float
    encode_s: float
    early: Answer | None = None


def _describe(number: int, hit: SearchResult, readable: bool) -> str:
    path = hit.metadata.get("path")
    name = Path(path).name if isinstance(path, str) and path else None
    parts = [f"[{number}] id={hit.id}"]
    if name and name != hit.id:
        parts.append(f"file {name}")
    if hit.probability is not None:
        parts.append(f"probability it matches {hit.probability:.3f}")
    if not readable:
        parts.append("(image unavailable)")
    return ", ".join(parts)


def build_messages(
    question: str,
    photos: Sequence[tuple[SearchResult, str | None]],
    *,
    prompt: str = DEFAULT_PROMPT,
) -> list[dict[str, Any]]:
    """The chat messages for ``question`` and the photos to show.

    One user message: the prompt as text, then for each photo a ``[n]`` label and its
    ``image_url`` part (a ``data:`` URL). A photo without a URL (unreadable, or images
    turned off) is listed in the prompt only.

    Args:
        question: The question.
        photos: ``(hit, data URL or None)`` per photo, in the order to number them.
        prompt: The template (see :data:`DEFAULT_PROMPT`).
    """
    if not photos:
        return [{"role": "user", "content": NO_PHOTOS_PROMPT.format(question=question)}]
    lines = "\n".join(
        _describe(number, hit, url is not None) for number, (hit, url) in enumerate(photos, 1)
    )
    content: list[dict[str, Any]] = [
        {"type": "text", "text": prompt.format(question=question, photos=lines)}
    ]
    for number, (_, url) in enumerate(photos, 1):
        if url is not None:
            content.append({"type": "text", "text": f"[{number}]"})
            content.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "user", "content": content}]


def _prepare(
    engine: SearchEngine,
    question: object,
    *,
    k: object,
    filter: Mapping[str, Any] | None,
    min_probability: float | None,
    max_images: object,
    image_side: object,
    prompt: str,
    answer_without_photos: bool,
) -> _Prepared:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question is empty; ask something")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInputError(
            f"the question is {len(question)} characters long; at most "
            f"{MAX_QUESTION_CHARS} are allowed (a question, not a document)"
        )
    k = positive_int(k, "k")
    max_images = 0 if max_images == 0 else positive_int(max_images, "max_images")
    image_side = positive_int(image_side, "image_side")
    if min_probability is not None:
        min_probability = probability(min_probability, "min_probability")
    check_prompt(prompt)

    started = time.perf_counter()
    empty = len(engine.store) == 0
    hits: tuple[SearchResult, ...] = (
        () if empty else tuple(engine.search(question, k, filter=filter))
    )
    retrieve_s = time.perf_counter() - started
    usable = [
        h
        for h in hits
        if min_probability is None or h.probability is None or h.probability >= min_probability
    ]
    if not usable and not answer_without_photos:
        status: Status = "empty-index" if empty else "nothing-retrieved"
        text = (
            "The index holds no photos yet, so there is nothing to answer from."
            if empty
            else "No photo matched the question well enough to answer it"
            + (f" (none reached probability {min_probability:g})." if hits else ".")
        )
        early = Answer(
            question=question,
            text=text,
            hits=hits,
            status=status,
            timings=AskTimings(retrieve=retrieve_s),
        )
        return _Prepared(
            question=question,
            hits=hits,
            shown=(),
            unreadable=(),
            messages=[],
            retrieve_s=retrieve_s,
            encode_s=0.0,
            early=early,
        )

    started = time.perf_counter()
    chosen = usable[:max_images] if max_images else usable
    photos: list[tuple[SearchResult, str | None]] = []
    unreadable: list[str] = []
    for hit in chosen:
        url = None if max_images == 0 else _photo_url(hit, image_side)
        if url is None and max_images != 0:
            unreadable.append(hit.id)
        photos.append((hit, url))
    encode_s = time.perf_counter() - started
    messages = build_messages(question, photos, prompt=prompt)
    return _Prepared(
        question=question,
        hits=hits,
        shown=tuple(h.id for h, _ in photos),
        unreadable=tuple(unreadable),
        messages=messages,
        retrieve_s=retrieve_s,
        encode_s=encode_s,
    )


def _photo_url(hit: SearchResult, side: int) -> str | None:
    from zeroshot_vision._images import load_image
    from zeroshot_vision._llm import image_data_url

    path = hit.metadata.get("path")
    if not isinstance(path, str) or not path:
        logger.warning(
            "photo %s has no path in its metadata; it is listed without its image", hit.id
        )
        return None
    try:
        image = load_image(path, draft_size=(side, side))
    except ImageLoadError as exc:
        logger.warning(
            "photo %s cannot be read (%s); it is listed without its image", hit.id, exc.reason
        )
        return None
    return image_data_url(image, max_side=side)


def _finish(
    prepared: _Prepared, completion: Completion, model_s: float, first: float | None
) -> Answer:
    citations, invalid = parse_citations(completion.text, prepared.shown)
    if invalid:
        logger.warning(
            "the answer cites %s, which name no photo sent (%d were); dropped",
            ", ".join(f"[{n}]" for n in invalid),
            len(prepared.shown),
        )
    return Answer(
        question=prepared.question,
        text=completion.text,
        citations=citations,
        invalid_citations=invalid,
        hits=prepared.hits,
        shown=prepared.shown,
        unreadable=prepared.unreadable,
        model=completion.model,
        usage=completion.usage,
        status="answered",
        timings=AskTimings(
            retrieve=prepared.retrieve_s,
            encode_images=prepared.encode_s,
            model=model_s,
            first_token=first,
        ),
    )


def ask(
    engine: SearchEngine,
    question: str,
    *,
    k: int = DEFAULT_MAX_IMAGES,
    filter: Mapping[str, Any] | None = None,
    llm: LLMEndpoint | None = None,
    min_probability: float | None = DEFAULT_MIN_PROBABILITY,
    max_images: int = DEFAULT_MAX_IMAGES,
    image_side: int = DEFAULT_IMAGE_SIDE,
    prompt: str = DEFAULT_PROMPT,
    answer_without_photos: bool = False,
) -> Answer:
    """Answer ``question`` from the photos ``engine`` retrieves for it.

    Args:
        engine: The engine whose index to search.
        question: The question, in words (at most :data:`MAX_QUESTION_CHARS` characters).
        k: How many photos to retrieve.
        filter: A metadata filter for the retrieval (:mod:`zeroshot_vision.stores._filters`).
        llm: The endpoint to ask; default ``LLMEndpoint()`` (from the environment).
        min_probability: Photos less likely to match are not shown (``None``: all are).
        max_images: At most this many photos go to the model, best first; ``0`` sends
            their descriptions without the images (for text-only models).
        image_side: The long side, in pixels, photos are scaled down to.
        prompt: The template (see :data:`DEFAULT_PROMPT`).
        answer_without_photos: Ask the model even when no photo qualifies.

    Returns:
        The :class:`Answer`.

    Raises:
        InvalidInputError: An empty or too long question, a bad ``k``, filter, threshold
            or prompt template.
        LLMError: The endpoint failed (a subclass says how; see :mod:`zeroshot_vision._errors`).
    """
    prepared = _prepare(
        engine,
        question,
        k=k,
        filter=filter,
        min_probability=min_probability,
        max_images=max_images,
        image_side=image_side,
        prompt=prompt,
        answer_without_photos=answer_without_photos,
    )
    if prepared.early is not None:
        return prepared.early
    endpoint = llm if llm is not None else LLMEndpoint()
    try:
        started = time.perf_counter()
        completion = endpoint.complete(prepared.messages)
    finally:
        if llm is None:
            endpoint.close()
    return _finish(prepared, completion, time.perf_counter() - started, None)


def ask_stream(
    engine: SearchEngine,
    question: str,
    *,
    k: int = DEFAULT_MAX_IMAGES,
    filter: Mapping[str, Any] | None = None,
    llm: LLMEndpoint | None = None,
    min_probability: float | None = DEFAULT_MIN_PROBABILITY,
    max_images: int = DEFAULT_MAX_IMAGES,
    image_side: int = DEFAULT_IMAGE_SIDE,
    prompt: str = DEFAULT_PROMPT,
    answer_without_photos: bool = False,
) -> Iterator[str | Answer]:
    """Like :func:`ask`, streamed: yields the answer's text as it comes, the :class:`Answer` last.

    Retrieval and the checks happen before the first item, so bad input raises at the
    first ``next()``. When the model is not called, the only item is the :class:`Answer`.

    Example:
        >>> for part in ask_stream(engine, "Is there a cat?", llm=llm):  # doctest: +SKIP
        ...     if isinstance(part, str):
        ...         print(part, end="", flush=True)
        ...     else:
        ...         answer = part

    Raises:
        InvalidInputError: As :func:`ask`.
        LLMError: As :func:`ask`; a stream cut short raises
            :class:`~zeroshot_vision._errors.LLMResponseError` with ``partial_text``.
    """
    prepared = _prepare(
        engine,
        question,
        k=k,
        filter=filter,
        min_probability=min_probability,
        max_images=max_images,
        image_side=image_side,
        prompt=prompt,
        answer_without_photos=answer_without_photos,
    )
    if prepared.early is not None:
        yield prepared.early
        return
    endpoint = llm if llm is not None else LLMEndpoint()
    started = time.perf_counter()
    first: float | None = None
    completion: Completion | None = None
    try:
        for item in endpoint.stream(prepared.messages):
            if isinstance(item, Completion):
                completion = item
            else:
                if first is None:
                    first = time.perf_counter() - started
                yield item
    finally:
        if llm is None:
            endpoint.close()
    assert completion is not None  # LLMEndpoint.stream always ends with one
    yield _finish(prepared, completion, time.perf_counter() - started, first)
