"""``Encoder``: SigLIP images and texts to unit vectors in one space, via transformers.

The checkpoint-specific details that silently ruin results when missed are handled here:
text is stripped, lower-cased and padded to 64 tokens with no attention mask for SigLIP
v1 (how it was trained), and follows the checkpoint's processor exactly for SigLIP 2
(Gemma's tokenizer, 64 tokens, its padding side and attention mask); images are upright
RGB; embeddings come from ``pooler_output`` under transformers 5.x and from the returned
tensor under 4.x; probabilities are SigLIP's sigmoid with the checkpoint's own
``logit_scale`` and ``logit_bias``.

The encoder is where three data flows meet, each in its own module: checkpoints are
found, placed and loaded by :mod:`zeroshot_vision._models`; images become model pixels in
:mod:`zeroshot_vision._images` (its decoding processes belong to the encoder, which stops
them in :meth:`Encoder.close`); cosines become label scores in
:mod:`zeroshot_vision._scoring`. What stays here is the text path (cleaning, tokenizing,
the text cache) and the model calls.

torch and transformers are imported when an encoder is loaded, never at import time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Generator, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np
import numpy.typing as npt

from zeroshot_vision import _scoring as scoring
from zeroshot_vision._checks import (
    batched,
    check_iterable,
    clean_labels,
    item_list,
    non_negative_int,
)
from zeroshot_vision._errors import ImageLoadError, InvalidInputError, ModelLoadError
from zeroshot_vision._images import describe_source, iter_loaded, load_image
from zeroshot_vision._models import (
    DEFAULT_MODEL,
    MODEL_ENV,
    TINY_MODEL,
    cpu_has_native_bf16,
    default_model,
    draft_size_for,
    embedding_dim,
    load_model,
    locate_checkpoint,
    pick_device,
    pick_dtype,
    resolve_model,
)
from zeroshot_vision._optional import require
from zeroshot_vision._scoring import sigmoid
from zeroshot_vision._text import is_utf8, short_repr
from zeroshot_vision._types import ClassifyReport, ImageFailure, ImageLabels, LabelScore

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from zeroshot_vision._backends import EncoderRoute
    from zeroshot_vision._images.feed import PixelFeed
    from zeroshot_vision._images.pixels import PixelSpec
    from zeroshot_vision._progress import ProgressOption
    from zeroshot_vision._types import ImageSource

# DEFAULT_MODEL ... sigmoid live in zeroshot_vision._models and .scoring; re-exported here
# so that code importing them from the encoder keeps working.
__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "QUANTIZED_TEXT_PASS_ROWS",
    "TEXT_CACHE_SIZE",
    "TEXT_LENGTH",
    "TEXT_PASS_FILLER",
    "TEXT_PASS_ROWS",
    "TINY_MODEL",
    "Encoder",
    "cpu_has_native_bf16",
    "default_model",
    "resolve_model",
    "sigmoid",
]

logger = logging.getLogger(__name__)

TEXT_LENGTH = 64
"""SigLIP checkpoints were trained on text padded to exactly this many tokens."""

_SIGLIP_FAMILY = frozenset({"siglip", "siglip2"})
"""Model types trained on text padded to 64 tokens."""

_SIGLIP_V1_TOKENIZER = "SiglipTokenizer"
"""SigLIP v1's sentencepiece tokenizer: its text is lower-cased here and read unmasked.

SigLIP 2 checkpoints come with Gemma's tokenizer instead (``GemmaTokenizer`` for the
fixed-resolution ones, which load as ``SiglipModel``; ``Siglip2Tokenizer``, which
lower-cases by itself, for NaFlex under transformers 5). Their text follows the
checkpoint's processor exactly, as the model card's pipeline does
(``processor(text=..., padding="max_length", max_length=64)`` then
``get_text_features(**inputs)``): no lower-casing of our own, the tokenizer's padding
side (left, for Gemma), and its attention mask passed to the model.
"""

_CHARS_PER_TOKEN = 256
"""Characters of a text read per token the model reads, at most.

The model reads its first 64 (SigLIP) or 77 (CLIP) tokens; tokenizing the rest of a long
text costs time for nothing (a 10 MB text took 36 s). A text is cut to this many
characters per token before tokenizing: a token spans a word piece, far fewer characters,
so any ordinary text keeps every token the model reads.
"""

TEXT_CACHE_SIZE = 1024
"""Default number of text embeddings an :class:`Encoder` keeps for repeated queries."""

TEXT_PASS_ROWS = 2
"""Rows of every text forward pass (texts are padded up to it), so that a text's vector
does not depend on the batch it came in (see ``Encoder._encode_text_batch``).

Fewer rows make a lone query cheaper (its filler rows are computed for nothing) and
batches of texts dearer (more, smaller passes).
``python benchmarks/bench_text_passes.py --preset base --labels --rows 1 2 4 8 --batch 8
--rounds 2 --threads 1`` (a random base SigLIP, float32, this project's shared two-core
machine at load 6-7; CPU time, one torch thread, so that it counts the work and not two
threads waiting for each other on busy cores): one query 180 ms at 1 row, 328 ms at 2,
614 ms at 4, 1,192 ms at 8; per text in a batch of 8: 193, 167, 149 and 145 ms. Two rows
cut a lone query's work 3.6x for 15% more per text in batches (one row: 6.6x for 33%,
and with two threads on a loaded machine about 4x more per batched text, every extra
pass paying a thread handover). A row of a pass is computed the same whatever the other
rows hold, so any fixed count keeps the invariant
(``tests/encoder/test_encoder_fast_paths.py`` checks it)."""

TEXT_PASS_FILLER = ""
"""The text of the rows that pad a text pass up to :data:`TEXT_PASS_ROWS`."""

QUANTIZED_TEXT_PASS_ROWS = 1
"""Rows of every text pass when the text tower is quantized dynamically (the onnx
backend's ``int8``, torch's ``quantize_text``), instead of :data:`TEXT_PASS_ROWS`.

Dynamic quantization picks one int8 scale per activation tensor from its largest value,
so in a pass of several rows each row's rounding depends on what the other rows hold: a
text alone (beside the empty filler) and beside other texts differed by up to 0.006
(onnx int8) and 0.015 (torch int8 text) in a unit vector's components with the tiny
model, which the fixed row count cannot prevent. A pass of one row is quantized from that
text alone, the same wherever it comes from (``tests/encoder/test_encoder_fast_paths.py``
checks both routes). A lone query also computes no filler row: half the work of a
2-row pass."""


class Encoder:
    """Embeds images and texts with a SigLIP checkpoint.

    Build one with :meth:`from_pretrained`. Embeddings are float32 numpy arrays with unit
    L2 norm, so a dot product is a cosine similarity.

    Args:
        model: A loaded transformers image-text model (``SiglipModel``, ``AutoModel``...).
        processor: Its processor (image processor + tokenizer).
        model_name: The name or path the model came from.
        batch_size: Default batch size for encoding.
        text_cache_size: How many text embeddings to keep (least recently used dropped
            first), so a repeated query skips the model; 0 disables the cache.
        workers: Processes that decode and resize images ahead of the model (default:
            one per core, at most 16); 0 decodes on threads of this process instead.
        device_decode: Decode JPEGs on the GPU (nvJPEG, through torchvision). ``None``
            (default): whenever the model is on a CUDA device and torchvision is
            installed; ``True`` requires it.
        compile: Compile the image tower with ``torch.compile`` (slow to start: about
            30 s for so400m on an H100, then faster batches). Batches are padded to the
            batch size so that one compiled graph serves every batch.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_name: str,
        batch_size: int | None = None,
        text_cache_size: int = TEXT_CACHE_SIZE,
        workers: int | None = None,
        device_decode: bool | None = None,
        compile: bool = False,
    ) -> None:
        torch = require("torch", purpose="Encoder")
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelLoadError(
                f"{model_name} is a {type(model).__name__}, not an image-text model "
                "with get_image_features/get_text_features (SigLIP, SigLIP 2, CLIP)"
            )
        self._torch = torch
        self._model = model.eval()
        self._processor = processor
        self.model_name = model_name
        text_cache_size = non_negative_int(text_cache_size, "text_cache_size")
        self.text_cache_size = text_cache_size
        # Keyed by the cleaned text; one cache per encoder, so per model and precision.
        self._text_cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._text_cache_lock = threading.Lock()
        parameter = next(model.parameters())
        self.device = parameter.device
        # The image tower's precision: pixels are cast to it (the text tower may differ,
        # e.g. after quantize_text).
        vision = getattr(model, "vision_model", None)
        floating = [p for p in (vision or model).parameters() if p.is_floating_point()]
        self.dtype = floating[0].dtype if floating else parameter.dtype
        config = model.config
        self.model_type: str = getattr(config, "model_type", "")
        self.dim: int = embedding_dim(config)
        text_config = getattr(config, "text_config", None)
        context = int(getattr(text_config, "max_position_embeddings", TEXT_LENGTH))
        # SigLIP pads to the 64 tokens it was trained on; CLIP to its whole context (77),
        # where the attention mask hides the padding.
        self._text_length = (
            min(TEXT_LENGTH, context) if self.model_type in _SIGLIP_FAMILY else context
        )
        tokenizer_class = type(getattr(processor, "tokenizer", processor)).__name__
        self._siglip_v1_text = (
            self.model_type in _SIGLIP_FAMILY and tokenizer_class == _SIGLIP_V1_TOKENIZER
        )
        """SigLIP v1's text rule: lower-cased here, 64 tokens, no attention mask."""
        self.max_text_chars: int = self._text_length * _CHARS_PER_TOKEN
        """The characters of a text that are tokenized (the rest cannot reach the model)."""
        self.batch_size = batch_size or (32 if self.device.type != "cpu" else 8)
        self.draft_size: tuple[int, int] = draft_size_for(processor)
        """JPEGs decode at reduced scale down to twice the model's input size."""
        self.logit_scale: float
        self.logit_bias: float
        self.calibrated: bool
        self.logit_scale, self.logit_bias, self.calibrated = scoring.logit_parameters(model)
        """Whether :meth:`probability` is a calibrated per-label probability: true for
        SigLIP (sigmoid-trained, with a ``logit_bias``), false for CLIP (softmax-trained,
        no bias), whose only probability is a softmax over the labels being compared."""
        self.backend: str = str(getattr(model, "backend", "torch"))
        """Where the towers run: ``"torch"`` or ``"onnx"``."""
        self.precision: str = str(
            getattr(model, "precision", None) or str(self.dtype).removeprefix("torch.")
        )
        """The towers' precision: the torch dtype's name, or the onnx ``float32``/``int8``."""
        self._text_rows_alone = (
            self.backend == "onnx" and self.precision == "int8"
        ) or self._text_quantized()
        """Whether each text gets a pass of its own (see :data:`QUANTIZED_TEXT_PASS_ROWS`)."""
        self._closed = False
        self._init_image_path(workers, device_decode, compile)
        if not self.calibrated:
            logger.info(
                "%s (%s) has no logit_bias: its scores rank but are not calibrated "
                "probabilities; compare labels with a softmax over the label set",
                model_name,
                self.model_type or type(model).__name__,
            )

    def __repr__(self) -> str:
        backend = "" if self.backend == "torch" else f", backend={self.backend!r}"
        return (
            f"Encoder(model_name={self.model_name!r}, dim={self.dim}, "
            f"device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r}"
            f"{backend}, precision={self.precision!r})"
        )

    @property
    def route(self) -> EncoderRoute:
        """The backend and precision of this encoder's towers (what an index records)."""
        from zeroshot_vision._backends import EncoderRoute

        precision = self.precision
        if self.backend == "torch" and self._text_quantized():
            precision += "+int8-text"
        return EncoderRoute(backend=self.backend, precision=precision)

    @property
    def text_pass_rows(self) -> int:
        """Rows of every text forward pass: texts are embedded this many at a time, the
        last pass padded (:data:`TEXT_PASS_ROWS`, or :data:`QUANTIZED_TEXT_PASS_ROWS` for
        an int8 text tower). A batch of texts that is not a multiple of it computes filler
        rows for nothing; the server's batcher waits for company to fill them."""
        return QUANTIZED_TEXT_PASS_ROWS if self._text_rows_alone else TEXT_PASS_ROWS

    def _text_quantized(self) -> bool:
        text = getattr(self._model, "text_model", None)
        return text is not None and any(
            "quantized" in type(module).__module__ for module in text.modules()
        )

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the decoding processes and any feeder thread; calling it again does nothing.

        The processes (up to :data:`~zeroshot_vision._images.pool.MAX_WORKERS`, forked at
        the first large image call) otherwise live until the encoder is garbage-collected
        or the program exits. A closed encoder refuses to encode images: the image
        methods raise :class:`~zeroshot_vision._errors.InvalidInputError`, and a batch
        iteration that :meth:`close` interrupts raises it at its next batch rather than
        stop short. Texts still encode (the text path holds no processes), and the model
        stays loaded until the encoder is dropped.
        """
        self._closed = True
        for feed in list(self._feeds):
            feed.close()
        self._release()  # weakref.finalize runs its callback once, however often called

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pixel_spec(self) -> PixelSpec | None:
        """How the image processor resizes and normalizes, when it is a fixed-size one
        (SigLIP's); ``None`` for processors that crop (CLIP's). An image already at
        ``(pixel_spec.width, pixel_spec.height)`` is encoded exactly as its original."""
        return self._pixel_spec

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(
                f"this encoder ({self.model_name}) is closed: its image decoders are "
                "stopped; load a new one to encode images"
            )

    def _init_image_path(
        self, workers: int | None, device_decode: bool | None, compile: bool
    ) -> None:
        from zeroshot_vision._images.jpeg import device_decode_available
        from zeroshot_vision._images.pixels import PixelSpec
        from zeroshot_vision._images.pool import DecoderPool, default_workers

        count = default_workers() if workers is None else non_negative_int(workers, "workers")
        self._decoders = DecoderPool(count)
        # The processes end with close(), or when the encoder is collected (or at exit,
        # or with this process).
        self._release = weakref.finalize(self, self._decoders.close)
        # Feeds being iterated: close() stops their feeder threads too.
        self._feeds: weakref.WeakSet[PixelFeed] = weakref.WeakSet()
        self.workers: int = self._decoders.workers
        """Decoding processes (0: threads of this process, as on macOS and Windows)."""
        image_processor = getattr(self._processor, "image_processor", self._processor)
        self._pixel_spec = PixelSpec.from_processor(image_processor)
        self._pixel_table = (
            None
            if self._pixel_spec is None
            else self._pixel_spec.device_table(self.device, self.dtype)
        )
        can_decode = (
            self._pixel_spec is not None
            and self._pixel_spec.device_mode is not None
            and device_decode_available(self.device)
        )
        if device_decode and not can_decode:
            raise InvalidInputError(
                f"device_decode needs a CUDA device, torchvision (pip install torchvision) "
                f"and a fixed-size image processor; this encoder runs on {self.device}"
            )
        self.device_decode: bool = can_decode if device_decode is None else device_decode
        """Whether JPEGs are decoded on the GPU."""
        self._image_forward = self._model.get_image_features
        self.compiled: bool = bool(compile)
        if compile:
            self._image_forward = self._torch.compile(self._model.get_image_features, dynamic=False)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        text_cache_size: int = TEXT_CACHE_SIZE,
        warm_up: bool = True,
        quantize_text: bool = False,
        workers: int | None = None,
        device_decode: bool | None = None,
        compile: bool = False,
        progress: ProgressOption = None,
        backend: str = "torch",
        precision: str | None = None,
    ) -> Encoder:
        """Load a SigLIP (or SigLIP 2 FixRes) checkpoint from the hub or a local folder.

        Args:
            name_or_path: A Hugging Face model id, or a folder written by
                ``save_pretrained``; ``None`` means ``$ZSV_MODEL``, else
                ``google/siglip-so400m-patch14-384``; ``"tiny"`` a tiny random model
                built offline (see :func:`resolve_model`). The first use of a hub id
                downloads it (about 3.5 GB for the default checkpoint) into the Hugging
                Face cache; later loads use the cached copy without contacting the hub
                (pass ``revision`` to pin one).
            device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``...; ``None`` picks
                cuda, then mps, then cpu.
            dtype: ``torch.float32``, ``"bfloat16"``...; ``None`` picks bfloat16 (or
                float16) on GPUs, bfloat16 on CPUs that multiply it in hardware (AMX or
                AVX512-BF16, see :func:`cpu_has_native_bf16`) and float32 on other CPUs.
            batch_size: Default batch size (32 on GPU, 8 on CPU when ``None``).
            revision: A hub revision (branch, tag or commit) to pin.
            local_files_only: Never touch the network; use the local cache only.
            text_cache_size: Text embeddings kept for repeated queries (0: no cache).
            warm_up: Run one text query before returning (see :meth:`warm_up`), so the
                first real query does not pay for one-time setup.
            quantize_text: CPU only: run the text tower's linear layers in int8 (dynamic
                quantization) for cheaper queries on CPUs without native bfloat16;
                embeddings then agree with float32 to a cosine of about 0.999.
            workers: Image decoding processes (see :class:`Encoder`).
            device_decode: JPEG decoding on the GPU (see :class:`Encoder`).
            compile: ``torch.compile`` the image tower (see :class:`Encoder`); with
                ``warm_up`` the compilation happens here, at load.
            progress: ``True`` for a bar while the model loads (reading the weights,
                placing them on the device, warming up: tens of seconds for so400m on a
                CPU), or a callable receiving the three steps as they finish.
            backend: ``"torch"`` (default, the reference) runs the transformers model;
                ``"onnx"`` runs both towers with ONNX Runtime on the CPU, exported once
                and cached beside the model (needs the ``onnx`` extra; see
                :mod:`zeroshot_vision._backends.onnx`). Text cleaning, padding, pixels,
                normalization and probabilities are the same code for both.
            precision: The onnx backend's precision: ``"float32"`` (default) or
                ``"int8"`` (MatMuls quantized dynamically: about 2x faster images on a
                CPU, image vectors at a cosine of about 0.999 to float32).

        Raises:
            ModelLoadError: The checkpoint cannot be found, fetched or loaded. The message
                names it and says how to point at a local folder instead.
        """
        require("torch", purpose="Encoder")
        from zeroshot_vision._backends import check_backend

        backend, precision = check_backend(backend, precision)
        name = locate_checkpoint(name_or_path)
        target = pick_device(device)
        if backend != "torch":
            return cls._from_onnx(
                name,
                device=target,
                dtype=dtype,
                precision=precision or "float32",
                batch_size=batch_size,
                revision=revision,
                local_files_only=local_files_only,
                text_cache_size=text_cache_size,
                warm_up=warm_up,
                quantize_text=quantize_text,
                workers=workers,
                compile=compile,
                progress=progress,
            )
        chosen_dtype = pick_dtype(target, dtype)
        from zeroshot_vision._progress import Tracker

        with Tracker(progress, task=f"load {Path(name).name}", total=3, unit="step") as tracker:
            model, processor = load_model(
                name,
                device=target,
                dtype=chosen_dtype,
                revision=revision,
                local_files_only=local_files_only,
                quantize_text=quantize_text,
                on_step=lambda: tracker.advance(1),
            )
            encoder = cls(
                model,
                processor,
                model_name=name,
                batch_size=batch_size,
                text_cache_size=text_cache_size,
                workers=workers,
                device_decode=device_decode,
                compile=compile,
            )
            if warm_up:
                encoder.warm_up(images=compile)
            tracker.advance(1)
        return encoder

    @classmethod
    def _from_onnx(
        cls,
        name: str,
        *,
        device: torch.device,
        dtype: str | torch.dtype | None,
        precision: str,
        batch_size: int | None,
        revision: str | None,
        local_files_only: bool,
        text_cache_size: int,
        warm_up: bool,
        quantize_text: bool,
        workers: int | None,
        compile: bool,
        progress: ProgressOption,
    ) -> Encoder:
        """:meth:`from_pretrained` with ``backend="onnx"``."""
        from zeroshot_vision._backends.onnx import load_onnx_model
        from zeroshot_vision._progress import Tracker

        if device.type != "cpu":
            raise InvalidInputError(
                f"the onnx backend runs on the CPU, not on {device}; use backend='torch' on a GPU"
            )
        if dtype is not None and str(dtype).removeprefix("torch.") != "float32":
            raise InvalidInputError(
                "dtype applies to the torch backend; the onnx backend takes "
                "precision='float32' or 'int8'"
            )
        if quantize_text or compile:
            option = "quantize_text" if quantize_text else "compile"
            raise InvalidInputError(
                f"{option} applies to the torch backend; with the onnx backend use "
                "precision='int8' for int8 towers"
            )
        with Tracker(progress, task=f"load {Path(name).name}", total=3, unit="step") as tracker:
            towers, processor = load_onnx_model(
                name,
                precision=precision,
                revision=revision,
                local_files_only=local_files_only,
                on_step=lambda: tracker.advance(1),
            )
            encoder = cls(
                towers,
                processor,
                model_name=name,
                batch_size=batch_size,
                text_cache_size=text_cache_size,
                workers=workers,
            )
            if warm_up:
                encoder.warm_up()
            tracker.advance(1)
        return encoder

    def warm_up(self, *, images: bool = False) -> None:
        """Run the model once on a throwaway input, so one-time setup happens now.

        The first forward pass pays for kernel selection, weight re-layouts and lazy
        initialization (on CPU and more so on GPU); measured by
        ``benchmarks/bench_encoder.py`` as the first query's extra latency. Nothing is
        cached.

        Args:
            images: Also run one image (costly for big models on CPU: seconds).
        """
        started = time.perf_counter()
        self._encode_text_batch(["warm up"])
        if images:
            from PIL import Image

            side = self.draft_size[0] // 2
            self.encode_loaded([Image.new("RGB", (side, side), (128, 128, 128))])
        logger.debug("warmed up %s in %.3f s", self.model_name, time.perf_counter() - started)

    # -- encoding ----------------------------------------------------------------------

    def encode_texts(
        self, texts: str | Iterable[str], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed texts as unit vectors, shape ``(n, dim)``.

        Each text is stripped and cut to :attr:`max_text_chars` characters (256 per token
        the model reads: the model never sees the rest, and tokenizing a 10 MB text would
        take half a minute). For SigLIP v1 it is also lower-cased and tokenized to exactly
        64 tokens (padded or truncated) with no attention mask, as SigLIP was trained; for
        SigLIP 2 the checkpoint's own tokenizer normalizes it and pads it to 64 tokens, and
        its attention mask goes to the model, as the processor's pipeline does; for
        CLIP the checkpoint's own tokenizer normalizes it, pads it to the model's context
        length (77) and masks the padding.

        Raises:
            InvalidInputError: A text is not a string, is empty after stripping, or is not
                valid UTF-8 (holds a lone surrogate).
        """
        items = [texts] if isinstance(texts, str) else item_list(texts, "texts")
        lowercase = self._siglip_v1_text
        cleaned = []
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise InvalidInputError(f"texts[{i}] must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InvalidInputError(f"texts[{i}] is empty; give some words to search for")
            if not is_utf8(text):
                # sys.argv holds lone surrogates for bytes that are not UTF-8; the tokenizer
                # fails on them with a RuntimeError.
                raise InvalidInputError(
                    f"texts[{i}] is not valid UTF-8 text: {short_repr(text)}; check the "
                    "terminal's encoding"
                )
            # SigLIP v1's tokenizer was trained on lower-cased text and does not
            # lower-case by itself; CLIP's and SigLIP 2's apply their own normalization.
            text = text.strip()[: self.max_text_chars]
            cleaned.append(text.lower() if lowercase else text)
        return self._cached_text_vectors(cleaned, batch_size or max(self.batch_size, 32))

    def _cleaned(self, text: str) -> str:
        """``text`` as the model reads it: stripped, and lower-cased for SigLIP v1."""
        return text.strip().lower() if self._siglip_v1_text else text.strip()

    @property
    def _tokenizer(self) -> Any:
        """The processor's tokenizer (or the processor, when it is one)."""
        return getattr(self._processor, "tokenizer", self._processor)

    def reading_warning(self, text: str) -> str | None:
        """One line saying this model cannot read ``text`` well, or None when it can.

        Said when the tokenizer maps most of the query to its unknown token, or when the
        model is a preset that reads English only and most of the query's letters are of
        another script (see ``zsv models``). Only the tokenizer runs: no model pass.
        """
        from zeroshot_vision._language import reading_warning

        cleaned = self._cleaned(text)
        if not cleaned:
            return None
        return reading_warning(self.model_name, self._tokenizer, cleaned)

    def truncation_warning(self, text: str) -> str | None:
        """One line saying ``text`` is longer than the model reads, or None when it fits.

        The model reads the first 64 tokens (SigLIP; CLIP its 77-token context) and
        :meth:`encode_texts` cuts the rest, as the reference pipeline does.
        """
        cleaned = self._cleaned(text)
        tokenizer = self._tokenizer
        # Only the first characters can reach the model; a bound keeps a 10 MB text cheap.
        sample = cleaned[: self._text_length * 64]
        count = len(tokenizer(sample, add_special_tokens=True)["input_ids"])
        if count <= self._text_length:
            return None
        return (
            f"the query is longer than the {self._text_length} tokens {self.model_name} "
            "reads; the words after them are left out"
        )

    def _cached_text_vectors(self, cleaned: list[str], batch_size: int) -> npt.NDArray[np.float32]:
        """Embeddings of cleaned texts, from the LRU cache where it has them."""
        if not cleaned:
            return np.zeros((0, self.dim), np.float32)
        if not self.text_cache_size:
            chunks = [self._encode_text_batch(batch) for batch in batched(cleaned, batch_size)]
            return np.concatenate(chunks)
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._text_cache_lock:
            for text in cleaned:
                vector = self._text_cache.get(text)
                if vector is not None:
                    self._text_cache.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in cleaned if t not in found))
        for batch in batched(missing, batch_size):
            vectors = self._encode_text_batch(batch)
            vectors.flags.writeable = False  # rows are shared with the cache
            found.update(zip(batch, vectors))
            with self._text_cache_lock:
                for text, vector in zip(batch, vectors):
                    self._text_cache[text] = vector
                    self._text_cache.move_to_end(text)
                while len(self._text_cache) > self.text_cache_size:
                    self._text_cache.popitem(last=False)
        return np.stack([found[text] for text in cleaned])  # a fresh, writable array

    def clear_text_cache(self) -> None:
        """Forget every cached text embedding."""
        with self._text_cache_lock:
            self._text_cache.clear()

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize already-cleaned texts exactly as the model was trained.

        SigLIP v1 gets ``input_ids`` only (64 tokens, padded); SigLIP 2 gets what its
        processor gives for 64 tokens (``input_ids`` and ``attention_mask``, padded on the
        tokenizer's side); other models (CLIP) get ``input_ids`` padded to their context
        length plus the ``attention_mask``.
        """
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        encoded = tokenizer(
            texts,
            padding="max_length",
            max_length=self._text_length,
            truncation=True,
            return_tensors="pt",
        )
        if self._siglip_v1_text:
            # SigLIP v1 pools the last token of an unmasked, padded sequence; a mask
            # changes the embedding.
            return {"input_ids": encoded["input_ids"]}
        return dict(encoded)

    def _encode_text_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed cleaned texts in passes of exactly :data:`TEXT_PASS_ROWS` rows
        (:data:`QUANTIZED_TEXT_PASS_ROWS` for a dynamically quantized text tower).

        A text's vector must not depend on the texts it is embedded with: matrix kernels
        pick their blocking (and so their rounding) by the batch's row count, so the same
        text embedded alone and beside others differed in the last bits, and through
        the text cache (and the server's batching of concurrent requests) one request's
        batch decided another's scores. Every pass has the same shape, the rows past the
        texts repeat the first one, so each text is embedded the same way wherever it
        comes from. The filler rows are the empty text (:data:`TEXT_PASS_FILLER`).
        """
        torch = self._torch
        rows = self.text_pass_rows
        chunks = []
        for start in range(0, len(texts), rows):
            chunk = texts[start : start + rows]
            padded = chunk + [TEXT_PASS_FILLER] * (rows - len(chunk))
            inputs = {k: v.to(self.device) for k, v in self.tokenize(padded).items()}
            with torch.inference_mode():
                features = self._model.get_text_features(**inputs)
            chunks.append(self._normalized(features)[: len(chunk)])
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def encode_images(
        self, images: Iterable[ImageSource], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed images as unit vectors, shape ``(n, dim)``.

        Args:
            images: Paths, bytes, PIL images or numpy arrays; any iterable, read lazily
                and prepared ahead of the model (see :meth:`encode_batches`), so memory
                stays bounded.
            batch_size: Images per forward pass (default: the encoder's).

        Raises:
            ImageLoadError: An image cannot be read; nothing is returned. (To skip bad
                images instead, use :meth:`encode_batches` or
                ``SearchEngine.index_images``.)
        """
        chunks = []
        batches = self.encode_batches(images, batch_size=batch_size)
        try:
            for batch in batches:
                for _, vector in batch:
                    if isinstance(vector, ImageLoadError):
                        raise vector
                chunks.append(np.stack([cast("npt.NDArray[np.float32]", v) for _, v in batch]))
        finally:
            batches.close()  # stops the decoding workers at once on an error
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def encode_batches(
        self,
        images: Iterable[ImageSource],
        *,
        keys: Iterable[Any] | None = None,
        batch_size: int | None = None,
    ) -> Generator[list[tuple[Any, npt.NDArray[np.float32] | ImageLoadError]], None, None]:
        """Encode images a batch at a time, in input order, never raising for a bad one.

        Images are read, decoded, turned upright and resized to the model's size by
        :attr:`workers` processes ahead of the model (JPEGs are decoded on the GPU when
        :attr:`device_decode` is on), and each batch is mapped to the model's input by
        the processor's own per-value table: the same pixels as the checkpoint's image
        processor, bit for bit on the CPU path. While the caller handles one batch, the
        model already runs on the next. Each batch is a list of ``(key, vector)`` pairs,
        where an unreadable image's vector is its
        :class:`~zeroshot_vision._errors.ImageLoadError`.

        Args:
            images: Paths, bytes, PIL images or numpy arrays; any iterable, read lazily.
            keys: One key per image, handed back with it (default: the image itself).
            batch_size: Images per forward pass (default: the encoder's).
        """
        self._check_open()
        check_iterable(images, "images")
        size = batch_size or self.batch_size
        if self._pixel_spec is None:
            yield from self._encode_batches_with_processor(images, keys, size)
            return
        with self._feed(images, keys, size) as feed:
            in_flight = None
            for batch in feed:
                launched = self._launch(batch, size)
                if in_flight is not None:
                    yield self._collect(*in_flight)
                in_flight = launched
            self._check_open()  # close() ends the feed early: say so, rather than stop short
            if in_flight is not None:
                yield self._collect(*in_flight)

    def _feed(
        self, images: Iterable[ImageSource], keys: Iterable[Any] | None, size: int
    ) -> PixelFeed:
        """The :class:`~zeroshot_vision._images.feed.PixelFeed` of this encoder's model."""
        from zeroshot_vision._images.feed import PixelFeed

        assert self._pixel_spec is not None and self._pixel_table is not None
        feed = PixelFeed(
            images,
            keys,
            spec=self._pixel_spec,
            batch_size=size,
            device=self.device,
            table=self._pixel_table,
            pool=self._decoders,
            device_decode=self.device_decode,
            draft_size=self.draft_size,
        )
        self._feeds.add(feed)
        return feed

    def _launch(self, batch: Any, size: int) -> tuple[Any, Any, Any]:
        """Start the model on a feed batch; on a GPU this returns before it finishes."""
        torch = self._torch
        if batch.pixels is None:
            return batch, None, None
        if batch.ready is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(batch.ready)
            batch.pixels.record_stream(stream)
        features = self._image_features(batch.pixels, size)
        if self.device.type != "cuda":
            return batch, features.cpu(), None  # mps and others: a plain copy
        host = torch.empty(features.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(features, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return batch, host, done

    def _collect(
        self, batch: Any, features: Any, done: Any
    ) -> list[tuple[Any, npt.NDArray[np.float32] | ImageLoadError]]:
        if done is not None:
            done.synchronize()
        vectors = iter(() if features is None else features.numpy().copy())
        return [
            (key, error if error is not None else next(vectors))
            for key, error in zip(batch.keys, batch.errors)
        ]

    def _image_features(self, pixels: torch.Tensor, size: int) -> torch.Tensor:
        """Unit image vectors (float32, on the device) for model-ready pixels."""
        count = pixels.shape[0]
        if self.compiled and count < size:
            # One compiled graph per batch shape: pad rather than recompile.
            padding = pixels.new_zeros((size - count, *pixels.shape[1:]))
            pixels = self._torch.cat([pixels, padding])
        with self._torch.inference_mode():
            output = self._image_forward(pixel_values=pixels.to(self.dtype))
            features = output if isinstance(output, self._torch.Tensor) else output.pooler_output
            features = features[:count].float()
            unit: torch.Tensor = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return unit

    def _encode_batches_with_processor(
        self, images: Iterable[ImageSource], keys: Iterable[Any] | None, size: int
    ) -> Iterator[list[tuple[Any, npt.NDArray[np.float32] | ImageLoadError]]]:
        """The image processor's own path, for processors without a :class:`PixelSpec`."""
        loaded = iter_loaded(images, draft_size=self.draft_size)
        pairs: Iterable[tuple[Any, tuple[Any, Any]]] = (
            zip(keys, loaded) if keys is not None else ((pair[0], pair) for pair in loaded)
        )
        for chunk in batched(pairs, size):
            good = [image for _, (_, image) in chunk if not isinstance(image, ImageLoadError)]
            vectors = iter(self.encode_loaded(good))
            yield [
                (key, image if isinstance(image, ImageLoadError) else next(vectors))
                for key, (_, image) in chunk
            ]

    def encode_loaded(self, images: list[Image.Image]) -> npt.NDArray[np.float32]:
        """Embed one batch of already-decoded RGB images (see ``images.load_image``)."""
        self._check_open()
        if not images:
            return np.zeros((0, self.dim), np.float32)
        torch = self._torch
        spec = self._pixel_spec
        if spec is not None:
            from zeroshot_vision._images.pixels import resize_with_pil

            pixels = torch.from_numpy(np.stack([resize_with_pil(im, spec) for im in images]))
            model_input = spec.to_model_input(pixels.to(self.device), self._pixel_table)
            size = max(len(images), self.batch_size) if self.compiled else len(images)
            return self._image_features(model_input, size).cpu().numpy()
        # Call the image processor itself: a SigLIP 2 processor's own defaults (256 patches
        # of 16 px) would override the checkpoint's image settings.
        image_processor = getattr(self._processor, "image_processor", self._processor)
        inputs = image_processor(images=images, return_tensors="pt")
        tensors = {}
        for key, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            if value.is_floating_point():
                tensors[key] = value.to(self.device, dtype=self.dtype)
            else:
                tensors[key] = value.to(self.device)
        with torch.inference_mode():
            features = self._model.get_image_features(**tensors)
        return self._normalized(features)

    def _normalized(self, output: Any) -> npt.NDArray[np.float32]:
        torch = self._torch
        # transformers 4.x returns a tensor; 5.x a BaseModelOutputWithPooling.
        features = output if isinstance(output, torch.Tensor) else output.pooler_output
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)

    # -- classification ----------------------------------------------------------------

    def classify(
        self, image: ImageSource, labels: str | Sequence[str], *, softmax: bool | None = None
    ) -> list[LabelScore]:
        """Score ``labels`` against one image, highest probability first.

        Args:
            image: A path, bytes, PIL image or numpy array.
            labels: Candidate descriptions ("a dog", "a cat", ...), or one string of
                comma-separated labels. Blanks and repeats are dropped.
            softmax: False: independent sigmoid probabilities, as SigLIP was trained;
                several labels can be likely, or none. True: a softmax over the labels,
                for "exactly one of these". ``None`` (default): sigmoid for a calibrated
                model (SigLIP), softmax for one that is not (CLIP, whose sigmoid would
                mean nothing).

        Raises:
            InvalidInputError: No labels, or a label that is not a string.
            ImageLoadError: ``image`` cannot be read.
        """
        unique = clean_labels(labels)
        text_vectors = self.encode_texts(unique)
        image_vector = self.encode_loaded([load_image(image, draft_size=self.draft_size)])
        return self._label_scores(unique, text_vectors, image_vector[0], softmax=softmax)

    def classify_many(
        self,
        images: Iterable[ImageSource],
        labels: str | Sequence[str],
        *,
        softmax: bool | None = None,
        batch_size: int | None = None,
        progress: ProgressOption = None,
    ) -> ClassifyReport:
        """Score ``labels`` against many images; unreadable images are skipped and listed.

        The labels are embedded once; images are prepared ahead of the model (see
        :meth:`encode_batches`), a batch at a time, so memory stays bounded.

        Args:
            images: Paths, bytes, PIL images or numpy arrays; any iterable.
            labels: Candidate descriptions, or one comma-separated string.
            softmax: As for :meth:`classify`.
            batch_size: Images per forward pass (default: the encoder's).
            progress: ``True`` for a progress bar, or a callable receiving a
                :class:`~zeroshot_vision._types.Progress` after every batch.

        Returns:
            One :class:`~zeroshot_vision._types.ImageLabels` per readable image, in input
            order, and one :class:`~zeroshot_vision._types.ImageFailure` per unreadable one.
        """
        from zeroshot_vision._progress import Tracker

        unique = clean_labels(labels)
        text_vectors = self.encode_texts(unique)
        results: list[ImageLabels] = []
        failed: list[ImageFailure] = []
        total = len(images) if isinstance(images, Sized) else None
        with Tracker(progress, task="classify", total=total) as tracker:
            for chunk in self.encode_batches(images, batch_size=batch_size):
                good = [(source, v) for source, v in chunk if not isinstance(v, ImageLoadError)]
                failed.extend(
                    ImageFailure(source=error.source, reason=error.reason)
                    for _, error in chunk
                    if isinstance(error, ImageLoadError)
                )
                vectors = [vector for _, vector in good]
                scores = self.score_labels(unique, text_vectors, vectors, softmax=softmax)
                results.extend(
                    ImageLabels(source=describe_source(source), labels=tuple(scored))
                    for (source, _), scored in zip(good, scores)
                )
                tracker.advance(len(chunk), failed=len(chunk) - len(good))
        return ClassifyReport(results=tuple(results), failed=tuple(failed))

    def score_labels(
        self,
        labels: list[str],
        text_vectors: npt.NDArray[np.float32],
        image_vectors: Iterable[npt.NDArray[np.float32]],
        *,
        softmax: bool | None = None,
    ) -> list[list[LabelScore]]:
        """Score labels against already embedded images (stored vectors, for example).

        Args:
            labels: The labels, in the order of ``text_vectors``.
            text_vectors: ``encode_texts(labels)``.
            image_vectors: Unit image vectors: an ``(n, dim)`` array, or rows of one.
            softmax: As for :meth:`classify`.

        Returns:
            For each image, its labels, most likely first.
        """
        return [
            self._label_scores(labels, text_vectors, vector, softmax=softmax)
            for vector in image_vectors
        ]

    def _label_scores(
        self,
        labels: list[str],
        text_vectors: npt.NDArray[np.float32],
        image_vector: npt.NDArray[np.float32],
        *,
        softmax: bool | None,
    ) -> list[LabelScore]:
        return scoring.label_scores(
            labels,
            text_vectors @ image_vector,
            logit_scale=self.logit_scale,
            logit_bias=self.logit_bias,
            calibrated=self.calibrated,
            softmax=softmax,
        )

    # -- scores ------------------------------------------------------------------------

    @overload
    def probability(self, cosine: float) -> float: ...

    @overload
    def probability(self, cosine: npt.NDArray[Any]) -> npt.NDArray[np.float64]: ...

    def probability(self, cosine: float | npt.NDArray[Any]) -> float | npt.NDArray[np.float64]:
        """SigLIP's calibrated probability that a text matches an image.

        ``sigmoid(exp(logit_scale) * cosine + logit_bias)``, with the checkpoint's own
        parameters. Each label's probability is independent of the others.

        Only meaningful when :attr:`calibrated` is true (SigLIP). CLIP has no bias term
        and was trained with a softmax: for it this value is not a probability, and the
        only probability it offers is a softmax of :meth:`logits` over the set of labels
        being compared, which changes when that set changes.
        """
        return scoring.probability(cosine, logit_scale=self.logit_scale, logit_bias=self.logit_bias)

    def logits(self, cosine: float | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``exp(logit_scale) * cosine + logit_bias``: the model's match logits.

        For CLIP (no bias) this is ``exp(logit_scale) * cosine``; a softmax of these over
        a label set gives CLIP's probabilities for that set.
        """
        return scoring.logits(cosine, logit_scale=self.logit_scale, logit_bias=self.logit_bias)
