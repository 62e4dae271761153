"""examples/vision_rag.py runs offline with the tiny model and prints a chat message."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("langchain_core", reason="needs the langchain extra")

from zeroshot_vision import Encoder, FaissStore, SearchEngine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vision_rag.py"


@pytest.mark.slow
def test_example_prints_a_message_with_the_retrieved_photos(
    tmp_path: Path, tiny_model_dir: Path, photo_paths: list[Path]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths:
        shutil.copy(path, photos / path.name)
    question = "Which photo shows a rocket?"
    env = {**os.environ, "ZSV_MODEL": str(tiny_model_dir)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--photos", str(photos), "-k", "2", question],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    message = json.loads(done.stdout)
    assert message["role"] == "user"
    text, *images = message["content"]
    assert text["type"] == "text" and question in text["text"]
    assert [part["type"] for part in images] == ["image_url", "image_url"]
    for part in images:
        url = part["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and max(image.size) <= 768
    # The photos and probabilities are the engine's answer to the question, from the
    # model loaded as the example loads it (the CPU's default precision).
    encoder = Encoder.from_pretrained(tiny_model_dir)
    engine = SearchEngine(encoder, FaissStore(encoder.dim))
    engine.index_images(sorted(photos.iterdir()))
    expected = engine.search(question, k=2)
    listed = re.findall(r"Photo \d: (\S+), probability it matches ([0-9.]+)", text["text"])
    assert [name for name, _ in listed] == [Path(r.metadata["path"]).name for r in expected]
    assert [float(p) for _, p in listed] == pytest.approx(
        [r.probability for r in expected], abs=1e-3
    )
