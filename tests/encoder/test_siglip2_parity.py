"""SigLIP 2 equals the transformers reference pipeline, on every script it reads.

The reference is the model card's: ``AutoProcessor`` and ``AutoModel``,
``processor(text=..., padding="max_length", max_length=64)`` and
``get_text_features(**inputs)`` (the attention mask included). The tiny checkpoints
have a real sentencepiece tokenizer trained on multilingual text with byte fallback
(``zeroshot_vision.testing.build_tiny_siglip2_fixres`` and ``build_tiny_siglip2``), so
Japanese, Arabic or Hindi reach the model as real tokens, not ``<unk>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from zeroshot_vision import Encoder
from zeroshot_vision.testing import build_tiny_siglip2, build_tiny_siglip2_fixres

QUERIES = {
    "en": "A Photo of a Cat on the Beach",
    "de": "Ein Hund läuft über die Straße",
    "ja": "東京の夜景",
    "zh": "北京的夜景和汽车",
    "ar": "قطة تجلس على الشاطئ",
    "hi": "समुद्र तट पर बिल्ली",
    "ru": "Фотография собаки в парке",
    "th": "แมวบนชายหาดตอนกลางคืน",
    "emoji": "🐱 cat 😺🌸",
    "mixed": "Tokyo 東京 مدينة city",
}
"""Queries per language (and emoji, and mixed scripts with right-to-left text), with
words outside the tokenizer's training text (東京, 夜景) that only byte fallback reads."""

TEXT_TOLERANCE = 1e-5


def _reference_texts(model: Any, processor: Any, texts: list[str], **options: Any) -> np.ndarray:
    inputs = processor(
        text=texts, padding="max_length", max_length=64, return_tensors="pt", **options
    )
    with torch.no_grad():
        out = model.get_text_features(**inputs)
    features = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(features, dim=-1).numpy()


@pytest.fixture(scope="module", params=["fixres", "naflex"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny SigLIP 2 of each kind, our encoder over it, and the reference pipeline."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "fixres":
        path = build_tiny_siglip2_fixres(folder, hidden_size=48, logit_scale=2.0, logit_bias=-1.0)
    else:
        path = build_tiny_siglip2(folder, logit_scale=2.0, logit_bias=-1.0)
    encoder = Encoder.from_pretrained(path, device="cpu", dtype="float32")
    model = AutoModel.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    yield request.param, path, encoder, model, processor
    encoder.close()


@pytest.mark.parametrize("language", list(QUERIES))
def test_text_vectors_equal_the_reference_pipeline(checkpoint: Any, language: str) -> None:
    _, _, encoder, model, processor = checkpoint
    query = QUERIES[language]
    ids = processor.tokenizer(query, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.unk_token_id not in ids  # byte fallback: real tokens
    expected = _reference_texts(model, processor, [query])[0]
    got = encoder.encode_texts([query])[0]
    assert float(np.abs(got - expected).max()) < TEXT_TOLERANCE


def test_a_batch_of_every_script_equals_the_reference(checkpoint: Any) -> None:
    _, _, encoder, model, processor = checkpoint
    texts = list(QUERIES.values())
    expected = _reference_texts(model, processor, texts)
    np.testing.assert_allclose(encoder.encode_texts(texts), expected, atol=TEXT_TOLERANCE)


def test_the_processor_decides_padding_case_and_mask(checkpoint: Any) -> None:
    """Not SigLIP v1's rule: Gemma pads on the left and the mask reaches the model."""
    kind, _, encoder, model, processor = checkpoint
    tokens = encoder.tokenize(["a cat"])
    assert set(tokens) == {"input_ids", "attention_mask"}
    assert tokens["input_ids"].shape == (1, 64)
    assert processor.tokenizer.padding_side == "left"
    assert tokens["attention_mask"][0, 0] == 0 and tokens["attention_mask"][0, -1] == 1
    # Dropping the mask (SigLIP v1's rule) would change the vector: the test can fail.
    with torch.no_grad():
        out = model.get_text_features(input_ids=tokens["input_ids"])
    unmasked = torch.nn.functional.normalize(
        out if isinstance(out, torch.Tensor) else out.pooler_output, dim=-1
    ).numpy()[0]
    assert float(np.abs(unmasked - encoder.encode_texts(["a cat"])[0]).max()) > 1e-3
    # Case: the NaFlex processor's Siglip2Tokenizer lower-cases; the fixed-resolution
    # checkpoints' GemmaTokenizer does not, and neither does the encoder on its own.
    upper, lower = encoder.encode_texts(["A CAT", "a cat"])
    if kind == "naflex":
        np.testing.assert_allclose(upper, lower, atol=1e-6)
    else:
        assert float(np.abs(upper - lower).max()) > 1e-3


def test_a_long_query_is_cut_where_the_reference_cuts_it(checkpoint: Any) -> None:
    _, _, encoder, model, processor = checkpoint
    query = "東京の夜景と猫 " * 1400  # 10,000 characters
    assert encoder.truncation_warning(query) is not None
    expected = _reference_texts(model, processor, [query.strip()], truncation=True)[0]
    assert float(np.abs(encoder.encode_texts([query])[0] - expected).max()) < TEXT_TOLERANCE


def test_no_reading_warning_for_a_multilingual_byte_fallback_tokenizer(checkpoint: Any) -> None:
    _, _, encoder, _, _ = checkpoint
    for query in QUERIES.values():
        assert encoder.reading_warning(query) is None, query


def test_image_vectors_equal_the_reference_on_real_photos(
    checkpoint: Any, photo_paths: list[Path]
) -> None:
    """PNG files by path, and every photo decoded in full (a JPEG file read by path is
    decoded at reduced scale, on purpose: not the reference's pixels)."""
    _, _, encoder, model, processor = checkpoint
    images = [Image.open(path).convert("RGB") for path in photo_paths]
    inputs = processor.image_processor(images=images, return_tensors="pt")
    with torch.no_grad():
        out = model.get_image_features(**inputs)
    features = out if isinstance(out, torch.Tensor) else out.pooler_output
    expected = torch.nn.functional.normalize(features, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_images(images), expected, atol=1e-4)
    pngs = [i for i, path in enumerate(photo_paths) if path.suffix == ".png"]
    assert pngs
    from_files = encoder.encode_images([photo_paths[i] for i in pngs])
    np.testing.assert_allclose(from_files, expected[pngs], atol=1e-4)
