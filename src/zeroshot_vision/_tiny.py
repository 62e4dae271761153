"""Random SigLIP (and CLIP) checkpoints built offline from configs; the ``tiny`` model.

The library builds :func:`build_tiny_siglip` into the user cache for ``--model tiny`` /
``ZSV_MODEL=tiny`` (see :func:`zeroshot_vision._models.resolve_model`); tests and
benchmarks use every builder, through :mod:`zeroshot_vision.testing._tiny`, which
re-exports them.

The models use the real transformers classes and are written with ``save_pretrained``, so
they load through the same ``Encoder.from_pretrained`` path as a hub checkpoint. Their
weights are random: they prove shapes, padding, normalization, loading and batching, not
retrieval quality.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from zeroshot_vision._optional import require

__all__ = [
    "PRESETS",
    "build_random_siglip",
    "build_tiny_clip",
    "build_tiny_siglip",
    "build_tiny_siglip2",
    "build_tiny_siglip2_fixres",
    "multilingual_corpus",
]

# Lower-case sentences for the tokenizer; SigLIP's tokenizer sees lower-cased text.
_CORPUS = [
    "a photo of a cat",
    "a photo of a dog",
    "a happy golden retriever puppy",
    "a cyber-punk street at night",
    "an astronaut in a white space suit",
    "a cup of coffee on a table",
    "a rocket launching into the sky",
    "the night sky full of galaxies",
    "a red car parked on a quiet street",
    "a mountain lake at sunrise",
    "people walking on a beach",
    "a bowl of fresh fruit",
    "a portrait of a woman in uniform",
    "a flower in bloom",
    "an old temple in the mountains",
    "zero shot image search with sigmoid loss",
]

PRESETS: dict[str, dict[str, Any]] = {
    # Two layers, 32 wide, 32 px images: builds in a second, runs in milliseconds.
    "tiny": dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    ),
    # As tiny, 48 wide: another embedding size, for moving an index between models.
    "tiny-wide": dict(
        image_size=32,
        patch_size=8,
        hidden_size=48,
        intermediate_size=53,
        num_hidden_layers=2,
        num_attention_heads=4,
    ),
    # The shape of google/siglip-base-patch16-224 (the SiglipConfig defaults).
    "base": dict(
        image_size=224,
        patch_size=16,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
    ),
    # The shape of google/siglip-so400m-patch14-384, the project default.
    "so400m": dict(
        image_size=384,
        patch_size=14,
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=27,
        num_attention_heads=16,
    ),
}


def build_random_siglip(
    path: str | os.PathLike[str],
    *,
    preset: str = "tiny",
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
) -> Path:
    """Build a randomly initialized SigLIP of a known shape and save it to ``path``.

    Args:
        path: Folder to write (created if needed).
        preset: ``"tiny"``, ``"tiny-wide"`` (48-d vectors instead of 32), ``"base"``
            (siglip-base-patch16-224's shape) or ``"so400m"``.
        logit_scale: Value of the model's ``logit_scale`` parameter (the log of the
            temperature); a fresh model has 0.
        logit_bias: Value of the model's ``logit_bias`` parameter; a fresh model has 0.
        seed: Seed for the random weights, so builds are reproducible.
        device: Where to initialize the weights (``"cuda"`` builds so400m in seconds
            instead of a minute on a small CPU); the CPU when ``None``.
        dtype: Precision to save in (``"bfloat16"`` halves the files); float32 when
            ``None``.

    Returns:
        The folder, ready for ``Encoder.from_pretrained(path)``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    transformers = require("transformers", purpose="build_random_siglip")
    spm = require("sentencepiece", purpose="build_random_siglip")

    shape = PRESETS[preset]
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prefix = str(Path(scratch) / "sp")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(_CORPUS),
            model_prefix=prefix,
            vocab_size=64,
            hard_vocab_limit=False,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            minloglevel=2,
        )
        tokenizer = transformers.SiglipTokenizer(vocab_file=f"{prefix}.model")
        processor = transformers.SiglipProcessor(
            image_processor=transformers.SiglipImageProcessor(
                size={"height": shape["image_size"], "width": shape["image_size"]}
            ),
            tokenizer=tokenizer,
        )
        width = {k: shape[k] for k in shape if k not in ("image_size", "patch_size")}
        config = transformers.SiglipConfig(
            text_config=dict(
                vocab_size=tokenizer.vocab_size,
                max_position_embeddings=64,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=None,
                **width,
            ),
            vision_config=dict(
                image_size=shape["image_size"], patch_size=shape["patch_size"], **width
            ),
        )
        _save(
            transformers.SiglipModel,
            config,
            processor,
            out,
            logit_scale,
            logit_bias,
            seed,
            device=device,
            dtype=dtype,
        )
    return out


def build_tiny_siglip(
    path: str | os.PathLike[str],
    *,
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    seed: int = 0,
) -> Path:
    """Build the tiny random SigLIP (32 wide, 2 layers, 32 px) and save it to ``path``.

    See :func:`build_random_siglip`.
    """
    return build_random_siglip(
        path, preset="tiny", logit_scale=logit_scale, logit_bias=logit_bias, seed=seed
    )


def build_tiny_siglip2(
    path: str | os.PathLike[str],
    *,
    max_num_patches: int = 16,
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    seed: int = 0,
) -> Path:
    """Build a tiny random SigLIP 2 NaFlex model (``Siglip2Model``) and save it to ``path``.

    NaFlex checkpoints keep each image's aspect ratio and cut it into at most
    ``max_num_patches`` patches, so their processor returns ``pixel_attention_mask`` and
    ``spatial_shapes`` beside ``pixel_values``. The tokenizer is Gemma's kind, as SigLIP 2
    uses: a sentencepiece model trained offline on :func:`multilingual_corpus` with byte
    fallback. (transformers 5 loads a NaFlex checkpoint's tokenizer as the lower-casing
    ``Siglip2Tokenizer``, built from the saved vocabulary and merges; a word-level
    vocabulary there would read every text as ``<unk>``.)

    Returns:
        The folder, ready for ``Encoder.from_pretrained(path)``.
    """
    transformers = require("transformers", purpose="build_tiny_siglip2")

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = _multilingual_gemma_tokenizer(transformers, Path(scratch))
        image_processor = transformers.Siglip2ImageProcessor(
            patch_size=8, max_num_patches=max_num_patches
        )
        processor = transformers.Siglip2Processor(
            image_processor=image_processor, tokenizer=tokenizer
        )
        width = dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4
        )
        config = transformers.Siglip2Config(
            text_config=dict(
                vocab_size=len(tokenizer),
                max_position_embeddings=64,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=tokenizer.bos_token_id,
                **width,
            ),
            vision_config=dict(patch_size=8, num_patches=max_num_patches, **width),
        )
        _save(transformers.Siglip2Model, config, processor, out, logit_scale, logit_bias, seed)
    return out


# Phrases in the scripts SigLIP 2 reads, for a tokenizer that has seen each of them: a
# template per phrase kind ({} is the thing), and ten things, per language.
_MULTILINGUAL_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("a photo of a {}", "the {} at night", "a {} in the park"),
        ("cat", "dog", "car", "mountain", "river", "city", "flower", "bird", "beach", "temple"),
    ),
    "de": (
        ("ein Foto von {}", "{} in der Nacht", "{} im Park"),
        ("einer Katze", "einem Hund", "einem Auto", "einem Berg", "einem Fluss",
         "einer Stadt", "einer Blume", "einem Vogel", "einem Strand", "einem Tempel"),
    ),
    "ja": (
        ("{}の写真", "夜の{}", "公園の{}"),
        ("猫", "犬", "車", "山", "川", "街", "花", "鳥", "海辺", "寺"),
    ),
    "zh": (
        ("{}的照片", "夜晚的{}", "公园里的{}"),
        ("猫", "狗", "汽车", "山", "河", "城市", "花", "鸟", "海滩", "寺庙"),
    ),
    "ar": (
        ("صورة {}", "{} في الليل", "{} في الحديقة"),
        ("قطة", "كلب", "سيارة", "جبل", "نهر", "مدينة", "زهرة", "طائر", "شاطئ", "معبد"),
    ),
    "hi": (
        ("{} की तस्वीर", "रात में {}", "पार्क में {}"),
        ("बिल्ली", "कुत्ता", "गाड़ी", "पहाड़", "नदी", "शहर", "फूल", "पक्षी", "समुद्र तट", "मंदिर"),
    ),
    "ru": (
        ("фотография {}", "{} ночью", "{} в парке"),
        ("кошки", "собаки", "машины", "горы", "реки", "города", "цветка", "птицы", "пляжа",
         "храма"),
    ),
    "th": (
        ("ภาพถ่ายของ{}", "{}ตอนกลางคืน", "{}ในสวน"),
        ("แมว", "สุนัข", "รถยนต์", "ภูเขา", "แม่น้ำ", "เมือง", "ดอกไม้", "นก", "ชายหาด", "วัด"),
    ),
}  # fmt: skip
_EMOJI_LINES = ("🐱 a cat", "🐶 a dog", "🚗 a car", "🏔️ a mountain", "🌸 a flower", "🐦 a bird")


def multilingual_corpus() -> list[str]:
    """Short phrases in English, German, Japanese, Chinese, Arabic, Hindi, Russian and
    Thai, and a few with emoji: what the tiny SigLIP 2's sentencepiece model learns from.

    Words outside it (``東京``, ``夜景``) still tokenize, through byte fallback.
    """
    lines = [
        template.format(thing)
        for templates, things in _MULTILINGUAL_PHRASES.values()
        for template in templates
        for thing in things
    ]
    return [*lines, *_EMOJI_LINES, *_CORPUS]


def _multilingual_gemma_tokenizer(transformers: Any, scratch: Path) -> Any:
    """A ``GemmaTokenizer`` over a sentencepiece model trained on :func:`multilingual_corpus`.

    Byte fallback (every character of every script tokenizes; no text becomes
    ``<unk>``), full character coverage, ids ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2,
    ``<unk>`` 3; about 600 pieces. Trained in ``scratch`` in well under a second.
    """
    spm = require("sentencepiece", purpose="a tiny SigLIP 2's tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(multilingual_corpus()),
        model_prefix=str(scratch / "tokenizer"),
        vocab_size=700,
        hard_vocab_limit=False,
        byte_fallback=True,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    # GemmaTokenizer(vocab_file=...) ignores the file under transformers 5 (a five-token
    # vocabulary); from_pretrained reads tokenizer.model from the folder.
    return transformers.GemmaTokenizer.from_pretrained(str(scratch))


def build_tiny_siglip2_fixres(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = 32,
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    seed: int = 0,
) -> Path:
    """Build a tiny random fixed-resolution SigLIP 2 and save it to ``path``.

    As the hub's ``google/siglip2-*-patchNN-RES`` checkpoints: a ``SiglipModel`` whose
    tokenizer is Gemma's (``GemmaTokenizer``, which pads on the left and does not
    lower-case), here a real sentencepiece model trained offline on
    :func:`multilingual_corpus` with byte fallback (every character of every script
    tokenizes; no text becomes ``<unk>``). 32 px images in 8 px patches, two layers.

    Args:
        path: Folder to write (created if needed).
        hidden_size: Width of both towers, and so the embedding size (a multiple of 4).
        logit_scale: Value of ``logit_scale``; a fresh model has 0.
        logit_bias: Value of ``logit_bias``; a fresh model has 0.
        seed: Seed for the random weights.

    Returns:
        The folder, ready for ``Encoder.from_pretrained(path)``.
    """
    transformers = require("transformers", purpose="build_tiny_siglip2_fixres")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = _multilingual_gemma_tokenizer(transformers, Path(scratch))
        processor = transformers.SiglipProcessor(
            image_processor=transformers.SiglipImageProcessor(size={"height": 32, "width": 32}),
            tokenizer=tokenizer,
        )
        width = dict(
            hidden_size=hidden_size,
            intermediate_size=hidden_size + 5,
            num_hidden_layers=2,
            num_attention_heads=4,
        )
        config = transformers.SiglipConfig(
            text_config=dict(
                vocab_size=len(tokenizer),
                max_position_embeddings=64,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=tokenizer.bos_token_id,
                **width,
            ),
            vision_config=dict(image_size=32, patch_size=8, **width),
        )
        _save(transformers.SiglipModel, config, processor, out, logit_scale, logit_bias, seed)
    return out


def build_tiny_clip(
    path: str | os.PathLike[str],
    *,
    logit_scale: float | None = None,
    seed: int = 0,
) -> Path:
    """Build a tiny random CLIP (``CLIPModel``, 32 wide, 2 layers, 32 px) at ``path``.

    The tokenizer is a real ``CLIPTokenizer``: byte-level BPE with CLIP's ``</w>``
    end-of-word suffix, its merges learned from a small corpus. CLIP has no
    ``logit_bias``, so the loaded encoder reports ``calibrated = False``.

    Args:
        path: Folder to write (created if needed).
        logit_scale: Value of ``logit_scale`` (log of the temperature); CLIP's initial
            value is log(1/0.07) = 2.66.
        seed: Seed for the random weights.

    Returns:
        The folder, ready for ``Encoder.from_pretrained(path)``.
    """
    transformers = require("transformers", purpose="build_tiny_clip")
    tokenizer = _tiny_clip_tokenizer(transformers)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    processor = transformers.CLIPProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    width = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            # The text tower pools at the first eos token, found by this id.
            eos_token_id=tokenizer.eos_token_id,
            **width,
        ),
        vision_config=dict(image_size=32, patch_size=8, **width),
        projection_dim=32,
    )
    _save(transformers.CLIPModel, config, processor, out, logit_scale, None, seed)
    return out


def _tiny_clip_tokenizer(transformers: Any) -> Any:
    """A ``CLIPTokenizer`` whose BPE vocabulary covers every byte, alone and word-final.

    CLIP's BPE appends ``</w>`` to the last symbol of each word. A vocabulary that lacks
    ``x</w>`` for some byte ``x`` maps such words to ``<|endoftext|>`` (the unknown
    token), and a vocabulary built without the byte-level alphabet maps every character
    there, so that all texts embed alike. Both forms of all 256 byte symbols are added.
    """
    tokenizers = require("tokenizers", purpose="build_tiny_clip")
    specials = ["<|startoftext|>", "<|endoftext|>"]
    template = transformers.CLIPTokenizer()  # CLIP's normalizer and pre-tokenizer
    backend = tokenizers.Tokenizer(
        tokenizers.models.BPE(
            unk_token="<|endoftext|>", continuing_subword_prefix="", end_of_word_suffix="</w>"
        )
    )
    backend.normalizer = template.backend_tokenizer.normalizer
    backend.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    alphabet = tokenizers.pre_tokenizers.ByteLevel.alphabet()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=len(specials) + 2 * len(alphabet) + 64,
        special_tokens=specials,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    for symbol in sorted(alphabet):
        for token in (symbol, symbol + "</w>"):
            vocab.setdefault(token, len(vocab))
    merges = [tuple(pair) for pair in model["merges"]]
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges)


def _save(
    model_class: Any,
    config: Any,
    processor: Any,
    out: Path,
    logit_scale: float | None,
    logit_bias: float | None,
    seed: int,
    *,
    device: str | None = None,
    dtype: str | None = None,
) -> None:
    """Initialize a model from ``config`` with ``seed``, set its logits, save it all."""
    torch = require("torch", purpose="building a random model")
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = model_class(config).eval()
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    with torch.no_grad():
        if logit_scale is not None:
            model.logit_scale.fill_(logit_scale)
        if logit_bias is not None:
            model.logit_bias.fill_(logit_bias)
    model.save_pretrained(out)
    processor.save_pretrained(out)
