"""CPU encoder backends in one run: torch (bfloat16 default, int8 text) vs ONNX Runtime vs OpenVINO.

    python benchmarks/bench_onnx.py [--presets base] [--images 16] [--rounds 2]
    python benchmarks/bench_onnx.py --presets so400m --images 8 --rounds 1 --text-rounds 4

Random SigLIP checkpoints of real shapes, built offline (``--models DIR`` keeps them and
their ONNX exports between runs). For each preset, interleaved (A, B, A, B...) with
medians, every route through ``Encoder`` (same pixels, tokens and normalization):

* image encoding of 1600x1200 JPEG files (``encode_images``, batch --batch-size): torch in
  the CPU's default dtype (bfloat16 where native: the baseline), torch float32, ONNX
  Runtime float32 and int8, and OpenVINO float32 and int8 (the same ONNX graphs compiled
  by OpenVINO) when ``openvino`` is installed (``pip install openvino``: for this
  comparison only, it is no backend of the library);
* one text query, a distinct text each time: the same routes plus torch's int8 text tower
  (``quantize_text=True``, the baseline for text);
* CPU time of this process (user + system, every thread of it; the image decoding
  processes are not counted) beside each wall time, and the load average before and
  after: on a shared machine CPU time counts the work, wall time also the waiting;
* agreement with torch float32 on those images and texts: the worst per-vector cosine,
  raw and centered (the float32 mean taken out of both, see docs/benchmarks.md), and the
  mean top-10 overlap when the images are ranked for each of --queries texts.

Prints the tables and writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
from bench_encoder import (
    distinct_texts,
    make_jpegs,
    max_cosine_between_inputs,
    min_centered_cosine,
    min_cosine,
    model_folder,
)


def top_k_overlap(
    reference: np.ndarray, candidate: np.ndarray, queries: np.ndarray, k: int
) -> float:
    """Mean share of the reference's top-k images that the candidate's ranking also puts there."""
    k = min(k, len(reference))
    shares = []
    for query in queries:
        expected = set(np.argsort(-(reference @ query))[:k].tolist())
        got = set(np.argsort(-(candidate @ query))[:k].tolist())
        shares.append(len(expected & got) / k)
    return float(np.mean(shares))


class OpenVinoTowers:
    """The ONNX export's two graphs compiled by OpenVINO, offered to ``Encoder`` as a model.

    Benchmark only: it stands in the :class:`~zeroshot_vision._backends.onnx.OnnxTowers`
    place to compare runtimes on the very same graphs.
    """

    backend = "openvino"

    def __init__(self, towers: Any, vision: Path, text: Path, precision: str) -> None:
        import openvino as ov
        import torch

        core = ov.Core()
        self._vision = core.compile_model(str(vision), "CPU")
        self._text = core.compile_model(str(text), "CPU")
        self._text_inputs = [port.get_any_name() for port in self._text.inputs]
        self.config = towers.config
        self.logit_scale = towers.logit_scale
        self.logit_bias = towers.logit_bias
        self.precision = precision
        self._anchor = torch.zeros(1)

    def parameters(self) -> Any:
        yield self._anchor

    def eval(self) -> OpenVinoTowers:
        return self

    def get_image_features(self, pixel_values: Any, **_: Any) -> Any:
        import torch

        result = self._vision([pixel_values.float().contiguous().numpy()])
        return torch.from_numpy(np.asarray(result[self._vision.outputs[0]]).copy())

    def get_text_features(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> Any:
        import torch

        feeds = [input_ids.to(torch.int64).numpy()]
        if "attention_mask" in self._text_inputs:
            feeds.append(attention_mask.to(torch.int64).numpy())
        result = self._text(feeds)
        return torch.from_numpy(np.asarray(result[self._text.outputs[0]]).copy())


def load_routes(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every route's encoder, the baselines first."""
    import torch

    from zeroshot_vision import Encoder
    from zeroshot_vision._models import pick_dtype

    default_dtype = str(pick_dtype(torch.device("cpu"), None)).removeprefix("torch.")
    size = args.batch_size
    routes: dict[str, Any] = {}
    started = time.perf_counter()
    routes[f"torch, default ({default_dtype})"] = Encoder.from_pretrained(
        folder, device="cpu", batch_size=size, text_cache_size=0
    )
    routes["torch, float32"] = Encoder.from_pretrained(
        folder, device="cpu", dtype="float32", batch_size=size, text_cache_size=0
    )
    routes[f"torch, {default_dtype} + int8 text"] = Encoder.from_pretrained(
        folder, device="cpu", quantize_text=True, batch_size=size, text_cache_size=0
    )
    print(f"torch routes loaded in {time.perf_counter() - started:.1f} s", flush=True)
    for precision in ("float32", "int8"):
        started = time.perf_counter()
        routes[f"onnx, {precision}"] = Encoder.from_pretrained(
            folder, backend="onnx", precision=precision, batch_size=size, text_cache_size=0
        )
        print(
            f"onnx {precision} ready (export/quantize on first use) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    if not args.skip_openvino:
        try:
            import openvino  # noqa: F401
        except ImportError:
            print("openvino is not installed: its rows are left out", flush=True)
        else:
            for precision in ("float32", "int8"):
                onnx_encoder = routes[f"onnx, {precision}"]
                towers = onnx_encoder._model
                towers_ov = OpenVinoTowers(towers, towers.vision_path, towers.text_path, precision)
                routes[f"openvino, {precision}"] = Encoder(
                    towers_ov,
                    onnx_encoder._processor,
                    model_name=str(folder),
                    batch_size=size,
                    text_cache_size=0,
                )
    return routes


def bench_preset(
    preset: str, folder: Path, photos: list[Path], args: argparse.Namespace
) -> list[dict[str, Any]]:
    routes = load_routes(folder, args)
    names = list(routes)
    image_baseline = names[0]
    text_baseline = names[2]
    reference = routes["torch, float32"]
    texts = distinct_texts()
    queries = reference.encode_texts([next(texts) for _ in range(args.queries)])

    # -- images ------------------------------------------------------------------------
    image_routes = [n for n in names if n != text_baseline]
    got: dict[str, np.ndarray] = {}

    image_cpu: dict[str, list[float]] = {n: [] for n in image_routes}

    def image_run(name: str) -> Callable[[], None]:
        def run() -> None:
            cpu = time.process_time()
            got[name] = routes[name].encode_images(photos)
            image_cpu[name].append(time.process_time() - cpu)

        return run

    for name in image_routes:
        routes[name].encode_images(photos[:2])  # first-call set-up out of the timings
    seconds = _report.interleaved({n: image_run(n) for n in image_routes}, args.rounds)
    rates = {n: len(photos) / _report.median(t) for n, t in seconds.items()}
    cpu_per_image = {n: 1000 * _report.median(t) / len(photos) for n, t in image_cpu.items()}
    ref_images = got["torch, float32"]
    rows = [
        [
            name,
            rates[name],
            _report.ratio(rates[name], rates[image_baseline]),
            cpu_per_image[name],
            _report.ratio(cpu_per_image[image_baseline], cpu_per_image[name]),
            min_cosine(got[name], ref_images),
            min_centered_cosine(got[name], ref_images),
            top_k_overlap(ref_images, got[name], queries, 10),
        ]
        for name in image_routes
    ]
    image_table = _report.table(
        f"[{preset}] {len(photos)} JPEGs of 1600x1200, batch {args.batch_size}, median of "
        f"{args.rounds}; max cosine between different images in float32: "
        f"{max_cosine_between_inputs(ref_images):.4f}",
        ["route", "images/s", f"x {image_baseline}", "CPU ms/image", "CPU x baseline",
         "min cosine to float32", "centered",
         f"top-10 overlap ({args.queries} queries)"],
        rows,
        raw=seconds,
    )  # fmt: skip

    # -- one text query ----------------------------------------------------------------
    vectors: dict[str, list[np.ndarray]] = {n: [] for n in names}
    round_texts: list[str] = []

    text_cpu: dict[str, list[float]] = {n: [] for n in names}

    def text_run(name: str) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            cpu = time.process_time()
            vector = routes[name].encode_texts(round_texts[-1])
            elapsed = time.perf_counter() - start
            text_cpu[name].append(time.process_time() - cpu)
            vectors[name].append(vector[0])
            return elapsed

        return run

    candidates = {n: text_run(n) for n in names}
    for name in names:
        routes[name].encode_texts("warm up this route")
    seconds = {n: [] for n in names}
    for _ in range(args.text_rounds):
        round_texts.append(next(texts))
        for name, run in candidates.items():
            seconds[name].append(run())
    ms = {n: 1000 * _report.median(t) for n, t in seconds.items()}
    text_cpu_ms = {n: 1000 * _report.median(t) for n, t in text_cpu.items()}
    ref_texts = np.stack(vectors["torch, float32"])
    rows = [
        [
            name,
            ms[name],
            _report.ratio(ms[text_baseline], ms[name]),
            text_cpu_ms[name],
            _report.ratio(text_cpu_ms[text_baseline], text_cpu_ms[name]),
            min_cosine(np.stack(vectors[name]), ref_texts),
            min_centered_cosine(np.stack(vectors[name]), ref_texts),
        ]
        for name in names
    ]
    text_table = _report.table(
        f"[{preset}] one text query, distinct texts, median of {args.text_rounds}",
        ["route", "ms", f"speed-up vs {text_baseline}", "CPU ms", "CPU speed-up",
         "min cosine to float32", "centered"],
        rows,
        raw=seconds,
    )  # fmt: skip
    for encoder in routes.values():
        encoder.close()
    return [image_table, text_table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["base"])
    parser.add_argument("--images", type=int, default=16, help="JPEGs per round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved image rounds")
    parser.add_argument("--text-rounds", type=int, default=10, help="interleaved text rounds")
    parser.add_argument("--queries", type=int, default=16, help="texts ranking the images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--models", type=Path, default=None, help="keep built models here")
    parser.add_argument("--skip-openvino", action="store_true")
    parser.add_argument("--name", default="onnx", help="results/<name>.json")
    args = parser.parse_args()
    info = _report.machine()
    print(f"machine: {_report.describe(info)}")
    load_before = os.getloadavg()
    tables: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        photos = make_jpegs(Path(scratch) / "jpegs", args.images)
        root = args.models or Path(scratch) / "models"
        for preset in args.presets:
            tables += bench_preset(preset, model_folder(root, preset), photos, args)
    load_after = os.getloadavg()
    print(_report.loads(load_before, load_after))
    arguments = vars(args) | {"load_before": load_before, "load_after": load_after}
    _report.write(args.name, tables, arguments=arguments, info=info)


if __name__ == "__main__":
    main()
