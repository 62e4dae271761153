"""Distributed indexing on a real local Ray cluster, where only loopback exists.

One child process (``ray_scenarios.py``) starts one cluster in a network namespace of its
own (``unshare -n``, loopback only) and runs every scenario on it: the ids, vectors,
metadata and state equal single-process ``zsv index`` on the same files; a re-run
drops what the index holds; a bad image is a recorded failure; a SIGKILLed actor is
restarted and every image lands exactly once; a SIGKILLed driver leaves shards that the
re-run imports without encoding them again; Pinecone is written by the actors with the
state in step; a caller's Ray Dataset and a list of paths are sources too. The tests
below read what it saw and open the index folders it left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.helpers import make_jpeg, photo_row, write_dataset

from zeroshot_vision import SearchEngine
from zeroshot_vision._index import IndexFolder
from zeroshot_vision.stores._parquet import ParquetVectors

pytest.importorskip("ray.data", reason="needs the ray extra (pip install 'zeroshot-vision[ray]')")

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).with_name("ray_scenarios.py")
ROOT = Path(__file__).resolve().parents[2]


def _loopback_only_command() -> list[str] | None:
    """A command prefix that runs a program in a new network namespace with only ``lo``.

    ``unshare -n`` as root; otherwise ``unshare -rn`` (inside a user namespace), where
    the system allows unprivileged ones.
    """
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):
        probe = subprocess.run(
            [*unshare, "sh", "-c", "ip link set lo up"], capture_output=True, timeout=10
        )
        if probe.returncode == 0:
            return [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return None


@pytest.fixture(scope="module")
def cluster_run(
    request: pytest.FixtureRequest,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Run every scenario once, on one cluster; the work folder, inputs and results."""
    prefix = _loopback_only_command()
    if prefix is None:
        pytest.skip(
            "needs 'unshare -n' or 'unshare -rn' (a network namespace with only loopback): "
            "a local Ray cluster would otherwise listen on every interface"
        )
    # Ray's sockets (AF_UNIX paths, at most 107 bytes) live in its temp folder, inside this
    # one: under pytest-xdist the per-worker folder (.../popen-gw0/ray0) makes them too
    # long, so the work folder is a short one of its own.
    work = Path(tempfile.mkdtemp(prefix="zsv-ray-"))
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    folder = work / "photos"
    (folder / "nested").mkdir(parents=True)
    real = [*photo_paths, *extra_photo_paths]
    for i, path in enumerate(real):
        shutil.copy(path, (folder / "nested" if i % 3 == 0 else folder) / path.name)
    (folder / "broken.jpg").write_bytes(b"not a JPEG at all")
    many = work / "many"
    many.mkdir()
    for i in range(10):
        (many / f"img{i:02d}.jpg").write_bytes(make_jpeg(i, size=(64, 48)))
    unsplash = work / "unsplash"
    images = work / "unsplash-photos"
    images.mkdir()
    rows = [
        photo_row(f"ph{i}", "http://127.0.0.1:9", photo_description=f"photo {i}") for i in range(3)
    ]
    write_dataset(unsplash, rows)
    for i in range(3):
        shutil.copy(real[i], images / f"ph{i}.jpg")
    inputs = {
        "folder": str(folder),
        "many": str(many),
        "unsplash": str(unsplash),
        "unsplash_images": str(images),
        "list": [str(folder / real[1].name), str(folder / real[2].name), str(many / "img00.jpg")],
        "extra": str(many / "img01.jpg"),
    }
    (work / "inputs.json").write_text(json.dumps(inputs))
    home = work / "home"  # Ray writes ~/.ray: keep it in the test's folder
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    command = [*prefix, sys.executable, str(SCENARIOS), str(work), str(tiny_model_dir)]
    done = subprocess.run(
        [*command, str(work / "inputs.json")], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return work, inputs, json.loads((work / "results.json").read_text())


def _records(index: Path) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    with SearchEngine.open(index) as engine:
        ids = list(engine.store.ids())
        found = engine.store.fetch(ids)
        return {item: (found[item].vector, dict(found[item].metadata)) for item in ids}


def _state(index: Path) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(index / "state.sqlite") as db:
        rows = db.execute("SELECT id, path, size, mtime_ns, status, reason FROM files")
        return {row[0]: row[1:] for row in rows}


def test_ids_vectors_metadata_and_state_equal_single_process_zsv_index(cluster_run) -> None:
    work, _, results = cluster_run
    ray_records, reference = _records(work / "ray-index"), _records(work / "ref-index")
    assert sorted(ray_records) == sorted(reference) and len(ray_records) >= 6
    assert any("/" in item for item in ray_records)  # ids are paths relative to the source
    for item, (vector, metadata) in reference.items():
        assert ray_records[item][0].dtype == np.float32
        assert np.array_equal(ray_records[item][0], vector), item  # bit for bit on a CPU
        assert ray_records[item][1] == metadata
    assert _state(work / "ray-index") == _state(work / "ref-index")
    parity, ref = results["parity"], results["reference"]
    assert sorted(parity["indexed_ids"]) == sorted(ref["indexed_ids"])
    assert parity["count"] == ref["count"] == len(reference)


def test_a_bad_image_is_a_recorded_failure_not_a_failed_job(cluster_run) -> None:
    work, _, results = cluster_run
    assert [Path(s).name for s in results["parity"]["failed_sources"]] == ["broken.jpg"]
    assert results["parity"]["failed"] == results["reference"]["failed"]
    assert _state(work / "ray-index")["broken.jpg"][3] == "failed"
    # Known bad on the re-run, as zsv index reports it: not retried.
    assert [Path(s).name for s in results["rerun"]["known_failed_sources"]] == ["broken.jpg"]


def test_a_rerun_drops_what_the_index_holds_and_zsv_index_continues_it(cluster_run) -> None:
    work, _, results = cluster_run
    assert results["rerun"]["indexed"] == 0
    assert results["rerun"]["skipped"] == results["parity"]["indexed"]
    # The two commands share one index. Ray writes no lexical side, so the first local run
    # writes every image's text once (reusing the vectors); after it, single-process
    # zsv index finds nothing to do.
    with SearchEngine.open(work / "ray-index") as engine:
        first = engine.index_folder(cluster_run[1]["folder"])
        again = engine.index_folder(cluster_run[1]["folder"])
        assert engine.text_index is not None and len(engine.text_index) == len(engine.store)
    assert len(first.indexed) + first.skipped == results["parity"]["indexed"]
    assert again.indexed == () and again.skipped == results["parity"]["indexed"]
    assert not (work / "ray-index" / ".shards").exists() or not any(
        (work / "ray-index" / ".shards").glob("*.parquet")
    )  # shards of a default run are removed once imported


def test_zsv_index_ray_on_an_unsplash_folder_equals_zsv_index(cluster_run) -> None:
    work, _, results = cluster_run
    ray_records, reference = _records(work / "ray-unsplash"), _records(work / "ref-unsplash")
    assert sorted(ray_records) == ["ph0", "ph1", "ph2"] == sorted(reference)
    for item, (vector, metadata) in reference.items():
        assert np.array_equal(ray_records[item][0], vector)
        assert ray_records[item][1] == metadata and len(metadata) > 1  # the photo's fields
    cli = results["unsplash_cli"]
    assert cli["code"] == 0 and cli["output"]["indexed"] == 3 and cli["output"]["count"] == 3


def test_a_killed_actor_is_restarted_and_every_image_lands_once(cluster_run) -> None:
    work, inputs, results = cluster_run
    assert results["killed_pids"], "no encoder actor was found to kill"
    indexed = results["killed_actor"]["indexed_ids"]
    expected = sorted(p.name for p in Path(inputs["many"]).glob("*.jpg"))
    assert sorted(indexed) == expected  # no gaps, no duplicates
    assert results["killed_actor"]["failed"] == []
    assert sorted(_records(work / "killed-actor")) == expected
    assert IndexFolder.open(work / "killed-actor").counts() == {
        "indexed": 10, "failed": 0, "pending": 0
    }  # fmt: skip


def test_a_killed_driver_is_resumed_without_re_encoding(cluster_run) -> None:
    work, inputs, results = cluster_run
    assert results["driver_returncode"] == -9, results["driver_stderr"]
    resumed = results["resumed"]
    # The chunk imported before the kill is skipped; every shard written before the kill
    # is imported as it is (the same file, never rewritten); the rest is encoded.
    assert resumed["skipped"] == 2
    left, after = results["shards_left"], results["shards_after"]
    assert left and all(after[name] == mtime for name, mtime in left.items())
    expected = sorted(p.name for p in Path(inputs["many"]).glob("*.jpg"))
    assert len(resumed["indexed_ids"]) == len(set(resumed["indexed_ids"])) == 8
    assert resumed["count"] == 10 and sorted(_records(work / "killed-driver")) == expected
    assert IndexFolder.open(work / "killed-driver").counts()["pending"] == 0
    # The kept shards are zsv export files: zsv import reads each of them.
    for name in after:
        info = ParquetVectors.open(work / "kept-shards" / name)
        assert (
            info.dim == 32
            and info.rows <= 2
            and info.model == str(IndexFolder.open(work / "killed-driver").manifest.model)
        )


def test_pinecone_is_written_by_the_actors_with_the_state_in_step(cluster_run) -> None:
    work, _, results = cluster_run
    reference = _records(work / "ref-index")
    remote = results["pinecone_records"]
    assert sorted(remote) == sorted(reference)
    for item, (vector, metadata) in reference.items():
        # The service stores JSON floats: equal to float32 precision.
        assert np.allclose(np.asarray(remote[item]["vector"], np.float32), vector, atol=1e-6)
        assert remote[item]["metadata"]["path"] == metadata["path"]
    counts = IndexFolder.open(work / "ray-pinecone").counts()
    assert counts == {"indexed": len(reference), "failed": 1, "pending": 0}


def test_a_list_of_paths_then_a_callers_ray_dataset(cluster_run) -> None:
    work, inputs, results = cluster_run
    names = [Path(p).name for p in inputs["list"][:2]]
    outside = str(Path(inputs["list"][2]).resolve())
    # Relative to the root, or absolute outside it (file_id, as index_images gives them).
    assert sorted(results["list"]["indexed_ids"]) == sorted([*names, outside])
    # The dataset holds those three again and one more: only that one is encoded.
    assert results["dataset"]["indexed_ids"] == ["extra-photo"]
    records = _records(work / "ray-mixed")
    assert sorted(records) == sorted([*names, outside, "extra-photo"])
    assert records["extra-photo"][1] == {"path": inputs["extra"]}
    assert records[names[0]][1] == {"path": str(Path(inputs["list"][0]).resolve())}
    assert IndexFolder.open(work / "ray-mixed").counts()["indexed"] == 4
    # The same photo gets the same vector whichever way it came (batched otherwise than
    # in the folder run, so equal to float32 rounding rather than bit for bit).
    folder_records = _records(work / "ray-index")
    assert np.allclose(records[names[0]][0], folder_records[names[0]][0], atol=1e-5)


def test_bad_arguments_are_refused_before_any_work(cluster_run) -> None:
    _, _, results = cluster_run
    assert "actors must be" in results["bad_actors"]
    assert "leave none of the cluster's 2 CPUs for decoding" in results["no_room"]


def test_the_cluster_and_all_scenarios_fit_the_budget(cluster_run) -> None:
    _, _, results = cluster_run
    # Not a speed assertion: a guard that the module stays within make test's budget.
    assert results["seconds"] < 240, results["seconds"]
