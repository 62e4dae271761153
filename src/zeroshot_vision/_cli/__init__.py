"""``zsv``, the command line: one module per command group, output and options apart.

:func:`run` is the console script (``zsv = "zeroshot_vision._cli:run"``: :func:`main`,
then a cheaper interpreter shutdown); ``python -m zeroshot_vision`` runs it too.
Importing this package, or building the parser, loads no torch, transformers or faiss.
"""

from __future__ import annotations

from zeroshot_vision._cli.exits import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from zeroshot_vision._cli.parser import COMMANDS, build_parser, main, run
from zeroshot_vision._cli.search import parse_filter

__all__ = [
    "COMMANDS",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "parse_filter",
    "run",
]
