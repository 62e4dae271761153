"""FaissStore index types: query latency, recall@10, build time and memory.

    python benchmarks/bench_ann.py [--n 50000] [--dim 1152] [--queries 200]
        [--indexes hnsw hnsw-sq8 flat] [--ef-search 32 64 128 256] [--out PATH]
        [--data latent|isolated]

Builds one store per index type from the same synthetic clustered unit vectors, then
times single queries (k = 10, one at a time, through ``FaissStore.query``) at each search
breadth and counts how many of the exact top 10 each returns. Memory is the size of the
serialized FAISS index over the float32 bytes of the vectors (``n * dim * 4``). Prints a
table and writes the rows as JSON to ``--out`` (default ``benchmarks/results/ann.json``)
after each index type, so a run cut short by a time limit keeps what it measured. Builds
use every core; queries run with ``--query-threads`` FAISS threads (default 1: one query
at a time gains nothing from more, and on a busy machine their spinning only adds waits).

Two kinds of data (``--data``):

* ``latent`` (default): clusters in a low-dimensional latent space (``--latent-dim``,
  32: about the intrinsic dimension estimated for image embeddings), mapped into ``dim``
  dimensions by a random orthonormal map, plus full-dimensional noise. Similarity varies
  continuously, as between real photos: near clusters are more alike than far ones.
* ``isolated``: ``n / --cluster-size`` random centres with isotropic noise around each:
  every cluster is equally unlike every other (cosine about 0), so a greedy graph walk
  has nothing to lead it to the right one. A stress case for HNSW, not a likely one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from zeroshot_vision import FaissStore

_BATCH = 10_000


def latent(n: int, dim: int, *, seed: int, clusters: int, latent_dim: int) -> np.ndarray:
    """``n`` unit vectors from clusters on a ``latent_dim``-dimensional subspace."""
    rng = np.random.default_rng(0)  # the same map and centres for data and queries
    basis, _ = np.linalg.qr(rng.standard_normal((dim, latent_dim)))
    basis = basis.T.astype(np.float32)  # (latent_dim, dim), orthonormal rows
    centres = rng.standard_normal((clusters, latent_dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, _BATCH):
        rows = min(_BATCH, n - start)
        points = centres[rng.integers(0, clusters, rows)]
        points = points + 0.5 * rng.standard_normal((rows, latent_dim), dtype=np.float32)
        block = points @ basis
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        block += rng.standard_normal((rows, dim), dtype=np.float32) * (0.3 / dim**0.5)
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def isolated(n: int, dim: int, *, seed: int, spread: float, clusters: int) -> np.ndarray:
    """``n`` unit vectors: a random centre each, plus noise of norm about ``spread``."""
    rng = np.random.default_rng(0)  # the same centres for data and queries
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, _BATCH):
        rows = min(_BATCH, n - start)
        noise = rng.standard_normal((rows, dim), dtype=np.float32) * (spread / dim**0.5)
        block = centres[rng.integers(0, clusters, rows)] + noise
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The row numbers of each query's exact top ``k``, by brute force in blocks."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(data), 100_000):
        scores = queries @ data[start : start + 100_000].T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_rows = np.concatenate([best_rows, rows], axis=1)
        top = np.argsort(-best_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, top, axis=1)
        best_rows = np.take_along_axis(best_rows, top, axis=1)
    return best_rows


def index_bytes(store: FaissStore) -> int:
    """The size of the store's serialized FAISS index, written to a temp file (streamed,
    so a large index is not copied in memory)."""
    import faiss

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.faiss"
        faiss.write_index(store._index, str(path))
        return path.stat().st_size


def bench(
    index: str,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    efs: list[int],
    query_threads: int,
) -> list[dict[str, Any]]:
    import faiss

    n, dim = data.shape
    build_threads = faiss.omp_get_max_threads()
    store = FaissStore(dim, index=index)
    start = time.perf_counter()
    for first in range(0, n, _BATCH):
        rows = data[first : first + _BATCH]
        store.upsert([f"v{i}" for i in range(first, first + len(rows))], rows)
    build_s = time.perf_counter() - start
    memory = index_bytes(store) / (n * dim * 4)
    faiss.omp_set_num_threads(query_threads)
    rows_out = []
    for ef in efs if index != "flat" else [0]:
        latencies, found = [], 0
        for query, expected in zip(queries, truth):
            t = time.perf_counter()
            hits = store.query(query, k=truth.shape[1], ef_search=ef or None)
            latencies.append((time.perf_counter() - t) * 1000)
            found += len({f"v{i}" for i in expected} & {h.id for h in hits})
        latencies.sort()
        rows_out.append(
            {
                "index": index,
                "ef_search": ef or None,
                "n": n,
                "dim": dim,
                "p50_ms": statistics.median(latencies),
                "p95_ms": latencies[max(0, int(len(latencies) * 0.95) - 1)],
                "recall_at_10": found / truth.size,
                "build_s": build_s,
                "memory_vs_float32": memory,
            }
        )
        print(_row(rows_out[-1]), flush=True)
    faiss.omp_set_num_threads(build_threads)
    return rows_out


_COLUMNS = ["index", "ef_search", "p50 ms", "p95 ms", "recall@10", "build s", "memory"]


def _row(row: dict[str, Any]) -> str:
    cells = [
        row["index"],
        "-" if row["ef_search"] is None else str(row["ef_search"]),
        f"{row['p50_ms']:.2f}",
        f"{row['p95_ms']:.2f}",
        f"{row['recall_at_10']:.3f}",
        f"{row['build_s']:.1f}",
        f"{row['memory_vs_float32']:.3f}",
    ]
    return " | ".join(f"{c:>10}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="vectors in each store")
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--indexes", nargs="+", default=["hnsw", "hnsw-sq8", "flat"])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--data", choices=["latent", "isolated"], default="latent")
    parser.add_argument("--latent-dim", type=int, default=32, help="latent: its dimension")
    parser.add_argument("--spread", type=float, default=1.5, help="isolated: noise norm")
    parser.add_argument("--cluster-size", type=int, default=1000, help="vectors per cluster")
    parser.add_argument("--query-threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ann.json")
    args = parser.parse_args()
    clusters = max(1, args.n // args.cluster_size)
    if args.data == "latent":
        shape = {"clusters": clusters, "latent_dim": args.latent_dim}
        data = latent(args.n, args.dim, seed=1, **shape)
        queries = latent(args.queries, args.dim, seed=2, **shape)
        described = f"clusters on a {args.latent_dim}-d subspace"
    else:
        data = isolated(args.n, args.dim, seed=1, spread=args.spread, clusters=clusters)
        queries = isolated(args.queries, args.dim, seed=2, spread=args.spread, clusters=clusters)
        described = f"isolated clusters, spread {args.spread}"
    start = time.perf_counter()
    truth = exact_top(data, queries, 10)
    setup = {
        "data": args.data,
        "latent_dim": args.latent_dim if args.data == "latent" else None,
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "spread": args.spread if args.data == "isolated" else None,
        "clusters": clusters,
        "query_threads": args.query_threads,
        "ground_truth_s": time.perf_counter() - start,
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
    }
    print(
        f"{args.n:,} x {args.dim} unit vectors ({clusters:,} {described}), "
        f"{args.queries} single queries on {args.query_threads} "
        "thread(s), k=10, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(" | ".join(f"{c:>10}" for c in _COLUMNS), flush=True)
    rows: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for index in args.indexes:
        rows += bench(index, data, queries, truth, args.ef_search, args.query_threads)
        setup["load_average_at_end"] = os.getloadavg()
        args.out.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
