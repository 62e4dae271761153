"""``zsv search --server URL`` in a fresh process, split: start, imports, request, server.

    python benchmarks/bench_cli_server.py [--preset base] [--rounds 15] [--models DIR]

A server (``zsv serve``'s code, batching on) holds a small index of a random SigLIP of
the preset's shape. Each round runs, interleaved, in fresh processes of this Python:

* ``python -c pass``: the interpreter's own start;
* ``python -c "<the imports of zsv search --server>"``: start plus the client path's
  imports (the parser with only ``search`` registered, the search command, the client);
* ``python -m zeroshot_vision.cli search TEXT --index I --server URL``: the whole command;

and, from this (already running) process, one ``POST /v1/search`` with the same kind of
text (the server's time plus loopback HTTP). The split in the table is the
difference of medians: imports = (imports run - start), request and printing = (whole
command - imports run), of which the server's share is that request. Target: whole
command p50 <= 150 ms. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import distinct_texts, make_jpegs, model_folder
from bench_server import Server

IMPORTS = (
    "import zeroshot_vision.cli.parser as p, zeroshot_vision.cli.search, "
    "zeroshot_vision.server.client; p.build_parser('search')"
)


def run(argv: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--photos", type=int, default=8, help="JPEGs in the index")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--name", default="cli-server", help="results/<name>.json")
    args = parser.parse_args()
    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.server.client import ServerClient

    texts = distinct_texts()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = model_folder(args.models or root / "models", args.preset)
        make_jpegs(root / "photos", args.photos, size=(800, 600))
        with SearchEngine.create(root / "index", model=str(folder)) as engine:
            engine.index_folder(root / "photos")
        server = Server(root / "index", 32, 5.0)
        index = str(root / "index")
        try:
            client = ServerClient(server.url)
            client.search(index="bench", query="warm up", k=5)
            seconds: dict[str, list[float]] = {
                "interpreter start (python -c pass)": [],
                "start + imports of the --server path": [],
                "zsv search --server (whole command)": [],
                "one POST /v1/search from a running process": [],
            }
            for _ in range(args.rounds):
                seconds["interpreter start (python -c pass)"].append(run(["-c", "pass"]))
                seconds["start + imports of the --server path"].append(run(["-c", IMPORTS]))
                seconds["zsv search --server (whole command)"].append(
                    run(["-m", "zeroshot_vision.cli", "search", next(texts), "--index", index,
                         "--server", server.url, "-k", "5"])
                )  # fmt: skip
                # A new connection each round: the server closes idle keep-alive ones.
                start = time.perf_counter()
                ServerClient(server.url).search(index="bench", query=next(texts), k=5)
                seconds["one POST /v1/search from a running process"].append(
                    time.perf_counter() - start
                )
        finally:
            server.stop()
    p50 = {name: 1000 * _report.median(values) for name, values in seconds.items()}
    names = list(seconds)
    rows = [[name, p50[name], 1000 * _report.percentile(seconds[name], 0.95)] for name in names]
    start, imports, whole, warm = (p50[name] for name in names)
    split = [
        ["interpreter start", start, start / whole],
        ["zsv's imports and parser", imports - start, (imports - start) / whole],
        ["server: text forward + search + HTTP (warm request)", warm, warm / whole],
        ["the rest: connect, arguments, printing", whole - imports - warm,
         (whole - imports - warm) / whole],
    ]  # fmt: skip
    tables = [
        _report.table(
            f"[{args.preset}] fresh processes, p50 of {args.rounds} interleaved rounds",
            ["what", "p50 ms", "p95 ms"],
            rows,
            raw=seconds,
        ),
        _report.table(
            f"[{args.preset}] where the whole command's p50 goes (target <= 150 ms)",
            ["part", "ms", "share"],
            split,
        ),
    ]
    _report.write(args.name, tables, arguments=vars(args), info=info)


if __name__ == "__main__":
    main()
