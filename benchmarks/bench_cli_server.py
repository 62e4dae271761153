"""``zsv search --server URL`` in a fresh process, split: start, imports, request, server.

    python benchmarks/bench_cli_server.py [--preset base] [--rounds 15] [--models DIR]
        [--backend onnx --precision int8]
    python benchmarks/bench_cli_server.py --preset base --rounds 9 --models DIR \
        --routes torch,OMP_WAIT_POLICY=ACTIVE torch onnx/int8

A server (``zsv serve``'s code, batching on) holds a small index of a random SigLIP of
the preset's shape. Each round runs, interleaved, in fresh processes of this Python:

* ``python -c pass``: the interpreter's own start;
* ``python -c "<the imports of zsv search --server>"``: start plus the client path's
  imports (the parser with only ``search`` registered, the search command, the client);
* ``zsv search TEXT --index I --server URL``: the whole command, through the ``zsv`` script
  installed beside this Python (run by this Python), else ``python -m zeroshot_vision._cli``
  (whose ``runpy`` costs a few ms more);

and, from this (already running) process, one ``POST /v1/search`` with the same kind of
text (the server's time plus loopback HTTP). ``--backend``/``--precision`` build the index
with that encoder route, which the server then loads for it (``onnx``/``int8``: ONNX
Runtime with int8 MatMuls, the text pass several times cheaper). The package's bytecode is
written first (``compileall``), as a wheel's install writes it: with
``PYTHONDONTWRITEBYTECODE`` set and an editable install, every process would otherwise
compile each of its modules from source (about 30 ms of the imports here, which no
installed ``zsv`` pays). The split in the table is the
difference of medians: imports = (imports run - start), request and printing = (whole
command - imports run), of which the server's share is that request. Target: whole
command p50 <= 150 ms.

``--routes`` compares several servers in the same interleaved rounds, each
``BACKEND[/PRECISION][,VAR=VALUE...]``: the encoder route its index is built with, and
environment variables of its server process (``torch,OMP_WAIT_POLICY=ACTIVE``: torch's
threads spinning as before ``zsv serve`` made them passive; ``torch,OMP_NUM_THREADS=1``:
one torch thread). For each request the server's CPU time (user + system, all its
threads, from ``/proc``) is reported beside the wall time, with the load average before
and after the run. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
"""What the same imports cost before round three: every command's module, and the version."""

ROUND_FOUR = IMPORTS + "; import http.client, calendar, datetime, base64, encodings.idna"
"""The modules the path loaded in round four and no longer does: ``http.client`` (with
``email`` and ``ssl``), the date modules, base64, and the idna codec (which connecting with a
host name as ``str`` loads)."""


def zsv_command() -> list[str]:
    """How to start ``zsv`` with this Python: its installed script, else ``-m``."""
    script = Path(sys.executable).parent / "zsv"
    return [str(script)] if script.is_file() else ["-m", "zeroshot_vision._cli"]


def compile_bytecode() -> Path:
    """Write the bytecode of the package the processes import, as installing a wheel does."""
    import compileall

    import zeroshot_vision

    package = Path(zeroshot_vision.__file__).parent
    compileall.compile_dir(package, quiet=1)
    return package


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


@dataclass
class Route:
    """One server of the comparison: its encoder route and its process's environment."""

    spec: str
    backend: str
    precision: str | None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Route:
        route, *settings = spec.split(",")
        backend, _, precision = route.partition("/")
        if backend not in ("torch", "onnx"):
            raise SystemExit(f"--routes {spec!r}: the backend is torch or onnx")
        env = dict(setting.split("=", 1) for setting in settings)
        return cls(spec, backend, precision or None, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--photos", type=int, default=8, help="JPEGs in the index")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--name", default="cli-server", help="results/<name>.json")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--precision", default=None, choices=("float32", "int8"))
    parser.add_argument(
        "--routes",
        nargs="+",
        default=None,
        metavar="BACKEND[/PRECISION][,VAR=VALUE]",
        help="servers to compare in the same rounds (default: --backend/--precision)",
    )
    args = parser.parse_args()
    specs = args.routes or [args.backend + (f"/{args.precision}" if args.precision else "")]
    routes = [Route.parse(spec) for spec in specs]
    info = _report.machine()
    load_before = os.getloadavg()
    print(f"machine: {_report.describe(info)}")
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.server._client import ServerClient

    texts = distinct_texts()
    start_name = "interpreter start (python -c pass)"
    imports_name = "start + imports of the --server path"
    before_name = "start + the same imports before round three"
    round_four_name = "start + the same imports as round four"
    seconds: dict[str, list[float]] = {
        start_name: [], imports_name: [], before_name: [], round_four_name: []
    }  # fmt: skip
    print(f"bytecode written for {compile_bytecode()}", flush=True)
    zsv = zsv_command()
    print(f"the whole command: {sys.executable} {' '.join(zsv)} search ...", flush=True)
    server_cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = model_folder(args.models or root / "models", args.preset)
        make_jpegs(root / "photos", args.photos, size=(800, 600))
        indexes: dict[tuple[str, str | None], Path] = {}
        for route in routes:
            key = (route.backend, route.precision)
            if key not in indexes:
                indexes[key] = root / f"index-{route.backend}-{route.precision}"
                with SearchEngine.create(
                    indexes[key], model=str(folder), backend=route.backend,
                    precision=route.precision,
                ) as engine:  # fmt: skip
                    engine.index_folder(root / "photos")
        servers: dict[str, Server] = {}
        try:
            for route in routes:
                index = indexes[(route.backend, route.precision)]
                servers[route.spec] = Server(index, 32, 5.0, env=route.env)
                ServerClient(servers[route.spec].url).search(index="bench", query="warm up", k=5)
                print(f"server {route.spec} ready", flush=True)
                for name in (
                    f"{route.spec}: zsv search --server (whole command)",
                    f"{route.spec}: one POST /v1/search from a running process",
                ):
                    seconds[name] = []  # fmt: skip
            for _ in range(args.rounds):
                seconds[start_name].append(run(["-c", "pass"], start_name))
                seconds[imports_name].append(run(["-c", IMPORTS], imports_name))
                seconds[before_name].append(run(["-c", BEFORE], before_name))
                seconds[round_four_name].append(run(["-c", ROUND_FOUR], round_four_name))
                for route in routes:
                    server = servers[route.spec]
                    index = str(indexes[(route.backend, route.precision)])
                    whole_name = f"{route.spec}: zsv search --server (whole command)"
                    request_name = f"{route.spec}: one POST /v1/search from a running process"
                    seconds[whole_name].append(
                        run([*zsv, "search", next(texts), "--index", index, "--server",
                             server.url, "-k", "5"], whole_name)
                    )  # fmt: skip
                    # A new connection each round: the server closes idle keep-alive ones.
                    cpu = server.cpu_seconds()
                    start = time.perf_counter()
                    ServerClient(server.url).search(index="bench", query=next(texts), k=5)
                    seconds[request_name].append(time.perf_counter() - start)
                    after = server.cpu_seconds()
                    if cpu is not None and after is not None:
                        server_cpu.setdefault(request_name, []).append(after - cpu)
        finally:
            for server in servers.values():
                server.stop()
    load_after = os.getloadavg()
    loads = _report.loads(load_before, load_after)
    print(loads)
    p50 = {name: 1000 * _report.median(values) for name, values in seconds.items()}
    cpu = {name: 1000 * _report.median(values) for name, values in CPU.items()}
    cpu |= {name: 1000 * _report.median(values) for name, values in server_cpu.items()}
    rows = [
        [name, p50[name], 1000 * _report.percentile(seconds[name], 0.95), cpu.get(name)]
        for name in seconds
    ]
    tables = [
        _report.table(
            f"[{args.preset}] fresh processes, p50 of {args.rounds} interleaved rounds ({loads}); "
            "CPU ms: the process's own, or for a request the server's",
            ["what", "p50 ms", "p95 ms", "CPU ms (p50)"],
            rows,
            raw=seconds,
        ),
        _report.table(
            "imports of the --server path, CPU time (less sensitive to load than wall time)",
            ["what", "CPU ms", "vs before round three", "vs round four"],
            [
                [
                    name,
                    cpu[name] - cpu[start_name],
                    (cpu[name] - cpu[start_name]) / (cpu[before_name] - cpu[start_name]),
                    (cpu[name] - cpu[start_name]) / (cpu[round_four_name] - cpu[start_name]),
                ]
                for name in (before_name, round_four_name, imports_name)
            ],
        ),
    ]
    start, imports = p50[start_name], p50[imports_name]
    first_whole = p50[f"{routes[0].spec}: zsv search --server (whole command)"]
    summary = []
    for route in routes:
        whole = p50[f"{route.spec}: zsv search --server (whole command)"]
        request_name = f"{route.spec}: one POST /v1/search from a running process"
        warm = p50[request_name]
        summary.append([route.spec, whole, first_whole / whole, warm, cpu.get(request_name)])
        split = [
            ["interpreter start", start, start / whole],
            ["zsv's imports and parser", imports - start, (imports - start) / whole],
            ["server: text forward + search + HTTP (warm request)", warm, warm / whole],
            ["the rest: connect, arguments, printing", whole - imports - warm,
             (whole - imports - warm) / whole],
        ]  # fmt: skip
        tables.append(
            _report.table(
                f"[{args.preset}, {route.spec}] where the whole command's p50 goes "
                "(target <= 150 ms)",
                ["part", "ms", "share"],
                split,
            )
        )
    if len(routes) > 1:
        columns = ["server", "whole command p50 ms", f"speed-up vs {routes[0].spec}",
                   "request p50 ms", "server CPU ms per request (p50)"]  # fmt: skip
        tables.append(
            _report.table(f"[{args.preset}] routes in the same rounds ({loads})", columns, summary)
        )
    arguments = vars(args) | {
        "load_before": load_before, "load_after": load_after, "zsv": zsv, "bytecode": True
    }  # fmt: skip
    _report.write(args.name, tables, arguments=arguments, info=info)


if __name__ == "__main__":
    main()
