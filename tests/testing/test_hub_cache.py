"""build_hub_cache: tiny stand-ins found by the hub client's own offline cache look-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zeroshot_vision.testing import build_hub_cache

LOAD = """
import json
from zeroshot_vision import Encoder
encoder = Encoder.from_pretrained("google/siglip-so400m-patch14-384", device="cpu")
clip = Encoder.from_pretrained("openai/clip-vit-large-patch14", device="cpu")
shape = list(encoder.encode_texts(["a cat"]).shape)
print(json.dumps([encoder.model_name, encoder.dim, clip.dim, shape]))
"""


def test_a_hub_name_loads_its_stand_in_offline(tmp_path: Path) -> None:
    cache = build_hub_cache(
        tmp_path / "hub",
        {"google/siglip-so400m-patch14-384": "siglip", "openai/clip-vit-large-patch14": "clip"},
    )
    snapshot = next((cache / "models--google--siglip-so400m-patch14-384" / "snapshots").iterdir())
    assert (snapshot / "config.json").is_file()
    assert (cache / "models--google--siglip-so400m-patch14-384" / "refs" / "main").read_text() == (
        snapshot.name
    )
    # The hub client reads HF_HUB_CACHE once, at import: a fresh process sees it.
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HOME", None)
    done = subprocess.run(
        [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, dim, clip_dim, shape = json.loads(done.stdout.splitlines()[-1])
    assert name == "google/siglip-so400m-patch14-384"
    assert dim == clip_dim == 32 and shape == [1, 32]


def test_a_second_build_keeps_what_is_there(tmp_path: Path) -> None:
    build_hub_cache(tmp_path, {"google/siglip-base-patch16-224": "siglip"})
    weights = next(
        tmp_path.glob("models--google--siglip-base-patch16-224/snapshots/*/model.safetensors")
    )
    before = weights.stat().st_mtime_ns
    build_hub_cache(tmp_path, {"google/siglip-base-patch16-224": "siglip"})
    assert weights.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("repos", "message"),
    [
        ({"google/siglip": "t5"}, "unknown stand-in kind 't5'"),
        ({"siglip": "siglip"}, "not a hub repo id"),
        ({"a/b/c": "siglip"}, "not a hub repo id"),
    ],
)
def test_bad_repos_are_refused(tmp_path: Path, repos: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_hub_cache(tmp_path, repos)
    assert not any(tmp_path.iterdir())
