"""Every ```python block of README.md and docs/*.md runs, as written, with the tiny model.

Each page runs in a fresh subprocess, its blocks in order in one namespace (a page builds
on its earlier blocks, as a reader does), inside a sandbox folder holding what the docs
assume is at hand: ``photos/`` (real photos), ``photos-index/`` (an index of them),
``pets/`` (one folder per class), ``captions.tsv`` and ``unsplash-lite/`` (a small
Unsplash Lite folder whose photo URLs point at a loopback server). ``ZSV_MODEL=tiny``
stands in for the hub models, and nothing reaches the network.

Markers, an HTML comment on the line before a block (invisible in the rendered docs):

* ``<!-- docs-test: pinecone -->``: the block uses an account. The page then runs with
  ``PINECONE_API_KEY`` set and ``PINECONE_INDEX_HOST`` naming the project's loopback
  Pinecone server (:class:`~zeroshot_vision.testing.PineconeTestServer`).
* ``<!-- docs-test: skip REASON -->``: the block cannot run offline (say why); rare.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from tests.helpers import PhotoServer, photo_row, write_dataset

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|pinecone)\b(.*?)-->")
FENCE = re.compile(r"^```python\s*$")

RUNNER = """
import json, os, sys, traceback
pages = json.load(sys.stdin)
failures = {}
for page in pages:
    os.chdir(page["cwd"])
    namespace = {"__name__": "__docs__"}
    for block in page["blocks"]:
        try:
            exec(compile(block["code"], block["where"], "exec"), namespace)
        except BaseException:
            failures[page["page"]] = "failed: " + block["where"] + "\\n" + traceback.format_exc()
            break
print(json.dumps(failures))
"""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    marker: str | None
    reason: str


def python_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks, each with the marker on the line before it, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        if not FENCE.match(lines[number]):
            number += 1
            continue
        before = next((text for text in reversed(lines[:number]) if text.strip()), "")
        found = MARKER.search(before)
        end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
        blocks.append(
            Block(
                page=page,
                line=number + 2,
                code="\n".join(lines[number + 1 : end]) + "\n",
                marker=found.group(1) if found else None,
                reason=found.group(2).strip() if found else "",
            )
        )
        number = end + 1
    return blocks


def test_every_page_and_block_is_collected() -> None:
    blocks = [block for page in PAGES for block in python_blocks(page)]
    assert len(blocks) >= 34
    assert {block.page.name for block in blocks} >= {"README.md", "guide.md", "notebook.md"}
    skipped = [block for block in blocks if block.marker == "skip"]
    assert all(block.reason for block in skipped), "a skipped block must say why"
    assert len(skipped) <= len(blocks) // 8, "skipping is for the rare block"


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    photo_paths: list[Path],
    extra_photo_paths: list[Path],
) -> Path:
    """The files the docs assume, built once; each page gets a copy."""
    from zeroshot_vision import Encoder, SearchEngine

    root = tmp_path_factory.mktemp("docs-sandbox")
    cache = root / "cache"
    photos = root / "files" / "photos"
    photos.mkdir(parents=True)
    by_name = {path.name: path for path in [*photo_paths, *extra_photo_paths]}
    wanted = {
        "chelsea.png": "chelsea.png",
        "rocket.jpg": "rocket.jpg",
        "coffee.png": "coffee.png",
        "astronaut.png": "astronaut.png",
        "beach.jpg": "china.jpg",
        "street.jpg": "motorcycle_left.png",
        "dog.png": "grace_hopper.jpg",
    }
    for name, origin in wanted.items():
        source = by_name.get(origin, photo_paths[0])
        with Image.open(source) as image:
            image.convert("RGB").save(photos / name)
    pets = root / "files" / "pets"
    for label, names in {
        "cat": ["chelsea.png"],
        "rocket": ["rocket.jpg"],
        "cup": ["coffee.png"],
    }.items():
        (pets / label).mkdir(parents=True)
        for name in names:
            shutil.copy(photos / name, pets / label / name)
    (root / "files" / "captions.tsv").write_text(
        "image\tcaption\nphotos/chelsea.png\ta cat\nphotos/rocket.jpg\ta rocket launch\n"
        "photos/coffee.png\ta cup of coffee\n",
        encoding="utf-8",
    )
    os.environ["XDG_CACHE_HOME"], saved = str(cache), os.environ.get("XDG_CACHE_HOME")
    try:
        encoder = Encoder.from_pretrained("tiny", device="cpu")
        with SearchEngine.create(root / "files" / "photos-index", encoder=encoder) as engine:
            engine.index_folder(photos)
    finally:
        if saved is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = saved
    (root / "dim").write_text(str(encoder.dim))
    return root


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.fixture(scope="session")
def page_failures(sandbox: Path) -> dict[str, str]:
    """Run every page's blocks, each page in its own copy of the sandbox, in one process.

    One process for all pages: importing torch and loading the model once keeps this
    quick; each page still gets its own namespace and working folder.
    """
    from zeroshot_vision.testing import PineconeTestServer

    env = {
        **os.environ,
        "ZSV_MODEL": "tiny",
        "XDG_CACHE_HOME": str(sandbox / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "PINECONE_API_KEY": "docs-test",
    }
    pages = []
    with (
        PhotoServer() as photo_server,
        PineconeTestServer(dimension=int((sandbox / "dim").read_text())) as pinecone_host,
    ):
        env["PINECONE_INDEX_HOST"] = pinecone_host
        for page in PAGES:
            runnable = [block for block in python_blocks(page) if block.marker != "skip"]
            if not runnable:
                continue
            work = sandbox / "pages" / _page_id(page).replace("/", "-")
            shutil.copytree(sandbox / "files", work)
            rows = [photo_row(f"p{i}", photo_server.url) for i in range(3)]
            write_dataset(work / "unsplash-lite", rows)
            blocks = [{"where": f"{_page_id(page)}:{b.line}", "code": b.code} for b in runnable]
            pages.append({"page": _page_id(page), "cwd": str(work), "blocks": blocks})
        done = subprocess.run(
            [sys.executable, "-c", RUNNER],
            input=json.dumps(pages),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    failures: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_the_python_examples_of_a_page_run(page: Path, page_failures: dict[str, str]) -> None:
    if all(block.marker == "skip" for block in python_blocks(page)):
        pytest.skip(f"{_page_id(page)} has no python block to run")
    assert _page_id(page) not in page_failures, page_failures.get(_page_id(page))


def test_the_test_files_the_docs_name_exist() -> None:
    named = {
        match
        for page in PAGES
        for match in re.findall(r"\btests/[\w/]+\.py\b", page.read_text(encoding="utf-8"))
    }
    assert named, "the docs name test files"
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
