"""Checkpoint naming and loading (zeroshot_vision._models), as every entry point uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zeroshot_vision import ModelLoadError
from zeroshot_vision._models import DEFAULT_MODEL, MODEL_ENV, default_model, locate_checkpoint


@pytest.mark.slow
def test_the_tiny_model_is_built_without_the_testing_package(tmp_path: Path) -> None:
    # Library code builds "tiny" itself: zeroshot_vision.testing (pytest, hypothesis,
    # a Pinecone server) is for tests only.
    code = (
        "import sys; from pathlib import Path; from zeroshot_vision._models import resolve_model;"
        "folder = Path(resolve_model('tiny'));"
        "print((folder / 'config.json').is_file(), folder.name,"
        " any(m.startswith('zeroshot_vision.testing') for m in sys.modules))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), MODEL_ENV: ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert out.stdout.split() == ["True", "tiny-siglip", "False"]


def test_default_model_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert default_model() == DEFAULT_MODEL
    monkeypatch.setenv(MODEL_ENV, "  some/checkpoint ")
    assert default_model() == "some/checkpoint"
    assert locate_checkpoint(None) == "some/checkpoint"  # a hub id is left as it is


def test_locate_checkpoint_checks_local_paths(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert locate_checkpoint(tiny_model_dir) == str(tiny_model_dir)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        locate_checkpoint(tmp_path / "weights.bin")
    with pytest.raises(ModelLoadError, match=r"config\.json is missing"):
        locate_checkpoint(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        locate_checkpoint(tmp_path / "nowhere")
