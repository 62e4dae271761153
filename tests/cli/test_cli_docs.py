"""Every option of every ``zsv`` subcommand is documented in docs/cli.md."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from zeroshot_vision._cli.parser import build_parser

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _subcommands(
    parser: argparse.ArgumentParser, prefix: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _subcommands(sub, f"{prefix} {name}")


def _options(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        longs = [option for option in action.option_strings if option.startswith("--")]
        if longs:
            yield longs[0]


def test_every_subcommand_option_appears_in_docs_cli_md() -> None:
    text = CLI_DOC.read_text(encoding="utf-8")
    missing = []
    for command, parser in _subcommands(build_parser(), "zsv"):
        for option in _options(parser):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                missing.append(f"{command} {option}")
    assert not missing, "options missing from docs/cli.md: " + ", ".join(missing)


def test_the_check_sees_the_scale_options() -> None:
    """The walk reaches ``zsv index``'s options (a check that found none would pass)."""
    index = dict(_subcommands(build_parser(), "zsv"))["zsv index"]
    assert {"--memory-budget", "--capacity", "--rebuild-store"} <= set(_options(index))
