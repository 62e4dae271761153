"""CLIP checkpoints behind the same Encoder: CLIP's own text handling, no calibration."""

from __future__ import annotations

import numpy as np

from zeroshot_vision._encoder import TEXT_PASS_FILLER


def test_clip_loads_as_uncalibrated(tiny_clip_encoder, tiny_encoder) -> None:
    assert tiny_clip_encoder.model_type == "clip"
    assert tiny_clip_encoder.calibrated is False
    assert tiny_clip_encoder.logit_bias == 0.0
    assert tiny_encoder.calibrated is True


def test_clip_logits_have_no_bias(tiny_clip_encoder) -> None:
    cosine = np.array([0.5, -0.25])
    expected = np.exp(tiny_clip_encoder.logit_scale) * cosine
    np.testing.assert_allclose(tiny_clip_encoder.logits(cosine), expected)


def test_clip_tokenizer_gives_different_texts_different_ids(tiny_clip_encoder) -> None:
    texts = ["a photo of a cat", "a photo of a dog", "zebra!", "Q"]
    tokens = tiny_clip_encoder.tokenize(texts)
    ids = tokens["input_ids"].tolist()
    assert len({tuple(row) for row in ids}) == len(texts)
    unknown = tiny_clip_encoder._processor.tokenizer.unk_token_id
    for row, mask in zip(ids, tokens["attention_mask"].tolist(), strict=True):
        words = row[1 : sum(mask) - 1]  # between <|startoftext|> and <|endoftext|>
        assert words and unknown not in words, row


def test_clip_pads_to_its_context_and_masks_the_padding(tiny_clip_encoder) -> None:
    tokens = tiny_clip_encoder.tokenize(["a cat", "a photo of a dog"])
    assert tokens["input_ids"].shape == (2, 77)
    assert tokens["attention_mask"].sum(dim=1).tolist() == [4, 7]


def test_clip_texts_embed_differently(tiny_clip_encoder) -> None:
    vectors = tiny_clip_encoder.encode_texts(["a photo of a cat", "a rocket", "zebra"])
    assert vectors.shape == (3, tiny_clip_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert (similarity[~np.eye(3, dtype=bool)] < 0.999).all()


def test_clip_keeps_its_own_casing_rule(tiny_clip_encoder, monkeypatch) -> None:
    seen: list[list[str]] = []
    original = tiny_clip_encoder.tokenize

    def spy(texts: list[str]):
        seen.append(texts)
        return original(texts)

    monkeypatch.setattr(tiny_clip_encoder, "tokenize", spy)
    tiny_clip_encoder.encode_texts(["  A Photo of NASA "])
    # Stripped, not lower-cased: CLIP's tokenizer decides (the rest of the pass is filler).
    assert [texts[0] for texts in seen] == ["A Photo of NASA"]
    assert set(seen[0][1:]) <= {TEXT_PASS_FILLER}


def test_siglip_still_lower_cases(tiny_encoder, monkeypatch) -> None:
    seen: list[list[str]] = []
    original = tiny_encoder.tokenize
    monkeypatch.setattr(
        tiny_encoder, "tokenize", lambda texts: seen.append(texts) or original(texts)
    )
    tiny_encoder.encode_texts(["A Photo of NASA"])
    assert [texts[0] for texts in seen] == ["a photo of nasa"]
    assert set(seen[0][1:]) <= {TEXT_PASS_FILLER}
    assert set(tiny_encoder.tokenize(["a cat"])) == {"input_ids"}


def test_clip_images_embed(tiny_clip_encoder, photo_paths) -> None:
    vectors = tiny_clip_encoder.encode_images(photo_paths[:3])
    assert vectors.shape == (3, tiny_clip_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
