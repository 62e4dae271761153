"""The examples of README.md and docs/*.md: ```python blocks, and shell commands.

Markers, an HTML comment on the line before a block (invisible in the rendered docs):

* ``<!-- docs-test: pinecone -->``: the block uses an account. It runs against the
  project's loopback Pinecone server instead.
* ``<!-- docs-test: server -->``: the block talks to a ``zsv serve`` at
  ``127.0.0.1:8000``. The page runs with one serving its sandbox's ``photos-index`` as
  ``photos``, on a free port that the block's ``127.0.0.1:8000`` is changed to name.
* ``<!-- docs-test: vlm -->``: the block asks a vision-language model at
  ``127.0.0.1:8080`` (:data:`VLM_ADDRESS`). Blocks of a page naming that address run
  with ``transformers serve`` of the tiny random VLM in its place (the ``vlm_server``
  fixture), the address changed to name it.
* ``<!-- docs-test: skip REASON -->``: the block cannot run offline (say why); rare.

Shell commands are read from ```bash blocks (one command a line, ``\\`` continues it) and
```console blocks (``$ `` starts a command; the lines after it are its output). Commands
that cannot run offline are recognised by :data:`NOT_RUN`, each rule with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|pinecone|server|vlm)\b(.*?)-->")
VLM_ADDRESS = "127.0.0.1:8080"
"""Where the docs' vision-language model listens; tests put the tiny VLM's server there."""
FENCE = re.compile(r"^```(\w+)\s*$")

NOT_RUN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^pip install\b"), "installs packages from PyPI"),
    (re.compile(r"^make\b"), "builds the project's own virtual environment; CI runs make test"),
    (re.compile(r"^(\w+=\S+\s+)*pytest\b"), "runs the test suite this test belongs to"),
    (
        re.compile(r"^ray start\b|\s--ray\b"),
        "starts or joins a Ray cluster, which listens on every interface: the tests run one "
        "only in a loopback-only network namespace (tests/distributed/)",
    ),
    (re.compile(r"^export \w+=\.\.\.(\s|$)"), "a placeholder for a secret"),
    (
        re.compile(r"^zsv app\b"),
        "serves until stopped; tests/app/test_browser.py drives it in Chromium",
    ),
]
"""Commands that cannot run offline, or must not run inside the test suite, and why."""


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the marker on the line before it, if any."""

    page: Path
    line: int  # of the block's first line of code
    language: str
    lines: tuple[str, ...]
    marker: str | None
    reason: str

    @property
    def code(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def where(self) -> str:
        return f"{page_id(self.page)}:{self.line}"


def blocks(page: Path, languages: tuple[str, ...]) -> list[Block]:
    """The page's fenced blocks in ``languages``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    number = 0
    while number < len(lines):
        fence = FENCE.match(lines[number])
        if not fence and not lines[number].startswith("```"):
            number += 1
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
        if fence and fence.group(1) in languages:
            before = next((text for text in reversed(lines[:number]) if text.strip()), "")
            marker = MARKER.search(before)
            found.append(
                Block(
                    page=page,
                    line=number + 2,
                    language=fence.group(1),
                    lines=tuple(lines[number + 1 : end]),
                    marker=marker.group(1) if marker else None,
                    reason=marker.group(2).strip() if marker else "",
                )
            )
        number = end + 1
    return found


def python_blocks(page: Path) -> list[Block]:
    return blocks(page, ("python",))


@dataclass(frozen=True)
class Command:
    """One shell command of a page, with the output the page shows for it."""

    where: str
    text: str
    shown: tuple[str, ...]  # the lines a ```console block shows after it
    not_run: str | None  # why it does not run, or None

    @property
    def shows_an_error(self) -> bool:
        return any(line.startswith("zsv: error:") for line in self.shown)


def _not_run(text: str, block: Block) -> str | None:
    if block.marker == "skip":
        return block.reason
    return next((reason for rule, reason in NOT_RUN if rule.search(text)), None)


def shell_commands(page: Path) -> list[Command]:
    """The page's shell commands in order, from its ```bash and ```console blocks."""
    commands: list[Command] = []
    for block in blocks(page, ("bash", "console")):
        entries: list[tuple[int, str, list[str]]] = []  # first line, command, lines shown
        pending: list[str] = []  # a command continued with a backslash
        start = 0
        for offset, line in enumerate(block.lines):
            if not pending:
                if block.language == "console" and not line.startswith("$ "):
                    if entries and line.strip():
                        entries[-1][2].append(line)
                    continue
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                start = offset
                line = line.removeprefix("$ ")
            pending.append(line)
            if not line.endswith("\\"):
                entries.append((block.line + start, "\n".join(pending), []))
                pending = []
        commands += [
            Command(
                where=f"{page_id(page)}:{line}",
                text=text,
                shown=tuple(shown),
                not_run=_not_run(text, block),
            )
            for line, text, shown in entries
        ]
    return commands
