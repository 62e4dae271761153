"""Encoder speed against the naive float32 transformers loop, measured in the same run.

    python benchmarks/bench_encoder.py [--presets tiny base] [--images 16] [--rounds 3]
    python benchmarks/bench_encoder.py --presets so400m --images 4 --rounds 2 --text-rounds 5

Random SigLIP checkpoints of real shapes, built offline (random weights cost exactly what
trained ones do); ``--models DIR`` keeps them between runs (so400m takes ~2 minutes to
build and 3.5 GB of disk). For each preset, interleaved (A, B, A, B...) with medians:

* one text query, a distinct text each time so no cache can hit: the naive loop
  (processor + ``get_text_features`` in float32) against ``Encoder.encode_texts`` in
  float32, in the CPU's default dtype (bfloat16 where the CPU multiplies it natively) and
  with the int8 text tower (``quantize_text=True``), each with its cosine to float32;
* image encoding of 1600x1200 JPEG files: the naive loop (open + processor + float32
  model, batches of --batch-size) against ``Encoder.encode_images`` in float32 and in
  the default dtype;
* the first query after loading, with and without ``warm_up`` (each in a fresh process).

Prints each table with its ratio to the baseline and writes
``benchmarks/results/encoder.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def sample_photos() -> list[Path]:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    return [data / n for n in names if (data / n).exists()]


def distinct_jpeg(image: Any, variant: int, size: tuple[int, int]) -> bytes:
    """The ``variant``-th version of an RGB PIL image (cropped, mirrored) as a JPEG.

    80 distinct versions of each photo, then repeats; resized to ``size``, quality 90.
    """
    from PIL import ImageOps

    shift = variant % 40
    image = image.crop((shift, shift, image.width - shift, image.height - shift))
    if (variant // 40) % 2:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.resize(size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_jpegs(folder: Path, count: int, size: tuple[int, int] = (1600, 1200)) -> list[Path]:
    """``count`` distinct camera-sized JPEGs (quality 90) cut from scikit-image's photos."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in sample_photos()]
    paths = []
    for i in range(count):
        path = folder / f"photo{i:04d}.jpg"
        path.write_bytes(distinct_jpeg(sources[i % len(sources)], i // len(sources), size))
        paths.append(path)
    return paths


def model_folder(root: Path, preset: str) -> Path:
    from zeroshot_vision.testing import build_random_siglip

    folder = root / preset
    if not (folder / "config.json").is_file():
        print(f"building a random {preset} SigLIP in {folder} ...", flush=True)
        build_random_siglip(folder, preset=preset)
    return folder


class NaiveLoop:
    """The transformers recipe written plainly: float32, processor, model, normalize."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModel, AutoProcessor

        self.torch = torch
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
        self.processor = AutoProcessor.from_pretrained(folder)

    def _unit(self, output: Any) -> np.ndarray:
        torch = self.torch
        features = output if isinstance(output, torch.Tensor) else output.pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1).numpy()

    def text(self, text: str) -> np.ndarray:
        inputs = self.processor(
            text=[text.strip().lower()],
            padding="max_length",
            max_length=64,
            truncation=True,
            return_tensors="pt",
        )
        with self.torch.inference_mode():
            return self._unit(self.model.get_text_features(input_ids=inputs["input_ids"]))

    def images(self, paths: list[Path], batch_size: int) -> np.ndarray:
        from PIL import Image

        out = []
        for first in range(0, len(paths), batch_size):
            batch = [Image.open(p).convert("RGB") for p in paths[first : first + batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt")
            with self.torch.inference_mode():
                out.append(self._unit(self.model.get_image_features(**inputs)))
        return np.concatenate(out)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosines.min())


def min_centered_cosine(a: np.ndarray, reference: np.ndarray) -> float:
    """Agreement once the reference's mean vector is taken out of both.

    A random network maps every input near one common direction, so raw cosines between
    two precisions read close to 1 whatever the error; what distinguishes inputs is the
    part left after removing that mean, and this compares that part.
    """
    mean = reference.mean(axis=0, keepdims=True)
    return min_cosine(a - mean, reference - mean)


def max_cosine_between_inputs(vectors: np.ndarray) -> float:
    """How alike different inputs look to the model (1 would mean indistinguishable)."""
    similarity = vectors @ vectors.T
    return float(similarity[~np.eye(len(vectors), dtype=bool)].max())


# fmt: off
_WORDS = [
    "cat", "dog", "puppy", "street", "night", "astronaut", "space", "suit", "coffee", "table",
    "rocket", "sky", "galaxies", "red", "car", "mountain", "lake", "sunrise", "people", "beach",
    "bowl", "fruit", "portrait", "woman", "uniform",
]
# fmt: on


def distinct_texts() -> Iterator[str]:
    """Queries that differ in their tokens too (the tiny test vocabulary knows these)."""
    for i in range(100_000):
        a, b, c = (_WORDS[(i * k + k) % len(_WORDS)] for k in (1, 7, 13))
        yield f"a photo of a {a} and a {b} near a {c} {i}"


def first_query_child(folder: str, warm_up: bool) -> None:
    """In a fresh process: load, then time the first text query (one JSON line out)."""
    from zeroshot_vision import Encoder

    start = time.perf_counter()
    encoder = Encoder.from_pretrained(folder, device="cpu", warm_up=warm_up)
    load = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode_texts(["the first query after loading"])
    first = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode_texts(["the second query after loading"])
    second = time.perf_counter() - start
    print(json.dumps({"load_s": load, "first_s": first, "second_s": second}))


def first_query(folder: Path, warm_up: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--first-query-child", str(folder)]
    if warm_up:
        command.append("--warm")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_first_query(preset: str, folder: Path) -> list[dict[str, Any]]:
    """The first text query after loading, with and without warm-up, each in a fresh
    process (run before this process loads anything, so it competes with nothing)."""
    import torch

    cold, warm = first_query(folder, warm_up=False), first_query(folder, warm_up=True)
    rows = [
        [label, r["load_s"], 1000 * r["first_s"], 1000 * r["second_s"]]
        for label, r in (("warm_up=False", cold), ("warm_up=True", warm))
    ]
    return [
        _report.table(
            f"[{preset}] first text query in a fresh process ({torch.get_num_threads()} threads)",
            ["load", "load s", "first query ms", "second query ms"],
            rows,
        )
    ]


def bench_preset(
    preset: str, folder: Path, photos: list[Path], args: argparse.Namespace
) -> list[dict[str, Any]]:
    from zeroshot_vision import Encoder

    naive = NaiveLoop(folder)
    # Same float32 weights through the Encoder's pipeline (no second copy in memory).
    fp32 = Encoder(naive.model, naive.processor, model_name=preset, batch_size=args.batch_size)
    default = Encoder.from_pretrained(folder, device="cpu", batch_size=args.batch_size)
    int8 = Encoder.from_pretrained(folder, device="cpu", quantize_text=True)
    default_name = f"Encoder, default ({str(default.dtype).removeprefix('torch.')})"
    print(f"\n[{preset}] loaded; default dtype {default.dtype}", flush=True)

    # -- one text query, distinct texts -------------------------------------------------
    texts = distinct_texts()
    vectors: dict[str, list[np.ndarray]] = {}
    current = {"text": ""}

    def text_run(name: str, encode: Callable[[str], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            vectors.setdefault(name, []).append(encode(current["text"]))

        return run

    def next_text() -> None:
        current["text"] = next(texts)

    text_candidates = {
        "next": next_text,
        "naive loop (float32)": text_run("naive loop (float32)", naive.text),
        "Encoder, float32": text_run("Encoder, float32", fp32.encode_texts),
        default_name: text_run(default_name, default.encode_texts),
        "Encoder, int8 text tower": text_run("Encoder, int8 text tower", int8.encode_texts),
    }
    for run in text_candidates.values():  # one untimed round warms every variant up
        run()
    vectors.clear()
    seconds = _report.interleaved(text_candidates, args.text_rounds)
    seconds.pop("next")
    base = _report.median(seconds["naive loop (float32)"])
    reference = np.concatenate(vectors["naive loop (float32)"])
    rows = []
    fp32_ms = 1000 * _report.median(seconds["Encoder, float32"])
    best_base = min(seconds["naive loop (float32)"])
    for name, times in seconds.items():
        ms = 1000 * _report.median(times)
        ours = np.concatenate(vectors[name])
        rows.append(
            [
                name,
                ms,
                1000 * base / ms,
                fp32_ms / ms,
                1000 * min(times),
                best_base / min(times),
                min_cosine(ours, reference),
                min_centered_cosine(ours, reference),
            ]
        )
    text_table = _report.table(
        f"[{preset}] one text query, distinct texts (median of {args.text_rounds}); "
        f"max cosine between different texts in float32: "
        f"{max_cosine_between_inputs(reference):.4f}",
        ["route", "ms", "speed-up vs naive", "vs Encoder float32", "best ms",
         "best vs best naive", "min cosine to float32", "centered"],
        rows,
        raw=seconds,
    )  # fmt: skip

    if args.skip_images:
        return [text_table]

    # -- images from JPEG files --------------------------------------------------------
    got: dict[str, np.ndarray] = {}
    image_candidates: dict[str, Callable[[], float | None]] = {
        "naive loop (float32)": lambda: got.__setitem__(
            "naive loop (float32)", naive.images(photos, args.batch_size)
        ),
        "Encoder, float32": lambda: got.__setitem__("Encoder, float32", fp32.encode_images(photos)),
        default_name: lambda: got.__setitem__(default_name, default.encode_images(photos)),
    }
    fp32.encode_images(photos[:1])
    default.encode_images(photos[:1])
    seconds = _report.interleaved(image_candidates, args.rounds)
    rates = {name: len(photos) / _report.median(times) for name, times in seconds.items()}
    best = {name: len(photos) / min(times) for name, times in seconds.items()}
    rows = [
        [
            name,
            rate,
            rate / rates["naive loop (float32)"],
            best[name],
            best[name] / best["naive loop (float32)"],
            min_cosine(got[name], got["Encoder, float32"]),
            min_centered_cosine(got[name], got["Encoder, float32"]),
        ]
        for name, rate in rates.items()
    ]
    image_table = _report.table(
        f"[{preset}] {len(photos)} JPEGs of 1600x1200, batch {args.batch_size} "
        f"(median of {args.rounds}); max cosine between different images in float32: "
        f"{max_cosine_between_inputs(got['Encoder, float32']):.4f}",
        ["route", "images/s", "speed-up vs naive", "best images/s", "best vs best naive",
         "min cosine to Encoder float32", "centered"],
        rows,
        raw=seconds,
    )  # fmt: skip
    return [text_table, image_table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--images", type=int, default=16, help="JPEGs per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved image rounds")
    parser.add_argument("--text-rounds", type=int, default=10, help="interleaved text rounds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--skip-first-query", action="store_true")
    parser.add_argument("--skip-images", action="store_true", help="text queries only")
    parser.add_argument("--name", default="encoder", help="results/<name>.json")
    parser.add_argument("--first-query-child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_query_child:
        first_query_child(args.first_query_child, args.warm)
        return
    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    tables: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        photos = make_jpegs(Path(scratch) / "jpegs", args.images)
        root = args.models or Path(scratch) / "models"
        for preset in args.presets:
            folder = model_folder(root, preset)
            if not args.skip_first_query:
                tables += bench_first_query(preset, folder)
            tables += bench_preset(preset, folder, photos, args)
    arguments = {k: v for k, v in vars(args).items() if k not in ("first_query_child", "warm")}
    _report.write(args.name, tables, arguments=arguments, info=info)


if __name__ == "__main__":
    main()
