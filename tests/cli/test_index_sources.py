"""``zsv index`` for every source kind besides folders: a Parquet export (vectors given,
nothing encoded) and a Hugging Face dataset saved to disk (encoded, incremental by id)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main

datasets = pytest.importorskip("datasets", reason="the datasets extra")
pytest.importorskip("pyarrow", reason="the parquet extra")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _vectors(index: Path, model: Path) -> dict[str, np.ndarray]:
    with SearchEngine.open(index, model=str(model)) as engine:
        ids = sorted(engine.store.ids())
        return {i: r.vector for i, r in engine.store.fetch(ids).items()}


@pytest.fixture(scope="module")
def saved_photo_dataset(tmp_path_factory: pytest.TempPathFactory, photo_paths: list[Path]) -> Path:
    """Real photos as a DatasetDict (train: three, test: one) saved with save_to_disk."""
    root = tmp_path_factory.mktemp("dataset")
    rows = {
        "image": [str(p) for p in photo_paths[:4]],
        "name": [p.stem for p in photo_paths[:4]],
        "kind": ["photo"] * 4,
    }
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "name": datasets.Value("string"),
            "kind": datasets.Value("string"),
        }
    )
    whole = datasets.Dataset.from_dict(rows, features=features)
    splits = datasets.DatasetDict({"train": whole.select(range(3)), "test": whole.select([3])})
    splits.save_to_disk(str(root / "photos"))
    return root / "photos"


def test_index_a_saved_dataset_by_split_then_incrementally(
    saved_photo_dataset: Path,
    photo_paths: list[Path],
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = str(tmp_path / "index")
    common = ["--index", index, "--model", str(tiny_model_dir), "--id-column", "name"]
    code, out, err = run(capsys, "index", "--dataset", str(saved_photo_dataset), *common)
    assert code == EXIT_ERROR and "several splits (train, test)" in err

    code, out, _ = run(
        capsys, "index", "--dataset", f"{saved_photo_dataset}:train", *common, "--json"
    )
    assert code == EXIT_OK
    summary = json.loads(out)
    assert (summary["indexed"], summary["count"]) == (3, 3)
    with SearchEngine.open(index, model=str(tiny_model_dir)) as engine:
        records = engine.store.fetch([p.stem for p in photo_paths[:3]])
        assert {r.metadata["kind"] for r in records.values()} == {"photo"}
        # Encoded by the same model as a local encode of the same photo.
        expected = engine.encoder.encode_images([photo_paths[0]])[0]
        np.testing.assert_allclose(records[photo_paths[0].stem].vector, expected, atol=1e-5)

    code, out, _ = run(capsys, "index", "--dataset", f"{saved_photo_dataset}:test", *common)
    assert code == EXIT_OK and out.startswith("indexed 1, skipped 0")
    code, out, _ = run(capsys, "index", "--dataset", f"{saved_photo_dataset}:train", *common)
    assert code == EXIT_OK and out.startswith("indexed 0, skipped 3") and "4 in the index" in out


def test_a_dataset_run_takes_the_store_options_a_folder_run_takes(
    saved_photo_dataset: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from zeroshot_vision.stores import FaissStore

    common = ["--model", str(tiny_model_dir), "--id-column", "name"]
    source = f"{saved_photo_dataset}:train"
    budget = str(tmp_path / "budget")
    code, _, err = run(capsys, "index", "--dataset", source, "--index", budget, *common,
                       "--memory-budget", "1GB", "--capacity", "2000000")  # fmt: skip
    assert code == EXIT_OK and "memory budget 1GB: ivfpq" in err
    assert FaissStore.load(Path(budget) / "store").index_type == "ivfpq"
    ann = str(tmp_path / "ann")
    code, _, _ = run(capsys, "index", "--dataset", source, "--index", ann, *common, "--ann", "hnsw")
    assert code == EXIT_OK and FaissStore.load(Path(ann) / "store").index_type == "hnsw"
    code, _, err = run(capsys, "index", "--dataset", source, "--index", str(tmp_path / "x"),
                       *common, "--store", "pinecone", "--ann", "hnsw")  # fmt: skip
    assert code == EXIT_ERROR and "--ann is an option of the faiss store" in err


def test_dataset_mistakes_are_one_line(
    saved_photo_dataset: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = str(tmp_path / "index")
    base = ["index", "--index", index, "--model", str(tiny_model_dir)]
    code, _, err = run(
        capsys, *base, "--dataset", f"{saved_photo_dataset}:train", "--image-column", "x"
    )
    assert code == EXIT_ERROR and "no column 'x'" in err
    code, _, err = run(capsys, *base, "--dataset", f"{saved_photo_dataset}:valid")
    assert code == EXIT_ERROR and "no split 'valid'" in err
    code, _, err = run(capsys, *base, "--dataset", str(tmp_path / "nothing-here"))
    assert code == EXIT_ERROR and "neither a dataset folder" in err
    code, _, err = run(capsys, *base, "--dataset", str(saved_photo_dataset), str(tmp_path))
    assert code == EXIT_ERROR and "drop SOURCE" in err
    code, _, err = run(capsys, *base, str(tmp_path), "--id-column", "name")
    assert code == EXIT_ERROR and "--id-column goes with --dataset" in err
    assert not Path(index).exists()  # nothing was created by a refused run


def test_index_a_parquet_export_without_encoding(
    tmp_path: Path,
    photo_paths: list[Path],
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:3]:
        (photos / path.name).write_bytes(path.read_bytes())
    source = tmp_path / "source-index"
    assert main(["index", str(photos), "--index", str(source), "--model", str(tiny_model_dir)]) == 0
    exported = tmp_path / "vectors.parquet"
    assert main(["export", "--index", str(source), "--out", str(exported)]) == EXIT_OK
    capsys.readouterr()

    # Vectors are given: loading a model would be a bug.
    from zeroshot_vision._encoder import Encoder

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("zsv index --parquet loaded a model")

    monkeypatch.setattr(Encoder, "from_pretrained", no_model)
    target = tmp_path / "copy"
    code, out, _ = run(
        capsys, "index", "--parquet", str(exported), "--index", str(target), "--json"
    )
    assert code == EXIT_OK and json.loads(out) == {
        "indexed": 3, "encoded": 0, "source": str(exported)
    }  # fmt: skip
    monkeypatch.undo()
    original, copied = _vectors(source, tiny_model_dir), _vectors(target, tiny_model_dir)
    assert sorted(original) == sorted(copied)
    for key, vector in original.items():
        np.testing.assert_array_equal(copied[key], vector)

    code, _, err = run(
        capsys, "index", "--parquet", str(exported), "--index", str(target), "--device", "cpu"
    )
    assert code == EXIT_ERROR and "--parquet encodes nothing" in err
    code, _, err = run(
        capsys, "index", "--parquet", str(exported), "--index", str(target), "--model", "other/m"
    )
    assert code == EXIT_ERROR and "vectors of two models do not compare" in err
