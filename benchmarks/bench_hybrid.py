"""Hybrid search: words in photos found by the lexical side, fused with the vector ranking.

    python benchmarks/bench_hybrid.py [--model tiny|CHECKPOINT] [--rows 100000] [--queries 200]
        [--only recall|ocr|lexical ...]

Three tables, all measured in one run:

1. **Recall@1**, vector-only against hybrid, on real photos (scikit-image's) with rendered
   text (signs, receipts, slides in DejaVu Sans, see
   :mod:`zeroshot_vision.testing._text_photos`) and text-free photos, indexed with
   ``index_folder(ocr=True)``: queries that quote a line written in a photo, and plain
   visual queries naming what a photo shows (with the tiny random model the vector side
   is chance, so the lexical side carries the first kind; the second kind says whether
   fusing hurts the vector ranking: "same top-1" is the share of visual queries whose
   first result hybrid leaves unchanged).
2. **OCR cost**: CPU milliseconds per image with and without text, on one thread (one
   core), so images per second per core is 1000 / ms.
3. **Lexical side at scale**: ``--rows`` synthetic photos (OCR-like lines, a place, a
   file name) in one ``text.sqlite``; the p50/p95 of ``LexicalIndex.search`` over
   ``--queries`` one-to-three-word queries, and its size per 1,000 photos.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from zeroshot_vision import SearchEngine
from zeroshot_vision._lexical import LexicalIndex
from zeroshot_vision._ocr import OcrEngine
from zeroshot_vision.testing import build_tiny_siglip
from zeroshot_vision.testing._text_photos import render_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report

# (photo, style, lines): every line is a query; photos are scikit-image's.
TEXT_PHOTOS = [
    ("astronaut", "sign", ["CAFE CENTRAL", "OPEN DAILY"]),
    ("coffee", "receipt", ["Invoice 4711", "Espresso 2.50", "Total 12.50 EUR"]),
    ("chelsea", "slide", ["Quarterly results", "Revenue grew 12 percent"]),
    ("rocket", "sign", ["LAUNCH PAD 39A", "AUTHORIZED ONLY"]),
    ("motorcycle_left", "receipt", ["Garage Rossi", "Oil change 89.00"]),
    ("hubble_deep_field", "slide", ["Deep field survey", "Galaxies counted 10000"]),
    ("astronaut", "receipt", ["Hotel Lisboa", "Room 214 two nights"]),
    ("coffee", "sign", ["BAKERY", "FRESH BREAD"]),
    ("chelsea", "sign", ["LOST CAT", "CALL 555 0199"]),
    ("rocket", "slide", ["Mission timeline", "Stage separation"]),
]
# Text-free photos and a visual query for each.
PLAIN_PHOTOS = {
    "astronaut": "an astronaut in a space suit",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket on a launch pad",
    "motorcycle_left": "a motorcycle",
    "hubble_deep_field": "galaxies in deep space",
}


def skimage_photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)() if hasattr(data, name) else _load(name))


def _load(name: str) -> np.ndarray:
    from skimage import data, io

    return np.asarray(io.imread(Path(data.__file__).parent / f"{name}.png"))


def build_photos(folder: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Write the photos with neutral names; return the quoted and the visual queries."""
    folder.mkdir(parents=True)
    quoted: dict[str, list[str]] = {}
    for n, (photo, style, lines) in enumerate(TEXT_PHOTOS):
        name = f"img{n:03d}.jpg"
        render_text(skimage_photo(photo), lines, style=style).save(folder / name, quality=92)  # type: ignore[arg-type]
        quoted[name] = lines
    visual: dict[str, str] = {}
    for n, (photo, query) in enumerate(PLAIN_PHOTOS.items(), start=len(TEXT_PHOTOS)):
        name = f"img{n:03d}.jpg"
        image = skimage_photo(photo).convert("RGB")
        image.resize((640, round(image.height * 640 / image.width))).save(folder / name)
        visual[name] = query
    return quoted, visual


def recall_table(model: str, work: Path) -> tuple[dict[str, object], float]:
    quoted, visual = build_photos(work / "photos")
    if model == "tiny":
        model = str(build_tiny_siglip(work / "tiny-siglip"))
    started = time.perf_counter()
    with SearchEngine.create(work / "index", model=model) as engine:
        engine.index_folder(work / "photos", ocr=True, places=False)
        indexed_s = time.perf_counter() - started
        rows = []
        queries = [(line, name) for name, lines in quoted.items() for line in lines]
        for label, pairs in [("quoted words", queries), ("visual", list(visual.items()))]:
            if label == "visual":
                pairs = [(query, name) for name, query in pairs]
            hits = {"vector": 0, "hybrid": 0, "text": 0}
            same = 0
            for query, expected in pairs:
                tops = {
                    mode: engine.search(query, k=1, mode=mode)  # type: ignore[arg-type]
                    for mode in hits
                }
                for mode, results in tops.items():
                    hits[mode] += bool(results) and results[0].id == expected
                same += bool(tops["hybrid"]) and tops["hybrid"][0].id == tops["vector"][0].id
            n = len(pairs)
            rows.append(
                [label, n, hits["vector"] / n, hits["hybrid"] / n, hits["text"] / n, same / n]
            )
    table = _report.table(
        f"Recall@1 on {len(quoted)} photos with rendered text + {len(visual)} without "
        f"(model {Path(model).name}; index_folder(ocr=True) took {indexed_s:.1f} s)",
        ["queries", "n", "vector R@1", "hybrid R@1", "text R@1", "same top-1 as vector"],
        rows,
    )
    return table, indexed_s


def ocr_table(work: Path) -> dict[str, object]:
    engine = OcrEngine(threads=1)
    engine.read(Image.new("RGB", (64, 64), "white"))  # load the models first
    with_text = [Image.open(p) for p in sorted((work / "photos").glob("img00*.jpg"))]
    without = [
        Image.open(work / "photos" / f"img{n:03d}.jpg")
        for n in range(len(TEXT_PHOTOS), len(TEXT_PHOTOS) + len(PLAIN_PHOTOS))
    ]
    rows = []
    for label, images in [("with text", with_text), ("without text", without)]:
        cpu = []
        wall = []
        for image in images:
            image.load()
            c0, w0 = time.process_time(), time.perf_counter()
            engine.read(image)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        p50 = _report.median(cpu)
        rows.append([label, len(images), p50, _report.median(wall), 1000 / p50])
    return _report.table(
        "OCR (RapidOCR 3, PP-OCR models, onnxruntime, 1 thread), 640 px wide photos",
        ["images", "n", "CPU ms/image p50", "wall ms/image p50", "images/s per core"],
        rows,
    )


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "va", "zu", "be", "ch"]
    return ["".join(rng.choice(syllables, size=int(rng.integers(2, 5)))) for _ in range(size)]


def lexical_table(rows: int, queries: int, work: Path) -> dict[str, object]:
    rng = np.random.default_rng(0)
    words = np.array(_vocabulary(rng, 20_000))
    cities = ["Lisbon", "Porto", "Madrid", "Tokyo", "Kyoto", "Berlin", "Paris", "Oslo"]
    path = work / "text.sqlite"
    write_s = 0.0
    with LexicalIndex(path, create=True) as index:
        batch = 5000
        for first in range(0, rows, batch):
            ids = [f"trip/IMG_{i:06d}.jpg" for i in range(first, min(rows, first + batch))]
            extras = []
            for _ in ids:
                lines = int(rng.integers(0, 4))  # a third of photos have no text
                text = "\n".join(
                    " ".join(rng.choice(words, size=int(rng.integers(1, 5)))) for _ in range(lines)
                )
                city = cities[int(rng.integers(len(cities)))]
                extras.append({"metadata": {"city": city}, "texts": {"ocr": text} if text else {}})
            started = time.perf_counter()  # the synthetic rows' making is not timed
            index.write(ids, extras)
            index.commit()
            write_s += time.perf_counter() - started
        probes = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(queries)]

        def query(probe: str, flt: dict[str, str] | None) -> tuple[float, float]:
            # What a hybrid search asks: 50 candidates, snippets for the 10 shown. CPU
            # time beside wall time: on a shared machine the wall clock counts waiting.
            t0, c0 = time.perf_counter(), time.process_time()
            hits = index.search(probe, k=50, filter=flt, snippets=False)
            index.snippets(probe, hits[:10])
            return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000

        for probe in probes[:10]:
            query(probe, None)  # warm the page cache
        plain = [query(probe, None) for probe in probes]
        latencies, cpu = [w for w, _ in plain], [c for _, c in plain]
        filtered_runs = [query(probe, {"city": "Porto"}) for probe in probes]
        filtered = [w for w, _ in filtered_runs]
        filtered_cpu = [c for _, c in filtered_runs]
    size = sum(p.stat().st_size for p in work.glob("text.sqlite*"))
    return _report.table(
        f"Lexical side (SQLite {__import__('sqlite3').sqlite_version} FTS5), {rows} photos, "
        f"k=50 (the fusion depth) and 10 snippets, {queries} queries of 1-3 words",
        ["photos", "write s", "query p50 ms", "query p95 ms", "CPU p50 ms",
         "filtered p50 ms", "filtered CPU p50 ms", "MB", "KB per 1k photos"],
        [[rows, write_s, _report.percentile(latencies, 0.5), _report.percentile(latencies, 0.95),
          _report.percentile(cpu, 0.5), _report.percentile(filtered, 0.5),
          _report.percentile(filtered_cpu, 0.5), size / 1e6,
          size / 1e3 / (rows / 1000)]],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="checkpoint (default: tiny random)")
    parser.add_argument("--rows", type=int, default=100_000, help="photos in the lexical side")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--only",
        choices=["recall", "ocr", "lexical"],
        action="append",
        help="run only these tables (repeatable; default: all)",
    )
    parser.add_argument("--name", default="hybrid", help="results/<name>.json")
    args = parser.parse_args()
    only = set(args.only or ["recall", "ocr", "lexical"])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tables = []
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        if "recall" in only:
            tables.append(recall_table(args.model, work)[0])
        if "ocr" in only:
            tables.append(ocr_table(work))
        if "lexical" in only:
            tables.append(lexical_table(args.rows, args.queries, work))
    _report.write(args.name, tables, arguments=vars(args))


if __name__ == "__main__":
    main()
