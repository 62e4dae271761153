"""The server's own CPU per ``POST /v1/embeddings`` request, the model left out.

    python benchmarks/bench_server_overhead.py [--preset base] [--requests 300] [--rounds 3]
        [--python OTHER/.venv/bin/python ...]

One text is asked for again and again, so after the first request the encoder's text
cache answers and no forward pass runs: what is left is the request's path through
uvicorn, FastAPI, the thread hops to the model thread and back, and writing the vector
as JSON (``float``) or base64. A server (``zsv serve --model`` of a random SigLIP of the
preset's shape, whose vectors have the real width: 768 numbers for base) runs as a
subprocess of each interpreter given (default: this one; ``--python`` adds another
checkout's virtual environment, e.g. the main branch's, to compare in the same run), and
its CPU time (user + system, from ``/proc``) over ``--requests`` sequential keep-alive
requests is divided by their number. Interleaved rounds (interpreter by interpreter,
encoding by encoding), medians. Writes ``benchmarks/results/server_overhead.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import model_folder

SERVE = """
import sys
from zeroshot_vision.server._run import serve
from zeroshot_vision.server._service import BatchOptions
serve(
    [],
    port=0,
    model=sys.argv[1],
    batching=BatchOptions(max_batch_size=32, max_wait_ms=5.0, queue_size=256),
    on_listening=lambda host, port: print(f"listening {port}", flush=True),
)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(python: str, folder: Path, encoding: str, requests: int) -> tuple[float, float]:
    """Server CPU seconds and wall seconds per request of a fresh server of ``python``."""
    process = subprocess.Popen(
        [python, "-c", SERVE, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd="/",  # the interpreter's own installed package, not this checkout's src
    )
    assert process.stdout is not None
    try:
        port = int(process.stdout.readline().split()[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        deadline = time.monotonic() + 600
        while True:
            try:
                connection.request("GET", "/readyz")
                answer = connection.getresponse()
                answer.read()
                if answer.status == 200:
                    break
            except OSError:
                connection.close()
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.5)
        body = json.dumps(
            {"model": str(folder), "input": "a cached text", "encoding_format": encoding}
        )

        def post() -> None:
            connection.request("POST", "/v1/embeddings", body, {"content-type": "application/json"})
            answer = connection.getresponse()
            data = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}: {data[:200]!r}")

        for _ in range(30):  # the cache filled, the code paths warm
            post()
        used, start = cpu_seconds(process.pid), time.perf_counter()
        for _ in range(requests):
            post()
        wall = time.perf_counter() - start
        return (cpu_seconds(process.pid) - used) / requests, wall / requests
    finally:
        process.terminate()
        process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python", action="append", default=[], help="another interpreter")
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    args = parser.parse_args()
    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    root = args.models or Path("/tmp/zsv-bench-models")
    folder = model_folder(root, args.preset)
    pythons = [sys.executable, *args.python]
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for python in pythons:
            for encoding in ("float", "base64"):
                name = f"{python} {encoding}"
                used, took = measure(python, folder, encoding, args.requests)
                cpu.setdefault(name, []).append(used)
                wall.setdefault(name, []).append(took)
    rows = []
    for python in pythons:
        for encoding in ("float", "base64"):
            name = f"{python} {encoding}"
            baseline = f"{pythons[-1]} {encoding}"
            rows.append(
                [python, encoding, 1000 * _report.median(cpu[name]),
                 _report.ratio(_report.median(cpu[name]), _report.median(cpu[baseline])),
                 1000 * _report.median(wall[name])]
            )  # fmt: skip
    table = _report.table(
        f"[{args.preset}] server CPU per POST /v1/embeddings answered from the text cache "
        f"({args.requests} sequential requests, median of {args.rounds} rounds; ratio "
        "against the last interpreter)",
        ["interpreter", "encoding", "server CPU ms/request", "ratio", "wall ms/request"],
        rows,
        raw={f"{name} (CPU s)": values for name, values in cpu.items()},
    )
    _report.write("server_overhead", [table], arguments=vars(args) | {"models": str(root)})


if __name__ == "__main__":
    main()
