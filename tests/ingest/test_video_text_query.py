"""A text query on a photo's subject finds the right moment of a video (issue #32's done-when).

Random weights cannot tie "a cat" to a cat, and no trained checkpoint can be downloaded
here, so the module teaches the tiny SigLIP three photo/caption pairs first: a short
run of SigLIP's own sigmoid loss on augmented crops of the three photos. The video is
then made from the same photos (scaled, moved, with noise and H.264 compression), and
the query goes through the whole library path: the saved model loaded by
``Encoder.from_pretrained``, frames chosen by scene cuts, vectors in FAISS, a text search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

import skimage.data
from PIL import Image

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision._images.video import VideoOptions
from zeroshot_vision.testing import build_tiny_siglip, write_clip

SUBJECTS = {
    "an astronaut": skimage.data.astronaut,
    "a cup of coffee": skimage.data.coffee,
    "a cat": skimage.data.chelsea,
}
STEPS = 160
SCENE_SECONDS = 1.0


def _teach(folder: Path) -> Path:
    """Train a tiny random SigLIP on the three subjects and save it to ``folder``."""
    import torch
    import transformers

    source = build_tiny_siglip(folder / "random")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = transformers.AutoModel.from_pretrained(source)
    processor = transformers.AutoProcessor.from_pretrained(source)
    photos = [np.asarray(Image.fromarray(load()).resize((64, 48))) for load in SUBJECTS.values()]
    tokens = processor.tokenizer(
        list(SUBJECTS), padding="max_length", max_length=64, return_tensors="pt"
    )

    def crop(photo: np.ndarray) -> Image.Image:
        height, width = photo.shape[:2]
        scale = rng.uniform(0.7, 1.0)
        h, w = int(height * scale), int(width * scale)
        y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        noisy = photo[y : y + h, x : x + w].astype(np.float32) + rng.normal(0, 4, (h, w, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

    targets = torch.full((2 * len(photos), len(photos)), -1.0)
    for row in range(len(targets)):
        targets[row, row // 2] = 1.0  # two crops of each photo, each matching its caption
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(STEPS):
        crops = [crop(photo) for photo in photos for _ in range(2)]
        pixels = processor.image_processor(crops, return_tensors="pt")["pixel_values"]
        logits = model(input_ids=tokens["input_ids"], pixel_values=pixels).logits_per_image
        loss = -torch.nn.functional.logsigmoid(targets * logits).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    taught = folder / "taught"
    model.save_pretrained(taught)
    processor.save_pretrained(taught)
    return taught


@pytest.fixture(scope="module")
def taught_encoder(tmp_path_factory: pytest.TempPathFactory):
    encoder = Encoder.from_pretrained(_teach(tmp_path_factory.mktemp("taught-siglip")))
    yield encoder
    encoder.close()


@pytest.fixture(scope="module")
def trip(tmp_path_factory: pytest.TempPathFactory, taught_encoder) -> Path:
    """An index of one video: a scene per subject, in the order of SUBJECTS."""
    root = tmp_path_factory.mktemp("trip")
    media = root / "media"
    media.mkdir()
    scenes = [load() for load in SUBJECTS.values()]
    write_clip(media / "trip.mp4", scenes, seconds=SCENE_SECONDS, fps=10, seed=3)
    with SearchEngine.create(root / "index", encoder=taught_encoder) as engine:
        report = engine.index_folder(media, video=VideoOptions(max_interval=0.5))
    assert not report.failed
    return root / "index"


def test_the_taught_model_tells_the_subjects_apart(taught_encoder) -> None:
    # The premise of the next test: on the photos themselves, each caption is closest
    # to its own photo (else a failure there says nothing about the video path).
    texts = taught_encoder.encode_texts(list(SUBJECTS))
    photos = taught_encoder.encode_images([load() for load in SUBJECTS.values()])
    assert (np.argmax(texts @ photos.T, axis=1) == np.arange(len(SUBJECTS))).all()


@pytest.mark.parametrize("scene", range(len(SUBJECTS)))
def test_a_text_query_finds_the_moment_in_the_right_scene(trip, taught_encoder, scene) -> None:
    text = list(SUBJECTS)[scene]
    with SearchEngine.open(trip, encoder=taught_encoder) as engine:
        frames = len(engine.store)
        best = engine.search(text, k=1, group_by="file")[0]
        ranked = engine.search(text, k=frames)
    assert frames == 6  # two frames per one-second scene at a 0.5 s interval
    assert best.id.startswith("trip.mp4#t=") and best.timestamp is not None
    start, end = scene * SCENE_SECONDS, (scene + 1) * SCENE_SECONDS
    assert start <= best.timestamp < end
    assert best.metadata["scene_start"] == pytest.approx(start, abs=0.11)
    # Both frames of the scene outrank every frame of the other scenes.
    assert all(start <= r.timestamp < end for r in ranked[:2])
    assert not any(start <= r.timestamp < end for r in ranked[2:])
