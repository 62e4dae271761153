"""The ONNX Runtime backend: parity with torch, the int8 quality guard, the export cache.

Speed is measured in benchmarks/bench_onnx.py, never asserted here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from zeroshot_vision import Encoder
from zeroshot_vision._backends import onnx as onnx_backend
from zeroshot_vision._errors import (
    ExportError,
    InvalidInputError,
    MissingDependencyError,
)

TEXTS = [
    "a photo of a cat",
    "An astronaut in a white space suit",
    "a cup of coffee on a table",
    "a rocket launching into the sky",
    "a red car parked on a quiet street",
    "zero shot image search with sigmoid loss",
]


def _centered(a: np.ndarray, reference: np.ndarray) -> np.ndarray:
    mean = reference.mean(axis=0, keepdims=True)
    a, reference = a - mean, reference - mean
    return np.sum(a * reference, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(reference, axis=1)
    )


def _top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    return [set(np.argsort(-(vectors @ q))[:k].tolist()) for q in queries]


@pytest.fixture(scope="module")
def onnx_fp32(tiny_model_dir: Path) -> Encoder:
    return Encoder.from_pretrained(tiny_model_dir, backend="onnx")


@pytest.fixture(scope="module")
def onnx_int8(tiny_model_dir: Path) -> Encoder:
    return Encoder.from_pretrained(tiny_model_dir, backend="onnx", precision="int8")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "onnx-cache"
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(folder))
    return folder


# -- parity with the torch reference ----------------------------------------------------


def test_float32_matches_torch_on_real_photos_and_texts(
    onnx_fp32: Encoder, tiny_encoder: Encoder, photo_paths: list[Path]
) -> None:
    assert (onnx_fp32.backend, onnx_fp32.precision) == ("onnx", "float32")
    assert str(onnx_fp32.route) == "onnx/float32" and str(tiny_encoder.route) == "torch/float32"
    images = onnx_fp32.encode_images(photo_paths)
    np.testing.assert_allclose(images, tiny_encoder.encode_images(photo_paths), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    texts = onnx_fp32.encode_texts(TEXTS)
    np.testing.assert_allclose(texts, tiny_encoder.encode_texts(TEXTS), atol=2e-5)
    assert images.dtype == texts.dtype == np.float32


def test_public_behaviour_is_the_encoders_own(onnx_fp32: Encoder, tiny_encoder: Encoder) -> None:
    # Same logit parameters, so the same calibrated probabilities.
    assert onnx_fp32.logit_scale == pytest.approx(tiny_encoder.logit_scale)
    assert onnx_fp32.logit_bias == pytest.approx(tiny_encoder.logit_bias)
    assert onnx_fp32.calibrated and onnx_fp32.dim == tiny_encoder.dim
    cosines = np.array([-0.2, 0.0, 0.3])
    np.testing.assert_allclose(onnx_fp32.probability(cosines), tiny_encoder.probability(cosines))
    # SigLIP's text rules: 64 tokens, no mask, lower-cased and stripped.
    tokens = onnx_fp32.tokenize(["a photo of a cat"])
    assert set(tokens) == {"input_ids"} and tokens["input_ids"].shape == (1, 64)
    loud, quiet = onnx_fp32.encode_texts(["  A PHOTO of a Cat ", "a photo of a cat"])
    np.testing.assert_allclose(loud, quiet, atol=1e-6)
    with pytest.raises(InvalidInputError):
        onnx_fp32.encode_texts([" "])


def test_classify_agrees_with_torch(
    onnx_fp32: Encoder, tiny_encoder: Encoder, photo_paths: list[Path]
) -> None:
    labels = ["a cat", "a rocket", "coffee"]
    ours = onnx_fp32.classify(photo_paths[0], labels)
    reference = tiny_encoder.classify(photo_paths[0], labels)
    assert [s.label for s in ours] == [s.label for s in reference]
    for mine, theirs in zip(ours, reference):
        assert mine.probability == pytest.approx(theirs.probability, abs=1e-5)


def test_clip_matches_torch_with_its_attention_mask(
    tiny_clip_dir: Path, tiny_clip_encoder: Encoder, photo_paths: list[Path], cache: Path
) -> None:
    clip = Encoder.from_pretrained(tiny_clip_dir, backend="onnx")
    assert not clip.calibrated
    assert set(clip.tokenize(["a cat"])) == {"input_ids", "attention_mask"}
    np.testing.assert_allclose(
        clip.encode_texts(TEXTS), tiny_clip_encoder.encode_texts(TEXTS), atol=2e-5
    )
    np.testing.assert_allclose(
        clip.encode_images(photo_paths[:3]),
        tiny_clip_encoder.encode_images(photo_paths[:3]),
        atol=2e-5,
    )


def test_siglip2_matches_torch_with_its_attention_mask(tmp_path: Path, cache: Path) -> None:
    """SigLIP 2's left-padded Gemma text needs its mask in the ONNX graph too."""
    from zeroshot_vision.testing import build_tiny_siglip2_fixres

    folder = build_tiny_siglip2_fixres(tmp_path / "siglip2")
    texts = ["A Photo of a Cat", "東京の夜景", "قطة على الشاطئ", "फूल", "🐱"]
    torch_route = Encoder.from_pretrained(folder, device="cpu", dtype="float32")
    onnx_route = Encoder.from_pretrained(folder, backend="onnx")
    assert set(onnx_route.tokenize(["a cat"])) == {"input_ids", "attention_mask"}
    np.testing.assert_allclose(
        onnx_route.encode_texts(texts), torch_route.encode_texts(texts), atol=2e-5
    )


# -- the int8 quality guard -------------------------------------------------------------


def test_int8_keeps_the_ranking_on_real_photos(
    onnx_int8: Encoder,
    tiny_encoder: Encoder,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> None:
    photos = photo_paths + extra_photo_paths
    reference = tiny_encoder.encode_images(photos)
    images = onnx_int8.encode_images(photos)
    raw = np.sum(images * reference, axis=1)
    assert raw.min() >= 0.995, raw
    assert _centered(images, reference).min() >= 0.9, _centered(images, reference)
    queries = tiny_encoder.encode_texts(TEXTS)
    k = 3
    overlap = np.mean(
        [len(a & b) / k for a, b in zip(_top_k(reference, queries, k), _top_k(images, queries, k))]
    )
    assert overlap >= 0.9
    texts = onnx_int8.encode_texts(TEXTS)
    assert np.sum(texts * queries, axis=1).min() >= 0.995


# -- the export cache -------------------------------------------------------------------


def _export_folder(cache: Path) -> Path:
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    return folder


def test_a_cached_export_loads_without_torch_weights_or_exporter(
    tiny_model_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Encoder.from_pretrained(tiny_model_dir, backend="onnx", precision="int8")
    folder = _export_folder(cache)
    manifest = json.loads((folder / "export.json").read_text())
    assert set(manifest["files"]) == {
        "vision.onnx",
        "text.onnx",
        "vision-int8.onnx",
        "text-int8.onnx",
    }
    assert manifest["versions"]["onnxruntime"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(onnx_backend, "_export", refuse)
    monkeypatch.setattr("zeroshot_vision._models.load_model", refuse)
    again = Encoder.from_pretrained(tiny_model_dir, backend="onnx", precision="int8")
    np.testing.assert_array_equal(again.encode_texts(TEXTS), first.encode_texts(TEXTS))


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "unsampled"])
def test_a_damaged_export_is_detected_and_rebuilt(
    tiny_model_dir: Path, tiny_encoder: Encoder, cache: Path, damage: str
) -> None:
    Encoder.from_pretrained(tiny_model_dir, backend="onnx")
    folder = _export_folder(cache)
    vision = folder / "vision.onnx"
    if damage == "truncate":
        vision.write_bytes(vision.read_bytes()[:1000])
    elif damage == "flip":
        data = bytearray(vision.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, different bytes
        vision.write_bytes(bytes(data))
    elif damage == "manifest":
        (folder / "export.json").write_text("{not json")
    else:
        # Damage the size and sampled hash cannot see (in a big file, between the
        # samples): the manifest vouches for it, ONNX Runtime refuses it.
        vision.write_bytes(b"not an onnx graph" * 100)
        manifest = json.loads((folder / "export.json").read_text())
        manifest["files"]["vision.onnx"] = {
            "size": vision.stat().st_size,
            "sha256": onnx_backend._sample_digest(vision),
        }
        (folder / "export.json").write_text(json.dumps(manifest))
    rebuilt = Encoder.from_pretrained(tiny_model_dir, backend="onnx")
    np.testing.assert_allclose(
        rebuilt.encode_texts(TEXTS), tiny_encoder.encode_texts(TEXTS), atol=2e-5
    )
    assert json.loads((folder / "export.json").read_text())["files"]["vision.onnx"]["size"] > 1000


def test_a_stale_export_is_replaced(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns(".zsv-onnx"))
    Encoder.from_pretrained(model, backend="onnx")
    (old,) = [p for p in (model / ".zsv-onnx").iterdir() if p.is_dir()]
    versions = onnx_backend._versions()
    monkeypatch.setattr(onnx_backend, "_versions", lambda: {**versions, "torch": "99.0"})
    Encoder.from_pretrained(model, backend="onnx")
    (new,) = [p for p in (model / ".zsv-onnx").iterdir() if p.is_dir()]
    assert new != old and not old.exists()


def test_the_int8_vision_graph_is_quantized_from_the_fused_graph(
    tiny_model_dir: Path, cache: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    Encoder.from_pretrained(tiny_model_dir, backend="onnx", precision="int8")
    folder = _export_folder(cache)
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["optimizer"] == onnx_backend.GRAPH_OPTIMIZER
    fused = manifest["files"]["vision-int8.onnx"]["fused"]
    assert fused.get("FastGelu", 0) > 0, fused
    graph = onnx.load(str(folder / "vision-int8.onnx"), load_external_data=False).graph
    operators = {node.op_type for node in graph.node}
    assert {"FastGelu", "MatMulInteger"} <= operators, operators
    # The text graph, no faster fused, is quantized as exported; float32 stays unfused.
    assert manifest["files"]["text-int8.onnx"]["fused"] == {}
    plain = onnx.load(str(folder / "vision.onnx"), load_external_data=False).graph
    assert "FastGelu" not in {node.op_type for node in plain.node}


def test_an_export_from_an_older_optimizer_recipe_is_rebuilt(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns(".zsv-onnx"))
    recipe = onnx_backend.GRAPH_OPTIMIZER
    with monkeypatch.context() as before:
        # What a cache from before the optimizer looks like: another recipe in its key,
        # and an int8 vision graph quantized as exported.
        before.setattr(onnx_backend, "GRAPH_OPTIMIZER", "none")
        before.setattr(onnx_backend, "_optimize_for_int8", lambda *args: None)
        Encoder.from_pretrained(model, backend="onnx", precision="int8")
    (old,) = [p for p in (model / ".zsv-onnx").iterdir() if p.is_dir()]
    old_manifest = json.loads((old / "export.json").read_text())
    assert old_manifest["files"]["vision-int8.onnx"]["fused"] == {}
    again = Encoder.from_pretrained(model, backend="onnx", precision="int8")
    (new,) = [p for p in (model / ".zsv-onnx").iterdir() if p.is_dir()]
    assert new != old and not old.exists()
    manifest = json.loads((new / "export.json").read_text())
    assert manifest["optimizer"] == recipe
    assert manifest["files"]["vision-int8.onnx"]["fused"]
    assert again.encode_texts(TEXTS).shape[0] == len(TEXTS)


def test_an_optimizer_failure_quantizes_the_graph_as_exported(
    tiny_model_dir: Path,
    tiny_encoder: Encoder,
    photo_paths: list[Path],
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    optimizer = pytest.importorskip("onnxruntime.transformers.optimizer")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no fusion for this graph")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    with caplog.at_level("WARNING", logger=onnx_backend.__name__):
        encoder = Encoder.from_pretrained(tiny_model_dir, backend="onnx", precision="int8")
    assert "graph optimizer failed" in caplog.text and "no fusion" in caplog.text
    manifest = json.loads((_export_folder(cache) / "export.json").read_text())
    assert manifest["files"]["vision-int8.onnx"]["fused"] == {}
    images = encoder.encode_images(photo_paths)
    assert np.sum(images * tiny_encoder.encode_images(photo_paths), axis=1).min() >= 0.995
    assert not [p for p in _export_folder(cache).iterdir() if p.name.startswith(".")]


_CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from zeroshot_vision import Encoder
e = Encoder.from_pretrained(sys.argv[1], backend="onnx", precision="int8")
print(e.encode_texts(["a photo of a cat"])[0][:4].tolist())
"""


def test_two_processes_exporting_at_once_make_one_export(tiny_model_dir: Path, cache: Path) -> None:
    environment = {**os.environ, onnx_backend.CACHE_ENV: str(cache)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tiny_model_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=240) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    logs = "".join(err for _, err in outputs)
    assert logs.count("to ONNX in") == 1, logs
    assert outputs[0][0] == outputs[1][0]
    folder = _export_folder(cache)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries


# -- what the backend refuses, and how ---------------------------------------------------


def test_naflex_is_refused_naming_the_operator(tmp_path: Path) -> None:
    from zeroshot_vision.testing import build_tiny_siglip2

    folder = build_tiny_siglip2(tmp_path / "naflex")
    with pytest.raises(ExportError, match=r"upsample_bilinear2d.*torch backend"):
        Encoder.from_pretrained(folder, backend="onnx")


def test_an_exporter_failure_names_the_operator_and_the_torch_backend(
    tiny_model_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def unsupported(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "Exporting the operator 'aten::fancy_attention' to ONNX opset version 17 is "
            "not supported."
        )

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ExportError, match=r"aten::fancy_attention.*backend='torch'"):
        Encoder.from_pretrained(tiny_model_dir, backend="onnx")
    assert not any(p.name.endswith(".onnx") for p in cache.rglob("*"))


def test_missing_onnxruntime_names_the_extra(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"zeroshot-vision\[onnx\]"):
        Encoder.from_pretrained(tiny_model_dir, backend="onnx")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "tensorrt"}, "unknown encoder backend"),
        ({"backend": "onnx", "precision": "int4"}, "unknown precision"),
        ({"precision": "int8"}, "precision applies to the onnx backend"),
        ({"backend": "onnx", "dtype": "bfloat16"}, "dtype applies to the torch backend"),
        ({"backend": "onnx", "quantize_text": True}, "precision='int8'"),
    ],
)
def test_options_that_do_not_fit_the_backend_are_refused(
    tiny_model_dir: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Encoder.from_pretrained(tiny_model_dir, **options)  # type: ignore[arg-type]
