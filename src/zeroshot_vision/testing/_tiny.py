"""Build random SigLIP (and CLIP) checkpoints offline, for tests and benchmarks.

The models use the real transformers classes and are written with ``save_pretrained``, so
they load through the same ``Encoder.from_pretrained`` path as a hub checkpoint. Their
weights are random: they prove shapes, padding, normalization, loading and batching, not
retrieval quality.

The builders live in the library (``zeroshot_vision._tiny``), which builds the tiny model
itself for ``--model tiny``; this module is their public, documented home.
:func:`build_hub_cache` saves them under hub names, so code that names real checkpoints
runs offline unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from zeroshot_vision._tiny import (
    PRESETS,
    build_random_siglip,
    build_tiny_clip,
    build_tiny_siglip,
    build_tiny_siglip2,
    build_tiny_siglip2_fixres,
    multilingual_corpus,
)

__all__ = [
    "PRESETS",
    "build_hub_cache",
    "build_random_siglip",
    "build_tiny_clip",
    "build_tiny_siglip",
    "build_tiny_siglip2",
    "build_tiny_siglip2_fixres",
    "multilingual_corpus",
]


_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "siglip": build_tiny_siglip,
    "siglip2": build_tiny_siglip2,
    "siglip2-fixres": build_tiny_siglip2_fixres,
    "clip": build_tiny_clip,
}


def build_hub_cache(cache: str | os.PathLike[str], repos: Mapping[str, str]) -> Path:
    """Tiny random stand-ins saved under hub names, in the Hugging Face cache's layout.

    With ``HF_HUB_CACHE`` naming ``cache`` and ``HF_HUB_OFFLINE=1``, loading
    ``"google/siglip-so400m-patch14-384"`` (``Encoder.from_pretrained``, ``--model``, the
    default model) goes through the hub client's real cache look-up and finds the tiny
    stand-in: code, scripts and docs that name real checkpoints run offline as written.
    The rankings are random. A repo already in ``cache`` is left as it is.

    Args:
        cache: The hub cache folder (what ``HF_HUB_CACHE`` names); created if missing.
        repos: Hub repo id -> the kind of stand-in: ``"siglip"``, ``"siglip2"`` (NaFlex),
            ``"siglip2-fixres"`` (Gemma's tokenizer, multilingual) or ``"clip"``.

    Returns:
        ``cache``, as a :class:`~pathlib.Path`.

    Raises:
        ValueError: An unknown kind, or a repo id that is not ``owner/name``.
    """
    root = Path(cache)
    for repo, kind in repos.items():
        if kind not in _BUILDERS:
            kinds = ", ".join(sorted(_BUILDERS))
            raise ValueError(f"unknown stand-in kind {kind!r} for {repo}; use one of {kinds}")
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"{repo!r} is not a hub repo id (owner/name)")
        folder = root / f"models--{owner}--{name}"
        # The cache names a snapshot by its commit; any stable 40-hex name will do.
        commit = hashlib.sha1(repo.encode(), usedforsecurity=False).hexdigest()
        snapshot = folder / "snapshots" / commit
        if (snapshot / "config.json").is_file():
            continue
        _BUILDERS[kind](snapshot)
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(commit, encoding="utf-8")
    return root
