"""The shell examples of README.md and docs/*.md run, as written, offline.

Every command of a ```bash or ```console block runs in ``bash``, in order, in a copy of
the shell sandbox (``$HOME`` too, so ``~/Pictures`` is the sandbox's; see
:func:`tests.docs.conftest.shell_sandbox`). Checkpoints named by the docs load from a hub
cache of tiny stand-ins, through the hub client's real offline look-up. A command passes
when it exits 0, or, where the page shows ``zsv: error: ...`` after it, when it fails
with that message. Lines the page shows that hold no number, path or ellipsis (table
headers, ``no results``) and every ``zsv: hint:`` line must appear in its output.

What a reader's shell would do, the runner does too:

* ``zsv serve ...`` starts in the background (on a free port, as ``--port`` would) and
  serves the page's later commands, in which ``127.0.0.1:8000`` names that port; the
  server stops at the end of the page.
* ``export NAME=VALUE`` sets a variable for the page's later commands.
* ``curl`` gets ``--fail-with-body`` (an HTTP error fails the command) and must print JSON.
* Placeholders are filled: ``<photo_id>`` with a photo id of the sandbox's Unsplash Lite,
  and the undo log named in ``zsv duplicates``' output with the one the page wrote.

Commands matched by :data:`tests.docs.pages.NOT_RUN` are not run, each for its reason.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.docs.conftest import UNSPLASH_IDS, shell_env
from tests.docs.pages import PAGES, VLM_ADDRESS, Command, page_id, shell_commands
from tests.docs.serve import DOCS_PORT, Served

COMMAND_TIMEOUT = 300
UNDO_LOG = re.compile(r"zsv-duplicates-\d{8}T\d{6}\.\d+Z\.jsonl")
NUMBER_OR_PATH = re.compile(r"\d|/|\.\.\.|…")


def _normal(text: str) -> str:
    return " ".join(text.split())


def _appears(line: str, output: str) -> bool:
    """``line`` is in ``output``, whitespace aside, an ellipsis standing for anything."""
    parts = [re.escape(part) for part in re.split(r"\.\.\.|…", _normal(line))]
    return re.search(r".*?".join(parts), _normal(output)) is not None


class Page:
    """One page's commands, run in order in one home folder, with what they share."""

    def __init__(self, home: Path, env: dict[str, str], vlm: str | None = None) -> None:
        self.home = home
        self.env = env
        self.server: Served | None = None
        self.vlm = vlm  # where the tiny VLM's server listens, for pages that ask one

    def fill(self, text: str) -> str:
        text = text.replace("<photo_id>", UNSPLASH_IDS[0])
        if VLM_ADDRESS in text:
            if self.vlm is None:
                raise AssertionError("it asks a VLM, but the page has no docs-test: vlm block")
            text = text.replace(VLM_ADDRESS, self.vlm)
        if DOCS_PORT in text:
            if self.server is None:
                raise AssertionError("it talks to a zsv serve that no earlier command started")
            text = self.server.point(text)
        for name in set(UNDO_LOG.findall(text)):
            written = sorted(self.home.rglob("zsv-duplicates-*.jsonl"))
            if len(written) != 1:
                raise AssertionError(f"it undoes a move, but the page wrote {len(written)} logs")
            text = re.sub(r"\S*" + re.escape(name), str(written[0]), text)
        return text

    def run(self, command: Command) -> None:
        """Run ``command``; raise AssertionError saying what went wrong."""
        if shlex.split(command.text, comments=True)[:2] == ["zsv", "serve"]:
            self.serve(shlex.split(command.text, comments=True))
            return
        text = self.fill(command.text)
        words = shlex.split(text, comments=True)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return
        if words[0] == "curl":
            text = text.replace("curl", "curl --fail-with-body", 1)
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        output = done.stdout + done.stderr
        said = f"exit {done.returncode}\n{output[-3000:]}"
        if command.shows_an_error:
            assert done.returncode != 0, f"the page shows an error, but {said}"
        else:
            assert done.returncode == 0, said
        for line in command.shown:
            checked = line.startswith(("zsv: error:", "zsv: hint:"))
            if checked or (re.search("[a-z]", line) and not NUMBER_OR_PATH.search(line)):
                assert _appears(line, output), f"the page shows {line!r}, but {said}"
        if words[0] == "curl":
            json.loads(done.stdout)

    def serve(self, words: list[str]) -> None:
        self.stop()
        self.server = Served(words, self.home, self.env)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@contextlib.contextmanager
def page_home(sandbox: Path, page: Path) -> Iterator[Path]:
    """A fresh copy of the sandbox's home at the path its indexes were made at."""
    home = sandbox / "page"
    shutil.copytree(sandbox / "home", home, symlinks=True)
    if any(c.text.startswith("unzip ") for c in shell_commands(page) if c.not_run is None):
        shutil.rmtree(home / "unsplash-lite")  # the page unzips it itself
    try:
        yield home
    finally:
        home.rename(sandbox / f"ran-{page_id(page).replace('/', '-')}")


def test_every_shell_command_is_collected_and_each_not_run_says_why() -> None:
    commands = [command for page in PAGES for command in shell_commands(page)]
    assert len(commands) >= 60
    assert sum(command.text.startswith("zsv ") for command in commands) >= 45
    assert all(command.not_run for command in commands if command.not_run is not None)
    run = [command for command in commands if command.not_run is None]
    assert 3 * len(run) >= 2 * len(commands), "not running a command is for the rare one"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_shell_examples_of_a_page_run(
    page: Path, shell_sandbox: Path, request: pytest.FixtureRequest
) -> None:
    commands = [command for command in shell_commands(page) if command.not_run is None]
    if not commands:
        pytest.skip(f"{page_id(page)} has no shell command that runs offline")
    vlm = None
    if any(VLM_ADDRESS in command.text for command in commands):
        vlm = f"127.0.0.1:{request.getfixturevalue('vlm_server').port}"
    failures = []
    with page_home(shell_sandbox, page) as home:
        runner = Page(home, shell_env(shell_sandbox), vlm)
        try:
            for command in commands:
                try:
                    runner.run(command)
                except (AssertionError, subprocess.TimeoutExpired, ValueError) as exc:
                    failures.append(f"{command.where}: $ {command.text}\n{exc}")
        finally:
            runner.stop()
    assert not failures, "\n\n".join(failures)
