"""The image input path: worker processes, the processor's table, the GPU JPEG route.

The CPU path must give the checkpoint's image processor's pixels bit for bit; the device
route (nvJPEG + torch resize) must stay within resampling noise of it. The device route's
own logic is exercised here on the CPU with a Pillow-backed stand-in for torchvision's
``decode_jpeg`` (torchvision is not installable beside this CPU torch); the real nvJPEG
runs in the ``gpu``-marked tests at the end.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.helpers import alive_after

from zeroshot_vision import Encoder, ImageDecodeError, InvalidInputError
from zeroshot_vision._images import load_image
from zeroshot_vision._images.feed import PixelFeed, prepare
from zeroshot_vision._images.jpeg import JpegData, device_jpeg
from zeroshot_vision._images.pixels import (
    PixelSpec,
    apply_orientation,
    resize_on_device,
    resize_with_pil,
)
from zeroshot_vision._images.pool import DecoderPool

HAS_FORK = sys.platform.startswith("linux")  # decoding processes are Linux-only


@pytest.fixture(scope="module")
def spec(tiny_encoder: Encoder) -> PixelSpec:
    assert tiny_encoder._pixel_spec is not None
    return tiny_encoder._pixel_spec


@pytest.fixture(scope="module")
def image_processor(tiny_encoder: Encoder):
    return tiny_encoder._processor.image_processor


def _jpeg(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, format="JPEG", quality=92, **options)
    return path


@pytest.fixture()
def jpegs(tmp_path: Path, photo_paths: list[Path]) -> dict[str, Path]:
    """Real photos as JPEGs: plain, EXIF-rotated (6: a quarter turn), gray, CMYK, cut short."""
    photo = Image.open(photo_paths[0]).convert("RGB").resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    found = {
        "plain": _jpeg(tmp_path / "plain.jpg", photo),
        "rotated": _jpeg(tmp_path / "rotated.jpg", photo, exif=exif.tobytes()),
        "gray": _jpeg(tmp_path / "gray.jpg", photo.convert("L")),
        "cmyk": _jpeg(tmp_path / "cmyk.jpg", photo.convert("CMYK")),
    }
    data = found["plain"].read_bytes()
    found["truncated"] = tmp_path / "truncated.jpg"
    found["truncated"].write_bytes(data[: len(data) // 2])
    return found


# -- the processor's table and the PIL resize ---------------------------------------------


def test_the_cpu_path_gives_the_processors_pixels_bit_for_bit(
    spec: PixelSpec, image_processor, photo_paths, extra_photo_paths
) -> None:
    for path in [*photo_paths, *extra_photo_paths]:
        image = load_image(path)
        reference = image_processor(images=[image], return_tensors="pt")["pixel_values"]
        ours = spec.to_model_input(torch.from_numpy(resize_with_pil(image, spec))[None])
        assert ours.dtype == reference.dtype
        assert torch.equal(ours, reference), path


def test_processors_that_do_more_than_resize_keep_their_own_path(tiny_clip_encoder) -> None:
    # CLIP resizes the short side and crops the centre: no table, the processor runs.
    assert tiny_clip_encoder._pixel_spec is None
    processor = tiny_clip_encoder._processor.image_processor
    assert PixelSpec.from_processor(processor) is None
    assert PixelSpec.from_processor(object()) is None


def test_encoded_vectors_equal_the_processor_path(tiny_encoder: Encoder, photo_paths) -> None:
    # encode_loaded with the table and encode_batches through worker processes give the
    # very vectors of the processor-driven forward pass, batch for batch.
    images = [load_image(p, draft_size=tiny_encoder.draft_size) for p in photo_paths]
    inputs = tiny_encoder._processor.image_processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        output = tiny_encoder._model.get_image_features(**inputs)
    reference = torch.nn.functional.normalize(output.pooler_output, dim=-1).numpy()
    loaded = tiny_encoder.encode_loaded(images)
    streamed = tiny_encoder.encode_images(photo_paths, batch_size=len(photo_paths))
    np.testing.assert_array_equal(loaded, reference)
    np.testing.assert_array_equal(streamed, reference)


# -- workers ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_processes_and_threads_agree_in_input_order(
    tiny_model_dir, tiny_encoder, photo_paths, tmp_path, workers
) -> None:
    encoder = Encoder.from_pretrained(
        tiny_model_dir, device="cpu", dtype="float32", workers=workers, batch_size=3
    )
    assert encoder.workers == workers
    missing = tmp_path / "missing.png"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    sources = [photo_paths[0], missing, *photo_paths[1:], broken, photo_paths[0].read_bytes()]
    keys = [f"k{i}" for i in range(len(sources))]
    batches = list(encoder.encode_batches(iter(sources), keys=iter(keys)))
    assert [len(batch) for batch in batches] == [3, 3, 3, 3][: len(batches)]
    pairs = [pair for batch in batches for pair in batch]
    assert [key for key, _ in pairs] == keys
    errors = {key: v for key, v in pairs if isinstance(v, Exception)}
    assert set(errors) == {"k1", f"k{len(sources) - 2}"}
    assert errors["k1"].source == str(missing) and "not found" in errors["k1"].reason
    good = np.stack([v for _, v in pairs if not isinstance(v, Exception)])
    expected = tiny_encoder.encode_images([photo_paths[0], *photo_paths[1:], photo_paths[0]])
    np.testing.assert_allclose(good, expected, atol=1e-6)


def test_worker_count_is_checked(tiny_model_dir) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInputError, match="workers"):
            Encoder.from_pretrained(tiny_model_dir, device="cpu", workers=bad)
    with pytest.raises(InvalidInputError, match="device_decode needs a CUDA device"):
        Encoder.from_pretrained(tiny_model_dir, device="cpu", device_decode=True)


def test_image_errors_cross_process_boundaries_intact() -> None:
    import pickle

    error = ImageDecodeError("a.jpg", "truncated")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ImageDecodeError
    assert (copy.source, copy.reason, str(copy)) == (error.source, error.reason, str(error))


def _crash_on_poison(source, **options):
    if "poison" in str(source):
        os._exit(3)  # what a decoder segfault looks like to the pool
    return load_image(source, **options)


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes need fork")
def test_a_crashing_decoder_fails_only_its_image(
    tiny_model_dir, photo_paths, tmp_path, monkeypatch, caplog
) -> None:
    # Forked workers inherit the patched function, so one file kills its worker.
    monkeypatch.setattr("zeroshot_vision._images.feed.load_image", _crash_on_poison)
    poison = tmp_path / "poison.png"
    poison.write_bytes(photo_paths[0].read_bytes())
    encoder = Encoder.from_pretrained(
        tiny_model_dir, device="cpu", dtype="float32", workers=2, batch_size=2
    )
    sources = [*photo_paths[:3], poison, *photo_paths[3:]]
    pairs = [pair for batch in encoder.encode_batches(sources) for pair in batch]
    assert [source for source, _ in pairs] == sources
    bad = [(s, v) for s, v in pairs if isinstance(v, Exception)]
    assert len(bad) == 1 and bad[0][0] == poison
    assert isinstance(bad[0][1], ImageDecodeError) and "crashed" in bad[0][1].reason
    assert "decoding process died" in caplog.text


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes need fork")
def test_a_worker_that_died_while_idle_is_replaced_at_the_next_use(caplog) -> None:
    import signal
    import time
    from concurrent.futures.process import BrokenProcessPool

    before = {child.pid for child in multiprocessing.active_children()}
    pool = DecoderPool(2)
    try:
        assert pool.executor().submit(int, "7").result() == 7
        workers = [c for c in multiprocessing.active_children() if c.pid not in before]
        assert len(workers) == 2
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].join(timeout=10)
        deadline = time.monotonic() + 10
        while True:
            # A job sent before the executor noticed the death fails with it; the next
            # use replaces the processes.
            try:
                assert pool.executor().submit(int, "8").result(timeout=30) == 8
                break
            except BrokenProcessPool:
                if time.monotonic() > deadline:
                    raise
        assert "decoding process died" in caplog.text
        assert pool.executor().submit(int, "9").result(timeout=30) == 9
    finally:
        pool.close()


def _worker_pids(encoder: Encoder) -> set[int]:
    pool = encoder._decoders._pool
    return set() if pool is None else {p.pid for p in pool._processes.values()}


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes are Linux-only")
def test_the_workers_live_as_long_as_their_encoder(tiny_model_dir, photo_paths) -> None:
    encoder = Encoder.from_pretrained(
        tiny_model_dir, device="cpu", dtype="float32", workers=2, batch_size=1
    )
    assert not _worker_pids(encoder)  # started at first use
    batches = encoder.encode_batches(photo_paths * 4)
    next(batches)
    batches.close()  # stopping early stops the feeder...
    assert not [t for t in threading.enumerate() if t.name == "zsv-feed"]
    pids = _worker_pids(encoder)
    assert len(pids) == 2
    encoder.encode_images(photo_paths, batch_size=2)
    assert _worker_pids(encoder) == pids  # ...and the next call reuses the processes
    del encoder, batches
    gc.collect()
    assert not {child.pid for child in multiprocessing.active_children()} & pids


@pytest.mark.skipif(not HAS_FORK, reason="decoding processes are Linux-only")
def test_workers_of_a_killed_process_exit(tiny_model_dir, photo_paths) -> None:
    script = f"""
import sys, time
from zeroshot_vision import Encoder
encoder = Encoder.from_pretrained({str(tiny_model_dir)!r}, device="cpu", workers=2, batch_size=1)
encoder.encode_images({[str(p) for p in photo_paths]!r})
print(*(p.pid for p in encoder._decoders._pool._processes.values()), flush=True)
time.sleep(120)
"""
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            pids = [int(pid) for pid in process.stdout.readline().split()]
            assert len(pids) == 2
        finally:
            process.kill()  # SIGKILL: nothing of the parent's runs any more
        process.wait(timeout=30)
    assert not alive_after(set(pids))


def test_a_bad_image_stops_encode_images_at_once(tiny_encoder, photo_paths, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageDecodeError) as info:
        tiny_encoder.encode_images([*photo_paths, bad, *photo_paths * 5], batch_size=2)
    assert info.value.source == str(bad)
    assert not [t for t in threading.enumerate() if t.name == "zsv-feed"]


def test_an_error_in_the_callers_iterable_reaches_the_caller(tiny_encoder, photo_paths) -> None:
    def sources():
        yield from photo_paths[:3]
        raise RuntimeError("the listing broke")

    with pytest.raises(RuntimeError, match="the listing broke"):
        tiny_encoder.encode_images(sources(), batch_size=2)
    assert not [t for t in threading.enumerate() if t.name == "zsv-feed"]


# -- the device route, its checks and its arithmetic ----------------------------------------


def test_jpegs_the_device_may_decode(jpegs, tmp_path) -> None:
    plain = device_jpeg(jpegs["plain"], None)
    assert isinstance(plain, JpegData) and plain.orientation == 1
    assert device_jpeg(jpegs["rotated"], None).orientation == 6
    assert device_jpeg(jpegs["gray"], None) is not None
    assert device_jpeg(jpegs["plain"].read_bytes(), None) is not None
    assert device_jpeg(jpegs["plain"], 100) is None  # over the pixel limit
    for kept_on_cpu in ("cmyk", "truncated"):
        assert device_jpeg(jpegs[kept_on_cpu], None) is None, kept_on_cpu
    huge = tmp_path / "huge.jpg"  # a small JPEG header, then a gigabyte of nothing
    with huge.open("wb") as handle:
        handle.write(jpegs["plain"].read_bytes())
        handle.truncate(1 << 30)
    assert device_jpeg(huge, None) is None
    assert device_jpeg(b"\x89PNG\r\n\x1a\n", None) is None
    # and in a worker: the checked bytes come back, or the CPU path's pixels or error
    spec = PixelSpec(height=8, width=8, resample=3, table=np.zeros((3, 256), np.float32))
    assert isinstance(prepare(jpegs["plain"], spec, jpeg_for_device=True), JpegData)
    assert prepare(jpegs["cmyk"], spec, jpeg_for_device=True).shape == (8, 8, 3)
    assert isinstance(prepare(jpegs["truncated"], spec, jpeg_for_device=True), ImageDecodeError)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_on_tensors_matches_pillow(orientation, photo_paths, tmp_path) -> None:
    photo = Image.open(photo_paths[1]).convert("RGB").resize((40, 24))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    photo.save(path, exif=exif.tobytes())
    upright = np.asarray(load_image(path))
    pixels = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
    ours = apply_orientation(pixels, orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, upright)


def test_device_resize_is_within_rounding_of_pillow(spec, photo_paths) -> None:
    for path in photo_paths:
        image = load_image(path)
        pillow = resize_with_pil(image, spec).astype(int)
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        ours = resize_on_device(pixels, spec).numpy().astype(int)
        difference = np.abs(ours - pillow)
        assert difference.mean() < 0.2 and np.percentile(difference, 99) <= 1, path


def _pillow_decode_jpeg(data, mode=None, device="cpu"):
    """torchvision.io.decode_jpeg's contract, with Pillow: CHW uint8, EXIF not applied."""
    if isinstance(data, list):
        if any(b"refuse-me" in bytes(d.numpy()) for d in data):
            raise RuntimeError("batch decode failed")
        return [_pillow_decode_jpeg(d, mode, device) for d in data]
    raw = bytes(data.numpy())
    if b"refuse-me" in raw:
        raise RuntimeError("nvjpeg cannot decode this")
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).to(device)


@pytest.fixture()
def stand_in_decoder(monkeypatch) -> list[int]:
    """torchvision.io with a Pillow decode_jpeg; returns a list counting decoded images."""
    calls: list[int] = []

    def decode_jpeg(data, mode=None, device="cpu"):
        calls.append(len(data) if isinstance(data, list) else 1)
        return _pillow_decode_jpeg(data, mode, device)

    io_module = types.ModuleType("torchvision.io")
    io_module.decode_jpeg = decode_jpeg  # type: ignore[attr-defined]
    io_module.ImageReadMode = types.SimpleNamespace(RGB="RGB")  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.io = io_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.io", io_module)
    return calls


def test_the_device_route_with_a_stand_in_decoder(
    stand_in_decoder, spec, image_processor, jpegs, photo_paths, tmp_path
) -> None:
    refused = tmp_path / "refused.jpg"  # decodable by Pillow, "refused" by the stand-in
    refused.write_bytes(jpegs["plain"].read_bytes().replace(b"\xff\xd9", b"refuse-me\xff\xd9"))
    sources = [
        jpegs["plain"], jpegs["rotated"], photo_paths[0], jpegs["cmyk"], jpegs["gray"],
        jpegs["truncated"], refused, jpegs["plain"].read_bytes(),
    ]  # fmt: skip
    feed = PixelFeed(
        sources,
        None,
        spec=spec,
        batch_size=len(sources),
        device=torch.device("cpu"),
        table=spec.device_table(torch.device("cpu"), torch.float32),
        pool=DecoderPool(2),
        device_decode=True,
    )
    with feed:
        (batch,) = list(feed)
    assert stand_in_decoder[0] == 5  # plain, rotated, gray, refused, bytes: one batch call
    assert [e is None for e in batch.errors] == [True] * 5 + [False] + [True] * 2
    assert isinstance(batch.errors[5], ImageDecodeError)
    good = [s for s, e in zip(sources, batch.errors) if e is None]
    reference = image_processor(images=[load_image(s) for s in good], return_tensors="pt")
    ours = batch.pixels
    assert ours.shape == reference["pixel_values"].shape
    # JPEGs decoded at full size and resized with torch: within rounding of the processor
    for row, expected in zip(ours, reference["pixel_values"]):
        assert (row - expected).abs().mean() < 0.01
    # the PNG (CPU path) and the CMYK JPEG (Pillow for both) are exact
    for row in (2, 3):
        assert torch.equal(ours[row], reference["pixel_values"][row])


# -- compilation --------------------------------------------------------------------------


@pytest.mark.slow  # 12-30 s: torch.compile
def test_compiled_encoder_pads_batches_and_agrees(tiny_model_dir, tiny_encoder, photo_paths):
    # torch.compile on the CPU (inductor, C++): about 20 s for the tiny model here.
    compiled = Encoder.from_pretrained(
        tiny_model_dir, device="cpu", dtype="float32", compile=True, batch_size=4
    )
    assert compiled.compiled
    five = [*photo_paths[:4], photo_paths[0]]  # a full batch, then one padded to four
    np.testing.assert_allclose(
        compiled.encode_images(five), tiny_encoder.encode_images(five), atol=1e-5
    )
    assert compiled.encode_loaded([load_image(photo_paths[1])]).shape == (1, 32)


# -- on a GPU -----------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_input_path_agrees_with_the_reference_processor(
    tiny_model_dir, photo_paths, extra_photo_paths, jpegs
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from zeroshot_vision._images.jpeg import device_decode_available

    if not device_decode_available(torch.device("cuda")):
        pytest.skip("needs torchvision with nvJPEG")
    gpu = Encoder.from_pretrained(tiny_model_dir, dtype="float32")
    assert gpu.device_decode
    cpu_route = Encoder.from_pretrained(tiny_model_dir, dtype="float32", device_decode=False)
    sources = [*photo_paths, *extra_photo_paths, jpegs["plain"], jpegs["rotated"], jpegs["gray"]]
    processor = gpu._processor.image_processor
    inputs = processor(images=[load_image(s) for s in sources], return_tensors="pt")
    with torch.inference_mode():
        output = gpu._model.get_image_features(pixel_values=inputs["pixel_values"].cuda())
    reference = torch.nn.functional.normalize(output.pooler_output.float(), dim=-1).cpu().numpy()
    for encoder in (gpu, cpu_route):
        vectors = encoder.encode_images(sources, batch_size=4)
        cosines = np.sum(vectors * reference, axis=1)
        assert cosines.min() >= 0.999, (encoder.device_decode, cosines)
