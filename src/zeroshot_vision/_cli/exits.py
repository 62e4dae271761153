"""``zsv``'s exit codes, shared by :mod:`~zeroshot_vision._cli.parser` and every command."""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_ERROR = 1
"""An error: one line on stderr, no traceback."""
EXIT_USAGE = 2
"""Bad usage: argparse's message."""
EXIT_PARTIAL = 3
"""The command finished but some items failed."""
EXIT_INTERRUPTED = 130
