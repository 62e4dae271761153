"""Encoder throughput on random SigLIP checkpoints of real shapes (no download needed).

    python benchmarks/bench_encoder.py [--presets tiny base] [--images 32] [--device cpu]

Random weights cost exactly what trained ones do. For each preset the table gives image
throughput (decode + preprocess + forward, batches of --batch-size) and the latency of one
text query (tokenize + forward). The so400m preset is the default checkpoint's shape; it
takes about 5.5 s per image on two CPU cores, so ask for it with few images.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from zeroshot_vision import Encoder
from zeroshot_vision.testing import build_random_siglip


def sample_photos() -> list[Path]:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    return [data / n for n in names if (data / n).exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()
    photos = sample_photos()
    images = [photos[i % len(photos)] for i in range(args.images)]
    print(
        f"{'preset':>8} | {'dim':>5} | {'device':>6} | {'dtype':>9} | {'images/s':>9} | "
        f"{'text query ms':>13}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for preset in args.presets:
            folder = build_random_siglip(Path(scratch) / preset, preset=preset)
            encoder = Encoder.from_pretrained(
                folder, device=args.device, dtype=args.dtype, batch_size=args.batch_size
            )
            encoder.encode_images(images[:2])  # warm-up
            start = time.perf_counter()
            encoder.encode_images(images)
            rate = len(images) / (time.perf_counter() - start)
            latencies = []
            for i in range(10):
                t = time.perf_counter()
                encoder.encode_texts([f"a photo of a dog number {i}"])
                latencies.append((time.perf_counter() - t) * 1000)
            print(
                f"{preset:>8} | {encoder.dim:>5} | {encoder.device.type:>6} | "
                f"{str(encoder.dtype).removeprefix('torch.'):>9} | {rate:>9.2f} | "
                f"{statistics.median(latencies):>13.1f}"
            )


if __name__ == "__main__":
    main()
