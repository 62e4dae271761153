"""``Query``: a search made of weighted parts, texts and images, positive and negative.

    >>> q = Query.text("a beach") + Query.image("ref.jpg", weight=0.5) - Query.text("people")
    >>> engine.search(q, k=10)  # doctest: +SKIP

The engine embeds every part, and ranks by the direction ``sum(weight * vector)`` (each
vector unit length; subtracted parts carry a negative weight). What the results report:

* ``score``: the cosine between each image and the *positive* parts alone (their weighted
  sum, normalized), so negative parts steer the ranking without changing what a score
  means;
* ``probability``: SigLIP's calibrated probability that the image matches the main
  positive *text* part (the one with the largest weight); ``None`` when the query has no
  positive text. The calibration exists only for text against an image: an image part
  changes which images come first, never what the probability means.

Text and image vectors live in one space but not in the same region (the "modality
gap"): an image is much closer to another image (cosine ~0.8) than to any text (~0.1).
An image part of weight 1 therefore outweighs a text part of weight 1; weights of 0.2 to
0.5 for image parts keep the words in charge.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from zeroshot_vision._types import ImageSource

__all__ = ["IMAGE_WEIGHT", "NEGATIVE_WEIGHT", "Query", "QueryPart", "check_weight", "compose"]

NEGATIVE_WEIGHT = 0.5
"""Weight of each text to steer away from (``zsv search --not``, the server's ``negative``),
as ``SearchEngine.search``'s ``negative_weight``."""

IMAGE_WEIGHT = 0.5
"""Weight of each image next to words: image-to-image cosines are far larger than
text-to-image ones, so an image of weight 1 would drown the words (see above)."""


def check_weight(value: object) -> float:
    """``value`` as a float if it is a usable query weight: finite and not zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"a query weight must be a number, got {value!r}")
    if not math.isfinite(value) or value == 0:
        raise InvalidInputError(f"a query weight must be a finite non-zero number, got {value}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class QueryPart:
    """One part of a :class:`Query`: a text or an image, with a weight.

    Attributes:
        text: Words to match (exactly one of ``text`` and ``image`` is set).
        image: An image to match: a path, bytes, a PIL image or a numpy array.
        weight: How much this part counts; negative steers away from it.

    Raises:
        InvalidInputError: Neither or both of ``text`` and ``image``, an empty text, or a
            weight that is zero, NaN or infinite.
    """

    text: str | None = None
    image: ImageSource | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if (self.text is None) == (self.image is None):
            raise InvalidInputError("a query part is either a text or an image (give one)")
        if self.text is not None and (not isinstance(self.text, str) or not self.text.strip()):
            raise InvalidInputError(f"a query text must be some words, got {self.text!r}")
        object.__setattr__(self, "weight", check_weight(self.weight))

    def describe(self) -> str:
        """A short printable form: ``"beach"``, ``-0.5 * image(ref.jpg)``."""
        from zeroshot_vision._images import describe_source

        what = repr(self.text) if self.text is not None else f"image({describe_source(self.image)})"
        return what if self.weight == 1.0 else f"{self.weight:g} * {what}"

    def _scaled(self, factor: float) -> QueryPart:
        return QueryPart(text=self.text, image=self.image, weight=self.weight * factor)


@dataclass(frozen=True, kw_only=True)
class Query:
    """A search query made of weighted text and image parts.

    Build one with :meth:`text` and :meth:`image` and combine with ``+``, ``-`` and ``*``
    (a number), or pass the parts: ``Query(parts=[QueryPart(text="beach"), ...])``.

    Attributes:
        parts: The parts, in the order given.

    Raises:
        InvalidInputError: No parts, a part that is not a :class:`QueryPart`, or no part
            with a positive weight (there would be nothing to look for).
    """

    parts: tuple[QueryPart, ...]

    def __post_init__(self) -> None:
        parts = tuple(self.parts) if not isinstance(self.parts, QueryPart) else (self.parts,)
        if not parts:
            raise InvalidInputError("a query needs at least one part")
        for i, part in enumerate(parts):
            if not isinstance(part, QueryPart):
                raise InvalidInputError(
                    f"parts[{i}] must be a QueryPart, got {type(part).__name__}"
                )
        object.__setattr__(self, "parts", parts)

    @classmethod
    def text(cls, text: str, weight: float = 1.0) -> Query:
        """A query of one text part."""
        return cls(parts=(QueryPart(text=text, weight=weight),))

    @classmethod
    def image(cls, image: ImageSource, weight: float = 1.0) -> Query:
        """A query of one image part (a path, bytes, a PIL image or a numpy array)."""
        if isinstance(image, (str, os.PathLike)) and not os.fspath(image).strip():
            raise InvalidInputError("an image query needs an image path, got an empty one")
        return cls(parts=(QueryPart(image=image, weight=weight),))

    def __add__(self, other: object) -> Query:
        if isinstance(other, str):
            other = Query.text(other)
        if not isinstance(other, Query):
            return NotImplemented
        return Query(parts=self.parts + other.parts)

    def __sub__(self, other: object) -> Query:
        if isinstance(other, str):
            other = Query.text(other)
        if not isinstance(other, Query):
            return NotImplemented
        return Query(parts=self.parts + tuple(part._scaled(-1.0) for part in other.parts))

    def __neg__(self) -> Query:
        return Query(parts=tuple(part._scaled(-1.0) for part in self.parts))

    def __mul__(self, factor: object) -> Query:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        return Query(parts=tuple(part._scaled(check_weight(factor)) for part in self.parts))

    __rmul__ = __mul__

    @property
    def positive(self) -> tuple[QueryPart, ...]:
        """The parts to look for (positive weight)."""
        return tuple(part for part in self.parts if part.weight > 0)

    @property
    def main_text(self) -> QueryPart | None:
        """The positive text part with the largest weight (the first on a tie), if any."""
        texts = [part for part in self.positive if part.text is not None]
        return max(texts, key=lambda part: part.weight) if texts else None

    def check(self) -> Query:
        """``self`` if it has something to look for, else an error."""
        if not self.positive:
            raise InvalidInputError(
                "a query needs at least one part with a positive weight; negative parts only "
                "steer away"
            )
        return self

    def __str__(self) -> str:
        text = ""
        for part in self.parts:
            described = part._scaled(-1.0).describe() if part.weight < 0 else part.describe()
            sign = " - " if part.weight < 0 else " + "
            text += (sign if text else ("-" if part.weight < 0 else "")) + described
        return text


def compose(
    text: str | None = None,
    images: Iterable[ImageSource] = (),
    negatives: Iterable[str] = (),
    *,
    image_weight: float | None = None,
) -> Query:
    """The query of a search form: words, example images, and texts to steer away from.

    What ``zsv search`` and the server's ``/v1/search`` build from the same inputs: the
    words at weight 1, each image at ``image_weight`` (default :data:`IMAGE_WEIGHT` beside
    words, 1 alone), each negative text at ``-NEGATIVE_WEIGHT``.

    Raises:
        InvalidInputError: Neither words nor an image, or a bad part or weight.
    """
    parts = [Query.text(text)] if text is not None else []
    weight = image_weight or (IMAGE_WEIGHT if text is not None else 1.0)
    parts.extend(Query.image(image, weight=weight) for image in images)
    if not parts:
        raise InvalidInputError("give words to look for or an image")
    query = parts[0]
    for part in parts[1:]:
        query = query + part
    for negative in negatives:
        query = query - Query.text(negative, weight=NEGATIVE_WEIGHT)
    return query
