"""Tools for testing code built on zeroshot-vision, offline.

* :func:`build_tiny_siglip` / :func:`build_random_siglip`: random SigLIP checkpoints built
  from configs, loadable with ``Encoder.from_pretrained`` (no hub needed);
  :func:`build_tiny_clip` does the same for CLIP, :func:`build_tiny_siglip2` for SigLIP 2
  NaFlex and :func:`build_tiny_siglip2_fixres` for a fixed-resolution SigLIP 2 with a
  multilingual byte-fallback sentencepiece tokenizer (:func:`multilingual_corpus`).
* :class:`VectorStoreContract`: the store contract suite; a backend's test module
  subclasses it and supplies a ``make_store`` fixture.
* :class:`PineconeTestServer`: a local server speaking Pinecone's data-plane REST
  protocol, to test Pinecone code through the real SDK without an account.
* :func:`build_xm3600_sample`: photos and captions in seven languages, in the
  Crossmodal-3600 layout, for per-language evaluation offline.
* :func:`render_text`: words rendered onto a real photo (a sign, a receipt, a slide), for
  OCR and lexical search tests.
* :func:`build_tiny_vlm` / :class:`TransformersServe`: a tiny random vision-language model
  (LLaVA) and ``transformers serve`` running it on loopback, to test ``ask`` offline.

Nothing here is imported by ``import zeroshot_vision``.
"""

from typing import TYPE_CHECKING

from zeroshot_vision.testing._pinecone_server import PineconeTestServer, RecordedRequest
from zeroshot_vision.testing._text_photos import render_text
from zeroshot_vision.testing._tiny import (
    PRESETS,
    build_hub_cache,
    build_random_siglip,
    build_tiny_clip,
    build_tiny_siglip,
    build_tiny_siglip2,
    build_tiny_siglip2_fixres,
    multilingual_corpus,
)
from zeroshot_vision.testing._video_clips import write_clip
from zeroshot_vision.testing._vlm import TINY_VLM_IMAGE_TOKENS, TransformersServe, build_tiny_vlm
from zeroshot_vision.testing._xm3600 import SAMPLE_CAPTIONS, build_xm3600_sample

if TYPE_CHECKING:
    from zeroshot_vision.testing._contract import VectorStoreContract

__all__ = [
    "PRESETS",
    "SAMPLE_CAPTIONS",
    "TINY_VLM_IMAGE_TOKENS",
    "PineconeTestServer",
    "RecordedRequest",
    "TransformersServe",
    "VectorStoreContract",
    "build_hub_cache",
    "build_random_siglip",
    "build_tiny_clip",
    "build_tiny_siglip",
    "build_tiny_siglip2",
    "build_tiny_siglip2_fixres",
    "build_tiny_vlm",
    "build_xm3600_sample",
    "multilingual_corpus",
    "render_text",
    "write_clip",
]


def __getattr__(name: str) -> object:
    # The contract suite imports pytest and hypothesis; load it only when asked for.
    if name == "VectorStoreContract":
        from zeroshot_vision.testing._contract import VectorStoreContract

        return VectorStoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
