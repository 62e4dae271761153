"""Captions at index time: a one-line description of each photo by a vision-language model.

:class:`CaptionExtractor` is an :class:`~zeroshot_vision.ingest._extract.Extractor` of the
ingest pipeline: ``engine.index_folder(folder, extractors=[ExifExtractor(),
CaptionExtractor(llm)])`` (or ``zsv index --captions``) asks the same kind of endpoint as
:mod:`zeroshot_vision._ask` for a caption per photo, stored as metadata ``caption`` (and as
the lexical text field ``caption`` for a writer companion). Off by default.

Incremental and resumable through the pipeline's ledger: the extractor is tracked with a
version that names the model, so the first run with captions captions every photo
already indexed once (vectors reused), a killed run continues where it stopped, later
runs caption only new and changed photos, and switching model captions again.

When the endpoint goes away midway (connection refused, a 5xx, a refused key or a
model it no longer serves, after the client's retries), the extractor raises
:class:`~zeroshot_vision._errors.ExtractorUnavailableError`: the run stops, what it wrote
is committed, and the photos it had not reached are captioned by the next run instead of
being recorded as failed. So do ``give_up_after`` failures of the endpoint in a row
(timeouts, malformed answers): a failing endpoint is not asked once per photo of a
large folder. Failures on one photo (unreadable, an empty caption) are that photo's.

Cost: :func:`measure_caption_seconds` captions a few photos first and returns the seconds
per call, to show ``photos x seconds`` before the run (``zsv index --captions`` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zeroshot_vision._errors import (
    ExtractorUnavailableError,
    ImageLoadError,
    LLMAuthError,
    LLMError,
    LLMModelNotFoundError,
    LLMUnreachableError,
)
from zeroshot_vision._llm import image_data_url
from zeroshot_vision.ingest._extract import Extracted, ExtractionError

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._llm import LLMEndpoint
    from zeroshot_vision.ingest._item import Item

__all__ = [
    "CAPTION_PROMPT",
    "CaptionExtractor",
    "caption_image",
    "measure_caption_seconds",
]

logger = logging.getLogger(__name__)

CAPTION_PROMPT = (
    "Describe this photo in one short sentence: what it shows, where, and anything "
    "written in it. Answer with the sentence only."
)
"""What the model is asked for each photo."""

CAPTION_IMAGE_SIDE = 512
"""Photos go to the model at this long side: enough for one line of description."""

MAX_CAPTION_CHARS = 300


def caption_image(
    llm: LLMEndpoint,
    image: Image.Image,
    *,
    prompt: str = CAPTION_PROMPT,
    image_side: int = CAPTION_IMAGE_SIDE,
) -> str:
    """The model's one-line caption of ``image``: its first non-empty line, shortened.

    Raises:
        LLMError: The endpoint failed.
    """
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {
                    "type": "image_url",
                    "image_url": {"url": image_data_url(image, max_side=image_side)},
                },
            ],
        }
    ]
    text = llm.complete(messages).text
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= MAX_CAPTION_CHARS else line[: MAX_CAPTION_CHARS - 1] + "…"


class CaptionExtractor:
    """Caption each photo with a vision-language model (metadata and text ``caption``).

    Args:
        llm: The endpoint to ask (see :class:`~zeroshot_vision._llm.LLMEndpoint`).
        prompt: What to ask for each photo.
        image_side: The long side, in pixels, photos are scaled down to.
        revision: Bump to caption every photo again with the same model (a new prompt).
        give_up_after: Endpoint failures in a row after which the run stops, as if the
            endpoint were gone (``0``: never; a failure on one photo's content, such as an
            empty caption, does not count).

    Attributes:
        name: ``"caption"``.
        version: ``"<revision>:<model>"``: a new model or revision captions everything once.
        calls: Captions asked so far; seconds: the time they took.
    """

    name = "caption"

    def __init__(
        self,
        llm: LLMEndpoint,
        *,
        prompt: str = CAPTION_PROMPT,
        image_side: int = CAPTION_IMAGE_SIDE,
        revision: str = "1",
        give_up_after: int = 5,
    ) -> None:
        self.llm = llm
        self.prompt = prompt
        self.image_side = image_side
        self.revision = revision
        self.give_up_after = give_up_after
        self.calls = 0
        self._failures_in_a_row = 0
        self.seconds = 0.0

    @property
    def version(self) -> str:
        """Names the model, so a different one captions the photos again."""
        return f"{self.revision}:{self.llm.resolved_model()}"

    def extract(self, item: Item) -> Extracted:
        """The caption of ``item``'s photo.

        Raises:
            ExtractionError: The photo cannot be read, or the endpoint failed for it (the
                photo is indexed without a caption; the reason is in the run's report).
            ExtractorUnavailableError: The endpoint is gone, or failed ``give_up_after``
                times in a row: the run stops and the next one continues.
        """
        try:
            image = item.image()
        except ImageLoadError as exc:
            raise ExtractionError(f"cannot read the photo: {exc.reason}") from exc
        started = time.perf_counter()
        try:
            text = caption_image(self.llm, image, prompt=self.prompt, image_side=self.image_side)
        except LLMError as exc:
            self._failures_in_a_row += 1
            if _endpoint_gone(exc):
                raise ExtractorUnavailableError(self.name, str(exc)) from exc
            if self.give_up_after and self._failures_in_a_row >= self.give_up_after:
                reason = f"{self._failures_in_a_row} failures in a row, the last: {exc}"
                raise ExtractorUnavailableError(self.name, reason) from exc
            raise ExtractionError(str(exc)) from exc
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started
        self._failures_in_a_row = 0
        if not text:
            raise ExtractionError("the model answered with an empty caption")
        return Extracted(metadata={"caption": text}, texts={"caption": text})


def _endpoint_gone(exc: LLMError) -> bool:
    """Whether ``exc`` says the endpoint is unusable for every photo, not for this one.

    The client has already retried connection errors, timeouts, 429 and 5xx answers.
    """
    if isinstance(exc, LLMUnreachableError | LLMAuthError | LLMModelNotFoundError):
        return True
    return exc.status is not None and (exc.status >= 500 or exc.status == 429)


def measure_caption_seconds(
    extractor: CaptionExtractor, photos: Sequence[str | Path], *, sample: int = 2
) -> float:
    """Seconds per caption, measured on the first ``sample`` readable photos.

    Used to show the cost up front (photos x seconds). The endpoint's own failures are
    raised here, before anything is indexed.

    Raises:
        LLMError: The endpoint failed (down, a wrong key, an unknown model, ...).
        ImageLoadError: None of the photos could be read.
    """
    from zeroshot_vision._images import load_image

    timings: list[float] = []
    last_error: ImageLoadError | None = None
    for path in photos:
        if len(timings) >= sample:
            break
        try:
            image = load_image(path)
        except ImageLoadError as exc:
            last_error = exc
            continue
        started = time.perf_counter()
        caption_image(
            extractor.llm, image, prompt=extractor.prompt, image_side=extractor.image_side
        )
        timings.append(time.perf_counter() - started)
    if not timings:
        if last_error is not None:
            raise last_error
        return 0.0
    return sum(timings) / len(timings)
