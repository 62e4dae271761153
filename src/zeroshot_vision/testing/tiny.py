"""Build random SigLIP (and CLIP) checkpoints offline, for tests and benchmarks.

The models use the real transformers classes and are written with ``save_pretrained``, so
they load through the same ``Encoder.from_pretrained`` path as a hub checkpoint. Their
weights are random: they prove shapes, padding, normalization, loading and batching, not
retrieval quality.

The builders live in the library (``zeroshot_vision._tiny``), which builds the tiny model
itself for ``--model tiny``; this module is their public, documented home.
"""

from zeroshot_vision._tiny import (
    PRESETS,
    build_random_siglip,
    build_tiny_clip,
    build_tiny_siglip,
    build_tiny_siglip2,
)

__all__ = [
    "PRESETS",
    "build_random_siglip",
    "build_tiny_clip",
    "build_tiny_siglip",
    "build_tiny_siglip2",
]
