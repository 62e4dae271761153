"""Shared fixtures: a tiny SigLIP built offline, and real photos from installed packages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# Tests never reach the Hugging Face hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from tests.factories import EngineFactory, IndexedFolder, indexed_folder
from tests.helpers import TINY_LOGIT_BIAS, TINY_LOGIT_SCALE

# `make test` runs the suite on several processes (pytest-xdist: -n auto --dist loadgroup).
# Each process builds its own session fixtures, in its own temp folder, and listens on its
# own ephemeral ports; what must not be spread over processes is sent to one, as a unit:
# - a module's tests (its module-scoped fixtures: live servers, indexes, a Streamlit app and
#   a Chromium for the browser tests, the test-artifacts/ they write);
# - all of tests/distributed: one local Ray cluster at a time (its head node, its temp
#   folder, the object store's memory);
# - all of tests/docs: the docs sandbox (the indexes, `zsv serve` and the Unsplash photo
#   server that the shell and python examples share) is built once.
# The units are made by the scheduler below, from the test ids: xdist's own xdist_group
# marker works by renaming test ids, which pytest 9.2 no longer lets it do.
_SHARED_UNITS = {"tests/distributed/": "tests/distributed", "tests/docs/": "tests/docs"}


def _unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its shared folder's, else its module's."""
    module = nodeid.split("::", 1)[0]
    return next(
        (unit for prefix, unit in _SHARED_UNITS.items() if module.startswith(prefix)), module
    )


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may not be installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: whole units to idle workers, the largest first (xdist's loadscope)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:  # xdist's override point for the scope
            return _unit(nodeid)

    return UnitScheduling(config, log)


_PHOTOS = [
    ("skimage", "astronaut.png"),
    ("skimage", "coffee.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "motorcycle_left.png"),
]


def _package_dir(name: str) -> Path:
    module = pytest.importorskip(name)
    return Path(module.__file__).parent  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SigLIP saved with save_pretrained (logit_scale=2, logit_bias=-1)."""
    from zeroshot_vision.testing import build_tiny_siglip

    return build_tiny_siglip(
        tmp_path_factory.mktemp("tiny-siglip"),
        logit_scale=TINY_LOGIT_SCALE,
        logit_bias=TINY_LOGIT_BIAS,
    )


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    """The tiny model loaded through Encoder.from_pretrained (the users' path).

    float32, whatever this CPU's default: parity tests compare it with the float32
    reference pipeline (tests/test_encoder_fast_paths.py covers the bfloat16 default).
    """
    from zeroshot_vision import Encoder

    return Encoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """Real photographs that ship inside scikit-image."""
    data = _package_dir("skimage") / "data"
    paths = [data / name for _, name in _PHOTOS]
    missing = [p for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"scikit-image data files missing: {missing}")
    return paths


@pytest.fixture(scope="session")
def extra_photo_paths() -> list[Path]:
    """More real photos from scikit-learn and matplotlib, where installed."""
    found = []
    for package, relative in [
        ("sklearn", "datasets/images/china.jpg"),
        ("sklearn", "datasets/images/flower.jpg"),
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ]:
        try:
            path = _package_dir(package) / relative
        except pytest.skip.Exception:
            continue
        if path.exists():
            found.append(path)
    return found


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP saved with save_pretrained (logit_scale=2, no bias)."""
    from zeroshot_vision.testing import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), logit_scale=TINY_LOGIT_SCALE)


@pytest.fixture(scope="session")
def tiny_clip_encoder(tiny_clip_dir: Path):
    """The tiny CLIP loaded through Encoder.from_pretrained."""
    from zeroshot_vision import Encoder

    return Encoder.from_pretrained(tiny_clip_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaVA (CLIP vision + Llama text) saved with save_pretrained."""
    from zeroshot_vision.testing import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def vlm_server(tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve`` running the tiny VLM on 127.0.0.1, once per test session.

    Started only when a test asks for it (30-45 s on two busy cores), stopped at the end.
    Its request log (``server.log_path``) lines show what it received.
    """
    pytest.importorskip("accelerate", reason="transformers serve needs accelerate (dev extra)")
    from zeroshot_vision.testing import TransformersServe

    log = tmp_path_factory.mktemp("vlm-serve") / "serve.log"
    server = TransformersServe(tiny_vlm_dir, log_path=log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_engine(tiny_encoder):
    """``make_engine()``: an in-memory engine over the tiny model; ``make_engine(path)``:
    one that creates (or opens) that index folder. Every engine made is closed after."""
    factory = EngineFactory(tiny_encoder)
    yield factory
    factory.close()


@pytest.fixture
def make_indexed_folder(tmp_path_factory: pytest.TempPathFactory, tiny_encoder, photo_paths):
    """``make_indexed_folder(count=4, **index_folder_options)``: a folder of ``count`` real
    photos indexed with ``index_folder`` (see :class:`tests.factories.IndexedFolder`)."""

    def make(count: int = 4, **options: object) -> IndexedFolder:
        root = tmp_path_factory.mktemp("indexed")
        return indexed_folder(root, tiny_encoder, photo_paths[:count], **options)

    return make
