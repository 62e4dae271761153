"""The lexical side's marker extractor: what makes a folder run write every image's text once.

The lexical side itself (``text.sqlite``) belongs to the index folder
(:mod:`zeroshot_vision._index.text`); this is its place in the ingest pipeline.
"""

from __future__ import annotations

from zeroshot_vision._index.text import TEXT_EXTRACTOR_VERSION
from zeroshot_vision.ingest._extract import Extracted
from zeroshot_vision.ingest._item import Item

__all__ = ["TextExtractor"]


class TextExtractor:
    """Marks, per image, that its text reached the lexical side (a tracked extractor).

    It extracts nothing itself (the file name, the place and the captions come from the
    metadata, the words in photos from :class:`~zeroshot_vision._ocr.OcrExtractor`); its
    version in the pipeline's ledger is what makes an index that had no lexical side,
    or whose lexical side is rebuilt, write every image's text once, reusing the vectors.
    """

    name = "text"
    version: str | None = TEXT_EXTRACTOR_VERSION

    def extract(self, item: Item) -> Extracted:
        """Nothing: see the class."""
        return Extracted()
