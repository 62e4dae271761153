"""The whole GPU comparison in one go, for a lent card: about 2-3 minutes, JSON out.

    python benchmarks/gpu_bench.py [--images 1024] [--out benchmarks/results/gpu.json]

On one CUDA device, with a random so400m/14@384 SigLIP (same compute as the real
checkpoint; built on the card in seconds and saved in bfloat16), in this order:

1. model alone: ``get_image_features`` in bfloat16 on pixel tensors already on the card,
   batch --model-batch (128): the ceiling nothing above the model can beat;
2. the naive transformers loop: open + processor + model, batches of --naive-batch (64),
   sequential (the baseline);
3. ``Encoder.from_pretrained(folder)`` (device and dtype picked by the library) and
   ``encode_images`` on the JPEG files, batch --encoder-batch (default: the encoder's);
4. one text query through ``Encoder.encode_texts``, distinct texts (median).

JPEGs are 1600x1200, quality 90, made from scikit-image's photos by a process pool.
Every image rate is also given as a ratio to the naive loop and as a share of the model
alone. Fails at once, saying so, when CUDA is missing.

The lent machine has no network and lacks some dependencies of ``import zeroshot_vision``
(pydantic, filelock; see docs/benchmarks.md for the wheels to carry).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report

JPEG_SIZE = (1600, 1200)


WHEELS = "pydantic pydantic-core annotated-types typing-inspection filelock orjson"
"""What ``import zeroshot_vision`` needs beyond the lent machine's own packages."""


class SetupError(RuntimeError):
    """The machine cannot run the comparison (``main`` exits with status 2, saying why)."""


class NoCudaError(SetupError):
    """No CUDA device is visible."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=_positive, default=1024, help="JPEG files to encode")
    parser.add_argument("--model-batch", type=_positive, default=128)
    parser.add_argument("--model-batches", type=_positive, default=8, help="timed batches")
    parser.add_argument("--naive-batch", type=_positive, default=64)
    parser.add_argument("--encoder-batch", type=_positive, default=None)
    parser.add_argument("--text-queries", type=_positive, default=20)
    parser.add_argument("--workers", type=_positive, default=os.cpu_count() or 1)
    parser.add_argument("--preset", default="so400m", help="a zeroshot_vision.testing preset")
    parser.add_argument(
        "--out", type=Path, default=_report.RESULTS / "gpu.json", help="JSON file to write"
    )
    parser.add_argument(
        "--device",
        default="cuda",
        help="cuda (the benchmark); cpu with --preset tiny only smoke-tests this script",
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def require_cuda(device: str = "cuda") -> Any:
    """torch, once a CUDA device is known to be there; else a clear exit."""
    try:
        import torch
    except ImportError as exc:
        raise NoCudaError(f"gpu_bench.py needs torch with CUDA: {exc}") from exc
    if device != "cpu" and not torch.cuda.is_available():
        raise NoCudaError(
            "gpu_bench.py needs a CUDA GPU and none is visible "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
            "for CPU numbers run benchmarks/bench_encoder.py"
        )
    return torch


def _one_jpeg(job: tuple[int, int, str, str]) -> None:
    """Write one distinct JPEG: the ``variant``-th version (crop, mirror) of ``source``."""
    variant, _, source, target = job
    from PIL import Image, ImageOps

    image = Image.open(source).convert("RGB")
    shift = variant % 40  # 80 distinct versions of each photo, then repeats
    image = image.crop((shift, shift, image.width - shift, image.height - shift))
    if (variant // 40) % 2:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.resize(JPEG_SIZE).save(buffer, format="JPEG", quality=90)
    Path(target).write_bytes(buffer.getvalue())


def make_jpegs(folder: Path, count: int, workers: int) -> list[Path]:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    # Some of scikit-image's photos are fetched on demand; use those that shipped.
    sources = [str(data / n) for n in names if (data / n).is_file()]
    if not sources:
        raise SetupError(f"no sample photos in {data}; install scikit-image with its data")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo{i:05d}.jpg" for i in range(count)]
    jobs = [(i // len(sources), i, sources[i % len(sources)], str(p)) for i, p in enumerate(paths)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_one_jpeg, jobs, chunksize=16))
    return paths


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def _sync(torch: Any, device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def model_alone(
    torch: Any, model: Any, side: int, batch: int, batches: int, device: str = "cuda"
) -> float:
    """Images/s of ``get_image_features`` on bfloat16 tensors already on the card."""
    pixels = torch.randn(batch, 3, side, side, device=device, dtype=torch.bfloat16)
    with torch.inference_mode():
        for _ in range(2):
            model.get_image_features(pixel_values=pixels)
        _sync(torch, device)
        start = time.perf_counter()
        for _ in range(batches):
            model.get_image_features(pixel_values=pixels)
        _sync(torch, device)
    return _rate(batch * batches, time.perf_counter() - start)


def naive_loop(
    torch: Any, model: Any, processor: Any, paths: list[Path], batch: int, device: str = "cuda"
) -> float:
    """Images/s of open + processor + model, sequential, as the transformers docs show."""
    from PIL import Image

    def run(chunk: list[Path]) -> None:
        images = [Image.open(p).convert("RGB") for p in chunk]
        inputs = processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device, dtype=torch.bfloat16)
        with torch.inference_mode():
            out = model.get_image_features(pixel_values=pixels)
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
        features.float().cpu()

    run(paths[:batch])  # warm-up
    _sync(torch, device)
    start = time.perf_counter()
    for first in range(0, len(paths), batch):
        run(paths[first : first + batch])
    _sync(torch, device)
    return _rate(len(paths), time.perf_counter() - start)


def run(args: argparse.Namespace) -> Path:
    device = args.device
    torch = require_cuda(device)
    import transformers

    try:
        from zeroshot_vision import Encoder
        from zeroshot_vision.testing import build_random_siglip
    except ImportError as exc:
        raise SetupError(
            f"cannot import zeroshot_vision ({exc}); on a machine without network, carry "
            f"wheels: pip download --no-deps --only-binary=:all: --python-version 3.12 "
            f"--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d wheels "
            f"{WHEELS}, then pip install --no-deps --no-index wheels/*.whl there"
        ) from exc

    info = _report.machine()
    print(f"machine: {_report.describe(info)}", flush=True)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        start = time.perf_counter()
        folder = build_random_siglip(
            root / "model", preset=args.preset, device=device, dtype="bfloat16"
        )
        timings["build model s"] = time.perf_counter() - start
        start = time.perf_counter()
        paths = make_jpegs(root / "jpegs", args.images, args.workers)
        timings["make JPEGs s"] = time.perf_counter() - start
        print(f"built the model and {len(paths)} JPEGs", flush=True)

        model = transformers.AutoModel.from_pretrained(folder, dtype=torch.bfloat16)
        model = model.to(device).eval()
        processor = transformers.AutoProcessor.from_pretrained(folder)
        side = int(model.config.vision_config.image_size)
        alone = model_alone(torch, model, side, args.model_batch, args.model_batches, device)
        print(f"model alone: {alone:.1f} images/s", flush=True)
        naive = naive_loop(torch, model, processor, paths, args.naive_batch, device)
        print(f"naive loop: {naive:.1f} images/s", flush=True)
        del model
        if device != "cpu":
            torch.cuda.empty_cache()

        start = time.perf_counter()
        encoder = Encoder.from_pretrained(
            folder, device=None if device == "cuda" else device, batch_size=args.encoder_batch
        )
        timings["Encoder load s"] = time.perf_counter() - start
        encoder.encode_images(paths[: encoder.batch_size])  # warm-up
        _sync(torch, device)
        start = time.perf_counter()
        vectors = encoder.encode_images(paths)
        ours = _rate(len(paths), time.perf_counter() - start)
        assert vectors.shape == (len(paths), encoder.dim)
        print(f"Encoder.encode_images: {ours:.1f} images/s", flush=True)
        latencies = []
        for i in range(args.text_queries):
            start = time.perf_counter()
            encoder.encode_texts([f"a photo of a dog number {i}"])
            latencies.append(1000 * (time.perf_counter() - start))

    rows = [
        [f"model alone, bf16, batch {args.model_batch}, tensors on the card", alone],
        [f"naive loop: open + processor + model, batch {args.naive_batch}", naive],
        [
            f"Encoder.encode_images, {str(encoder.dtype).removeprefix('torch.')}, "
            f"batch {encoder.batch_size}",
            ours,
        ],
    ]
    tables = [
        _report.table(
            f"{args.preset} images, {len(paths)} JPEGs of {JPEG_SIZE[0]}x{JPEG_SIZE[1]} "
            f"on {info['gpu']}",
            ["route", "images/s", "vs naive", "share of model alone"],
            [[name, rate, rate / naive, rate / alone] for name, rate in rows],
        ),
        _report.table(
            "one text query (distinct texts), Encoder.encode_texts",
            ["queries", "median ms", "p95 ms"],
            [[len(latencies), statistics.median(latencies), _report.percentile(latencies, 0.95)]],
        ),
        _report.table("setup", ["step", "seconds"], [[k, v] for k, v in timings.items()]),
    ]
    arguments = {k: v for k, v in vars(args).items() if k != "out"}
    return _report.write(
        args.out.stem, tables, arguments=arguments, info=info, folder=args.out.parent
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
