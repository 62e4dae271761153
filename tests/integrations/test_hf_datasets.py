"""Hugging Face datasets in and out, offline: datasets built from the test photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("datasets", reason="needs the datasets extra")

import datasets
from tests.factories import memory_engine

from zeroshot_vision import (
    FaissStore,
    InvalidInputError,
    InvalidMetadataError,
    MissingColumnError,
    SearchEngine,
)
from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision._types import Progress
from zeroshot_vision.integrations.hf_datasets import index_dataset, save_dataset, to_dataset


@pytest.fixture
def engine(tiny_encoder: Any) -> SearchEngine:
    return memory_engine(tiny_encoder)


@pytest.fixture
def photo_dataset(photo_paths: list[Path], photo_metadata: list[dict[str, Any]]) -> Any:
    """The photos as a dataset with a decoded ``Image`` column, as the hub gives them."""
    table = {
        "image": [str(p) for p in photo_paths],
        "name": [p.stem for p in photo_paths],
        "country": [m["country"] for m in photo_metadata],
        "year": [m["year"] for m in photo_metadata],
    }
    return datasets.Dataset.from_dict(table).cast_column("image", datasets.Image())


def test_decoded_image_feature_indexes_every_photo(
    engine: SearchEngine, photo_dataset: Any, photo_paths: list[Path]
) -> None:
    seen: list[Progress] = []
    report = index_dataset(engine, photo_dataset, id_column="name", progress=seen.append)
    assert report.indexed == tuple(p.stem for p in photo_paths) and not report.failed
    assert report.count == 6 and seen[-1].done == 6
    for path in photo_paths:
        assert engine.search_by_image(path, k=1)[0].id == path.stem
    record = engine.store.fetch(["coffee"])["coffee"]
    assert record.metadata == {"country": "Italy", "year": 2013, "path": str(photo_paths[1])}


def test_incremental_runs_skip_what_is_indexed(engine: SearchEngine, photo_dataset: Any) -> None:
    first = index_dataset(engine, photo_dataset.select(range(4)), id_column="name")
    assert len(first.indexed) == 4
    again = index_dataset(engine, photo_dataset, id_column="name", batch_size=2)
    assert again.skipped == 4 and again.indexed == ("hubble_deep_field", "motorcycle_left")
    assert again.count == 6


def test_streaming_bytes_and_paths(
    engine: SearchEngine, photo_dataset: Any, photo_paths: list[Path]
) -> None:
    streaming = photo_dataset.to_iterable_dataset()
    report = index_dataset(engine, streaming, metadata_columns=["country"])
    assert report.indexed == tuple(str(i) for i in range(6))  # ids are row positions
    assert engine.store.fetch(["2"])["2"].metadata["country"] == "UK"
    raw = datasets.Dataset.from_dict(
        {"png": [photo_paths[0].read_bytes()], "file": [str(photo_paths[1])], "id": ["a"]}
    )
    by_bytes = SearchEngine(engine.encoder, FaissStore(engine.encoder.dim))
    assert index_dataset(by_bytes, raw, image_column="png", id_column="id").indexed == ("a",)
    by_path = SearchEngine(engine.encoder, FaissStore(engine.encoder.dim))
    index_dataset(by_path, raw, image_column="file", id_column="id", metadata_columns=[])
    # The same photo, as bytes in one dataset and decoded from a file in the other.
    np.testing.assert_allclose(
        by_bytes.store.fetch(["a"])["a"].vector, engine.store.fetch(["0"])["0"].vector, atol=1e-6
    )
    assert by_path.store.fetch(["a"])["a"].metadata == {"path": str(photo_paths[1])}


def test_undecodable_images_are_recorded_failures(
    engine: SearchEngine, photo_paths: list[Path]
) -> None:
    images = [
        {"bytes": photo_paths[0].read_bytes(), "path": None},
        {"bytes": b"definitely not an image", "path": None},
        {"bytes": photo_paths[3].read_bytes(), "path": None},
    ]
    dataset = datasets.Dataset.from_dict(
        {"image": images, "key": ["good", "bad", "also-good"]},
        features=datasets.Features({"image": datasets.Image(), "key": datasets.Value("string")}),
    )
    report = index_dataset(engine, dataset, id_column="key")
    assert report.indexed == ("good", "also-good")
    [failure] = report.failed
    assert failure.source == "bad" and failure.reason
    assert sorted(engine.store.ids()) == ["also-good", "good"]


def test_bad_input_is_a_specific_error(engine: SearchEngine, photo_dataset: Any) -> None:
    with pytest.raises(MissingColumnError, match="no column 'picture'") as info:
        index_dataset(engine, photo_dataset, image_column="picture")
    assert info.value.column == "picture" and "image" in info.value.columns
    with pytest.raises(MissingColumnError, match="'uid'"):
        index_dataset(engine, photo_dataset, id_column="uid")
    with pytest.raises(MissingColumnError, match="'city'"):
        index_dataset(engine, photo_dataset.to_iterable_dataset(), metadata_columns=["city"])
    with pytest.raises(InvalidInputError, match="pick a split"):
        index_dataset(engine, datasets.DatasetDict({"train": photo_dataset}))
    with pytest.raises(InvalidInputError, match="twice"):
        index_dataset(engine, photo_dataset, id_column="country")
    assert len(engine.store) == 0  # every error came before any write


def test_to_dataset_has_id_vector_and_metadata_columns(
    engine: SearchEngine, photo_dataset: Any
) -> None:
    index_dataset(engine, photo_dataset, id_column="name")
    exported = to_dataset(engine)
    assert exported.column_names == ["id", "vector", "country", "year", "path"]
    assert exported.features["vector"].length == engine.encoder.dim
    row = exported.filter(lambda r: r["id"] == "chelsea")[0]
    stored = engine.store.fetch(["chelsea"])["chelsea"]
    np.testing.assert_array_equal(np.asarray(row["vector"], np.float32), stored.vector)
    assert (row["country"], row["year"]) == ("UK", 2012)
    as_json = to_dataset(engine.store, metadata="json")
    assert as_json.column_names == ["id", "vector", "metadata"]
    assert (
        json.loads(as_json[0]["metadata"])
        == engine.store.fetch([as_json[0]["id"]])[as_json[0]["id"]].metadata
    )
    # The vectors go straight into numpy, as a training loop wants them.
    matrix = exported.with_format("numpy")[:]["vector"]
    assert matrix.shape == (6, engine.encoder.dim)


def test_mixed_metadata_needs_json(engine: SearchEngine) -> None:
    engine.store.upsert(["a", "b"], np.eye(engine.encoder.dim)[:2], [{"x": 1}, {"x": "one"}])
    with pytest.raises(InvalidMetadataError, match="metadata='json'"):
        to_dataset(engine)
    assert len(to_dataset(engine, metadata="json")) == 2


def test_saved_dataset_and_zsv_export_load_with_datasets(
    engine: SearchEngine, photo_dataset: Any, tmp_path: Path, tiny_model_dir: Path
) -> None:
    index_dataset(engine, photo_dataset, id_column="name")
    assert save_dataset(engine, tmp_path / "saved") == 6
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))
    assert sorted(loaded["id"]) == sorted(engine.store.ids())
    with pytest.raises(InvalidInputError, match="already exists"):
        save_dataset(engine, tmp_path / "saved")
    # zsv export's Parquet file is a dataset too.
    with SearchEngine.create(tmp_path / "index", encoder=engine.encoder) as folder_engine:
        report = index_dataset(folder_engine, photo_dataset, id_column="name")
        assert len(report.indexed) == 6
    with SearchEngine.open(tmp_path / "index", encoder=engine.encoder) as reopened:
        assert index_dataset(reopened, photo_dataset, id_column="name").skipped == 6
    # An index folder exports without loading its model.
    from_folder = to_dataset(tmp_path / "index")
    assert sorted(from_folder["id"]) == sorted(engine.store.ids())
    assert from_folder.info.description.endswith(engine.encoder.model_name)
    out = tmp_path / "vectors.parquet"
    assert main(["export", "--index", str(tmp_path / "index"), "--out", str(out)]) == EXIT_OK
    parquet = datasets.load_dataset(
        "parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert parquet.column_names == ["id", "vector", "metadata"]
    assert parquet.features["vector"].length == engine.encoder.dim
    row = parquet.filter(lambda r: r["id"] == "rocket")[0]
    np.testing.assert_array_equal(
        np.asarray(row["vector"], np.float32), engine.store.fetch(["rocket"])["rocket"].vector
    )
    assert json.loads(row["metadata"])["country"] == "USA"
