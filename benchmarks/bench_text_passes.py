"""The cost of fixed-shape text passes (``TEXT_PASS_ROWS``) against passes of the batch's
own size, measured in the same run.

    python benchmarks/bench_text_passes.py [--preset base] [--labels 1 8 100] [--rounds 5]

Every text pass of the encoder has ``TEXT_PASS_ROWS`` rows (filler rows pad it), so that a
text's vector does not depend on the texts it is embedded with. The baseline is the
variable-shape pass (one forward pass of exactly the texts, in batches of 32): what the
encoder did before. A random SigLIP of the preset's real shape is built offline
(``--models DIR`` keeps it); the text cache is off so every call runs the model.
Interleaved (A, B, A, B...), medians; writes ``benchmarks/results/text_passes.json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--labels", nargs="+", type=int, default=[1, 8, 100])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from zeroshot_vision import Encoder
    from zeroshot_vision.testing import build_random_siglip

    root = args.models or Path(tempfile.mkdtemp())
    folder = root / args.preset
    if not folder.exists():
        print(f"building a random {args.preset} SigLIP in {folder} ...", flush=True)
        build_random_siglip(folder, preset=args.preset)
    encoder = Encoder.from_pretrained(folder, dtype=torch.float32, text_cache_size=0)
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
    table = _report.table(
        f"[{args.preset}] text passes of {encoder.model_name} "
        f"({torch.get_num_threads()} threads, float32)",
        ["texts", "passes", "ms", "x before"],
        rows,
        raw=raw,
    )
    print(_report.write("text_passes", [table], arguments=vars(args) | {"models": str(root)}))


if __name__ == "__main__":
    main()
