"""FaissStore: upsert rate and query latency at Unsplash Lite scale and above.

    python benchmarks/bench_search.py [--sizes 25000 100000] [--dim 1152] [--queries 50]

Prints one table row per collection size: upsert throughput, then the median and p95
latency of single-vector queries, unfiltered and with a filter that keeps ~10%, each beside
the plain numpy baseline measured in the same run on the same vectors (one matrix product
and ``argpartition``; filtered: the rows whose metadata match, picked per query).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from zeroshot_vision import FaissStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def bench(size: int, dim: int, queries: int, batch: int = 1000) -> dict[str, float]:
    rng = np.random.default_rng(0)
    store = FaissStore(dim)
    start = time.perf_counter()
    for first in range(0, size, batch):
        n = min(batch, size - first)
        store.upsert(
            [f"p{i}" for i in range(first, first + n)],
            rng.standard_normal((n, dim), dtype=np.float32),
            [{"bucket": i % 10} for i in range(first, first + n)],
        )
    upsert_s = time.perf_counter() - start
    probes = rng.standard_normal((queries, dim), dtype=np.float32)
    # The baseline holds the same unit vectors in one numpy matrix, with its metadata.
    rng = np.random.default_rng(0)
    matrix = np.concatenate(
        [
            rng.standard_normal((min(batch, size - first), dim), dtype=np.float32)
            for first in range(0, size, batch)
        ]
    )
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    metadata = [{"bucket": i % 10} for i in range(size)]

    def exact(probe: np.ndarray, flt: dict[str, object] | None) -> None:
        rows = np.arange(size)
        if flt is not None:
            rows = np.array([i for i, m in enumerate(metadata) if m["bucket"] == flt["bucket"]])
        scores = matrix[rows] @ (probe / np.linalg.norm(probe))
        top = np.argpartition(-scores, 10)[:10]
        rows[top[np.argsort(-scores[top])]]

    def latencies(flt: dict[str, object] | None) -> tuple[list[float], list[float]]:
        ours, baseline = [], []
        for probe in probes:  # interleaved: store, numpy, store, numpy...
            t = time.perf_counter()
            store.query(probe, k=10, filter=flt)
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            exact(probe, flt)
            baseline.append((time.perf_counter() - t) * 1000)
        return ours, baseline

    (plain, plain_np), (filtered, filtered_np) = latencies(None), latencies({"bucket": 3})
    return {
        "upsert/s": size / upsert_s,
        "query p50 ms": statistics.median(plain),
        "query p95 ms": _report.percentile(plain, 0.95),
        "numpy p50 ms": statistics.median(plain_np),
        "filtered p50 ms": statistics.median(filtered),
        "filtered p95 ms": _report.percentile(filtered, 0.95),
        "numpy filtered p50 ms": statistics.median(filtered_np),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        r = bench(size, args.dim, args.queries)
        rows.append(
            [
                size,
                r["upsert/s"],
                r["query p50 ms"],
                r["query p95 ms"],
                r["numpy p50 ms"],
                r["numpy p50 ms"] / r["query p50 ms"],
                r["filtered p50 ms"],
                r["filtered p95 ms"],
                r["numpy filtered p50 ms"],
                r["numpy filtered p50 ms"] / r["filtered p50 ms"],
            ]
        )
    table = _report.table(
        f"FaissStore, dim={args.dim}, k=10, {args.queries} queries each, against exact numpy "
        "search in the same run",
        ["vectors", "upsert/s", "query p50 ms", "query p95 ms", "numpy p50 ms",
         "speed-up vs numpy", "filtered p50 ms", "filtered p95 ms", "numpy filtered p50 ms",
         "filtered speed-up"],
        rows,
    )  # fmt: skip
    _report.write("search", [table], arguments=vars(args))


if __name__ == "__main__":
    main()
