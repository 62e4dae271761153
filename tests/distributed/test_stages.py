"""The stages of a distributed run, in this process: decoding, the actor, the sinks.

Ray calls these with rows and batches; here they get the same shapes directly, so the
CLIP route (a processor that crops, decoded by the actor itself) and the shard format
are checked without a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zeroshot_vision.distributed._actors import EncodeChunks
from zeroshot_vision.distributed._pipeline import model_facts
from zeroshot_vision.distributed._sinks import ShardSink
from zeroshot_vision.distributed._sources import chunk_images, list_paths
from zeroshot_vision.distributed._stages import DecodeSpec, decode_chunk
from zeroshot_vision.stores._parquet import ParquetVectors

pytest.importorskip("pyarrow")


def _as_batch(row: dict[str, Any]) -> dict[str, Any]:
    """One decoded row as Ray hands a batch of one to ``map_batches`` (numpy format)."""
    batch: dict[str, Any] = {}
    for key, value in row.items():
        column = np.empty(1, dtype=object)
        column[0] = np.asarray(value, dtype=object) if isinstance(value, list) else value
        batch[key] = column
    batch["pixels"] = np.asarray(row["pixels"])[None]
    return batch


@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_decode_then_encode_equals_the_encoder(
    kind: str, request: pytest.FixtureRequest, photo_paths: list[Path], tmp_path: Path
) -> None:
    model: Path = request.getfixturevalue("tiny_model_dir" if kind == "siglip" else "tiny_clip_dir")
    encoder = request.getfixturevalue("tiny_encoder" if kind == "siglip" else "tiny_clip_encoder")
    facts = model_facts(str(model))
    assert (facts.pixels is None) == (kind == "clip")  # CLIP's processor crops
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really")
    paths = [*photo_paths[:3], broken]
    (chunk,) = chunk_images(list_paths(paths), batch_size=4, model=facts.name)
    row = decode_chunk(
        chunk.row(), spec=DecodeSpec(pixels=facts.pixels, draft_size=facts.draft_size)
    )
    assert [bool(e) for e in row["errors"]] == (
        [False, False, False, True] if kind == "siglip" else [False] * 4
    )
    sink = ShardSink.at(tmp_path / "shards", dim=encoder.dim, model=facts.name)
    sink.prepare()
    actor = EncodeChunks(model=str(model), device="cpu", dtype="float32", batch_size=4, sink=sink)
    out = actor(_as_batch(row))
    ids = [str(p.resolve()) for p in photo_paths[:3]]
    assert list(out["indexed"][0]) == ids and list(out["failed"][0]) == [str(broken.resolve())]
    shard = sink.read(chunk.name)
    expected = encoder.encode_images(photo_paths[:3], batch_size=3)
    assert shard.ids == ids and shard.failures[0][0] == str(broken.resolve())
    assert np.allclose(shard.vectors, expected, atol=1e-6)
    assert shard.metadata[0] == {"path": ids[0]}
    info = ParquetVectors.open(tmp_path / "shards" / f"{chunk.name}.parquet")
    assert info.dim == encoder.dim and info.rows == 3 and info.model == facts.name
    meta = json.loads(str(chunk.row()["metadata"][0]))
    assert meta == {"path": ids[0]}


def test_chunk_names_follow_their_inputs(photo_paths: list[Path]) -> None:
    listed = list_paths(photo_paths[:4])
    first = chunk_images(listed, batch_size=2, model="m")
    assert [c.name for c in first] == [
        c.name for c in chunk_images(listed, batch_size=2, model="m")
    ]
    assert first[0].name != chunk_images(listed, batch_size=2, model="other")[0].name
    assert [len(c.images) for c in chunk_images(listed, batch_size=3, model="m")] == [3, 1]


def test_a_datasets_rows_of_bytes_pack_into_a_chunk(
    tiny_model_dir: Path, tiny_encoder: Any, photo_paths: list[Path], tmp_path: Path
) -> None:
    from zeroshot_vision.distributed._stages import pack_chunks

    facts = model_facts(str(tiny_model_dir))
    batch = {
        "id": np.array(["a", "b"], dtype=object),
        "bytes": np.array([p.read_bytes() for p in photo_paths[:2]], dtype=object),
        "metadata": np.array([{"album": "x"}, '{"album": "y"}'], dtype=object),
    }
    packed = pack_chunks(batch, model=facts.name)
    row = {key: value[0] for key, value in packed.items()}
    assert row["ids"] == ["a", "b"] and row["shard"].startswith("shard-")
    decoded = decode_chunk(row, spec=DecodeSpec(pixels=facts.pixels, draft_size=facts.draft_size))
    sink = ShardSink.at(tmp_path, dim=tiny_encoder.dim, model=facts.name)
    actor = EncodeChunks(
        model=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2, sink=sink
    )
    actor(_as_batch(decoded))
    shard = sink.read(row["shard"])
    assert shard.ids == ["a", "b"] and shard.metadata == [{"album": "x"}, {"album": "y"}]
    expected = tiny_encoder.encode_images([p.read_bytes() for p in photo_paths[:2]])
    assert np.allclose(shard.vectors, expected, atol=1e-6)
