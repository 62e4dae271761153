"""Indexing throughput of the resumable pipeline (``zsv index``), in images per second.

    python benchmarks/bench_indexing.py [--presets tiny base] [--images 256 32]
                                        [--batch-size 8] [--device cpu]

For each random SigLIP preset (built offline; random weights cost exactly what trained
ones do) the folder of 640-px JPEGs (like ``zsv download`` writes) is indexed from scratch
with ``SearchEngine.index_folder``: scan, decode, preprocess, forward, store upsert, and
the commit of store and state after every batch. Model loading
and the first (warm-up) forward pass are left out. A second, unchanged run shows the
cost of an incremental no-op re-index.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision.testing import build_random_siglip


def make_photos(folder: Path, count: int) -> None:
    """``count`` distinct 640-px-wide JPEGs cut from the photos that ship in scikit-image."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    sources = [Image.open(data / n).convert("RGB") for n in names if (data / n).exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = sources[i % len(sources)]
        shift = (i // len(sources)) % 40
        image = image.crop((shift, shift, image.width - shift, image.height - shift))
        if (i // len(sources)) % 2:
            image = ImageOps.mirror(image)
        image = image.resize((640, round(640 * image.height / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        (folder / f"photo{i:05d}.jpg").write_bytes(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument(
        "--images", nargs="+", type=int, default=[256, 32], help="images per preset"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()
    counts = args.images + [args.images[-1]] * (len(args.presets) - len(args.images))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for preset, count in zip(args.presets, counts):
            photos = root / f"photos-{count}"
            if not photos.exists():
                make_photos(photos, count)
            model = build_random_siglip(root / f"model-{preset}", preset=preset)
            encoder = Encoder.from_pretrained(model, device=args.device, dtype=args.dtype)
            index = root / f"index-{preset}"
            encoder.encode_images(sorted(photos.iterdir())[: args.batch_size])  # warm-up
            with SearchEngine.create(index, encoder=encoder) as engine:
                first = engine.index_folder(photos, batch_size=args.batch_size)
                again = engine.index_folder(photos, batch_size=args.batch_size)
            assert first.count == count and again.skipped == count
            rows.append((preset, count, first.seconds, first.images_per_second, again.seconds))

    print(f"batch size {args.batch_size}, device {args.device or 'auto'}")
    print(f"{'preset':<8} {'images':>7} {'seconds':>9} {'images/s':>9} {'no-op re-run s':>15}")
    for preset, count, seconds, rate, rerun in rows:
        print(f"{preset:<8} {count:>7} {seconds:>9.2f} {rate:>9.2f} {rerun:>15.2f}")


if __name__ == "__main__":
    main()
