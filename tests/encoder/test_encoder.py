"""Encoder: parity with the reference transformers pipeline, and its error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tests.helpers import TINY_LOGIT_BIAS, TINY_LOGIT_SCALE
from transformers import AutoModel, AutoProcessor

from zeroshot_vision import Encoder, ImageLoadError, InvalidInputError, ModelLoadError
from zeroshot_vision._encoder import TEXT_LENGTH
from zeroshot_vision._scoring import sigmoid

TEXTS = ["a photo of a cat", "An ASTRONAUT in a white space suit", "  coffee  ", "a dog"]


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    """The reference pipeline: processor + get_*_features + L2 normalize."""
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)

    def pooled(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def texts(items):
        inputs = processor(
            text=[t.strip().lower() for t in items],
            padding="max_length",
            max_length=64,
            truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            f = pooled(model.get_text_features(input_ids=inputs["input_ids"]))
        return torch.nn.functional.normalize(f, dim=-1).numpy()

    def images(items):
        inputs = processor(images=items, return_tensors="pt")
        with torch.no_grad():
            f = pooled(model.get_image_features(**inputs))
        return torch.nn.functional.normalize(f, dim=-1).numpy()

    return texts, images


def test_loads_through_from_pretrained(tiny_encoder, tiny_model_dir) -> None:
    assert tiny_encoder.dim == 32
    assert tiny_encoder.model_name == str(tiny_model_dir)
    assert str(tiny_encoder.device) == "cpu"
    assert tiny_encoder.dtype == torch.float32
    assert tiny_encoder.logit_scale == pytest.approx(TINY_LOGIT_SCALE)
    assert tiny_encoder.logit_bias == pytest.approx(TINY_LOGIT_BIAS)
    assert "dim=32" in repr(tiny_encoder)


def test_text_parity_with_reference(tiny_encoder, reference) -> None:
    ours = tiny_encoder.encode_texts(TEXTS)
    theirs = reference[0](TEXTS)
    assert ours.shape == (4, 32) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_is_padded_to_64_tokens_without_mask(tiny_encoder) -> None:
    tokens = tiny_encoder.tokenize(["a cat", "a much longer sentence about a dog " * 20])
    assert set(tokens) == {"input_ids"}
    assert tokens["input_ids"].shape == (2, TEXT_LENGTH)


def test_text_is_lower_cased_and_stripped(tiny_encoder) -> None:
    a, b = tiny_encoder.encode_texts(["A Photo of a DOG", "  a photo of a dog \n"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_padding_matters(tiny_encoder, tiny_model_dir) -> None:
    """Padding to the longest text instead of 64 changes the embedding (why we pin it)."""
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    short = processor(text=["a cat"], padding="longest", return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(input_ids=short["input_ids"])
    f = out if isinstance(out, torch.Tensor) else out.pooler_output
    wrong = torch.nn.functional.normalize(f, dim=-1).numpy()[0]
    right = tiny_encoder.encode_texts(["a cat"])[0]
    assert np.abs(wrong - right).max() > 1e-3


def test_text_batching_does_not_change_results(tiny_encoder) -> None:
    whole = tiny_encoder.encode_texts(TEXTS)
    tiny_encoder.clear_text_cache()  # so the second call runs the model again
    one_by_one = tiny_encoder.encode_texts(iter(TEXTS), batch_size=1)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)


@pytest.mark.parametrize("bad", [[""], ["   "], ["ok", "\n\t"], [None], [3]])
def test_empty_or_non_string_text_rejected(tiny_encoder, bad) -> None:
    with pytest.raises(InvalidInputError):
        tiny_encoder.encode_texts(bad)


def test_single_string_and_empty_list(tiny_encoder) -> None:
    assert tiny_encoder.encode_texts("a cat").shape == (1, 32)
    assert tiny_encoder.encode_texts([]).shape == (0, 32)
    assert tiny_encoder.encode_images([]).shape == (0, 32)


def test_image_parity_with_reference(tiny_encoder, reference, photo_paths) -> None:
    pngs = [p for p in photo_paths if p.suffix == ".png"]
    ours = tiny_encoder.encode_images(pngs)
    theirs = reference[1]([Image.open(p).convert("RGB") for p in pngs])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_jpeg_parity_within_resampling_noise(tiny_encoder, reference, photo_paths) -> None:
    # JPEGs decode at a reduced scale (still twice the model's input), so pixels differ
    # by resampling noise only.
    jpegs = [p for p in photo_paths if p.suffix == ".jpg"]
    ours = tiny_encoder.encode_images(jpegs)
    theirs = reference[1]([Image.open(p).convert("RGB") for p in jpegs])
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() > 0.99, cosines


def test_image_sources_and_batching(tiny_encoder, photo_paths) -> None:
    path = photo_paths[0]
    from_path = tiny_encoder.encode_images([path])
    from_bytes = tiny_encoder.encode_images([path.read_bytes()])
    from_pil = tiny_encoder.encode_images([Image.open(path)])
    np.testing.assert_allclose(from_path, from_bytes, atol=1e-6)
    np.testing.assert_allclose(from_path, from_pil, atol=1e-6)
    batched = tiny_encoder.encode_images(iter(photo_paths), batch_size=4)
    single = tiny_encoder.encode_images(photo_paths, batch_size=1)
    assert batched.shape == (len(photo_paths), 32)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_bad_image_raises(tiny_encoder, tmp_path, photo_paths) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageLoadError) as info:
        tiny_encoder.encode_images([photo_paths[0], bad])
    assert info.value.source == str(bad)


def test_probability_is_calibrated_sigmoid(tiny_encoder) -> None:
    cos = np.array([-0.5, 0.0, 0.3, 1.0])
    expected = 1 / (1 + np.exp(-(np.exp(TINY_LOGIT_SCALE) * cos + TINY_LOGIT_BIAS)))
    np.testing.assert_allclose(tiny_encoder.probability(cos), expected, rtol=1e-12)
    assert isinstance(tiny_encoder.probability(0.3), float)
    assert tiny_encoder.probability(0.3) == pytest.approx(expected[2])


def test_sigmoid_is_stable_at_extremes() -> None:
    values = sigmoid(np.array([-1e6, 0.0, 1e6]))
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])


def test_dtype_option(tiny_model_dir, tiny_encoder, photo_paths) -> None:
    half = Encoder.from_pretrained(tiny_model_dir, device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    vectors = half.encode_images(photo_paths[:2])
    assert vectors.dtype == np.float32
    assert np.sum(vectors * tiny_encoder.encode_images(photo_paths[:2]), axis=1).min() > 0.98
    with pytest.raises(ValueError, match="unknown dtype"):
        Encoder.from_pretrained(tiny_model_dir, dtype="float7")


def test_missing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Encoder.from_pretrained(tmp_path / "no-such-model")


def test_folder_without_model(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json is missing"):
        Encoder.from_pretrained(tmp_path)


def test_file_instead_of_folder(tmp_path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        Encoder.from_pretrained(f)


def test_unreachable_hub_id_says_how_to_use_a_local_folder() -> None:
    # conftest sets HF_HUB_OFFLINE=1: exactly what a machine without network sees.
    with pytest.raises(ModelLoadError) as info:
        Encoder.from_pretrained("google/siglip-so400m-patch14-384")
    message = str(info.value)
    assert "google/siglip-so400m-patch14-384" in message
    assert "local" in message and "ZSV_MODEL" in message
    assert "Traceback" not in message
    assert isinstance(info.value, OSError)


def test_damaged_weights(tiny_model_dir, tmp_path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Encoder.from_pretrained(broken)


@pytest.mark.slow
def test_cached_hub_checkpoint_loads_without_any_request(tiny_model_dir, tmp_path) -> None:
    """A checkpoint in the Hugging Face cache loads with zero requests to the hub."""
    import http.server
    import os
    import shutil
    import subprocess
    import sys
    import threading

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    requests: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_error(500)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        HF_HUB_CACHE=str(tmp_path / "hub"), HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}"
    )
    code = "from zeroshot_vision import Encoder; print(Encoder.from_pretrained('acme/tiny').dim)"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "32"
    assert requests == []


def test_loading_a_local_checkpoint_draws_no_progress_bar(tiny_model_dir, capfd) -> None:
    import transformers.utils.logging as hf_logging

    Encoder.from_pretrained(tiny_model_dir)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for the caller


@pytest.mark.gpu
def test_gpu_defaults_and_parity(tiny_model_dir, tiny_encoder, photo_paths) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gpu = Encoder.from_pretrained(tiny_model_dir)  # device=None must pick cuda
    assert gpu.device.type == "cuda"
    assert gpu.dtype in (torch.bfloat16, torch.float16)
    assert gpu.batch_size == 32
    on_gpu = gpu.encode_images(photo_paths)
    assert on_gpu.dtype == np.float32  # tensors never leave the encoder
    cosines = np.sum(on_gpu * tiny_encoder.encode_images(photo_paths), axis=1)
    assert cosines.min() > 0.98
    texts = gpu.encode_texts(TEXTS)
    assert np.sum(texts * tiny_encoder.encode_texts(TEXTS), axis=1).min() > 0.98


def test_device_choice_on_this_machine(tiny_encoder) -> None:
    from zeroshot_vision._models import cpu_has_native_bf16, pick_device, pick_dtype

    expected = "cuda" if torch.cuda.is_available() else tiny_encoder.device.type
    assert pick_device(None).type in (expected, "mps", "cpu")
    assert pick_device("cpu").type == "cpu"
    cpu_default = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert pick_dtype(torch.device("cpu"), None) == cpu_default
    assert pick_dtype(torch.device("cpu"), "float32") == torch.float32
    assert pick_dtype(torch.device("cpu"), "torch.bfloat16") == torch.bfloat16


def test_unresolvable_hub_fails_at_once_with_a_clear_message(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_HUB_CACHE=str(tmp_path), HF_ENDPOINT="https://no-such-host.invalid")
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        env.pop(proxy, None)
    code = (
        "from zeroshot_vision import Encoder, ModelLoadError\n"
        "try:\n    Encoder.from_pretrained('acme/missing')\n"
        "except ModelLoadError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no-such-host.invalid does not resolve" in out.stdout
    assert "ZSV_MODEL" in out.stdout
    assert "Retrying" not in out.stderr  # no hub retry loop was entered


def test_hub_probe_defers_to_a_proxy(monkeypatch) -> None:
    from zeroshot_vision._models import _hub_unreachable

    monkeypatch.setenv("HF_ENDPOINT", "https://no-such-host.invalid")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert _hub_unreachable() is None
    monkeypatch.delenv("HTTPS_PROXY")
    for proxy in ("https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    assert "does not resolve" in (_hub_unreachable() or "")
