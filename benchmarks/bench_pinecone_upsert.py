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
import time

import numpy as np

from zeroshot_vision.stores.pinecone import MAX_REQUEST_BYTES, PineconeStore
from zeroshot_vision.testing.pinecone_server import PineconeTestServer


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
    header = (
        f"{'vectors':>8} {'dim':>5} {'conc':>4} {'requests':>8} {'max req bytes':>13} "
        f"{'max vec/req':>11} {'seconds':>8} {'vectors/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for concurrency in args.concurrency:
        row = run(args.count, args.dim, concurrency)
        print(
            f"{row['vectors']:>8,} {args.dim:>5} {concurrency:>4} {row['requests']:>8,} "
            f"{row['max_request_bytes']:>13,} {row['max_vectors_per_request']:>11,} "
            f"{row['seconds']:>8.2f} {row['vectors_per_s']:>10,.0f}"
        )


if __name__ == "__main__":
    main()
