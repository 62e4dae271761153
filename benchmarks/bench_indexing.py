"""Indexing throughput of the resumable pipeline (``zsv index``), in images per second.

    python benchmarks/bench_indexing.py [--presets tiny base] [--images 256 32]
                                        [--batch-size 8] [--device cpu]

For each random SigLIP preset (built offline; random weights cost exactly what trained
ones do) the folder of 640-px JPEGs (like ``zsv download`` writes) is indexed from scratch
with ``SearchEngine.index_folder``: scan, decode, preprocess, forward, store upsert, and
the commit of store and state after every batch. Model loading
and the first (warm-up) forward pass are left out. A second, unchanged run shows the
cost of an incremental no-op re-index. The baseline, measured in the same run on the
same files, is the naive float32 transformers loop (open + processor + model, no store).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision.testing import build_random_siglip

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import NaiveLoop


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
            naive = NaiveLoop(model)
            paths = sorted(photos.iterdir())
            naive.images(paths[: args.batch_size], args.batch_size)  # warm-up
            start = time.perf_counter()
            naive.images(paths, args.batch_size)
            naive_rate = count / (time.perf_counter() - start)
            rows.append(
                [
                    preset,
                    str(encoder.dtype).removeprefix("torch."),
                    count,
                    first.seconds,
                    first.images_per_second,
                    naive_rate,
                    first.images_per_second / naive_rate,
                    again.seconds,
                ]
            )

    table = _report.table(
        f"zsv index, batch size {args.batch_size}, against the naive float32 loop in the "
        "same run",
        ["preset", "dtype", "images", "seconds", "images/s", "naive images/s",
         "speed-up vs naive", "no-op re-run s"],
        rows,
    )  # fmt: skip
    _report.write("indexing", [table], arguments=vars(args))


if __name__ == "__main__":
    main()
