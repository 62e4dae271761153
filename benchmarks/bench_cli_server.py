"""``zsv search --server URL`` in a fresh process, split: start, imports, request, server.

    python benchmarks/bench_cli_server.py [--preset base] [--rounds 15] [--models DIR]
        [--backend onnx --precision int8]

A server (``zsv serve``'s code, batching on) holds a small index of a random SigLIP of
the preset's shape. Each round runs, interleaved, in fresh processes of this Python:

* ``python -c pass``: the interpreter's own start;
* ``python -c "<the imports of zsv search --server>"``: start plus the client path's
  imports (the parser with only ``search`` registered, the search command, the client);
* ``python -m zeroshot_vision._cli search TEXT --index I --server URL``: the whole command;

and, from this (already running) process, one ``POST /v1/search`` with the same kind of
text (the server's time plus loopback HTTP). ``--backend``/``--precision`` build the index
with that encoder route, which the server then loads for it (``onnx``/``int8``: ONNX
Runtime with int8 MatMuls, the text pass several times cheaper). The split in the table is the
difference of medians: imports = (imports run - start), request and printing = (whole
command - imports run), of which the server's share is that request. Target: whole
command p50 <= 150 ms. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    "import zeroshot_vision._cli.parser as p, zeroshot_vision._cli.search, "
    "zeroshot_vision.server._client; p.build_parser('search')"
)


BEFORE = (
    "import zeroshot_vision._cli.parser as p, zeroshot_vision.server._client; p.build_parser(); "
    "from importlib.metadata import version; version('zeroshot-vision')"
)
"""What the same imports cost before this round: every command's module, and the version."""

CPU: dict[str, list[float]] = {}


def run(argv: list[str], name: str = "") -> float:
    """Wall seconds of a fresh process; its CPU seconds (user + system) go to ``CPU[name]``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(name, []).append(used)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--photos", type=int, default=8, help="JPEGs in the index")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--name", default="cli-server", help="results/<name>.json")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--precision", default=None, choices=("float32", "int8"))
    args = parser.parse_args()
    info = _report.machine()
    load_before = os.getloadavg()
    print(f"machine: {_report.describe(info)}")
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.server._client import ServerClient

    texts = distinct_texts()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = model_folder(args.models or root / "models", args.preset)
        make_jpegs(root / "photos", args.photos, size=(800, 600))
        with SearchEngine.create(
            root / "index", model=str(folder), backend=args.backend, precision=args.precision
        ) as engine:
            engine.index_folder(root / "photos")
        server = Server(root / "index", 32, 5.0)
        index = str(root / "index")
        try:
            client = ServerClient(server.url)
            client.search(index="bench", query="warm up", k=5)
            start_name = "interpreter start (python -c pass)"
            imports_name = "start + imports of the --server path"
            before_name = "start + the same imports before this round"
            whole_name = "zsv search --server (whole command)"
            request_name = "one POST /v1/search from a running process"
            seconds: dict[str, list[float]] = {
                name: [] for name in (start_name, imports_name, whole_name, request_name)
            }
            seconds[before_name] = []
            for _ in range(args.rounds):
                seconds[start_name].append(run(["-c", "pass"], start_name))
                seconds[imports_name].append(run(["-c", IMPORTS], imports_name))
                seconds[before_name].append(run(["-c", BEFORE], before_name))
                seconds[whole_name].append(
                    run(["-m", "zeroshot_vision._cli", "search", next(texts), "--index", index,
                         "--server", server.url, "-k", "5"], whole_name)
                )  # fmt: skip
                # A new connection each round: the server closes idle keep-alive ones.
                start = time.perf_counter()
                ServerClient(server.url).search(index="bench", query=next(texts), k=5)
                seconds[request_name].append(time.perf_counter() - start)
        finally:
            server.stop()
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}; after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    p50 = {name: 1000 * _report.median(values) for name, values in seconds.items()}
    cpu = {name: 1000 * _report.median(values) for name, values in CPU.items()}
    names = list(seconds)
    rows = [
        [name, p50[name], 1000 * _report.percentile(seconds[name], 0.95), cpu.get(name)]
        for name in names
    ]
    start, imports, whole, warm = (p50[name] for name in names[:4])
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
            ["what", "p50 ms", "p95 ms", "CPU ms (p50)"],
            rows,
            raw=seconds,
        ),
        _report.table(
            "imports of the --server path, CPU time (less sensitive to load than wall time)",
            ["what", "CPU ms", "vs before"],
            [
                [
                    name,
                    cpu[name] - cpu[start_name],
                    (cpu[name] - cpu[start_name]) / (cpu[before_name] - cpu[start_name]),
                ]
                for name in (before_name, imports_name)
            ],
        ),
        _report.table(
            f"[{args.preset}, {args.backend} {args.precision or 'default'}] where the whole "
            "command's p50 goes (target <= 150 ms)",
            ["part", "ms", "share"],
            split,
        ),
    ]
    arguments = vars(args) | {"load_before": load_before, "load_after": load_after}
    _report.write(args.name, tables, arguments=arguments, info=info)


if __name__ == "__main__":
    main()
