"""What every benchmark shares: the machine it ran on, interleaved timing, tables, JSON.

Timings on shared machines drift with load, so a candidate is only ever compared with a
baseline measured in the same run, interleaved (A, B, A, B, ...), by median. Each script
prints its tables with a ratio column against that baseline and writes the same numbers,
with the machine and date, to ``benchmarks/results/<name>.json`` (ignored by git: the
numbers belong to one machine on one day; docs/benchmarks.md quotes the runs it cites).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, cores, native bfloat16 (AMX, AVX512-BF16), card, versions and load."""
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "amx": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "gpu": None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def describe(info: dict[str, Any]) -> str:
    """One line naming the machine, for the top of a printed table."""
    native = "AMX" if info["amx"] else "AVX512-BF16" if info["avx512_bf16"] else "no native bf16"
    load = info.get("load_average")
    loaded = f", load {load[0]:.2f}" if load else ""
    card = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return f"{info['cpu']}, {info['cores']} cores, {native}{card}{loaded}"


def interleaved(
    candidates: dict[str, Callable[[], float | None]], rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, run in turn ``rounds`` times (A, B, A, B...).

    A candidate may return its own measured seconds (to leave setup out); ``None`` means
    "time the whole call".
    """
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            measured = run()
            seconds[name].append(measured if measured is not None else time.perf_counter() - start)
    return seconds


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in [0, 1])."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``, NaN when the baseline is zero or missing."""
    return value / baseline if baseline and not math.isnan(baseline) else math.nan


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        # Five decimals below 1, so cosines such as 0.99991 stay readable.
        return f"{value:.5f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    raw: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Print a table and return it as a JSON-ready dict (rows as column -> value).

    ``raw`` (each candidate's seconds per round, in run order) goes into the JSON only, so
    a reader can judge the noise behind a median.
    """
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print(" | ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(v.rjust(w) for v, w in zip(row, widths)))
    document: dict[str, Any] = {"title": title, "rows": [dict(zip(columns, r)) for r in rows]}
    if raw is not None:
        document["raw_seconds"] = raw
    return document


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def loads(before: Sequence[float], after: Sequence[float]) -> str:
    """The load averages before and after a run, as the tables' captions give them."""
    return (
        "load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} "
        "{:.2f}".format(*before, *after)
    )


def write(
    name: str,
    tables: Sequence[dict[str, Any]],
    *,
    arguments: dict[str, Any],
    info: dict[str, Any] | None = None,
    folder: Path | None = None,
) -> Path:
    """Write ``<folder>/<name>.json``: date, machine, arguments and tables (no NaN)."""
    out = (folder or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info or machine(),
        "arguments": arguments,
        "tables": list(tables),
    }
    out.write_text(json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {out}")
    return out
