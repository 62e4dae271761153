"""The failure paths of distributed indexing that need no cluster.

Out of memory is real here: the encoder actor class runs in a child process whose
address space is capped just above what it uses, so encoding a large batch fails to
allocate; the error names the batch size to lower. The driver's mapping of a worker's
errors, and the CLI's refusal of Ray options without ``--ray``, need no Ray at all.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zeroshot_vision._cli import main
from zeroshot_vision._errors import (
    BatchTooLargeError,
    DistributedJobError,
    ImageDecodeError,
    ZeroshotVisionError,
)

_OUT_OF_MEMORY = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    import torch
    from zeroshot_vision.distributed._actors import EncodeChunks
    from zeroshot_vision.distributed._sinks import ShardSink
    from zeroshot_vision._errors import BatchTooLargeError

    torch.set_num_threads(1)
    size = 40_000
    sink = ShardSink.at(sys.argv[2], dim=32, model=sys.argv[1])
    actor = EncodeChunks(model=sys.argv[1], device="cpu", dtype="float32", batch_size=size,
                         sink=sink)
    ids = [f"img{i}" for i in range(size)]
    batch = {
        "shard": np.array(["shard-oom"], dtype=object),
        "ids": np.array([ids], dtype=object),
        "sources": np.array([ids], dtype=object),
        "metadata": np.array([["{}"] * size], dtype=object),
        "done": np.array([False]),
        "errors": np.array([[""] * size], dtype=object),
        "pixels": np.zeros((1, size, 32, 32, 3), np.uint8),
        "data": np.array([[]], dtype=object),
    }
    used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (used + (48 << 20), resource.RLIM_INFINITY))
    try:
        actor(batch)
    except BatchTooLargeError as exc:
        print("BatchTooLargeError", exc.batch_size, exc)
        sys.exit(0)
    sys.exit("no BatchTooLargeError")
    """
)


def test_an_actor_out_of_memory_names_the_batch_size(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, str(tiny_model_dir), str(tmp_path / "shards")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("BatchTooLargeError 40000 ")
    assert "lower the batch size (--batch-size 20000" in done.stdout
    assert not list((tmp_path / "shards").glob("*.parquet"))  # nothing half-written


def test_batch_too_large_crosses_processes_and_the_driver_raises_it() -> None:
    from zeroshot_vision.distributed._pipeline import _job_error

    error = BatchTooLargeError("a batch of 64 images did not fit", batch_size=64)
    copy = pickle.loads(pickle.dumps(error))  # what Ray does with a worker's exception
    assert isinstance(copy, MemoryError) and copy.batch_size == 64 and str(copy) == str(error)
    try:
        try:
            raise copy
        except BatchTooLargeError as inner:
            raise RuntimeError("ray.exceptions.RayTaskError(...)") from inner
    except RuntimeError as wrapped:
        mapped = _job_error(wrapped, 64)
    assert isinstance(mapped, BatchTooLargeError) and mapped.batch_size == 64
    # An allocation failure Ray reports itself (its memory monitor killed the worker).
    oom = _job_error(MemoryError("Task was killed due to the node running low on memory"), 32)
    assert isinstance(oom, BatchTooLargeError) and "--batch-size 16" in str(oom)
    # The library's own errors pass through; anything else is a DistributedJobError.
    bad = ImageDecodeError("x.jpg", "truncated")
    assert _job_error(RuntimeError("wrapped"), 8).__class__ is DistributedJobError
    try:
        raise RuntimeError("wrapper") from bad
    except RuntimeError as wrapped:
        assert _job_error(wrapped, 8) is bad
    assert issubclass(DistributedJobError, (ZeroshotVisionError, RuntimeError))


@pytest.mark.parametrize(
    "flags", [["--actors", "2"], ["--address", "auto"], ["--gpus-per-actor", "1"]]
)
def test_ray_options_need_ray(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["index", str(tmp_path), "--index", str(tmp_path / "index"), *flags])
    assert code != 0
    assert "need --ray" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()


def test_negative_gpus_per_actor_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["index", str(tmp_path), "--index", str(tmp_path / "i"), "--ray",
                 "--gpus-per-actor", "-1"])  # fmt: skip
    assert code == 2
    assert "0 or more" in capsys.readouterr().err
