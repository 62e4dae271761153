"""Every ```python block of README.md and docs/*.md runs, as written, with the tiny model.

Each page runs in a fresh subprocess, its blocks in order in one namespace (a page builds
on its earlier blocks, as a reader does), inside a sandbox folder holding what the docs
assume is at hand: ``photos/`` (real photos), ``photos-index/`` (an index of them),
``pets/`` (one folder per class), ``captions.tsv`` and ``unsplash-lite/`` (a small
Unsplash Lite folder whose photo URLs point at a loopback server). ``ZSV_MODEL=tiny``
stands in for the hub models, and nothing reaches the network. A block marked
``<!-- docs-test: pinecone -->`` runs with ``PINECONE_API_KEY`` set and
``PINECONE_INDEX_HOST`` naming the project's loopback Pinecone server
(:class:`~zeroshot_vision.testing.PineconeTestServer`); a page with a block marked
``<!-- docs-test: server -->`` runs with a ``zsv serve`` of its ``photos-index``. Markers
are described in :mod:`tests.docs.pages`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.docs.pages import PAGES, ROOT, VLM_ADDRESS, page_id, python_blocks
from tests.docs.serve import Served
from tests.helpers import PhotoServer, photo_row, write_dataset

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


def test_every_page_and_block_is_collected() -> None:
    blocks = [block for page in PAGES for block in python_blocks(page)]
    assert len(blocks) >= 34
    assert {block.page.name for block in blocks} >= {"README.md", "guide.md", "notebook.md"}
    skipped = [block for block in blocks if block.marker == "skip"]
    assert all(block.reason for block in skipped), "a skipped block must say why"
    assert len(skipped) <= len(blocks) // 8, "skipping is for the rare block"


@pytest.fixture(scope="session")
def page_failures(
    sandbox: Path, photo_server: PhotoServer, request: pytest.FixtureRequest
) -> dict[str, str]:
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
    servers: list[Served] = []
    with (
        PineconeTestServer(dimension=int((sandbox / "dim").read_text())) as pinecone_host,
        contextlib.ExitStack() as stack,
    ):
        stack.callback(lambda: [server.stop() for server in servers])
        env["PINECONE_INDEX_HOST"] = pinecone_host
        for page in PAGES:
            runnable = [block for block in python_blocks(page) if block.marker != "skip"]
            if not runnable:
                continue
            work = sandbox / "pages" / page_id(page).replace("/", "-")
            shutil.copytree(sandbox / "files", work)
            rows = [photo_row(f"p{i}", photo_server.url) for i in range(3)]
            write_dataset(work / "unsplash-lite", rows)
            code = {block.where: block.code for block in runnable}
            if any(block.marker == "vlm" for block in runnable):
                # Started only for pages that ask a VLM; shared with tests/ask.
                vlm = request.getfixturevalue("vlm_server")
                address = f"127.0.0.1:{vlm.port}"
                code = {where: text.replace(VLM_ADDRESS, address) for where, text in code.items()}
            if any(block.marker == "server" for block in runnable):
                serve = [sys.executable, "-m", "zeroshot_vision._cli", "serve"]
                servers.append(Served([*serve, "--index", "photos=photos-index"], work, env))
                code = {where: servers[-1].point(text) for where, text in code.items()}
            blocks = [{"where": where, "code": text} for where, text in code.items()]
            pages.append({"page": page_id(page), "cwd": str(work), "blocks": blocks})
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
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_python_examples_of_a_page_run(page: Path, page_failures: dict[str, str]) -> None:
    if all(block.marker == "skip" for block in python_blocks(page)):
        pytest.skip(f"{page_id(page)} has no python block to run")
    assert page_id(page) not in page_failures, page_failures.get(page_id(page))


def test_the_test_files_the_docs_name_exist() -> None:
    named = {
        match
        for page in PAGES
        for match in re.findall(r"\btests/[\w/]+\.py\b", page.read_text(encoding="utf-8"))
    }
    assert named, "the docs name test files"
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
