"""The cost of fixed-shape text passes (``TEXT_PASS_ROWS``) against passes of the batch's
own size, measured in the same run.

    python benchmarks/bench_text_passes.py [--preset base] [--labels 1 8 100] [--rounds 5]
    python benchmarks/bench_text_passes.py --preset base --labels --rows 1 2 4 8 --batch 32

Every text pass of the encoder has ``TEXT_PASS_ROWS`` rows (filler rows pad it), so that a
text's vector does not depend on the texts it is embedded with. The baseline is the
variable-shape pass (one forward pass of exactly the texts, in batches of 32): what the
encoder did before. A random SigLIP of the preset's real shape is built offline
(``--models DIR`` keeps it); the text cache is off so every call runs the model.
Interleaved (A, B, A, B...), medians; writes ``benchmarks/results/text_passes.json``.

``--rows R...`` adds the sweep that picks ``TEXT_PASS_ROWS``: for each candidate row count
(set on the encoder module for the run), one query's latency and the per-text cost of a
``--batch`` of texts (wall and this process's CPU time), interleaved across the
candidates, and whether a text's vector is the same bytes alone as inside batches of 2,
3 and 20 texts with that row count (the invariant the row count exists for;
``tests/encoder`` checks the chosen one).
``--threads 1`` measures the work itself: on a loaded machine two torch threads spend
most of a pass waiting for each other.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument(
        "--labels", nargs="*", type=int, default=[1, 8, 100], help="none: skip this table"
    )
    parser.add_argument("--rows", nargs="*", type=int, default=[], help="TEXT_PASS_ROWS sweep")
    parser.add_argument("--batch", type=int, default=32, help="texts per call in the sweep")
    parser.add_argument("--quantize-text", action="store_true", help="the int8 text tower")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from zeroshot_vision import Encoder
    from zeroshot_vision.testing import build_random_siglip

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.models or Path(tempfile.mkdtemp())
    folder = root / args.preset
    if not folder.exists():
        print(f"building a random {args.preset} SigLIP in {folder} ...", flush=True)
        build_random_siglip(folder, preset=args.preset)
    encoder = Encoder.from_pretrained(
        folder, dtype=torch.float32, text_cache_size=0, quantize_text=args.quantize_text
    )
    counter = itertools.count()

    def texts(n: int) -> list[str]:
        start = next(counter) * n
        return [f"a photo of thing number {start + i}" for i in range(n)]

    def variable_shape(n: int) -> None:
        batch = texts(n)
        for at in range(0, n, 32):
            inputs = encoder.tokenize(batch[at : at + 32])
            with torch.inference_mode():
                encoder._model.get_text_features(**inputs)

    def fixed_shape(n: int) -> None:
        encoder.encode_texts(texts(n))  # the whole call is timed (returns no seconds)

    rows: list[list[Any]] = []
    raw: dict[str, list[float]] = {}
    for n in args.labels:
        seconds = _report.interleaved(
            {
                "variable shape (before)": lambda n=n: variable_shape(n),
                "fixed shape (encode_texts)": lambda n=n: fixed_shape(n),
            },
            args.rounds,
        )
        base = _report.median(seconds["variable shape (before)"])
        for name, values in seconds.items():
            value = _report.median(values)
            rows.append([n, name, value * 1000, _report.ratio(value, base)])
            raw[f"{n} texts: {name}"] = values
    one = encoder.encode_texts(["a rocket"])[0]
    beside = encoder.encode_texts(["a cat", "a dog", "a rocket"])[2]
    print(f"'a rocket' alone == beside two others: {bool(np.array_equal(one, beside))}")
    precision = "int8 text" if args.quantize_text else "float32"
    tables = []
    if rows:
        tables.append(
            _report.table(
                f"[{args.preset}] text passes of {encoder.model_name} "
                f"({torch.get_num_threads()} threads, {precision})",
                ["texts", "passes", "ms", "x before"],
                rows,
                raw=raw,
            )
        )
    if args.rows:
        tables.append(row_sweep(encoder, args, texts, precision))
    print(_report.write("text_passes", tables, arguments=vars(args) | {"models": str(root)}))


def row_sweep(encoder: Any, args: argparse.Namespace, texts: Any, precision: str) -> Any:
    """One query and a batch at each candidate ``TEXT_PASS_ROWS``, interleaved."""
    import numpy as np
    import torch

    from zeroshot_vision import _encoder

    chosen = _encoder.TEXT_PASS_ROWS

    cpu: dict[str, list[float]] = {}

    def with_rows(rows: int, n: int) -> Any:
        def run() -> float:
            # One untimed pass of this shape first: kernels set up per shape, and a server
            # or a script only ever runs the one shape.
            _encoder.TEXT_PASS_ROWS = rows
            try:
                encoder.encode_texts(texts(1))
                start, used = time.perf_counter(), time.process_time()
                encoder.encode_texts(texts(n))
                cpu.setdefault(f"{rows} rows, {n} texts", []).append(time.process_time() - used)
                return time.perf_counter() - start
            finally:
                _encoder.TEXT_PASS_ROWS = chosen

        return run

    one = _report.interleaved({str(r): with_rows(r, 1) for r in args.rows}, args.rounds)
    many = _report.interleaved({str(r): with_rows(r, args.batch) for r in args.rows}, args.rounds)
    same: dict[int, bool] = {}
    others = [f"word {i}" for i in range(19)]
    for rows in args.rows:
        _encoder.TEXT_PASS_ROWS = rows
        try:
            alone = encoder.encode_texts(["a rocket"])[0]
            batches = (["a cat", "a rocket"], ["a rocket", "a cat", "a dog"], [*others, "a rocket"])
            same[rows] = all(
                np.array_equal(encoder.encode_texts(batch)[batch.index("a rocket")], alone)
                for batch in batches
            )
        finally:
            _encoder.TEXT_PASS_ROWS = chosen
    base_one = _report.median(one[str(chosen)]) if str(chosen) in one else math.nan
    base_many = _report.median(many[str(chosen)]) if str(chosen) in many else math.nan
    table_rows = [
        [
            rows,
            1000 * _report.median(one[str(rows)]),
            1000 * _report.median(cpu[f"{rows} rows, 1 texts"]),
            _report.ratio(base_one, _report.median(one[str(rows)])),
            1000 * _report.median(many[str(rows)]) / args.batch,
            1000 * _report.median(cpu[f"{rows} rows, {args.batch} texts"]) / args.batch,
            _report.ratio(base_many, _report.median(many[str(rows)])),
            "yes" if same[rows] else "NO",
        ]
        for rows in args.rows
    ]
    return _report.table(
        f"[{args.preset}] TEXT_PASS_ROWS sweep ({torch.get_num_threads()} threads, "
        f"{precision}; now {chosen})",
        [
            "rows",
            "1 query ms",
            "1 query CPU ms",
            f"speed vs {chosen}",
            f"ms/text, {args.batch} texts",
            "CPU ms/text",
            f"speed vs {chosen}",
            "alone == in batch",
        ],
        table_rows,
        raw={f"{k} rows, 1 query": v for k, v in one.items()}
        | {f"{k} rows, {args.batch} texts": v for k, v in many.items()},
    )


if __name__ == "__main__":
    main()
