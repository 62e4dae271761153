"""The cluster half of tests/distributed/test_ray_index.py, run in a child process.

The test module starts this script in a network namespace of its own, where only
loopback exists (``unshare -n``), so the local Ray cluster it starts cannot listen on
any other interface. It runs every scenario against that one cluster and writes what
it saw to ``results.json``; the index folders it made stay in the work folder, where
the tests open them. Usage: ``python ray_scenarios.py WORK MODEL PHOTOS_JSON``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORK, MODEL = Path(sys.argv[1]), sys.argv[2]
PHOTOS: dict[str, Any] = json.loads(Path(sys.argv[3]).read_text())
PINECONE_KEY = "test-key-for-the-loopback-server"
os.environ["PINECONE_API_KEY"] = PINECONE_KEY  # before ray.init: the workers inherit it

# The killed driver: joins the cluster, and dies by SIGKILL once one chunk is imported.
_DRIVER = """
import os, signal, sys
import ray
from zeroshot_vision.distributed import index_with_ray
ray.init(address=sys.argv[1], configure_logging=False, log_to_driver=False)
def die_after_one_chunk(progress):
    if progress.done:
        os.kill(os.getpid(), signal.SIGKILL)
index_with_ray(sys.argv[2], index=sys.argv[3], model=sys.argv[4], shards=sys.argv[5],
               batch_size=2, dtype="float32", progress=die_after_one_chunk)
"""


def encoder_actors() -> list[int]:
    """Pids of the encoder actor processes (Ray names each process after its actor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"ray::") and b"EncodeChunks" in command:
                found.append(int(entry.name))
    return found


_CLOCK = [time.monotonic()]


def report(rep: Any) -> dict[str, Any]:
    now = time.monotonic()
    took, _CLOCK[0] = now - _CLOCK[0], now
    return {
        "took": took,
        **rep.to_json(),
        "indexed_ids": list(rep.indexed),
        "failed_sources": [f.source for f in rep.failed],
        "known_failed_sources": [f.source for f in rep.known_failed],
    }


def main() -> None:
    import ray
    import torch

    from zeroshot_vision import SearchEngine
    from zeroshot_vision._cli import main
    from zeroshot_vision._errors import InvalidInputError
    from zeroshot_vision._index import file_id
    from zeroshot_vision.distributed import index_with_ray
    from zeroshot_vision.testing import PineconeTestServer

    results: dict[str, Any] = {}
    started = time.monotonic()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=str(WORK / "ray"),
        configure_logging=False,
        log_to_driver=False,
    )
    results["cluster_seconds"] = time.monotonic() - started
    # The actors get one CPU, so Ray gives them one torch thread: the reference does too.
    torch.set_num_threads(1)
    try:
        folder = PHOTOS["folder"]
        results["parity"] = report(
            index_with_ray(folder, index=WORK / "ray-index", model=MODEL, batch_size=3,
                           dtype="float32")
        )  # fmt: skip
        with SearchEngine.create(WORK / "ref-index", model=MODEL, dtype="float32") as engine:
            results["reference"] = report(engine.index_folder(folder, batch_size=3))
        results["rerun"] = report(
            index_with_ray(folder, index=WORK / "ray-index", batch_size=3, dtype="float32")
        )

        # Unsplash Lite through the command line: zsv index --ray.
        unsplash, images = PHOTOS["unsplash"], PHOTOS["unsplash_images"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["index", unsplash, "--index", str(WORK / "ray-unsplash"),
                         "--images", images, "--model", MODEL, "--batch-size", "2",
                         "--dtype", "float32", "--ray", "--actors", "1", "--json"])  # fmt: skip
        results["unsplash_cli"] = {"code": code, "output": json.loads(out.getvalue())}
        with SearchEngine.create(WORK / "ref-unsplash", model=MODEL, dtype="float32") as engine:
            results["unsplash_reference"] = report(
                engine.index_folder(unsplash, images_dir=images, batch_size=2)
            )

        # A killed actor: Ray restarts it and retries its chunks.
        killed: list[int] = []
        before: list[int] = []

        def kill_the_actor(progress: Any) -> None:
            if progress.done and not killed:
                before.extend(encoder_actors())
                for pid in before:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        results["killed_actor"] = report(
            index_with_ray(PHOTOS["many"], index=WORK / "killed-actor", model=MODEL,
                           batch_size=2, dtype="float32", progress=kill_the_actor)
        )  # fmt: skip
        results["killed_pids"] = killed

        # A killed driver, then a re-run that imports what it left written.
        shards = WORK / "kept-shards"
        argv = [ray.get_runtime_context().gcs_address, PHOTOS["many"],
                str(WORK / "killed-driver"), MODEL, str(shards)]  # fmt: skip
        driver = subprocess.run(
            [sys.executable, "-c", _DRIVER, *argv], capture_output=True, text=True, timeout=90
        )
        results["driver_returncode"] = driver.returncode
        results["driver_stderr"] = driver.stderr[-3000:]
        left = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.parquet")}
        results["shards_left"] = left
        results["resumed"] = report(
            index_with_ray(PHOTOS["many"], index=WORK / "killed-driver", shards=shards,
                           batch_size=2, dtype="float32")
        )  # fmt: skip
        results["shards_after"] = {
            p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.parquet")
        }

        # Pinecone, written by the actors themselves.
        with PineconeTestServer(dimension=32, api_key=PINECONE_KEY) as host:
            results["pinecone"] = report(
                index_with_ray(folder, index=WORK / "ray-pinecone", model=MODEL,
                               store="pinecone", store_options={"host": host},
                               batch_size=3, dtype="float32")
            )  # fmt: skip
            with SearchEngine.open(WORK / "ray-pinecone") as engine:
                ids = sorted(engine.store.ids())
                records = engine.store.fetch(ids)
                results["pinecone_records"] = {
                    item: {"vector": records[item].vector.tolist(),
                           "metadata": dict(records[item].metadata)}
                    for item in ids
                }  # fmt: skip

        # A list of paths, with ids relative to a root; then a Ray Dataset the caller
        # built, into the same index: the ids it already holds are dropped.
        listed = PHOTOS["list"]
        results["list"] = report(
            index_with_ray(listed, index=WORK / "ray-mixed", model=MODEL,
                           root=Path(listed[0]).parent, batch_size=2, dtype="float32")
        )  # fmt: skip
        rows = [{"id": file_id(path, Path(listed[0]).parent), "path": path} for path in listed]
        rows.append({"id": "extra-photo", "path": PHOTOS["extra"]})
        results["dataset"] = report(
            index_with_ray(ray.data.from_items(rows), index=WORK / "ray-mixed", batch_size=2,
                           dtype="float32")
        )  # fmt: skip
        try:
            index_with_ray(folder, index=WORK / "ray-index", model=MODEL, actors=0)
        except InvalidInputError as exc:
            results["bad_actors"] = str(exc)
        try:  # two actors of one CPU each would leave the decoding tasks no CPU
            index_with_ray(PHOTOS["many"], index=WORK / "no-room", model=MODEL, actors=2)
        except InvalidInputError as exc:
            results["no_room"] = str(exc)
    finally:
        ray.shutdown()
    results["seconds"] = time.monotonic() - started
    (WORK / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
