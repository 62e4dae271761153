"""Text in photos: RapidOCR's PP-OCR models on ONNX Runtime (the ``ocr`` extra).

:class:`OcrEngine` reads the lines of text in an image (text, confidence, box) with
``rapidocr`` 3.x, whose English and Chinese detection and recognition models ship inside
its wheel: reading needs no network. Models of other languages are downloaded by
``rapidocr`` at run time, so choosing them (any ``rapidocr_params``) is an explicit
opt-in (``allow_download=True``).

:class:`OcrExtractor` is the ingest pipeline's extractor: ``zsv index --ocr`` and
``index_folder(..., ocr=True)`` add it, and the lines it reads go to the index's lexical
side (:mod:`zeroshot_vision._lexical`), so "invoice 4711" finds the receipt. It costs about
a second of CPU per photo with text (0.5-0.9 s without: the detector alone), see
``benchmarks/bench_hybrid.py``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._lexical import OCR_LINES_FIELD, OcrLine
from zeroshot_vision._optional import require

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DEFAULT_MIN_CONFIDENCE", "OcrEngine", "OcrExtractor"]

logger = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 0.5
"""Lines recognised with less confidence are dropped (RapidOCR's own default)."""


_MAX_ASPECT = 40
"""Thinner images are padded: RapidOCR's resizing fails on a 7x3000 strip."""
_MIN_SIDE = 32


def _padded(image: Image.Image) -> Image.Image:
    """``image`` on a white canvas wide and tall enough for RapidOCR's resizing."""
    width, height = image.size
    need_w = max(width, _MIN_SIDE, -(-height // _MAX_ASPECT))
    need_h = max(height, _MIN_SIDE, -(-width // _MAX_ASPECT))
    if (need_w, need_h) == (width, height):
        return image
    from PIL import Image as PILImage

    canvas = PILImage.new("RGB", (need_w, need_h), "white")
    canvas.paste(image, (0, 0))
    return canvas


class OcrEngine:
    """Reads the lines of text in images, offline.

    The models load on the first :meth:`read` (a fraction of a second); one engine can be
    shared by threads.

    Args:
        threads: CPU threads ONNX Runtime may use per image (``None``: all cores).
        min_confidence: Drop lines recognised with less confidence than this.
        rapidocr_params: Settings passed to ``rapidocr.RapidOCR(params=...)`` (other
            languages, other model versions); these may download models at run time.
        allow_download: Opt in to such downloads; required with ``rapidocr_params``.

    Raises:
        InvalidInputError: ``rapidocr_params`` without ``allow_download``, or a bad
            ``threads`` or ``min_confidence``.
        MissingDependencyError: ``rapidocr`` is not installed (the ``ocr`` extra), at the
            first :meth:`read`.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        rapidocr_params: Mapping[str, Any] | None = None,
        allow_download: bool = False,
    ) -> None:
        if rapidocr_params and not allow_download:
            raise InvalidInputError(
                "rapidocr_params may make RapidOCR download models at run time; pass "
                "allow_download=True to opt in (the built-in English/Chinese models need "
                "no network)"
            )
        if threads is not None and (isinstance(threads, bool) or threads < 1):
            raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise InvalidInputError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        self.threads = threads
        self.min_confidence = float(min_confidence)
        self._params: dict[str, Any] = {"Global.log_level": "error"}
        if threads is not None:
            self._params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            self._params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self._params.update(rapidocr_params or {})
        self._engine: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OcrEngine(threads={self.threads}, min_confidence={self.min_confidence})"

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                module: Any = require("rapidocr", extra="ocr", purpose="reading text in photos")
                self._engine = module.RapidOCR(params=self._params)
            return self._engine

    def read(self, image: Image.Image) -> list[OcrLine]:
        """The lines of text in ``image``, top to bottom as RapidOCR orders them.

        Args:
            image: A decoded RGB image (what :func:`~zeroshot_vision._images.load_image`
                returns).

        Returns:
            The lines read with at least ``min_confidence``; empty for an image without
            text.
        """
        engine = self._load()
        output = engine(_padded(image.convert("RGB")))
        texts = getattr(output, "txts", None) or ()
        scores = getattr(output, "scores", None) or ()
        boxes = getattr(output, "boxes", None)
        lines = []
        for index, (text, score) in enumerate(zip(texts, scores)):
            text = str(text).strip()
            if not text or float(score) < self.min_confidence:
                continue
            box = boxes[index] if boxes is not None else ()
            lines.append(
                OcrLine(
                    text=text,
                    confidence=round(float(score), 4),
                    box=tuple((round(float(x), 1), round(float(y), 1)) for x, y in box),
                )
            )
        return lines


class OcrExtractor:
    """The ingest pipeline's extractor of text in photos (see :class:`OcrEngine`).

    It gives the lexical side the text (field ``"ocr"``) and the lines with their
    confidence and box; the vector's metadata only learns ``text_lines``, how many lines
    were read (so ``{"text_lines": {"$gt": 0}}`` filters photos with text).

    Args:
        engine: The reader (default: an :class:`OcrEngine` with its defaults).
    """

    name = "ocr"
    version: str | None = "1"

    def __init__(self, engine: OcrEngine | None = None) -> None:
        self.engine = engine or OcrEngine()

    def __repr__(self) -> str:
        return f"OcrExtractor({self.engine!r})"

    def read(self, image: Image.Image) -> tuple[dict[str, Any], dict[str, str]]:
        """The metadata and text fields for one decoded image."""
        lines = self.engine.read(image)
        texts = {}
        if lines:
            texts = {
                "ocr": "\n".join(line.text for line in lines),
                OCR_LINES_FIELD: json.dumps([line.to_json() for line in lines]),
            }
        return {"text_lines": len(lines)}, texts

    def extract(self, item: Any) -> Any:
        """The text read in ``item``'s pixels (an :class:`~zeroshot_vision.ingest._item.Item`).

        Raises:
            ImageLoadError: The pixels cannot be decoded (a failure of this item's OCR).
        """
        from zeroshot_vision.ingest._extract import Extracted

        metadata, texts = self.read(item.image())
        return Extracted(metadata=metadata, texts=texts)
