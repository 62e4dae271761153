"""The Ray path (``zsv index --ray``) against single-process ``zsv index``: overhead.

    unshare -n sh -c 'ip link set lo up && python benchmarks/bench_ray.py'
        [--preset base] [--images 16 64] [--batch-size 8] [--rounds 2]

(``unshare -n`` keeps the local Ray cluster on loopback; without it the script runs too,
with Ray's node address pinned to 127.0.0.1.) On the same folder of 640-px JPEGs and the
same random SigLIP (float32, CPU), each run indexes a fresh index folder end to end:
single-process loads the encoder and runs ``SearchEngine.index_folder`` (what ``zsv
index`` does); the Ray path runs :func:`~zeroshot_vision.distributed.index_with_ray`
with 1 and 2 encoder actors on a local cluster started once (its start is reported on
its own). Runs are interleaved; two collection sizes give each path's cost per image
(the slope) and its fixed cost (the intercept: actors starting and loading the model,
Ray Data's planning), and the ratio to single-process in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_indexing import make_photos

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision.testing import build_random_siglip


def stage_rates(root: Path, model: Path, photos: Path, batch_size: int) -> list[list[object]]:
    """Decoding, shard writing and shard import, each timed alone in this process."""
    import numpy as np

    from zeroshot_vision._index import FileEntry, IndexFolder, IndexWriter
    from zeroshot_vision.distributed._pipeline import model_facts
    from zeroshot_vision.distributed._sinks import ShardSink
    from zeroshot_vision.distributed._sources import chunk_images
    from zeroshot_vision.distributed._stages import DecodeSpec, decode_chunk
    from zeroshot_vision.ingest import Item

    facts = model_facts(str(model))
    files = sorted(photos.iterdir())
    listed = [Item(id=f.name, path=str(f), display_path=str(f), size=0, mtime_ns=0) for f in files]
    spec = DecodeSpec(pixels=facts.pixels, draft_size=facts.draft_size)
    start = time.perf_counter()
    for chunk in chunk_images(listed, batch_size=batch_size, model=facts.name):
        decode_chunk(chunk.row(), spec=spec)
    decode_s = time.perf_counter() - start
    megabytes = sum(f.stat().st_size for f in files) / 1e6

    dim, per_shard, shards = 1152, 32, 100
    rng = np.random.default_rng(0)
    sink = ShardSink.at(root / "bench-shards", dim=dim, model="bench")
    sink.prepare()
    batches = []
    for i in range(shards):
        vectors = rng.standard_normal((per_shard, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"photos/{i:05d}-{j:02d}.jpg" for j in range(per_shard)]
        batches.append((f"shard-{i:05d}", ids, vectors, [{"path": f"/data/{x}"} for x in ids]))
    start = time.perf_counter()
    for name, ids, vectors, metadata in batches:
        sink.write(name, ids, vectors, metadata, [])
    write_s = time.perf_counter() - start
    written = sum(f.stat().st_size for f in (root / "bench-shards").iterdir()) / 1e6

    def import_all(index: Path, commit_each: bool) -> float:
        folder = IndexFolder.create(index, model="bench", dim=dim)
        store = folder.open_store()
        start = time.perf_counter()
        with IndexWriter(store, folder) as writer:
            for name, *_ in batches:
                shard = sink.read(name)
                entries = [
                    FileEntry(id=i, path=m["path"]) for i, m in zip(shard.ids, shard.metadata)
                ]
                writer.write(entries, shard.vectors, shard.metadata)
                if commit_each:
                    writer.commit()
        store.close()
        return time.perf_counter() - start

    import_s = import_all(root / "bench-import", True)
    import_once_s = import_all(root / "bench-import-once", False)
    vectors_total = shards * per_shard
    return [
        [f"decode {facts.pixels.width if facts.pixels else '?'} px, 640-px JPEGs", len(files),
         decode_s, len(files) / decode_s, megabytes / decode_s],
        ["write shards", vectors_total, write_s, vectors_total / write_s, written / write_s],
        ["import shards (FAISS), commit each", vectors_total, import_s,
         vectors_total / import_s, written / import_s],
        ["import shards (FAISS), one commit", vectors_total, import_once_s,
         vectors_total / import_once_s, written / import_once_s],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--images", nargs=2, type=int, default=[16, 64], metavar=("SMALL", "BIG"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    small, big = sorted(args.images)

    import ray

    from zeroshot_vision.distributed import index_with_ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    info = _report.machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_random_siglip(root / "model", preset=args.preset)
        folders = {n: root / f"photos-{n}" for n in (small, big)}
        for n, folder in folders.items():
            make_photos(folder, n)
        started = time.perf_counter()
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(root / "ray"),
            configure_logging=False,
            log_to_driver=False,
        )
        cluster_seconds = time.perf_counter() - started
        runs = iter(range(1_000_000))

        def single(n: int) -> float:
            begin = time.perf_counter()
            encoder = Encoder.from_pretrained(model, device="cpu", dtype="float32")
            with SearchEngine.create(root / f"index-{next(runs)}", encoder=encoder) as engine:
                report = engine.index_folder(folders[n], batch_size=args.batch_size)
            encoder.close()
            assert report.count == n
            return time.perf_counter() - begin

        cores = os.cpu_count() or 1

        def on_ray(n: int, actors: int) -> float:
            begin = time.perf_counter()
            # One core stays free for the decoding tasks; the actors share the others.
            share = min(1.0, max(0.25, (cores - 1) / actors))
            report = index_with_ray(
                folders[n], index=root / f"index-{next(runs)}", model=str(model),
                actors=actors, cpus_per_actor=share, batch_size=args.batch_size,
                dtype="float32",
            )  # fmt: skip
            assert report.count == n
            return time.perf_counter() - begin

        paths = {
            "single process (zsv index)": lambda n: single(n),
            "Ray, 1 actor": lambda n: on_ray(n, 1),
            "Ray, 2 actors": lambda n: on_ray(n, 2),
        }
        candidates = {
            f"{name} @ {n}": (lambda run=run, n=n: run(n))
            for n in (small, big)
            for name, run in paths.items()
        }
        seconds = _report.interleaved(candidates, args.rounds)
        ray.shutdown()
        stage_rows = stage_rates(root, model, folders[big], args.batch_size)

    base = {n: _report.median(seconds[f"single process (zsv index) @ {n}"]) for n in (small, big)}
    base_slope = (base[big] - base[small]) / (big - small)
    rows = []
    for name in paths:
        at = {n: _report.median(seconds[f"{name} @ {n}"]) for n in (small, big)}
        slope = (at[big] - at[small]) / (big - small)
        fixed = at[small] - slope * small
        rows.append(
            [
                name, at[small], at[big], big / at[big], slope * 1000, fixed,
                _report.ratio(at[big], base[big]), (slope - base_slope) * 1000,
            ]
        )  # fmt: skip
    table = _report.table(
        f"{args.preset} SigLIP, float32 CPU, batch {args.batch_size}, {small} and {big} "
        f"images; {_report.describe(info)}; local Ray cluster started in "
        f"{cluster_seconds:.1f} s (not included)",
        ["path", f"s @ {small}", f"s @ {big}", f"images/s @ {big}", "ms per image",
         "fixed s", f"x single @ {big}", "extra ms per image"],
        rows,
        raw=seconds,
    )  # fmt: skip
    stages = _report.table(
        "The stages on their own, one process: decoding (one core), writing 1152-d shards "
        "of 32 and the driver's import into FAISS, for the scaling estimate in "
        "docs/distributed.md",
        ["stage", "items", "seconds", "per second", "MB/s"],
        stage_rows,
    )  # fmt: skip
    _report.write(
        "ray",
        [table, stages],
        arguments={**vars(args), "cluster_start_s": cluster_seconds},
        info=info,
    )


if __name__ == "__main__":
    main()
