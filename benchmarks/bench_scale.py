"""FaissStore tiers at scale: build time, RAM, disk, recall, latency, QPS, and Pinecone cost.

    python benchmarks/bench_scale.py [--sizes 100k,1M,3M,10M] [--tiers flat,hnsw,hnsw-sq8,ivfpq]
        [--dim 1152] [--queries 1000] [--work DIR] [--out PATH] [--records 1M]
        [--index-build 600k]
        [--dtype auto|float32|float16] [--commit-every 500000] [--ivfpq-sweep 32x20,64x20]
        [--drop-vectors] [--keep-stores] [--cold-disk]

The default (``make bench``) is 100k vectors. For each size, vectors are generated in
chunks straight into a file (never all in RAM; float16 from 3M on, float32 below, see
``--dtype``; chunks are turned into float32 where used): clusters on a 32-dimensional
subspace (4,096 centres, latent spread 0.5) mapped into ``dim`` dimensions by a random
orthonormal map, plus full-dimensional noise, then unit-normalized. Image embeddings
sit near a low-dimensional manifold (intrinsic dimension of about 20 to 40 is reported
for CLIP-like features) and in uneven clusters; this gives nearest-neighbour cosines
spread over roughly 0.6 to 0.95 instead of the near-zero cosines of uniform noise (the
script prints the spread it made). 1,000 held-out queries come from the same generator;
their exact top 10 is found by brute force over the file.

Building adds the vectors in chunks of 20,000 and commits every ``--commit-every``
(500,000), as an ingest commits its batches. ``ivfpq`` gets at most
:data:`IVFPQ_MOST_LISTS` inverted lists, trained on 40 vectors a list (see
:func:`_store_kwargs` for the arithmetic).

Each tier is built and then served in its own child process, so its memory is its own:
peak ``RssAnon`` (anonymous memory: what the index really holds) and peak ``RssFile``
(file pages, such as the memory-mapped vectors of ``ivfpq``, which the kernel may drop)
are sampled from ``/proc/self/status`` every 20 ms by the child itself. Serving loads
the saved store in a fresh process and times single queries (p50/p99, one FAISS thread)
and QPS with 8 threads. Rows are printed and written as JSON to ``--out`` (default
``benchmarks/results/scale.json``) after each tier, so a run cut short keeps what it
measured.

``--cold-disk`` adds, for ``ivfpq``, queries whose re-ranking rows no earlier pass has
read, after emptying the page cache (root only; the JSON says whether it was): the
latency of a store whose vectors file is mostly on the disk, not in RAM.

The Pinecone table prices the same collection on Pinecone serverless from the prices
in :data:`PINECONE_PRICES` (source and date there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 20_000
FLOAT16_FROM = 3_000_000
"""From this many vectors on, ``--dtype auto`` writes the vectors file as float16."""
COMMIT_EVERY = 500_000
"""Vectors between two commits while building, as an ingest commits its batches."""
IVFPQ_MOST_LISTS = 4096
"""The most inverted lists the benchmark gives ``ivfpq`` (see :func:`_store_kwargs`)."""
_LATENT = 32
_CENTRES = 4096

PINECONE_PRICES = {
    "source": "Pinecone Standard plan, on-demand, AWS us-east-1, from its pricing page as "
    "captured 2026-11-04 (docs.flexprice.io/cookbooks/pricing-teardowns/pinecone-pricing); "
    "$50 monthly minimum from docs.pinecone.io/guides/manage-cost/understanding-cost; "
    "looked up 2026-12-07",
    "storage_per_gb_month": 0.33,
    "read_units_per_million": 16.0,
    "write_units_per_million": 4.0,
    "minimum_per_month": 50.0,
}
"""Pinecone serverless list prices (Standard plan). A query's read units grow with the
size of the namespace it searches (pinecone.io/learn/read-units); this table ASSUMES
1 RU per GB searched, at least 0.25 RU, which is not confirmed by the pages above. A
record's size is its float32 vector (4 bytes x dim) plus about 100 bytes of id and
metadata."""


def _size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def _generator(dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, _LATENT)))
    centres = rng.standard_normal((_CENTRES, _LATENT)).astype(np.float32)
    # Uneven cluster sizes, as in photo collections (many of a few subjects).
    return basis.T.astype(np.float32), centres


def _block(rng: np.random.Generator, rows: int, basis: np.ndarray, centres: np.ndarray) -> Any:
    weights = np.random.default_rng(1).pareto(1.5, len(centres)) + 0.1
    picks = rng.choice(len(centres), rows, p=weights / weights.sum())
    points = centres[picks] + 0.5 * rng.standard_normal((rows, _LATENT), dtype=np.float32)
    block = points @ basis
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    block += rng.standard_normal(block.shape, dtype=np.float32) * (0.3 / block.shape[1] ** 0.5)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    return block.astype(np.float32)


def vectors_dtype(choice: str, n: int) -> np.dtype[Any]:
    """The dtype of the vectors file: ``"auto"`` is float16 from :data:`FLOAT16_FROM` on.

    10M x 1152 float32 is 46 GB, and the ``ivfpq`` store beside it another 23 GB of
    float16: more than the 62 GB this machine's disk has free. float16 (what ``ivfpq``
    keeps anyway) halves the file; chunks are turned back into float32 where used.
    """
    if choice == "auto":
        choice = "float16" if n >= FLOAT16_FROM else "float32"
    return np.dtype(choice)


def make_vectors(path: Path, n: int, dim: int, seed: int, dtype: np.dtype[Any]) -> None:
    """``n`` unit vectors into a ``.npy`` file of ``dtype``, one chunk in RAM at a time."""
    basis, centres = _generator(dim)
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, dim))
    for start in range(0, n, _CHUNK):
        rows = min(_CHUNK, n - start)
        out[start : start + rows] = _block(rng, rows, basis, centres)
    out.flush()
    del out


def exact_top10(data: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact top 10 ids and scores of each query, by brute force over chunks."""
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(data), _CHUNK):
        scores = queries @ np.asarray(data[start : start + _CHUNK], dtype=np.float32).T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best = np.concatenate([best, scores], axis=1)
        best_ids = np.concatenate([best_ids, ids], axis=1)
        top = np.argpartition(-best, 9, axis=1)[:, :10]
        best = np.take_along_axis(best, top, axis=1)
        best_ids = np.take_along_axis(best_ids, top, axis=1)
    order = np.argsort(-best, axis=1)
    return np.take_along_axis(best_ids, order, axis=1), np.take_along_axis(best, order, axis=1)


class _Peak:
    """Samples RssAnon and RssFile of this process every 20 ms; keeps the peaks."""

    def __init__(self) -> None:
        self.anon = self.file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> tuple[int, int]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) * 1024
        return fields.get("RssAnon", 0), fields.get("RssFile", 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            anon, file = self.now()
            self.anon, self.file = max(self.anon, anon), max(self.file, file)
            self._stop.wait(0.02)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        return self.anon, self.file


def _store_kwargs(tier: str, n: int) -> dict[str, Any]:
    from zeroshot_vision.stores import IvfPqSettings

    if tier != "ivfpq":
        return {"index": tier}
    # lists_for(n) asks for 4 x sqrt(n) lists: 16,384 at 10M. Trained on 40 points a list
    # (FAISS wants at least 39), that is k-means on 655k vectors: 655k x 16,384 x 1152
    # x 2 flops x 10 iterations = 2.5e14 flops, over 2 hours at the 33 GFLOPS numpy
    # measured on these two cores. 4,096 lists on 164k vectors cost 16 times less
    # (1.5e13 flops, about 8 minutes); a query then scans more codes per list probed
    # (2,441 at 10M), which nprobe trades against recall (see --ivfpq-sweep).
    lists = min(IvfPqSettings(expected_count=n).lists_for(n), IVFPQ_MOST_LISTS)
    train = min(n, max(50_000, 40 * lists))
    settings = IvfPqSettings(train_size=train, lists=lists, expected_count=n)
    return {"index": "ivfpq", "ivfpq": settings}


def child_build(tier: str, data_path: Path, folder: Path, every: int) -> dict[str, Any]:
    """Build a store of ``tier`` from the vectors file, streaming; save it to ``folder``.

    It commits every ``every`` vectors (0: once, at the end), as an ingest commits its
    batches: an ``ivfpq`` store holds the records added since its last commit in RAM.
    """
    import logging

    from zeroshot_vision.stores import FaissStore

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    peak = _Peak()
    data = np.load(data_path, mmap_mode="r")
    n, dim = data.shape
    started = time.perf_counter()
    store = FaissStore.open(folder, dim=dim, **_store_kwargs(tier, n))
    since = 0
    for start in range(0, n, _CHUNK):
        rows = np.asarray(data[start : start + _CHUNK], dtype=np.float32)
        store.upsert([str(i) for i in range(start, start + len(rows))], rows)
        since += len(rows)
        if every and since >= every:
            store.commit()
            since = 0
            print(
                f"{time.strftime('%H:%M:%S')} build {tier}: {start + len(rows):,} of {n:,} "
                f"committed after {time.perf_counter() - started:.0f} s, RssAnon "
                f"{_Peak.now()[0] / 1e9:.2f} GB",
                file=sys.stderr,
                flush=True,
            )
    store.commit()
    build = time.perf_counter() - started
    anon, file = peak.stop()
    return {"build_s": build, "build_rss_anon": anon, "build_rss_file": file, "kind": repr(store)}


def child_serve(folder: Path, queries_path: Path, truth_path: Path) -> dict[str, Any]:
    """Load the saved store and time queries: one at a time, then with 8 threads."""
    import faiss

    from zeroshot_vision.stores import FaissStore

    faiss.omp_set_num_threads(1)
    peak = _Peak()
    started = time.perf_counter()
    store = FaissStore.load(folder)
    load_s = time.perf_counter() - started
    queries = np.load(queries_path)
    truth = np.load(truth_path)
    latencies, found = [], 0
    for query, exact in zip(queries, truth):
        t0 = time.perf_counter()
        hits = store.query(query, k=10)
        latencies.append(time.perf_counter() - t0)
        found += len({int(h.id) for h in hits} & set(exact.tolist()))
    with ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda q: store.query(q, k=10), queries))
        qps = len(queries) / (time.perf_counter() - t0)
    anon_now, file_now = _Peak.now()
    anon, file = peak.stop()
    latencies.sort()
    return {
        "load_s": load_s,
        "recall10": found / (10 * len(queries)),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "qps8": qps,
        "serve_rss_anon": anon,
        "serve_rss_file": file,
        "serve_rss_anon_end": anon_now,
        "serve_rss_file_end": file_now,
    }


TAKEN_FROM = 1_500_000_000
"""Unix seconds of the first record's ``taken``; each next one is 37 s later."""
ALBUMS = 5000
TAGS = 1000


def _record_meta(i: int) -> dict[str, Any]:
    """Metadata like an index folder's photo records: a path, sizes, when it was taken (Unix
    seconds, as :func:`zeroshot_vision._images.exif.photo_metadata` gives it), a camera, an
    album (one of :data:`ALBUMS`) and two tags (a place kind, one of :data:`TAGS`)."""
    return {
        "path": f"photos/{2000 + i % 25}/{i % 12 + 1:02d}/IMG_{i:08d}.jpg",
        "width": 4032,
        "height": 3024,
        "bytes": 2_000_000 + i % 999_983,
        "taken": TAKEN_FROM + 37 * i,
        "camera": ("Canon EOS R5", "iPhone 15 Pro", "Pixel 8")[i % 3],
        "album": f"album-{i % ALBUMS:05d}",
        "tags": [("beach", "city", "forest")[i % 3], f"tag-{i % TAGS:04d}"],
    }


DAY = 86_400


def selective_filters() -> dict[str, dict[str, Any]]:
    """The filters a user of a photo archive runs, most of them selective, by name."""
    day = TAKEN_FROM + 5 * DAY  # within the first 12 days: every size from 30k on has it
    return {
        "album = one (1 in 5,000)": {"album": "album-00042"},
        "album IN 5": {"album": {"$in": [f"album-{a:05d}" for a in (1, 7, 42, 999, 4321)]}},
        "one day (taken range)": {"taken": {"$gte": day, "$lt": day + DAY}},
        "tag = one (list field)": {"tags": "tag-0042"},
        "camera and one day": {"camera": "Pixel 8", "taken": {"$gte": day, "$lt": day + DAY}},
        "camera, width >= 4000 (a third)": {"camera": "Pixel 8", "width": {"$gte": 4000}},
        "taken = no record's": {"taken": TAKEN_FROM + 1},
    }


def child_records(where: str, n: int, folder: Path) -> dict[str, Any]:
    """RssAnon that ``n`` records (id, key, metadata) take, and lookups and filters on them.

    ``where="ram"`` holds them in the store's in-RAM table (three dicts: how every kind
    kept them before, and how flat/HNSW stores still do); ``"sqlite"`` loads the saved
    ``"ivfpq"`` store in ``folder`` (dimension 8, so the records dominate), whose records
    stay in their SQLite file.
    """
    import gc
    from dataclasses import replace

    import faiss  # noqa: F401  (its libraries are not what is measured: loaded in both)

    from zeroshot_vision.stores import FaissStore
    from zeroshot_vision.stores._faiss_records import RecordFilter, RecordTable

    gc.collect()
    before, _ = _Peak.now()
    if where == "ram":
        table = RecordTable()
        for i in range(n):
            table.put(f"photo-{i:09d}", i, _record_meta(i))
    else:
        store = FaissStore.load(folder)
        table = store._records  # the table itself: the codes are not what is measured
    gc.collect()
    anon, file = _Peak.now()
    overlay = table.overlay_size if where == "sqlite" else n
    rng = np.random.default_rng(3)
    picks = [f"photo-{i:09d}" for i in rng.integers(0, n, 1000)]
    t0 = time.perf_counter()
    for item in picks:
        table.get(item)
    lookup_us = 1e6 * (time.perf_counter() - t0) / len(picks)
    keys = [int(k) for k in rng.integers(0, n, 10)]
    t0 = time.perf_counter()
    for _ in range(100):
        table.by_keys(keys)
    hits_us = 1e6 * (time.perf_counter() - t0) / 100
    broad = RecordFilter.of({"camera": "Pixel 8", "width": {"$gte": 4000}})  # a third
    t0 = time.perf_counter()
    matched = len(table.matching_keys(broad))
    filter_s = time.perf_counter() - t0
    narrow = RecordFilter.of({"taken": TAKEN_FROM + 1})  # no record was taken then
    t0 = time.perf_counter()
    narrow_matched = len(table.matching_keys(narrow))
    narrow_s = time.perf_counter() - t0
    # The same filters evaluated in Python over the scanned rows (as before they ran in
    # SQL), on the records file only: RAM tables have no SQL.
    python_s = narrow_python_s = None
    if where == "sqlite":
        t0 = time.perf_counter()
        assert len(table.matching_keys(replace(broad, sql=None))) == matched
        python_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert len(table.matching_keys(replace(narrow, sql=None))) == narrow_matched
        narrow_python_s = time.perf_counter() - t0
    selective = _time_selective(table, store if where == "sqlite" else None)
    return {
        "where": where,
        "records": n,
        "selective": selective,
        "in_python": overlay,
        "rss_anon": anon - before,
        "rss_file": file,
        "lookup_us": lookup_us,
        "hits10_us": hits_us,
        "filter_s": filter_s,
        "filter_matched": matched,
        "narrow_filter_s": narrow_s,
        "narrow_filter_matched": narrow_matched,
        "filter_python_s": python_s,
        "narrow_filter_python_s": narrow_python_s,
    }


def _time_selective(table: Any, store: Any) -> list[dict[str, Any]]:
    """Each of :func:`selective_filters` on ``table``: the keys it finds, timed; for a
    records file, also as it ran before the filter index (one SQL scan of every row's
    JSON, the same file in the same process) and a whole filtered query (k=10)."""
    from zeroshot_vision.stores._faiss_records import RecordFilter

    base = table._state.base
    query = np.ones(8, np.float32) / np.sqrt(8)
    out = []
    for name, filter in selective_filters().items():
        compiled = RecordFilter.of(filter)
        t0 = time.perf_counter()
        matched = len(table.matching_keys(compiled))
        row: dict[str, Any] = {"filter": name, "matched": matched}
        row["s"] = time.perf_counter() - t0
        if base is not None and base.fields is not None:
            fields, base.fields = base.fields, None  # as before the index: a scan
            t0 = time.perf_counter()
            assert len(table.matching_keys(compiled)) == matched
            row["scan_s"] = time.perf_counter() - t0
            base.fields = fields
            t0 = time.perf_counter()
            hits = store.query(query, k=10, filter=filter)
            row["query_ms"] = 1e3 * (time.perf_counter() - t0)
            assert len(hits) == min(10, matched)
        out.append(row)
    return out


def child_save(folder: Path) -> dict[str, Any]:
    """Seconds and bytes of writing the loaded store's records file (one generation, no
    overlay) again: without a filter index, with the base's index copied (what each
    new generation does), and with the index built from every record (the first save
    of a store, or of a file written before the index)."""
    from zeroshot_vision.stores import FaissStore

    store = FaissStore.load(folder)
    table = store._records
    base = table._state.base
    out: dict[str, Any] = {}
    for name in ("no index", "index copied", "index built"):
        target = folder.parent / f"save-test-{os.getpid()}.sqlite"
        target.unlink(missing_ok=True)
        fields = base.fields
        if name == "index built":
            base.fields = None  # the writer then builds the terms from the records
        t0 = time.perf_counter()
        table.write_sqlite(target, base.next_key, () if name == "no index" else None)
        out[name] = {"s": time.perf_counter() - t0, "bytes": target.stat().st_size}
        base.fields = fields
        target.unlink()
    return out


def index_build_table(n: int, work: Path) -> list[dict[str, Any]]:
    """Build time and records-file size of the records store with the filter index on
    every field, on four declared fields and on none: one after the other, this process."""
    rows = []
    print(f"\nBuilding the {_label(n)} records store (commit every 50,000, then one generation)")
    print("| fields indexed | build s | records files MB |")
    print("| --- | ---: | ---: |")
    choices: tuple[tuple[str, list[str] | None], ...] = (
        ("every field (the default)", None),
        ("album, camera, taken, tags", ["album", "camera", "taken", "tags"]),
        ("none (indexed_fields=[])", []),
    )
    for name, fields in choices:
        folder = work / f"index-build-{_label(n)}"
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        build_records_store(n, folder, fields)
        compact_records_store(folder)
        build_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in folder.glob("records-*.sqlite"))
        shutil.rmtree(folder, ignore_errors=True)
        print(f"| {name} | {build_s:.1f} | {size / 1e6:.0f} |", flush=True)
        rows.append({"index_build": name, "records": n, "build_s": build_s, "bytes": size})
    return rows


def build_records_store(n: int, folder: Path, indexed_fields: list[str] | None = None) -> None:
    """An ``"ivfpq"`` store of ``n`` dimension-8 vectors with photo-like metadata."""
    from zeroshot_vision.stores import FaissStore, IvfPqSettings

    rng = np.random.default_rng(4)
    settings = IvfPqSettings(train_size=20_000, expected_count=n, indexed_fields=indexed_fields)
    store = FaissStore.open(folder, dim=8, index="ivfpq", ivfpq=settings)
    for start in range(0, n, 50_000):
        rows = min(50_000, n - start)
        vectors = rng.standard_normal((rows, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"photo-{i:09d}" for i in range(start, start + rows)]
        store.upsert(ids, vectors, [_record_meta(i) for i in range(start, start + rows)])
        store.commit()


def compact_records_store(folder: Path) -> None:
    """Fold the store's deltas into one new generation (as its next large save would)."""
    from zeroshot_vision.stores import FaissStore

    store = FaissStore.load(folder)
    if store._records.overlay_size:
        store._rewrite = True  # the next save writes a whole generation, not a delta
        store.commit()


def records_table(n: int, work: Path, keep: bool) -> list[dict[str, Any]]:
    """Records in RAM against records in SQLite, each measured in its own process.

    With ``keep``, the store is left in ``work`` and used again by the next run.
    """
    folder = work / f"records-{_label(n)}"
    started = time.perf_counter()
    if not (keep and (folder / "store.json").exists()):
        shutil.rmtree(folder, ignore_errors=True)
        build_records_store(n, folder)
    build_s = time.perf_counter() - started
    rows = [_child(["records", "ram", str(n), str(folder)])]
    rows.append(_child(["records", "sqlite", str(n), str(folder)]))
    rows[-1]["where"] = "sqlite, as built (deltas in the overlay)"
    compact_records_store(folder)
    rows.append(_child(["records", "sqlite", str(n), str(folder)]))
    rows[-1]["where"] = "sqlite, one generation (no overlay)"
    records_bytes = sum(p.stat().st_size for p in folder.glob("records-*.sqlite"))
    print(
        f"\nRecords (id, key, photo-like metadata) of {_label(n)}; store built in {build_s:.0f} s"
    )
    print(
        "| records in | records in Python | RssAnon MB | RssAnon per 1M, MB | "
        "10M estimate, GB | get(id) us | 10 hits us | filter s (matched) | "
        "filter matching none, s | same two in Python, s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        per_million = row["rss_anon"] / (n / 1e6)
        row["rss_anon_per_million"] = per_million
        print(
            f"| {row['where']} | {row['in_python']:,} | {row['rss_anon'] / 1e6:.0f} | "
            f"{per_million / 1e6:.0f} | "
            f"{10 * per_million / 1e9:.2f} | {row['lookup_us']:.1f} | {row['hits10_us']:.0f} | "
            f"{row['filter_s']:.2f} ({row['filter_matched']}) | "
            f"{row['narrow_filter_s']:.2f} ({row['narrow_filter_matched']}) | "
            + (
                f"{row['filter_python_s']:.2f} / {row['narrow_filter_python_s']:.2f} |"
                if row["filter_python_s"] is not None
                else "|"
            )
        )
    print(f"SQLite records file: {records_bytes / 1e6:.0f} MB on disk")
    rows.append({"where": "sqlite file", "records": n, "disk_bytes": records_bytes})
    print(
        f"\nSelective filters over {_label(n)} records: keys found with the filter index "
        "against one SQL scan of every record's JSON (as before it: the same file, same "
        "process), and a whole query (k=10) with the filter; RAM: the in-RAM table's Python "
        "scan (flat/HNSW stores)"
    )
    print(
        "| filter | matched | RAM s | file+overlay: index s | scan s | ratio | "
        "one file: index s | scan s | ratio | query ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ram, overlay, one = (row["selective"] for row in rows[:3])
    for a, b, c in zip(ram, overlay, one):
        print(
            f"| {a['filter']} | {c['matched']:,} | {a['s']:.3f} | {b['s']:.4f} | "
            f"{b['scan_s']:.2f} | {b['scan_s'] / b['s']:.0f}x | {c['s']:.4f} | "
            f"{c['scan_s']:.2f} | {c['scan_s'] / c['s']:.0f}x | {c['query_ms']:.1f} |"
        )
    saves = _child(["save", str(folder)])
    print(f"\nWriting the {_label(n)} records file again (one generation):")
    print("| records file | seconds | MB |")
    print("| --- | ---: | ---: |")
    for name, found in saves.items():
        print(f"| {name} | {found['s']:.1f} | {found['bytes'] / 1e6:.0f} |")
    rows.append({"where": "records file writes", "records": n, "saves": saves})
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def child_sweep(
    folder: Path, queries_path: Path, truth_path: Path, settings: str
) -> dict[str, Any]:
    """Recall@10 and single-query latency of a saved ``"ivfpq"`` store at other
    ``nprobe x rerank`` settings (``"32x20,64x20"``), without rebuilding it."""
    from dataclasses import replace

    import faiss

    from zeroshot_vision.stores import FaissStore

    faiss.omp_set_num_threads(1)
    store = FaissStore.load(folder)
    index = store._index  # the settings are the store's own: the sweep sets them per run
    queries, truth = np.load(queries_path), np.load(truth_path)
    out = []
    for pair in settings.split(","):
        nprobe, rerank = (int(x) for x in pair.split("x"))
        index.settings = replace(index.settings, nprobe=nprobe, rerank=rerank)
        for query in queries[:50]:  # warm the vectors file's pages for this setting
            store.query(query, k=10)
        latencies, found = [], 0
        for query, exact in zip(queries, truth):
            t0 = time.perf_counter()
            hits = store.query(query, k=10)
            latencies.append(time.perf_counter() - t0)
            found += len({int(h.id) for h in hits} & set(exact.tolist()))
        latencies.sort()
        out.append(
            {
                "nprobe": nprobe,
                "rerank": rerank,
                "recall10": found / (10 * len(queries)),
                "p50_ms": 1000 * statistics.median(latencies),
                "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            }
        )
    return {"sweep": out, "kind": repr(store)}


def _child(args: list[str]) -> dict[str, Any]:
    # The child's progress (stderr) goes straight to ours, so a long build shows in the log.
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed (exit {done.returncode}), see above")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pinecone_month(n: int, dim: int, queries_per_month: int) -> dict[str, float]:
    """Monthly Pinecone serverless cost of ``n`` vectors and a query volume."""
    record_gb = n * (4 * dim + 100) / 1e9  # vector, id and a little metadata
    storage = record_gb * PINECONE_PRICES["storage_per_gb_month"]
    read_units = max(0.25, record_gb) * queries_per_month
    reads = read_units / 1e6 * PINECONE_PRICES["read_units_per_million"]
    total = max(storage + reads, PINECONE_PRICES["minimum_per_month"])
    return {"gb": record_gb, "storage": storage, "reads": reads, "total": total}


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f}"


def _drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only, Linux): the next reads go to the disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def child_cold(folder: Path, queries_path: Path) -> dict[str, Any]:
    """Latency of an ``"ivfpq"`` store on rows no query has read: the page cache emptied
    (if this process may), then queries made of two held-out ones (``q[i] + 0.7 q[i+n/2]``,
    normalized), whose candidates the serve and sweep passes never fetched. Reports the
    whole query and, apart, the re-ranking's row reads."""
    import faiss

    from zeroshot_vision.stores import FaissStore

    faiss.omp_set_num_threads(1)
    dropped = _drop_page_cache()
    store = FaissStore.load(folder)
    held_out = np.load(queries_path).astype(np.float32)
    half = len(held_out) // 2
    fresh = held_out[:half] + 0.7 * held_out[half : 2 * half]
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    vectors = store._index.vectors  # timed apart: the reads are what a cold disk slows
    read_rows, reads = vectors.rows, []

    def timed_rows(keys: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        rows = read_rows(keys)
        reads.append(time.perf_counter() - t0)
        return rows

    vectors.rows = timed_rows
    latencies = []
    for query in fresh:
        t0 = time.perf_counter()
        store.query(query, k=10)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    reads.sort()
    return {
        "page_cache_dropped": dropped,
        "queries": len(fresh),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "rerank_reads_p50_ms": 1000 * statistics.median(reads),
        "rows_per_query": store._index.settings.rerank * 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k", help="comma-separated: 100k,1M,3M,10M")
    parser.add_argument("--tiers", default="flat,hnsw,hnsw-sq8,ivfpq")
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--work", type=Path, help="where vectors and stores go (default: temp)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument(
        "--records",
        help="also measure where ids and metadata live (RAM dicts or SQLite) at this many "
        "records, e.g. 1M; '--sizes none' skips the vector tiers",
    )
    parser.add_argument(
        "--index-build",
        metavar="N",
        help="also time building N records with the filter index on every field, on four "
        "and on none, e.g. 600k",
    )
    parser.add_argument(
        "--ivfpq-sweep",
        metavar="NPROBExRERANK,...",
        help="after building the ivfpq tier, also measure it at these settings "
        "(e.g. 32x20,64x20,64x40): recall@10 and latency, same store, same queries",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16"),
        default="auto",
        help=f"of the vectors file; auto: float16 from {FLOAT16_FROM:,} vectors on",
    )
    parser.add_argument(
        "--commit-every",
        type=int,
        default=COMMIT_EVERY,
        help="vectors between commits while building (0: one commit at the end)",
    )
    parser.add_argument(
        "--drop-vectors",
        action="store_true",
        help="delete a size's vectors file once its last tier is built (frees the disk "
        "for serving; the queries and their exact top 10 are kept)",
    )
    parser.add_argument(
        "--keep-stores", action="store_true", help="leave the built stores in --work"
    )
    parser.add_argument(
        "--cold-disk",
        action="store_true",
        help="after serving the ivfpq tier, empty the page cache (as root) and time fresh "
        "queries whose re-ranking rows come from the disk",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        if what == "cold":
            result = child_cold(Path(rest[0]), Path(rest[1]))
        elif what == "sweep":
            result = child_sweep(Path(rest[0]), Path(rest[1]), Path(rest[2]), rest[3])
        elif what == "records":
            result = child_records(rest[0], int(rest[1]), Path(rest[2]))
        elif what == "save":
            result = child_save(Path(rest[0]))
        elif what == "build":
            result = child_build(rest[0], Path(rest[1]), Path(rest[2]), int(rest[3]))
        else:
            result = child_serve(Path(rest[0]), Path(rest[1]), Path(rest[2]))
        print(json.dumps(result))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "dim": args.dim,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit_every": args.commit_every,
    }
    header = (
        "| N | tier | build s | build RssAnon GB | build RssFile GB | serve RssAnon GB | "
        "serve RssFile GB | disk GB | recall@10 | p50 ms | p99 ms | QPS x8 |"
    )
    print(header)
    print("|" + " --- |" * 12)
    sizes = [] if args.sizes == "none" else [_size(item) for item in args.sizes.split(",")]
    for n in sizes:
        data_path = work / f"vectors-{_label(n)}.npy"
        queries_path, truth_path = (
            work / f"queries-{_label(n)}.npy",
            work / f"truth-{_label(n)}.npy",
        )
        dtype = vectors_dtype(args.dtype, n)
        if data_path.exists() and np.load(data_path, mmap_mode="r").dtype != dtype:
            data_path.unlink()  # made by a run with another --dtype
            truth_path.unlink(missing_ok=True)
        if not data_path.exists():
            started = time.perf_counter()
            make_vectors(data_path, n, args.dim, seed=1, dtype=dtype)
            print(f"made {_label(n)} {dtype} vectors in {time.perf_counter() - started:.0f} s")
        if not truth_path.exists():
            basis, centres = _generator(args.dim)
            queries = _block(np.random.default_rng(2), args.queries, basis, centres)
            started = time.perf_counter()
            truth, scores = exact_top10(np.load(data_path, mmap_mode="r"), queries)
            print(f"exact top 10 at {_label(n)} in {time.perf_counter() - started:.0f} s")
            np.save(queries_path, queries)
            np.save(truth_path, truth)
            spread = np.percentile(scores[:, 0], [5, 50, 95])
            meta[f"nn_cosine_p5_p50_p95_{_label(n)}"] = [round(float(x), 3) for x in spread]
            print(f"nearest-neighbour cosine at {_label(n)}: p5/p50/p95 = {spread.round(3)}")
        meta[f"vectors_dtype_{_label(n)}"] = str(dtype)
        tiers = args.tiers.split(",")
        for tier in tiers:
            folder = work / f"store-{tier}-{_label(n)}"
            shutil.rmtree(folder, ignore_errors=True)
            row: dict[str, Any] = {"n": n, "tier": tier, "load_avg_before": os.getloadavg()}
            row.update(_child(["build", tier, str(data_path), str(folder), str(args.commit_every)]))
            if args.drop_vectors and tier == tiers[-1]:
                data_path.unlink()
            row["disk_bytes"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            row.update(_child(["serve", str(folder), str(queries_path), str(truth_path)]))
            if tier == "ivfpq" and args.ivfpq_sweep:
                sweep = _child(
                    ["sweep", str(folder), str(queries_path), str(truth_path), args.ivfpq_sweep]
                )
                row["sweep"] = sweep["sweep"]
            if tier == "ivfpq" and args.cold_disk:
                row["cold"] = _child(["cold", str(folder), str(queries_path)])
            row["load_avg_after"] = os.getloadavg()
            if not args.keep_stores:
                shutil.rmtree(folder, ignore_errors=True)
            rows.append(row)
            print(
                f"| {_label(n)} | {tier} | {row['build_s']:.0f} | {_gb(row['build_rss_anon'])} | "
                f"{_gb(row['build_rss_file'])} | {_gb(row['serve_rss_anon'])} | "
                f"{_gb(row['serve_rss_file'])} | {_gb(row['disk_bytes'])} | "
                f"{row['recall10']:.3f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['qps8']:.0f} |",
                flush=True,
            )
            if "cold" in row:
                cold = row["cold"]
                print(
                    f"|   | ivfpq, rows from the disk | | | | | | | | {cold['p50_ms']:.2f} | "
                    f"{cold['p99_ms']:.2f} | | (re-ranking reads p50 "
                    f"{cold['rerank_reads_p50_ms']:.2f} ms)",
                    flush=True,
                )
            for point in row.get("sweep", []):
                print(
                    f"|   | ivfpq nprobe {point['nprobe']} rerank {point['rerank']} | | | | | | | "
                    f"{point['recall10']:.3f} | {point['p50_ms']:.2f} | {point['p99_ms']:.2f} | |",
                    flush=True,
                )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if args.records:
        rows.extend(records_table(_size(args.records), work, keep=args.work is not None))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if args.index_build:
        rows.extend(index_build_table(_size(args.index_build), work))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nPinecone serverless, {PINECONE_PRICES['source']}:")
    print("| N | GB stored | storage $/month | 1M queries $/month | 10M queries $/month |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n in (1_000_000, 3_000_000, 10_000_000):
        low, high = pinecone_month(n, args.dim, 10**6), pinecone_month(n, args.dim, 10**7)
        print(
            f"| {_label(n)} | {low['gb']:.1f} | {low['storage']:.2f} | {low['total']:.2f} | "
            f"{high['total']:.2f} |"
        )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
