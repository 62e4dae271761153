"""Unsplash Lite, end to end: download a sample, index it, search it, classify a photo.

Read it as a tutorial or run it as a script. You need the Unsplash Lite zip from
https://unsplash.com/data (free, internal use only: never redistribute the data or the
photos), unzipped somewhere::

    python examples/unsplash_lite.py path/to/unsplash-research-dataset-lite-latest --limit 200

    ZSV_MODEL=path/to/siglip python examples/unsplash_lite.py DATASET   # a local checkpoint
    ZSV_MODEL=tiny python examples/unsplash_lite.py DATASET             # offline plumbing test

Each step is one library call; the same steps from the terminal are::

    zsv download DATASET --out work/photos --limit 200
    zsv index DATASET --images work/photos --index work/index
    zsv search "a cyber-punk street at night" --index work/index
    zsv classify work/photos/<id>.jpg --labels "a dog,a cat,a city street at night"
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from zeroshot_vision import Progress, SearchEngine
from zeroshot_vision.unsplash import download_dataset

SEED_QUERIES = ["a cyber-punk street at night", "a happy golden retriever puppy"]
LABELS = ["a dog", "a cat", "a city street at night", "a mountain landscape", "a portrait"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="the unzipped Unsplash Lite folder")
    parser.add_argument("--work", type=Path, default=Path("unsplash-work"), help="output folder")
    parser.add_argument("--limit", type=int, default=200, help="how many photos to fetch")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    photos_dir = args.work / "photos"
    index_dir = args.work / "index"

    # 1. Download. Photos already in photos_dir are skipped without a request, so
    #    re-running (or raising --limit) only fetches what is missing. Failures (dead ids,
    #    rate limits that outlast the retries) are listed in photos_dir/failures.tsv.
    report = download_dataset(args.dataset, photos_dir, limit=args.limit, workers=8)
    print(f"download: {report}")

    # 2. Index. The dataset folder is recognized as Unsplash Lite, so each vector carries
    #    the photo's description, photographer, location, country, year and keywords. The
    #    run commits every batch: interrupt it and run again, it continues.
    def show(progress: Progress) -> None:
        if progress.done and progress.done % 50 < progress.advanced:
            print(f"  indexed {progress.done}/{progress.total}")

    #    The model is $ZSV_MODEL ("tiny": a tiny random model, meaningless results but
    #    every step real), else SigLIP so400m from the hub; the index records it.
    with SearchEngine.create(index_dir, exist_ok=True) as engine:
        summary = engine.index_folder(args.dataset, images_dir=photos_dir, progress=show)
    print(f"index: {summary} ({summary.images_per_second:.1f} images/s)")

    # 3. Search. SearchEngine.open rebuilds the encoder and store from the folder alone;
    #    `zsv search QUERY --index work/index` opens the very same index.
    engine = SearchEngine.open(index_dir)
    for query in SEED_QUERIES:
        print(f"\n{query!r}")
        for rank, result in enumerate(engine.search(query, k=5), start=1):
            about = result.metadata.get("description") or result.metadata.get("ai_description")
            print(f"  {rank}. {result.id}  p={result.probability:.3f}  {about or ''}")

    # Filters use the stored metadata: the same query, restricted to recent photos.
    recent = engine.search(SEED_QUERIES[0], k=3, filter={"year": {"$gte": 2020}})
    print(f"\nsince 2020: {[r.id for r in recent]}")

    # 4. Classify one downloaded photo against a few labels. The probabilities are
    #    independent (sigmoid): several labels can fit, or none.
    first = next(iter(sorted(photos_dir.glob("*.jpg"))), None)
    if first is not None:
        print(f"\nclassify {first.name}:")
        for score in engine.classify(first, LABELS):
            print(f"  {score.probability:.3f}  {score.label}")
    engine.close()


if __name__ == "__main__":
    main()
