"""Encoder's CPU fast paths: the bfloat16 default, the text cache, warm-up, int8 text.

Speed is measured in benchmarks/bench_encoder.py, never asserted here; these tests check
that each fast path gives the same answers as the float32 model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeroshot_vision import Encoder, InvalidInputError
from zeroshot_vision._encoder import QUANTIZED_TEXT_PASS_ROWS, TEXT_CACHE_SIZE, TEXT_PASS_FILLER
from zeroshot_vision._models import cpu_has_native_bf16, pick_dtype

TEXTS = [
    "a photo of a cat",
    "An astronaut in a white space suit",
    "a cup of coffee on a table",
    "a rocket launching into the sky",
    "a red car parked on a quiet street",
    "zero shot image search with sigmoid loss",
]


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _centered_cosines(a: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosines once the reference's mean is removed from both.

    A random tiny model maps all texts within a cosine of ~0.99 of each other, so a raw
    cosine of 0.999 could hide an error as large as the differences between texts; the
    centered cosine compares only what tells inputs apart.
    """
    mean = reference.mean(axis=0, keepdims=True)
    return _row_cosines(a - mean, reference - mean)


class _CountingModel:
    """Wraps a model and counts texts that reach its text tower."""

    def __init__(self, model: object, encoder: Encoder) -> None:
        self._model = model
        self.texts_seen = 0
        # Passes are padded to a fixed row count with filler rows, which are not texts.
        self.filler = encoder.tokenize([TEXT_PASS_FILLER])["input_ids"][0].tolist()

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    def get_text_features(self, **inputs: torch.Tensor) -> object:
        self.texts_seen += sum(row != self.filler for row in inputs["input_ids"].tolist())
        return self._model.get_text_features(**inputs)  # type: ignore[attr-defined]


@pytest.fixture()
def counting_encoder(tiny_encoder: Encoder) -> tuple[Encoder, _CountingModel]:
    counter = _CountingModel(tiny_encoder._model, tiny_encoder)
    encoder = Encoder(
        tiny_encoder._model, tiny_encoder._processor, model_name="tiny", text_cache_size=3
    )
    encoder._model = counter
    return encoder, counter


# -- bfloat16 --------------------------------------------------------------------------


def test_bfloat16_agrees_with_float32_on_real_photos_and_texts(
    tiny_model_dir: Path, tiny_encoder: Encoder, photo_paths: list[Path]
) -> None:
    half = Encoder.from_pretrained(tiny_model_dir, device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    images = half.encode_images(photo_paths)
    texts = half.encode_texts(TEXTS)
    assert images.dtype == texts.dtype == np.float32
    image_cosines = _row_cosines(images, tiny_encoder.encode_images(photo_paths))
    text_cosines = _row_cosines(texts, tiny_encoder.encode_texts(TEXTS))
    assert image_cosines.min() >= 0.999, image_cosines
    assert text_cosines.min() >= 0.999, text_cosines
    # Measured 0.9999 (images) and 0.996 (texts) here.
    centered = _centered_cosines(images, tiny_encoder.encode_images(photo_paths))
    assert centered.min() >= 0.99, centered
    centered = _centered_cosines(texts, tiny_encoder.encode_texts(TEXTS))
    assert centered.min() >= 0.99, centered


def test_cpu_default_is_bfloat16_only_with_native_support(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zeroshot_vision._models as models_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(models_module, "cpu_has_native_bf16", lambda: True)
    assert pick_dtype(cpu, None) == torch.bfloat16
    assert pick_dtype(cpu, "float32") == torch.float32  # the caller's choice wins
    assert Encoder.from_pretrained(tiny_model_dir, device="cpu").dtype == torch.bfloat16
    monkeypatch.setattr(models_module, "cpu_has_native_bf16", lambda: False)
    assert pick_dtype(cpu, None) == torch.float32
    assert Encoder.from_pretrained(tiny_model_dir, device="cpu").dtype == torch.float32


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16", True)],
)
def test_native_bf16_read_from_cpuinfo_when_torch_cannot_tell(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: str, expected: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.setattr("zeroshot_vision._models._CPUINFO", cpuinfo)
    assert cpu_has_native_bf16() is expected
    monkeypatch.setattr("zeroshot_vision._models._CPUINFO", tmp_path / "missing")
    assert cpu_has_native_bf16() is False


def test_native_bf16_agrees_with_torch_probes() -> None:
    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    if not all(callable(p) for p in probes):
        pytest.skip("this torch has no CPU feature probes")
    assert cpu_has_native_bf16() == any(p() for p in probes)  # type: ignore[misc]


# -- text cache ------------------------------------------------------------------------


def test_repeated_texts_skip_the_model(counting_encoder: tuple[Encoder, _CountingModel]) -> None:
    encoder, counter = counting_encoder
    first = encoder.encode_texts(["a cat", "a dog", "a cat"])
    assert counter.texts_seen == 2  # repeats inside one call are embedded once
    again = encoder.encode_texts(["A Cat ", "a dog"])  # same cleaned texts
    assert counter.texts_seen == 2
    np.testing.assert_array_equal(again, first[:2])
    np.testing.assert_array_equal(first[0], first[2])


def test_cache_is_bounded_and_least_recently_used(
    counting_encoder: tuple[Encoder, _CountingModel],
) -> None:
    encoder, counter = counting_encoder  # holds 3 texts
    encoder.encode_texts(["one", "two", "three"])
    encoder.encode_texts(["one"])  # now most recently used
    encoder.encode_texts(["four"])  # evicts "two"
    assert list(encoder._text_cache) == ["three", "one", "four"]
    seen = counter.texts_seen
    encoder.encode_texts(["one", "three", "four"])
    assert counter.texts_seen == seen
    encoder.encode_texts(["two"])
    assert counter.texts_seen == seen + 1


def test_cached_results_equal_fresh_ones_and_cannot_be_corrupted(tiny_encoder: Encoder) -> None:
    tiny_encoder.clear_text_cache()
    fresh = tiny_encoder.encode_texts(TEXTS)
    cached = tiny_encoder.encode_texts(TEXTS)
    np.testing.assert_array_equal(cached, fresh)
    cached[:] = 0.0  # the caller owns what it gets back
    np.testing.assert_array_equal(tiny_encoder.encode_texts(TEXTS), fresh)
    tiny_encoder.clear_text_cache()
    np.testing.assert_allclose(tiny_encoder.encode_texts(TEXTS), fresh, atol=1e-6)


def test_cache_can_be_disabled(tiny_encoder: Encoder) -> None:
    counter = _CountingModel(tiny_encoder._model, tiny_encoder)
    encoder = Encoder(
        tiny_encoder._model, tiny_encoder._processor, model_name="tiny", text_cache_size=0
    )
    encoder._model = counter
    encoder.encode_texts(["a cat", "a cat"])
    encoder.encode_texts(["a cat"])
    assert counter.texts_seen == 3
    assert not encoder._text_cache


def test_cache_size_option(tiny_model_dir: Path) -> None:
    assert Encoder.from_pretrained(tiny_model_dir).text_cache_size == TEXT_CACHE_SIZE
    small = Encoder.from_pretrained(tiny_model_dir, text_cache_size=2)
    small.encode_texts(["a", "b", "c"])
    assert list(small._text_cache) == ["b", "c"]
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidInputError, match="text_cache_size"):
            Encoder.from_pretrained(tiny_model_dir, text_cache_size=bad)  # type: ignore[arg-type]


# -- warm-up ---------------------------------------------------------------------------


def test_warm_up_runs_the_model_and_caches_nothing(
    counting_encoder: tuple[Encoder, _CountingModel],
) -> None:
    encoder, counter = counting_encoder
    encoder.warm_up(images=True)
    assert counter.texts_seen == 1
    assert not encoder._text_cache


def test_from_pretrained_warms_up_unless_told_not_to(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(Encoder, "warm_up", lambda self, images=False: calls.append(images))
    Encoder.from_pretrained(tiny_model_dir)
    assert calls == [False]
    Encoder.from_pretrained(tiny_model_dir, warm_up=False)
    assert calls == [False]


# -- int8 text tower -------------------------------------------------------------------


def test_int8_text_tower_agrees_with_float32(
    tiny_model_dir: Path, tiny_encoder: Encoder, photo_paths: list[Path]
) -> None:
    quick = Encoder.from_pretrained(tiny_model_dir, device="cpu", quantize_text=True)
    vectors, reference = quick.encode_texts(TEXTS), tiny_encoder.encode_texts(TEXTS)
    assert _row_cosines(vectors, reference).min() >= 0.99
    # int8 is coarser than bfloat16 on a 32-wide model: 0.96 measured here.
    assert _centered_cosines(vectors, reference).min() >= 0.9
    # The image tower keeps its own precision and still works beside the int8 text tower.
    images = quick.encode_images([Image.open(photo_paths[0])])
    assert images.shape == (1, quick.dim) and images.dtype == np.float32


def test_int8_text_works_with_clip(tiny_clip_dir: Path, tiny_clip_encoder: Encoder) -> None:
    quick = Encoder.from_pretrained(tiny_clip_dir, device="cpu", quantize_text=True)
    cosines = _row_cosines(quick.encode_texts(TEXTS), tiny_clip_encoder.encode_texts(TEXTS))
    assert cosines.min() >= 0.99, cosines


def test_int8_text_is_cpu_only(tiny_encoder: Encoder) -> None:
    from zeroshot_vision._models import _quantized_text_parts

    with pytest.raises(InvalidInputError, match="CPU only"):
        _quantized_text_parts(tiny_encoder._model, torch.device("cuda"))


def test_int8_text_is_quantized_from_the_loaded_weights_not_bfloat16(
    tiny_model_dir: Path, tiny_encoder: Encoder
) -> None:
    fp32 = Encoder.from_pretrained(tiny_model_dir, dtype="float32", quantize_text=True)
    bf16 = Encoder.from_pretrained(tiny_model_dir, dtype="bfloat16", quantize_text=True)
    assert bf16.dtype == torch.bfloat16  # the image tower's precision
    # The same int8 text side whatever the image tower's dtype.
    np.testing.assert_allclose(bf16.encode_texts(TEXTS), fp32.encode_texts(TEXTS), atol=1e-6)


def test_a_texts_vector_does_not_depend_on_its_batch(tiny_encoder: Encoder) -> None:
    # Kernels round differently by row count: a text embedded alone and beside others
    # differed in the last bits, and through the cache one request's batch decided another's
    # scores (zsv search --server after zsv classify). Every pass has the same shape now.
    encoder = Encoder(
        tiny_encoder._model, tiny_encoder._processor, model_name="tiny", text_cache_size=0
    )
    alone = encoder.encode_texts(["a rocket"])[0]
    others = [f"word {i}" for i in range(19)]
    for batch in (["a cat", "a rocket"], ["a rocket", "a cat", "a dog"], [*others, "a rocket"]):
        np.testing.assert_array_equal(encoder.encode_texts(batch)[batch.index("a rocket")], alone)


@pytest.mark.parametrize("route", ["onnx int8", "torch int8 text"])
def test_an_int8_text_tower_embeds_each_text_in_a_pass_of_its_own(
    tiny_model_dir: Path, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dynamic quantization scales a whole pass by its largest activation: beside other
    # rows, a text was rounded differently (up to 0.006 and 0.015 here) than alone.
    if route == "onnx int8":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        encoder = Encoder.from_pretrained(
            tiny_model_dir, backend="onnx", precision="int8", text_cache_size=0
        )
    else:
        encoder = Encoder.from_pretrained(
            tiny_model_dir, dtype="float32", quantize_text=True, text_cache_size=0
        )
    texts = ["a rocket", "An astronaut in a white space suit floating above the earth", "x"]
    alone = np.stack([encoder.encode_texts([text])[0] for text in texts])
    np.testing.assert_array_equal(encoder.encode_texts(texts), alone)
    np.testing.assert_array_equal(encoder.encode_texts(texts[::-1])[::-1], alone)
    passes: list[int] = []
    model = encoder._model
    original = model.get_text_features

    def counted(*args: object, **kwargs: object) -> object:
        passes.append(int(kwargs["input_ids"].shape[0]))  # type: ignore[attr-defined]
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "get_text_features", counted)
    encoder.encode_texts(["a cat on a sofa"])
    assert passes == [QUANTIZED_TEXT_PASS_ROWS] == [1]  # a lone query: no filler row
