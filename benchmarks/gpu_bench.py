"""The whole GPU comparison in one go, for a lent card: about 3 minutes, JSON out.

    python benchmarks/gpu_bench.py [--images 2048] [--out benchmarks/results/gpu.json]

On one CUDA device, with a random so400m/14@384 SigLIP (same compute as the real
checkpoint; built on the card in seconds and saved in bfloat16), in this order:

1. model alone: ``get_image_features`` in bfloat16 on pixel tensors already on the card,
   at the small batch (--encoder-batch, 32) and the big one (--model-batch, 128): the
   ceiling nothing above the model can beat;
2. the naive transformers loop: open + processor + model, batches of --naive-batch (64),
   sequential, on the first --naive-images files (the baseline);
3. ``Encoder.from_pretrained(folder)`` (device, dtype and the JPEG route picked by the
   library): ``encode_images`` on the files at both batch sizes, then ``zsv index``'s code
   path (``SearchEngine.index_folder`` into a FAISS index folder, committing every batch),
   then ``encode_images`` with the GPU decoder off (--workers processes);
4. one text query through ``Encoder.encode_texts``, distinct texts (median);
5. agreement, per image, of each route with the reference pipeline (the checkpoint's
   processor + the same model) on real photos, EXIF-rotated and gray JPEGs included;
6. unless --skip-compile: the same with ``compile=True`` (compile time reported).

JPEGs are 1600x1200, quality 90, made from scikit-image's photos by a process pool.
Every image rate is also given as a ratio to the naive loop and as a share of the model
alone at the same batch size. A step that fails is reported and the run goes on. Fails at
once, saying so, when CUDA is missing; ``--device cpu --preset tiny`` smoke-tests the
script on any machine.

The lent machine has no network and lacks some dependencies of ``import zeroshot_vision``
(pydantic, filelock, faiss-cpu; see docs/benchmarks.md for the wheels to carry).
"""

from __future__ import annotations

import argparse
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
from bench_encoder import distinct_jpeg, sample_photos

JPEG_SIZE = (1600, 1200)


WHEELS = "pydantic pydantic-core annotated-types typing-inspection filelock faiss-cpu"
"""What ``import zeroshot_vision`` needs beyond the lent machine's own packages."""


class SetupError(RuntimeError):
    """The machine cannot run the comparison (``main`` exits with status 2, saying why)."""


class NoCudaError(SetupError):
    """No CUDA device is visible."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=_positive, default=2048, help="JPEG files to encode")
    parser.add_argument(
        "--naive-images", type=_positive, default=1024, help="of those, for the naive loop"
    )
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile rows")
    parser.add_argument("--model-batch", type=_positive, default=128)
    parser.add_argument("--model-batches", type=_positive, default=8, help="timed batches")
    parser.add_argument("--naive-batch", type=_positive, default=64)
    parser.add_argument(
        "--encoder-batch", type=_positive, default=None, help="the small batch (default 32)"
    )
    parser.add_argument("--text-queries", type=_positive, default=20)
    parser.add_argument(
        "--workers", type=_positive, default=min(os.cpu_count() or 1, 16), help="processes"
    )
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


def _one_jpeg(job: tuple[int, Path, Path]) -> None:
    """Write one distinct JPEG: the ``variant``-th version of ``source``."""
    from PIL import Image

    variant, source, target = job
    target.write_bytes(distinct_jpeg(Image.open(source).convert("RGB"), variant, JPEG_SIZE))


def make_jpegs(folder: Path, count: int, workers: int) -> list[Path]:
    sources = sample_photos()
    if not sources:
        raise SetupError("no sample photos; install scikit-image with its data")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo{i:05d}.jpg" for i in range(count)]
    jobs = [(i // len(sources), sources[i % len(sources)], p) for i, p in enumerate(paths)]
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


def encoder_rate(torch: Any, encoder: Any, paths: list[Path], batch: int, device: str) -> float:
    """Images/s of ``Encoder.encode_images`` on the files.

    After a two-batch warm-up, which also starts the encoder's decoding processes (once
    per encoder, like loading the model).
    """
    encoder.encode_images(paths[: 2 * batch], batch_size=batch)
    _sync(torch, device)
    start = time.perf_counter()
    vectors = encoder.encode_images(paths, batch_size=batch)
    rate = _rate(len(paths), time.perf_counter() - start)
    if vectors.shape != (len(paths), encoder.dim):
        raise AssertionError(f"encode_images returned {vectors.shape}")
    return rate


def feed_rate(torch: Any, encoder: Any, paths: list[Path], batch: int, device: str) -> float:
    """Images/s of the input path alone: pixel batches ready on the device, no model."""

    def feed(items: list[Path]) -> None:
        with encoder._feed(items, None, batch) as batches:
            for ready in batches:
                if ready.ready is not None:
                    ready.ready.synchronize()

    feed(paths[: 2 * batch])
    _sync(torch, device)
    start = time.perf_counter()
    feed(paths)
    _sync(torch, device)
    return _rate(len(paths), time.perf_counter() - start)


def index_rate(encoder: Any, folder: Path, index: Path, batch: int) -> float:
    """Images/s of ``zsv index``'s code path: ``index_folder`` into a new FAISS index folder.

    Committed after every batch (``zsv index``'s default); the model load is excluded.
    """
    from zeroshot_vision import SearchEngine

    start = time.perf_counter()
    with SearchEngine.create(index, encoder=encoder) as engine:
        report = engine.index_folder(folder, batch_size=batch)
    rate = _rate(len(report.indexed), time.perf_counter() - start)
    if report.failed:
        raise AssertionError(f"{len(report.failed)} files failed: {report.failed[:3]}")
    return rate


def compiled_model_alone(torch: Any, encoder: Any, batch: int, batches: int, device: str) -> float:
    """Images/s of the compiled image tower on pixels already on the card."""
    pixels = torch.randn(batch, 3, *_side(encoder), device=device, dtype=encoder.dtype)
    for _ in range(2):
        encoder._image_features(pixels, batch)
    _sync(torch, device)
    start = time.perf_counter()
    for _ in range(batches):
        encoder._image_features(pixels, batch)
    _sync(torch, device)
    return _rate(batch * batches, time.perf_counter() - start)


def _side(encoder: Any) -> tuple[int, int]:
    spec = encoder._pixel_spec
    return (spec.height, spec.width)


def parity(torch: Any, encoders: dict[str, Any], sources: list[Path]) -> list[list[Any]]:
    """Per-image cosine of each route to the reference processor + model, same weights."""
    from zeroshot_vision._images import load_image

    first = next(iter(encoders.values()))
    processor = getattr(first._processor, "image_processor", first._processor)
    inputs = processor(images=[load_image(s) for s in sources], return_tensors="pt")
    pixels = inputs["pixel_values"].to(first.device, dtype=first.dtype)
    with torch.inference_mode():
        output = first._model.get_image_features(pixel_values=pixels)
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    reference = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
    rows = []
    for name, encoder in encoders.items():
        cosines = (encoder.encode_images(sources, batch_size=16) * reference).sum(axis=1)
        rows.append([name, len(sources), float(cosines.min()), float(statistics.median(cosines))])
    return rows


def parity_sources(folder: Path, jpegs: list[Path]) -> list[Path]:
    """Real photos as they ship (PNG and JPEG) plus EXIF-rotated, gray and made JPEGs."""
    import skimage
    from PIL import Image

    data = Path(skimage.__file__).parent / "data"
    shipped = [p for p in sorted(data.glob("*")) if p.suffix in (".png", ".jpg")]
    shipped = [p for p in shipped if _is_photo(p)][:12]
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    photo = Image.open(jpegs[0]).convert("RGB")
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / f"rotated{orientation}.jpg"
        photo.save(path, quality=90, exif=exif.tobytes())
        made.append(path)
    gray = folder / "gray.jpg"
    photo.convert("L").save(gray, quality=90)
    return [*shipped, *made, gray, *jpegs[:16]]


def _is_photo(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return min(image.size) >= 64 and image.mode in ("RGB", "L", "RGBA")
    except Exception:  # noqa: BLE001 - anything unreadable is not used
        return False


class Run:
    """Runs the steps, recording each one's error instead of stopping the whole run."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def step(self, name: str, function: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            value = function(*args)
        except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
            import traceback

            traceback.print_exc()
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: FAILED ({exc})", flush=True)
            return None
        shown = f"{value:.1f}" if isinstance(value, float) else "done"
        print(f"{name}: {shown} ({time.perf_counter() - start:.1f} s)", flush=True)
        return value


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
    small, big = args.encoder_batch or 32, args.model_batch
    rates: dict[str, float | None] = {}
    steps = Run()
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
        for batch in (small, big):
            rates[f"alone {batch}"] = steps.step(
                f"model alone, batch {batch}",
                model_alone, torch, model, side, batch, args.model_batches, device,
            )  # fmt: skip
        naive_paths = paths[: args.naive_images]
        rates["naive"] = steps.step(
            "naive loop", naive_loop, torch, model, processor, naive_paths, args.naive_batch, device
        )
        del model
        if device != "cpu":
            torch.cuda.empty_cache()

        start = time.perf_counter()
        on = None if device == "cuda" else device
        encoder = Encoder.from_pretrained(folder, device=on, workers=args.workers)
        timings["Encoder load s"] = time.perf_counter() - start
        print(f"{encoder!r}, device_decode={encoder.device_decode}", flush=True)
        for batch in (small, big):
            rates[f"encode {batch}"] = steps.step(
                f"encode_images, batch {batch}", encoder_rate, torch, encoder, paths, batch, device
            )
        rates[f"feed {big}"] = steps.step(
            "input path alone", feed_rate, torch, encoder, paths, big, device
        )
        rates[f"index {big}"] = steps.step(
            "zsv index path", index_rate, encoder, root / "jpegs", root / "index", big
        )
        cpu_route = Encoder.from_pretrained(
            folder, device=on, workers=args.workers, device_decode=False, warm_up=False
        )
        rates[f"processes {big}"] = steps.step(
            "encode_images, CPU processes", encoder_rate, torch, cpu_route, paths, big, device
        )
        latencies = []
        for i in range(args.text_queries):
            start = time.perf_counter()
            encoder.encode_texts([f"a photo of a dog number {i}"])
            latencies.append(1000 * (time.perf_counter() - start))
        sources = parity_sources(root / "parity", paths)
        routes = {"GPU decode" if encoder.device_decode else "default": encoder}
        routes["CPU processes"] = cpu_route
        agreement = steps.step("parity", parity, torch, routes, sources) or []
        del cpu_route

        compiled = None
        if not args.skip_compile:
            start = time.perf_counter()
            compiled = steps.step(
                "compile",
                lambda: Encoder.from_pretrained(
                    folder, device=on, workers=args.workers, batch_size=big, compile=True
                ),
            )
            timings["Encoder load + torch.compile s"] = time.perf_counter() - start
        if compiled is not None:
            rates[f"compiled alone {big}"] = steps.step(
                "compiled model alone",
                compiled_model_alone, torch, compiled, big, args.model_batches, device,
            )  # fmt: skip
            rates[f"compiled encode {big}"] = steps.step(
                "compiled encode_images", encoder_rate, torch, compiled, paths, big, device
            )
            rates[f"compiled index {big}"] = steps.step(
                "compiled zsv index path",
                index_rate, compiled, root / "jpegs", root / "index-compiled", big,
            )  # fmt: skip
            agreement += (
                steps.step("compiled parity", parity, torch, {"compiled": compiled}, sources) or []
            )

    dtype = str(encoder.dtype).removeprefix("torch.")
    naive = rates.get("naive")
    route = "nvJPEG on the GPU" if encoder.device_decode else "worker processes"
    labels = [
        (
            f"alone {small}",
            f"model alone, {dtype}, eager, batch {small}, tensors on the card",
            None,
        ),
        (f"alone {big}", f"model alone, {dtype}, eager, batch {big}, tensors on the card", None),
        ("naive", f"naive loop: open + processor + model, batch {args.naive_batch}", None),
        (f"encode {small}", f"Encoder.encode_images, {route}, batch {small}", f"alone {small}"),
        (f"encode {big}", f"Encoder.encode_images, {route}, batch {big}", f"alone {big}"),
        (f"index {big}", f"zsv index (index_folder + FAISS commits), batch {big}", f"alone {big}"),
        (f"feed {big}", f"input path alone ({route}, no model), batch {big}", None),
        (
            f"processes {big}",
            f"Encoder.encode_images, {args.workers} decoding processes, batch {big}",
            f"alone {big}",
        ),
        (f"compiled alone {big}", f"model alone, torch.compile, batch {big}", None),
        (
            f"compiled encode {big}",
            f"Encoder.encode_images, compiled, batch {big}",
            f"compiled alone {big}",
        ),
        (f"compiled index {big}", f"zsv index, compiled, batch {big}", f"compiled alone {big}"),
    ]
    rows = []
    for key, name, ceiling in labels:
        rate = rates.get(key)
        if rate is None:
            continue
        top = rates.get(ceiling) if ceiling else None
        rows.append([name, rate, rate / naive if naive else None, rate / top if top else None])
    tables = [
        _report.table(
            f"{args.preset} images, {len(paths)} JPEGs of {JPEG_SIZE[0]}x{JPEG_SIZE[1]} "
            f"on {info['gpu'] or device}",
            ["route", "images/s", "vs naive", "share of model alone, same batch"],
            rows,
        ),
        _report.table(
            "agreement with the reference processor + model (same weights), per image",
            ["route", "images", "min cosine", "median cosine"],
            agreement,
        ),
        _report.table(
            "one text query (distinct texts), Encoder.encode_texts",
            ["queries", "median ms", "p95 ms"],
            [[len(latencies), statistics.median(latencies), _report.percentile(latencies, 0.95)]],
        ),
        _report.table("setup", ["step", "seconds"], [[k, v] for k, v in timings.items()]),
    ]
    if steps.errors:
        tables.append(_report.table("failed steps", ["step", "error"], list(steps.errors.items())))
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
