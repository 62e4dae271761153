"""The folders the docs' examples assume are at hand, built once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from tests.docs.pages import ROOT
from tests.helpers import PhotoServer, photo_row, save_with_exif, write_dataset

PHOTOS = {
    "chelsea.png": "chelsea.png",
    "rocket.jpg": "rocket.jpg",
    "coffee.png": "coffee.png",
    "astronaut.png": "astronaut.png",
    "beach.jpg": "china.jpg",
    "street.jpg": "motorcycle_left.png",
    "dog.png": "grace_hopper.jpg",
}
"""``photos/``: the names the docs use, and the real photo each one is."""

UNSPLASH_IDS = ("p0", "p1", "p2")

HUB_MODELS = {
    "google/siglip-so400m-patch14-384": "siglip",
    # SigLIP 2's fixed-resolution checkpoints load with the SigLIP classes.
    "google/siglip2-so400m-patch14-384": "siglip",
    "openai/clip-vit-large-patch14": "clip",
}
"""Hub checkpoints the shell examples load by name, each with a tiny random stand-in."""


def _write_base(folder: Path, photo_paths: list[Path], extra_photo_paths: list[Path]) -> None:
    """``photos/``, ``pets/`` and ``captions.tsv``: what every page may use."""
    photos = folder / "photos"
    photos.mkdir(parents=True)
    by_name = {path.name: path for path in [*photo_paths, *extra_photo_paths]}
    for name, origin in PHOTOS.items():
        with Image.open(by_name.get(origin, photo_paths[0])) as image:
            image.convert("RGB").save(photos / name)
    shutil.copy(photos / "chelsea.png", folder / "cat.jpg")
    for label, name in {"cat": "chelsea.png", "rocket": "rocket.jpg", "cup": "coffee.png"}.items():
        (folder / "pets" / label).mkdir(parents=True)
        shutil.copy(photos / name, folder / "pets" / label / name)
    (folder / "captions.tsv").write_text(
        "image\tcaption\nphotos/chelsea.png\ta cat\nphotos/rocket.jpg\ta rocket launch\n"
        "photos/coffee.png\ta cup of coffee\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="session")
def photo_server() -> Iterator[PhotoServer]:
    """Serves the photos of the sandboxes' Unsplash Lite folders, on loopback."""
    with PhotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> Path:
    """The python examples' files: ``files/`` (copied for each page), and ``dim``."""
    from zeroshot_vision import Encoder, SearchEngine

    root = tmp_path_factory.mktemp("docs-sandbox")
    _write_base(root / "files", photo_paths, extra_photo_paths)
    os.environ["XDG_CACHE_HOME"], saved = str(root / "cache"), os.environ.get("XDG_CACHE_HOME")
    try:
        encoder = Encoder.from_pretrained("tiny", device="cpu")
        with SearchEngine.create(root / "files" / "photos-index", encoder=encoder) as engine:
            engine.index_folder(root / "files" / "photos")
    finally:
        if saved is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = saved
    (root / "dim").write_text(str(encoder.dim))
    return root


def _write_pictures(folder: Path, photos: Path) -> None:
    """``~/Pictures``: a small library with dates and cameras, and one near-duplicate."""
    library = {
        "2021/trip/beach.jpg": ("beach.jpg", "2021:07:14 18:03:22", "FUJIFILM", "X-T4"),
        "2021/trip/street.jpg": ("street.jpg", "2021:07:15 09:30:00", "FUJIFILM", "X-T4"),
        "2022/chelsea.jpg": ("chelsea.png", "2022:03:01 12:00:00", "Apple", "iPhone 13"),
        "2023/rocket.jpg": ("rocket.jpg", "2023:11:05 20:15:00", "Apple", "iPhone 13"),
        "coffee.jpg": ("coffee.png", "2020:01:02 08:00:00", "Apple", "iPhone 11"),
    }
    for name, (origin, taken, make, model) in library.items():
        save_with_exif(photos / origin, folder / name, taken=taken, make=make, model=model)
    # A smaller copy of the same photo, in another folder: what `zsv duplicates` finds.
    with Image.open(folder / "coffee.jpg") as image:
        half = image.resize((image.width // 2, image.height // 2))
        (folder / "old").mkdir()
        half.save(folder / "old" / "coffee-half.jpg", "JPEG", quality=90, exif=image.getexif())


def _write_wide_parquet(path: Path) -> None:
    """Vectors from another tool (no zsv schema metadata), 768 wide: another model's."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.random.default_rng(0).standard_normal((3, 768)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 768)
    pq.write_table(pa.table({"id": ["a", "b", "c"], "vector": column}), path)


BUILD_INDEXES = """
import sys
from pathlib import Path
from zeroshot_vision import Encoder, SearchEngine

home = Path(sys.argv[1])
encoder = Encoder.from_pretrained()  # the default model: the so400m stand-in
for folder, source, images in [
    ("idx", "photos", None),
    ("my-index", "Pictures", None),
    ("work/index", "work/unsplash-lite", "work/photos"),
]:
    with SearchEngine.create(home / folder, encoder=encoder) as engine:
        report = engine.index_folder(home / source, images_dir=images and home / images)
        assert not report.failed, report
"""


@pytest.fixture(scope="session")
def shell_sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    photo_server: PhotoServer,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> Path:
    """The shell examples' home folder, built once at ``ROOT/page`` and moved to ``ROOT/home``.

    Each page runs in a copy put back at ``ROOT/page`` (also ``$HOME``), so the absolute
    paths the prebuilt indexes hold stay right. It holds the python sandbox's files, plus:
    ``photo.jpg``, ``ref.jpg``, ``cat.jpg``; ``Pictures/`` (JPEGs with EXIF dates and
    cameras, one near-duplicate); ``wide.parquet`` (768-d vectors); Unsplash Lite as
    ``unsplash-lite/``, as its zip and as ``unsplash-research-dataset-lite-latest/`` (the
    photos of ``UNSPLASH_IDS`` served by ``photo_server``; they are also in ``photos/``);
    ``xm3600/`` (four photos with captions in seven languages, the Crossmodal-3600 layout);
    and three indexes made with the default model: ``idx`` (of ``photos/``), ``my-index``
    (of ``~/Pictures``) and ``work/index`` (of an Unsplash Lite folder). ``ROOT/hub`` is
    a Hugging Face cache with a tiny stand-in for each of :data:`HUB_MODELS`.
    """
    from zeroshot_vision.testing import SAMPLE_CAPTIONS, build_hub_cache, build_xm3600_sample

    root = tmp_path_factory.mktemp("docs-shell")
    home = root / "page"
    _write_base(home, photo_paths, extra_photo_paths)
    photos = home / "photos"
    for name, origin in {
        "photo.jpg": "dog.png",
        "ref.jpg": "beach.jpg",
        "cat.jpg": "chelsea.png",
    }.items():
        with Image.open(photos / origin) as image:
            image.convert("RGB").save(home / name)
    _write_pictures(home / "Pictures", photos)
    _write_wide_parquet(home / "wide.parquet")
    rows = [
        photo_row(photo_id, photo_server.url, photo_submitted_at=f"202{i}-05-04 10:11:12")
        for i, photo_id in enumerate(UNSPLASH_IDS)
    ]
    keywords = [
        {"photo_id": photo_id, "keyword": "photo", "suggested_by_user": "t"}
        for photo_id in UNSPLASH_IDS
    ]
    write_dataset(home / "unsplash-lite", rows, keywords=keywords)
    write_dataset(home / "unsplash-research-dataset-lite-latest", rows, keywords=keywords)
    with zipfile.ZipFile(home / "unsplash-research-dataset-lite-latest.zip", "w") as archive:
        for table in sorted((home / "unsplash-lite").iterdir()):
            archive.write(table, table.name)
    write_dataset(home / "work" / "unsplash-lite", rows, keywords=keywords)
    (home / "work" / "photos").mkdir()
    for photo_id, name in zip(UNSPLASH_IDS, ["street.jpg", "beach.jpg", "dog.png"], strict=True):
        with Image.open(photos / name) as image:
            image.convert("RGB").save(home / "work" / "photos" / f"{photo_id}.jpg")
        shutil.copy(home / "work" / "photos" / f"{photo_id}.jpg", photos / f"{photo_id}.jpg")
    (home / "examples").symlink_to(ROOT / "examples")
    build_xm3600_sample(
        home / "xm3600",
        [photos / name for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")],
        SAMPLE_CAPTIONS[:4],
    )
    build_hub_cache(root / "hub", HUB_MODELS)
    subprocess.run(
        [sys.executable, "-c", BUILD_INDEXES, str(home)],
        env=shell_env(root),
        check=True,
        capture_output=True,
        timeout=300,
    )
    home.rename(root / "home")
    return root


def shell_env(root: Path) -> dict[str, str]:
    """The environment a reader's shell has: ``zsv`` on the PATH, the hub cache offline."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("ZSV_", "PINECONE_"))
    }
    env.update(
        HOME=str(root / "page"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=str(ROOT / "src"),
        HF_HUB_CACHE=str(root / "hub"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        XDG_CACHE_HOME=str(root / "cache"),
        MPLBACKEND="Agg",
        NO_COLOR="1",
    )
    env.pop("HF_HOME", None)
    return env
