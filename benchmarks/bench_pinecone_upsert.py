"""Upsert N x D random vectors through the real pinecone SDK into the local test server.

Run from the repository root::

    python benchmarks/bench_pinecone_upsert.py                 # 25,000 x 1152
    python benchmarks/bench_pinecone_upsert.py --count 2500 --concurrency 1

Prints one row per run: how many vectors went out, in how many requests, the largest
request body, the wall time and the throughput. The server is in-process on 127.0.0.1,
so this measures the store's batching and the SDK's encoding, not the network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from zeroshot_vision.stores._pinecone import MAX_REQUEST_BYTES, PineconeStore
from zeroshot_vision.testing._pinecone_server import PineconeTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def run(count: int, dim: int, concurrency: int, seed: int = 0) -> dict[str, float]:
    """Upsert ``count`` random vectors and return what the server saw."""
    import pinecone

    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    ids = [f"photo-{i:06d}" for i in range(count)]
    metadata = [{"path": f"/photos/{i:06d}.jpg", "tags": ["bench"]} for i in range(count)]
    server = PineconeTestServer(dimension=dim, max_request_bytes=MAX_REQUEST_BYTES)
    with server as host:
        index = pinecone.Index(host=host, api_key="benchmark")
        try:
            store = PineconeStore(index, dim=dim, namespace="bench", max_concurrency=concurrency)
            started = time.perf_counter()
            store.upsert(ids, vectors, metadata)
            seconds = time.perf_counter() - started
            assert len(store) == count
        finally:
            index.close()
    upserts = server.requests_for("upsert")
    assert all(r.status == 200 for r in upserts)
    return {
        "vectors": count,
        "requests": len(upserts),
        "max_request_bytes": max(r.body_bytes for r in upserts),
        "max_vectors_per_request": max(r.items for r in upserts),
        "seconds": seconds,
        "vectors_per_s": count / seconds,
        "max_in_flight": server.max_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=25_000)
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    rows = [run(args.count, args.dim, concurrency) for concurrency in args.concurrency]
    base = rows[0]["vectors_per_s"]
    table = _report.table(
        f"{args.count:,} x {args.dim} vectors into the local Pinecone server "
        f"(baseline: concurrency {args.concurrency[0]}, same run)",
        ["concurrency", "requests", "largest body B", "vectors/request", "seconds",
         "vectors/s", "speed-up vs baseline"],
        [
            [c, r["requests"], r["max_request_bytes"], r["max_vectors_per_request"],
             r["seconds"], r["vectors_per_s"], r["vectors_per_s"] / base]
            for c, r in zip(args.concurrency, rows)
        ],
    )  # fmt: skip
    _report.write("pinecone_upsert", [table], arguments=vars(args))


if __name__ == "__main__":
    main()
