"""FaissStore: upsert rate and query latency at Unsplash Lite scale and above.

    python benchmarks/bench_search.py [--sizes 25000 100000] [--dim 1152] [--queries 50]

Prints one table row per collection size: upsert throughput, then the median and p95
latency of single-vector queries, unfiltered and with a filter that keeps ~10%.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from zeroshot_vision import FaissStore


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

    def latencies(flt: dict[str, object] | None) -> list[float]:
        out = []
        for probe in probes:
            t = time.perf_counter()
            store.query(probe, k=10, filter=flt)
            out.append((time.perf_counter() - t) * 1000)
        return sorted(out)

    plain, filtered = latencies(None), latencies({"bucket": 3})
    p95 = max(0, int(len(plain) * 0.95) - 1)
    return {
        "upsert/s": size / upsert_s,
        "query p50 ms": statistics.median(plain),
        "query p95 ms": plain[p95],
        "filtered p50 ms": statistics.median(filtered),
        "filtered p95 ms": filtered[p95],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    columns = [
        "vectors",
        "upsert/s",
        "query p50 ms",
        "query p95 ms",
        "filtered p50 ms",
        "filtered p95 ms",
    ]
    print(f"FaissStore, dim={args.dim}, k=10, {args.queries} queries each")
    print(" | ".join(f"{c:>15}" for c in columns))
    for size in args.sizes:
        row = bench(size, args.dim, args.queries)
        print(" | ".join([f"{size:>15,}"] + [f"{row[c]:>15,.1f}" for c in columns[1:]]))


if __name__ == "__main__":
    main()
