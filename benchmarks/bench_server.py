"""``zsv serve``: the CLI through a running server, HTTP against in-process, and batching.

    python benchmarks/bench_server.py [--preset base] [--photos 12] [--rounds 5]

A random SigLIP of a real shape (``--preset``, default ``base``: the shape of
google/siglip-base-patch16-224; random weights cost exactly what trained ones do), built
offline, indexes ``--photos`` distinct JPEGs. Servers run as subprocesses on loopback
(``zeroshot_vision.server._run.serve``, what ``zsv serve`` runs). Same-run baselines:

* ``zsv search --server URL`` end to end (a fresh CLI process each time) against
  ``zsv search`` without a server (which imports torch and loads the model each time):
  p50 of each; target p50 <= 150 ms with a server.
* ``POST /v1/search`` against ``SearchEngine.search`` in this process, for one text
  query (a distinct text each time, so the text cache never answers) and one image; the
  in-process call both on the main thread (what a script does) and on a worker thread
  (where the server computes: on some CPUs torch runs many times faster off the main
  thread, so both are measured rather than assumed).
* Throughput with ``--clients`` concurrent clients sending distinct text queries to
  ``/v1/search``, batching on (``--max-batch-size``, ``--max-wait-ms``) against off
  (batch size 1), interleaved rounds; the batch sizes the server saw come from its
  ``/metrics``. Target: batching on >= 2x.
* Throughput against the in-process roofline (``--concurrency 1,8,32``): text searches
  per second through ``POST /v1/search`` (batching on, ``c`` clients with keep-alive
  connections) against ``SearchEngine.search`` in this process on the same distinct
  texts, asked ``c`` at a time as one batched call (the encoder's own batched throughput
  plus the store's search; one query alone at ``c = 1``). Interleaved rounds; the ratio
  is the server's requests/s over the in-process searches/s of the same round. Target:
  >= 0.8. ``--only concurrency`` runs this table alone.
* ``POST /v1/embeddings`` (the OpenAI-compatible route) against the encoder's own batched
  throughput (``--only embeddings``), for texts and for images (JPEG bytes in-process, the
  same JPEGs as ``data:image/jpeg;base64,`` items over HTTP), one input per request from
  ``c`` clients against ``Encoder.encode_texts``/``encode_images`` with ``c`` inputs per
  call, interleaved rounds; target >= 0.8 at ``c = 8``. Then p50 at ``c = 1``: server
  against one in-process call, batching on (the ``c = 1`` runs) and off (a second server
  with batch size 1, started after the first stops), so batching's own cost (the gap of
  the gaps) can be held against its configured ``--max-wait-ms``. Runs last.
  Beside each rate it gives the CPU time each side spent per input (from ``/proc``, every
  thread and child process): the benchmark's process and its decoding workers for the
  in-process calls; the server's process tree, and the benchmark's own process (the load
  generator: ``c`` threads on keep-alive ``http.client`` connections) for the requests.
  On a shared machine the rates measure waiting for a core as much as work; the CPU
  times do not.

Both sides run torch with the same OpenMP wait policy (``--omp-wait-policy``, default
``PASSIVE``, what ``zsv serve`` sets): it is set in this process before torch is
imported, and the server subprocesses inherit it.

Writes ``benchmarks/results/server.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import distinct_texts, make_jpegs, model_folder

SERVE = """
import sys
from zeroshot_vision.server._run import serve
from zeroshot_vision.server._service import BatchOptions, parse_index_spec
serve(
    [parse_index_spec(sys.argv[1])],
    port=0,
    batching=BatchOptions(
        max_batch_size=int(sys.argv[2]), max_wait_ms=float(sys.argv[3]), queue_size=256
    ),
    on_listening=lambda host, port: print(f"listening {port}", flush=True),
)
"""


class Server:
    """A server subprocess over one index; stopped with SIGTERM."""

    def __init__(
        self,
        index: Path,
        max_batch_size: int,
        max_wait_ms: float,
        env: dict[str, str] | None = None,
    ) -> None:
        import httpx

        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, f"bench={index}", str(max_batch_size), str(max_wait_ms)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("the server exited while loading")
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def batch_sizes(self, kind: str = "text") -> tuple[float, float, dict[str, float]]:
        """Batches of ``kind`` (``text``/``image``) the model thread ran so far: count,
        items, and the histogram's buckets."""
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=30).text

        def value(name: str) -> float:
            found = re.search(name + r'\{kind="' + kind + r'"\} (\S+)', text)
            return float(found.group(1)) if found else 0.0

        count, total = value("zsv_batch_size_count"), value("zsv_batch_size_sum")
        buckets = {
            le: float(value)
            for le, value in re.findall(
                r'zsv_batch_size_bucket\{kind="' + kind + r'",le="([^"]+)"\} (\S+)', text
            )
        }
        return count, total, buckets

    def model(self) -> str:
        """The name of the loaded model, as ``GET /v1/models`` gives it."""
        import httpx

        return str(httpx.get(self.url + "/v1/models", timeout=30).json()["data"][0]["id"])

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, every thread) the server process has used so far;
        ``None`` where ``/proc`` does not tell."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def tree_cpu_seconds(pid: int, leave_out: int | None = None) -> float:
    """CPU time (user + system, every thread) of process ``pid`` and its descendants so
    far, from ``/proc`` (NaN where ``/proc`` does not tell), without the subtree of
    ``leave_out`` (this process without its server subprocess)."""
    total, pending, seen = 0.0, [pid], {leave_out}
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            if current == pid:
                return math.nan
            continue  # a child that just exited
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in tasks:
            with contextlib.suppress(OSError):  # a thread that just ended
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return total


def cli_search(args: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "zeroshot_vision._cli", "search", *args],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - start


def bench_cli(index: Path, server: Server, rounds: int, texts: Iterator[str]) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"zsv search (no server)": [], "zsv search --server": []}
    for _ in range(rounds):
        text = next(texts)
        seconds["zsv search (no server)"].append(cli_search([text, "--index", str(index)]))
        for _ in range(3):  # the server's runs are short: more of them
            text = next(texts)
            seconds["zsv search --server"].append(
                cli_search([text, "--index", str(index), "--server", server.url])
            )
    base = _report.median(seconds["zsv search (no server)"])
    rows = [
        [name, 1000 * _report.median(s), 1000 * _report.percentile(s, 0.95), len(s),
         _report.ratio(base, _report.median(s))]
        for name, s in seconds.items()
    ]  # fmt: skip
    return _report.table(
        "zsv search end to end (a fresh process each; target p50 <= 150 ms with a server)",
        ["route", "p50 ms", "p95 ms", "runs", "speed-up vs no server"],
        rows,
        raw=seconds,
    )


def bench_http(
    index: Path, server: Server, photo: Path, rounds: int, texts: Iterator[str]
) -> dict[str, Any]:
    import httpx

    from zeroshot_vision._engine import SearchEngine

    image = base64.b64encode(photo.read_bytes()).decode()
    worker = ThreadPoolExecutor(1)  # the server computes on a thread too: see the docstring
    with SearchEngine.open(index) as engine, httpx.Client(base_url=server.url, timeout=60) as http:
        engine.encoder.warm_up()
        http.post("/v1/search", json={"query": "warm up"})
        current = {"text": ""}

        def next_text() -> None:
            current["text"] = next(texts)

        def text_main() -> None:
            engine.search(current["text"])

        def text_thread() -> None:
            worker.submit(engine.search, current["text"] + " thread").result()

        def text_http() -> None:
            http.post("/v1/search", json={"query": current["text"] + " http"}).raise_for_status()

        def image_main() -> None:
            engine.search_by_image(photo)

        def image_thread() -> None:
            worker.submit(engine.search_by_image, photo).result()

        def image_http() -> None:
            http.post("/v1/search", json={"images": [image], "k": 10}).raise_for_status()

        seconds = _report.interleaved(
            {
                "next": next_text,
                "text: in-process, main thread": text_main,
                "text: in-process, worker thread": text_thread,
                "text: POST /v1/search": text_http,
                "image: in-process, main thread": image_main,
                "image: in-process, worker thread": image_thread,
                "image: POST /v1/search": image_http,
            },
            rounds,
        )
    worker.shutdown()
    seconds.pop("next")
    rows = []
    for name, values in seconds.items():
        kind = name.split(":")[0]
        main = _report.median(seconds[f"{kind}: in-process, main thread"])
        thread = _report.median(seconds[f"{kind}: in-process, worker thread"])
        rows.append(
            [name, 1000 * _report.median(values), 1000 * _report.percentile(values, 0.95),
             _report.ratio(_report.median(values), main),
             _report.ratio(_report.median(values), thread)]
        )  # fmt: skip
    return _report.table(
        f"one query, HTTP against in-process (median of {rounds})",
        ["route", "p50 ms", "p95 ms", "time vs main thread", "time vs worker thread"],
        rows,
        raw=seconds,
    )


class _Client:
    """A keep-alive HTTP/1.1 connection from the standard library (light on the GIL)."""

    def __init__(self, url: str, model: str = "") -> None:
        import http.client
        from urllib.parse import urlsplit

        self.model = model  # what /v1/embeddings requests name
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=300)

    def post(self, path: str, document: dict[str, Any]) -> None:
        """POST ``document`` as JSON to ``path``; raise unless the answer is 200."""
        import http.client

        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        try:
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the idle connection (its keep-alive timeout, 5 s, passes
            # while 32 clients warm up one by one): reconnect once, as HTTP clients do.
            self.connection.close()
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {payload[:200]!r}")

    def search(self, text: str) -> None:
        self.post("/v1/search", {"query": text})

    def ping(self) -> None:
        """Open the connection with a request that leaves the model alone."""
        self.connection.request("GET", "/v1/models")
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /v1/models answered {response.status}")

    def embed(self, item: str) -> None:
        """One input (a text or a ``data:image/`` URL) through ``POST /v1/embeddings``."""
        document = {"input": item, "model": self.model, "encoding_format": "base64"}
        self.post("/v1/embeddings", document)

    def close(self) -> None:
        self.connection.close()


def _server_rate(
    url: str,
    clients: int,
    texts: list[str],
    send: Callable[[_Client, str], None] = _Client.search,
    warm: str | None = "warm up",
    model: str = "",
) -> tuple[float, list[float]]:
    """Requests/s and latencies of ``clients`` threads sharing ``texts`` (one a request).

    ``send`` makes one request of one item (default: a text search); ``warm`` is sent on
    each connection before the clock starts (``None``: a ``GET /v1/models`` only opens it,
    for a model already warm whose requests are too slow to send one per client).
    """
    lock = threading.Lock()
    pending = iter(texts)
    latencies: list[float] = []
    connections = [_Client(url, model) for _ in range(clients)]
    for connection in connections:  # connect and warm each before the clock starts
        if warm is None:
            connection.ping()
        else:
            send(connection, warm)

    def client(connection: _Client) -> None:
        while True:
            with lock:
                text = next(pending, None)
            if text is None:
                return
            start = time.perf_counter()
            send(connection, text)
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, connections))
    elapsed = time.perf_counter() - start
    for connection in connections:
        connection.close()
    return len(texts) / elapsed, latencies


def bench_concurrency(
    index: Path, server: Server, args: argparse.Namespace, texts: Iterator[str]
) -> dict[str, Any]:
    from zeroshot_vision._engine import SearchEngine

    levels = [int(c) for c in args.concurrency.split(",")]
    rates: dict[str, list[float]] = {}
    latencies: dict[int, list[float]] = {c: [] for c in levels}
    worker = ThreadPoolExecutor(1)  # the server computes on a thread; so does this side
    with SearchEngine.open(index) as engine:
        engine.encoder.warm_up()
        engine.search("warm up")

        def in_process(batch: list[str]) -> None:
            if len(batch) == 1:
                worker.submit(engine.search, batch[0]).result()
            else:
                worker.submit(engine.search, batch).result()

        for _ in range(args.throughput_rounds):
            for c in levels:
                count = max(args.queries, c)
                queries = [next(texts) for _ in range(count)]
                start = time.perf_counter()
                for i in range(0, count, c):
                    in_process(queries[i : i + c])
                rates.setdefault(f"in-process c={c}", []).append(
                    count / (time.perf_counter() - start)
                )
                queries = [next(texts) for _ in range(count)]
                rate, seen = _server_rate(server.url, c, queries)
                rates.setdefault(f"server c={c}", []).append(rate)
                latencies[c].extend(seen)
    worker.shutdown()
    rows = []
    for c in levels:
        local, remote = rates[f"in-process c={c}"], rates[f"server c={c}"]
        ratios = [served / own for served, own in zip(remote, local)]
        rows.append(
            [c, _report.median(local), _report.median(remote), _report.median(ratios),
             1000 * _report.median(latencies[c]), 1000 * _report.percentile(latencies[c], 0.95)]
        )  # fmt: skip
    return _report.table(
        f"text search throughput, zsv serve (batching max {args.max_batch_size}, "
        f"{args.max_wait_ms:g} ms) against in-process batched search on the same texts "
        f"({args.queries} queries per level, median of {args.throughput_rounds} interleaved "
        "rounds; target ratio >= 0.8)",
        ["concurrency", "in-process searches/s", "server requests/s", "server / in-process",
         "server p50 ms", "server p95 ms"],
        rows,
        raw={name: [1 / r for r in values] for name, values in rates.items()},
    )  # fmt: skip


def _embedding_inputs(
    kind: str, count: int, texts: Iterator[str], images: list[bytes], start: int
) -> tuple[list[Any], list[str]]:
    """``count`` inputs for the encoder in-process and the same ones as request items.

    Texts are new each call (neither side's text cache answers); images are the JPEGs in
    turn from ``start``, as bytes in-process and as ``data:image/jpeg;base64,`` URLs.
    """
    if kind == "texts":
        batch = [next(texts) for _ in range(count)]
        return batch, batch
    chosen = [images[(start + i) % len(images)] for i in range(count)]
    urls = ["data:image/jpeg;base64," + base64.b64encode(b).decode() for b in chosen]
    return chosen, urls


def _in_process_embeddings(
    encoder: Any, worker: ThreadPoolExecutor, kind: str, inputs: list[Any], c: int
) -> tuple[float, list[float]]:
    """Inputs/s of ``encode_texts``/``encode_images``, ``c`` inputs a call; seconds per call."""
    encode = encoder.encode_texts if kind == "texts" else encoder.encode_images
    calls: list[float] = []
    start = time.perf_counter()
    for i in range(0, len(inputs), c):
        began = time.perf_counter()
        worker.submit(encode, inputs[i : i + c], batch_size=c).result()
        calls.append(time.perf_counter() - began)
    return len(inputs) / (time.perf_counter() - start), calls


def _lone_latencies(
    server: Server,
    encoder: Any,
    worker: ThreadPoolExecutor,
    args: argparse.Namespace,
    texts: Iterator[str],
    images: list[bytes],
    warm: dict[str, str],
) -> dict[str, list[float]]:
    """Seconds of single requests to ``server``, each after one in-process call of its input."""
    seconds: dict[str, list[float]] = {}
    client = _Client(server.url, server.model())
    try:
        for item in warm.values():
            client.embed(item)
        for turn in range(args.latency_rounds):
            for kind in warm:
                local, remote = _embedding_inputs(kind, 1, texts, images, turn)
                _, calls = _in_process_embeddings(encoder, worker, kind, local, 1)
                seconds.setdefault(f"{kind} in-process", []).extend(calls)
                began = time.perf_counter()
                client.embed(remote[0])
                seconds.setdefault(f"{kind} server", []).append(time.perf_counter() - began)
    finally:
        client.close()
    return seconds


def bench_embeddings(
    index: Path, on: Server, args: argparse.Namespace, texts: Iterator[str], photos: list[Path]
) -> list[dict[str, Any]]:
    """``POST /v1/embeddings`` against the encoder in-process; then p50 at ``c = 1``.

    Stops ``on`` before its last part, which starts a batching-off server to tell the
    cost of batching from that of HTTP (one server at a time).
    """
    from zeroshot_vision._engine import SearchEngine

    levels = [int(c) for c in args.concurrency.split(",")]
    kinds = ["texts", "images"]
    counts = {"texts": args.queries, "images": args.images_per_level}
    images = [p.read_bytes() for p in photos]
    rates: dict[str, list[float]] = {}
    latencies: dict[str, list[float]] = {}
    # CPU seconds per input of each phase: this process (and its decoding workers) for
    # the in-process calls; the server's tree, and this process (the clients), for HTTP.
    # The server is this process's child: its subtree is left out of this process's.
    cpu: dict[str, list[float]] = {}
    sizes: dict[str, list[float]] = {}  # the server's mean batch in each phase
    me = os.getpid()
    server_pid = on.process.pid
    worker = ThreadPoolExecutor(1)  # the server computes on a thread; so does this side
    with SearchEngine.open(index) as engine:
        encoder = engine.encoder
        encoder.warm_up(images=True)
        warm = {k: _embedding_inputs(k, 1, texts, images, 0)[1][0] for k in kinds}
        model = on.model()
        first = _Client(on.url, model)
        for item in warm.values():  # the server's model warm for both inputs
            first.embed(item)
        first.close()
        turn = 0
        for _ in range(args.throughput_rounds):
            for kind in kinds:
                for c in levels:
                    count = max(counts[kind], c)
                    # The same inputs on both sides (each process has its own text cache).
                    local, remote = _embedding_inputs(kind, count, texts, images, turn)
                    mine = tree_cpu_seconds(me, server_pid)
                    rate, calls = _in_process_embeddings(encoder, worker, kind, local, c)
                    cpu.setdefault(f"{kind} in-process c={c}", []).append(
                        (tree_cpu_seconds(me, server_pid) - mine) / count
                    )
                    rates.setdefault(f"{kind} in-process c={c}", []).append(rate)
                    latencies.setdefault(f"{kind} in-process c={c}", []).extend(calls)
                    batches = on.batch_sizes(kind[:-1])
                    mine, theirs = tree_cpu_seconds(me, server_pid), tree_cpu_seconds(server_pid)
                    rate, seen = _server_rate(on.url, c, remote, _Client.embed, None, model)
                    cpu.setdefault(f"{kind} server c={c}", []).append(
                        (tree_cpu_seconds(server_pid) - theirs) / count
                    )
                    cpu.setdefault(f"{kind} clients c={c}", []).append(
                        (tree_cpu_seconds(me, server_pid) - mine) / count
                    )
                    after = on.batch_sizes(kind[:-1])
                    sizes.setdefault(f"{kind} c={c}", []).append(
                        (after[1] - batches[1]) / max(1.0, after[0] - batches[0])
                    )
                    rates.setdefault(f"{kind} server c={c}", []).append(rate)
                    latencies.setdefault(f"{kind} server c={c}", []).extend(seen)
                    turn += count
        rows = []
        for kind in kinds:
            for c in levels:
                local, remote = rates[f"{kind} in-process c={c}"], rates[f"{kind} server c={c}"]
                ratios = [served / own for served, own in zip(remote, local)]
                seen = latencies[f"{kind} server c={c}"]
                own_cpu = _report.median(cpu[f"{kind} in-process c={c}"])
                server_cpu = _report.median(cpu[f"{kind} server c={c}"])
                rows.append(
                    [kind, c, _report.median(local), _report.median(remote),
                     _report.median(ratios), 1000 * _report.median(seen),
                     1000 * _report.percentile(seen, 0.95), 1000 * own_cpu,
                     1000 * server_cpu, 1000 * _report.median(cpu[f"{kind} clients c={c}"]),
                     _report.ratio(own_cpu, server_cpu), _report.median(sizes[f"{kind} c={c}"])]
                )  # fmt: skip
        tables = [
            _report.table(
                f"POST /v1/embeddings throughput, zsv serve (batching max {args.max_batch_size}, "
                f"{args.max_wait_ms:g} ms; one input per request, c clients) against "
                "Encoder.encode_texts / encode_images in-process on the same inputs, c per call "
                f"({counts['texts']} texts, {counts['images']} images per level, median of "
                f"{args.throughput_rounds} interleaved rounds; target ratio >= 0.8 at c = 8)",
                ["input", "concurrency", "in-process inputs/s", "server requests/s",
                 "server / in-process", "server p50 ms", "server p95 ms",
                 "in-process CPU ms per input", "server CPU ms per request",
                 "clients CPU ms per request", "in-process CPU / server CPU",
                 "server mean batch"],
                rows,
                raw={name: [1 / r for r in values] for name, values in rates.items()},
            )
        ]  # fmt: skip
        tables[0]["raw_cpu_seconds_per_input"] = cpu
        # p50 of lone requests, each after one in-process call: batching on, then off.
        lone = {"on": _lone_latencies(on, encoder, worker, args, texts, images, warm)}
        on.stop()  # one server at a time
        off = Server(index, 1, 0.0)
        try:
            lone["off"] = _lone_latencies(off, encoder, worker, args, texts, images, warm)
        finally:
            off.stop()
    worker.shutdown()
    rows = []
    for kind in kinds:
        p50 = {
            (state, side): 1000 * _report.median(lone[state][f"{kind} {side}"])
            for state in ("on", "off")
            for side in ("in-process", "server")
        }
        on_cost = p50["on", "server"] - p50["on", "in-process"]
        off_cost = p50["off", "server"] - p50["off", "in-process"]
        batching = on_cost - off_cost
        rows.append(
            [kind, p50["on", "in-process"], p50["on", "server"], on_cost,
             p50["off", "in-process"], p50["off", "server"], off_cost, batching,
             args.max_wait_ms, batching <= args.max_wait_ms]
        )  # fmt: skip
    tables.append(
        _report.table(
            f"p50 at concurrency 1: one POST /v1/embeddings against one in-process call, "
            f"interleaved ({args.latency_rounds} of each input), with the server's batching on "
            f"(max {args.max_batch_size}, {args.max_wait_ms:g} ms), then off (batch size 1, a "
            "second server started after the first stopped). Batching's cost = "
            "(on - in-process) - (off - in-process); target <= the configured wait",
            ["input", "in-process p50 ms (on)", "server on p50 ms", "on - in-process ms",
             "in-process p50 ms (off)", "server off p50 ms", "off - in-process ms",
             "batching's cost ms", "configured wait ms", "within wait"],
            rows,
            raw={f"{name}, batching {state}": values
                 for state, measured in lone.items() for name, values in measured.items()},
        )
    )  # fmt: skip
    return tables


def throughput(url: str, clients: int, per_client: int, texts: Iterator[str]) -> dict[str, Any]:
    import httpx

    lock = threading.Lock()
    latencies: list[float] = []

    def client(_: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(per_client):
                with lock:
                    text = next(texts)
                start = time.perf_counter()
                http.post("/v1/search", json={"query": text}).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - start
    return {"rate": len(latencies) / elapsed, "latencies": latencies}


def bench_batching(
    servers: dict[str, Server], args: argparse.Namespace, texts: Iterator[str]
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    before = {name: server.batch_sizes() for name, server in servers.items()}
    for _ in range(args.throughput_rounds):
        for name, server in servers.items():
            results[name].append(throughput(server.url, args.clients, args.per_client, texts))
    rows = []
    raw: dict[str, list[float]] = {}
    base_name = next(iter(servers))
    base_rate = _report.median([r["rate"] for r in results[base_name]])
    for name, server in servers.items():
        count, total, buckets = server.batch_sizes()
        passes, items = count - before[name][0], total - before[name][1]
        latencies = [x for r in results[name] for x in r["latencies"]]
        rate = _report.median([r["rate"] for r in results[name]])
        raw[name] = [r["rate"] for r in results[name]]
        previous = before[name][2]
        spread = ", ".join(
            f"<={le}: {int(buckets[le] - previous.get(le, 0.0))}"
            for le in ("1.0", "2.0", "4.0", "8.0", "16.0", "32.0")
            if le in buckets
        )
        rows.append(
            [name, rate, _report.ratio(rate, base_rate), 1000 * _report.median(latencies),
             1000 * _report.percentile(latencies, 0.95), items / passes if passes else 0.0,
             spread]
        )  # fmt: skip
    return _report.table(
        f"{args.clients} concurrent clients, distinct text queries to /v1/search "
        f"({args.per_client} each, median of {args.throughput_rounds} interleaved rounds; "
        "target >= 2x)",
        ["server", "requests/s", "vs batching off", "p50 ms", "p95 ms", "mean batch",
         "forward passes by batch size (cumulative)"],
        rows,
        raw=raw,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--photos", type=int, default=12, help="JPEGs in the index")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the CLI and HTTP tables")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=12, help="requests per client")
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--skip-cli", action="store_true", help="leave out the CLI table")
    parser.add_argument(
        "--only",
        choices=["cli", "http", "batching", "concurrency", "embeddings"],
        action="append",
        help="run only these tables (repeatable; default: all)",
    )
    parser.add_argument("--concurrency", default="1,8,32", help="client counts to compare")
    parser.add_argument("--queries", type=int, default=64, help="queries per concurrency level")
    parser.add_argument(
        "--images-per-level", type=int, default=32, help="images per concurrency level"
    )
    parser.add_argument(
        "--latency-rounds", type=int, default=20, help="c = 1 requests, batching off"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE"],
        default="PASSIVE",
        help="OMP_WAIT_POLICY of this process and its servers (default: what zsv serve sets)",
    )
    parser.add_argument("--name", default="server", help="results/<name>.json")
    args = parser.parse_args()
    # OpenMP reads it once, when torch loads: before _report.machine() imports torch, and
    # inherited by the server subprocesses, so both sides' threads wait the same way.
    assert "torch" not in sys.modules
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    from zeroshot_vision._engine import SearchEngine

    texts = distinct_texts()
    tables: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = model_folder(args.models or root / "models", args.preset)
        photos = make_jpegs(root / "photos", args.photos, size=(800, 600))
        with SearchEngine.create(root / "index", model=str(folder)) as engine:
            engine.index_folder(root / "photos")
        print(f"[{args.preset}] indexed {len(photos)} photos; starting servers", flush=True)
        only = set(args.only or ["cli", "http", "batching", "concurrency", "embeddings"])
        if args.skip_cli:
            only.discard("cli")
        servers = {
            f"batching on (max {args.max_batch_size}, {args.max_wait_ms:g} ms)": Server(
                root / "index", args.max_batch_size, args.max_wait_ms
            )
        }
        if "batching" in only:
            servers["batching off (batch size 1)"] = Server(root / "index", 1, 0.0)
        try:
            on = next(iter(servers.values()))
            if "cli" in only:
                tables.append(bench_cli(root / "index", on, args.rounds, texts))
            if "http" in only:
                tables.append(bench_http(root / "index", on, photos[0], args.rounds * 2, texts))
            if "batching" in only:
                ordered = dict(reversed(list(servers.items())))  # the baseline (off) first
                tables.append(bench_batching(ordered, args, texts))
            if "concurrency" in only:
                tables.append(bench_concurrency(root / "index", on, args, texts))
            if "embeddings" in only:  # last: it stops the batching-on server
                tables.extend(bench_embeddings(root / "index", on, args, texts, photos))
        finally:
            for server in servers.values():
                server.stop()
    for table in tables:
        table["model"] = f"random SigLIP, {args.preset} shape ({folder.name})"
    info["load_average_after"] = list(os.getloadavg())
    print(_report.loads(info["load_average"], info["load_average_after"]))
    _report.write(args.name, tables, arguments=vars(args), info=info)


if __name__ == "__main__":
    main()
