"""A server over an index encoded with the onnx backend answers through that route."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from zeroshot_vision import SearchEngine
from zeroshot_vision.server._service import Service, parse_index_spec


def test_the_server_loads_the_route_each_index_recorded(
    tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZSV_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in photo_paths[:3]:
        shutil.copy(photo, photos / photo.name)
    with SearchEngine.create(
        tmp_path / "int8", model=str(tiny_model_dir), backend="onnx", precision="int8"
    ) as engine:
        engine.index_folder(photos)
    with SearchEngine.create(
        tmp_path / "torch", model=str(tiny_model_dir), dtype="float32"
    ) as engine:
        engine.index_folder(photos)
    service = Service.load([parse_index_spec(f"int8={tmp_path / 'int8'}"),
                            parse_index_spec(f"torch={tmp_path / 'torch'}")])  # fmt: skip
    try:
        routes = sorted(str(model.encoder.route) for model in service.models)
        assert routes[0] == "onnx/int8" and routes[1].startswith("torch/")
        with service.index("int8").reading() as reader:
            assert len(reader.search("a cat", k=3)) == 3
    finally:
        service.close()
