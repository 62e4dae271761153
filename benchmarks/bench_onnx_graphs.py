"""The ONNX backend's graph and session choices, on the bare ONNX Runtime sessions.

    python benchmarks/bench_onnx_graphs.py [--preset base] [--models DIR] [--rounds 3]

For a random SigLIP of the preset's shape, exported as the backend exports it (cached in
``--models``), this builds each tower's int8 graph twice, in one run:

* **quantized as exported** (what the backend did before ``GRAPH_OPTIMIZER``);
* **fused, then quantized**: ONNX Runtime's transformer optimizer first
  (``_optimize_for_int8``, which the backend now applies to the vision tower), with the
  fused operators it found;

and times them, interleaved, in ONNX Runtime sessions set up as the backend sets them up
(one inter-op thread), with idle threads spinning (ONNX Runtime's default) or not (the
backend's setting), at the default intra-op thread count and at one thread. Inputs: a
batch of ``--batch`` random images, and a text pass of ``QUANTIZED_TEXT_PASS_ROWS`` row of 64
tokens (what a lone query costs). Each cell: wall ms and CPU ms of this process (user +
system, every thread), medians of ``--rounds`` (``--text-rounds`` for text), and the
worst cosine of the outputs to the float32 graph's. The load average before and after is
printed: on a shared machine CPU time counts the work, wall time also the waiting.
Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import model_folder


def build_graphs(folder: Path, scratch: Path) -> dict[str, dict[str, Path]]:
    """Each tower's float32 graph and its two int8 variants (as exported, fused first)."""
    from transformers import AutoConfig

    from zeroshot_vision._backends import onnx as backend

    towers, _ = backend.load_onnx_model(str(folder), precision="float32")
    config = AutoConfig.from_pretrained(folder)
    graphs: dict[str, dict[str, Path]] = {}
    for tower, source in (("vision", towers.vision_path), ("text", towers.text_path)):
        plain = scratch / f"{tower}-int8.onnx"
        backend._quantize(source, plain)
        fused_graph = scratch / f"{tower}-fused.onnx"
        started = time.perf_counter()
        # The backend fuses the vision tower only; the text tower is tried the same way.
        vision_like = type("Config", (), {"vision_config": getattr(config, f"{tower}_config")})
        fused = backend._optimize_for_int8(source, fused_graph, vision_like)
        print(f"{tower}: fused {fused} in {time.perf_counter() - started:.1f} s", flush=True)
        graphs[tower] = {"float32": source, "int8, as exported": plain}
        if fused:
            fused_int8 = scratch / f"{tower}-fused-int8.onnx"
            backend._quantize(fused_graph, fused_int8)
            graphs[tower][f"int8, fused first ({', '.join(sorted(fused))})"] = fused_int8
    return graphs


def session(path: Path, *, spinning: bool, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--batch", type=int, default=8, help="images per vision run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved vision rounds")
    parser.add_argument("--text-rounds", type=int, default=15, help="interleaved text rounds")
    parser.add_argument("--name", default="onnx-graphs", help="results/<name>.json")
    args = parser.parse_args()
    from zeroshot_vision._encoder import QUANTIZED_TEXT_PASS_ROWS as TEXT_ROWS

    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    load_before = os.getloadavg()
    tables = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(args.models or Path(scratch) / "models", args.preset)
        graphs = build_graphs(folder, Path(scratch))
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder)
        rng = np.random.default_rng(0)
        side = int(config.vision_config.image_size)
        vocab = int(config.text_config.vocab_size)
        feeds = {
            "vision": {
                "pixel_values": rng.standard_normal((args.batch, 3, side, side), np.float32)
            },
            "text": {
                "input_ids": rng.integers(0, vocab, (TEXT_ROWS, 64)).astype(np.int64),
                "attention_mask": np.ones((TEXT_ROWS, 64), np.int64),
            },
        }
        settings = [
            ("default threads, no spinning (the backend)", False, None),
            ("default threads, spinning (ORT's default)", True, None),
            ("1 thread", False, 1),
        ]
        for tower, paths in graphs.items():
            rounds = args.rounds if tower == "vision" else args.text_rounds
            runs: dict[str, Any] = {}
            for graph, path in paths.items():
                for setting, spinning, threads in settings:
                    if graph == "float32" and setting != settings[0][0]:
                        continue
                    made = session(path, spinning=spinning, threads=threads)
                    wanted = {i.name for i in made.get_inputs()}
                    feed = {k: v for k, v in feeds[tower].items() if k in wanted}
                    made.run(None, feed)  # first-run set-up out of the timings
                    runs[f"{graph} | {setting}"] = (made, feed)
            wall: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[float]] = {name: [] for name in runs}
            outputs: dict[str, np.ndarray] = {}
            for _ in range(rounds):
                for name, (made, feed) in runs.items():
                    started, used = time.perf_counter(), time.process_time()
                    outputs[name] = made.run(None, feed)[0]
                    wall[name].append(time.perf_counter() - started)
                    cpu[name].append(time.process_time() - used)
            reference = outputs[next(iter(runs))]
            baseline = next(name for name in runs if "as exported | default" in name)
            rows = []
            for name in runs:
                got = outputs[name]
                cosine = np.sum(got * reference, axis=1) / (
                    np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
                )
                rows.append([
                    name,
                    1000 * _report.median(wall[name]),
                    1000 * _report.median(cpu[name]),
                    _report.ratio(_report.median(cpu[baseline]), _report.median(cpu[name])),
                    float(cosine.min()),
                ])  # fmt: skip
            shape = f"batch {args.batch}" if tower == "vision" else f"{TEXT_ROWS} row(s) x 64"
            columns = ["graph | session", "wall ms", "CPU ms", f"CPU x {baseline}",
                       "min cosine to float32"]  # fmt: skip
            title = f"[{args.preset}] {tower} tower, {shape}, median of {rounds}"
            raw = {f"wall: {n}": t for n, t in wall.items()} | {
                f"cpu: {n}": t for n, t in cpu.items()
            }
            tables.append(_report.table(title, columns, rows, raw=raw))
    load_after = os.getloadavg()
    print(_report.loads(load_before, load_after))
    arguments = vars(args) | {"load_before": load_before, "load_after": load_after}
    _report.write(args.name, tables, arguments=arguments, info=info)


if __name__ == "__main__":
    main()
