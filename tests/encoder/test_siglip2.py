"""SigLIP 2 NaFlex checkpoints load and run through the same Encoder path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from zeroshot_vision import Encoder, FaissStore, SearchEngine
from zeroshot_vision.testing import build_tiny_siglip2


@pytest.fixture(scope="module")
def naflex_dir(tmp_path_factory):
    return build_tiny_siglip2(tmp_path_factory.mktemp("siglip2"), logit_scale=1.0, logit_bias=-2.0)


@pytest.fixture(scope="module")
def naflex(naflex_dir):
    return Encoder.from_pretrained(naflex_dir, device="cpu", dtype="float32")  # as the reference


def test_loads_as_siglip2(naflex) -> None:
    assert naflex.model_type == "siglip2"
    assert naflex.dim == 32
    assert naflex.logit_scale == pytest.approx(1.0)
    assert naflex.logit_bias == pytest.approx(-2.0)


def test_image_parity_with_reference(naflex, naflex_dir, photo_paths) -> None:
    """The image processor's own patch settings are used (not the processor's defaults)."""
    model = AutoModel.from_pretrained(naflex_dir).eval()
    processor = AutoProcessor.from_pretrained(naflex_dir)
    pngs = [p for p in photo_paths if p.suffix == ".png"][:3]
    inputs = processor.image_processor(
        images=[Image.open(p).convert("RGB") for p in pngs], return_tensors="pt"
    )
    assert inputs["pixel_values"].shape[1] == 16  # max_num_patches of the checkpoint
    with torch.no_grad():
        out = model.get_image_features(**inputs)
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(naflex.encode_images(pngs), ref, atol=1e-4)


def test_text_follows_the_processor_64_tokens_with_its_mask(naflex) -> None:
    """NaFlex text is what its processor gives (tests/encoder/test_siglip2_parity.py
    compares it with the reference on every script): 64 tokens, the attention mask, and
    the Siglip2Tokenizer's own lower-casing."""
    tokens = naflex.tokenize(["a photo of a cat"])
    assert set(tokens) == {"input_ids", "attention_mask"}
    assert tokens["input_ids"].shape == (1, 64)
    vectors = naflex.encode_texts(["A Photo of a CAT", "a photo of a cat"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_any_aspect_ratio_end_to_end(naflex, photo_paths) -> None:
    wide = Image.new("RGB", (400, 40), (200, 30, 30))
    tall = Image.new("RGB", (30, 500), (30, 30, 200))
    engine = SearchEngine(naflex, FaissStore(naflex.dim))
    report = engine.index_images(
        [*photo_paths[:3], wide, tall], ids=["a", "b", "c", "wide", "tall"]
    )
    assert report.ok and len(engine.store) == 5
    assert engine.search_by_image(tall, k=1)[0].id == "tall"
    scores = engine.classify(photo_paths[0], ["an astronaut", "a cup of coffee"])
    assert len(scores) == 2 and all(0.0 < s.probability < 1.0 for s in scores)
