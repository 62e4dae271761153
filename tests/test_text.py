"""``printable`` and ``printable_json``: text from file names and datasets made safe to print.

File names and dataset text may hold terminal escape sequences (ESC, CSI as ``\\x1b[`` or
the one-byte C1 ``\\x9b``, OSC titles ended by BEL), newlines and bidi overrides. The CLI's
output goes through these (see ``tests/cli/test_terminal_output.py``).
"""

from __future__ import annotations

import json

from tests.helpers import RAW_CONTROL

from zeroshot_vision._text import printable, printable_json

NASTY = "a\x1b]0;pwned\x07b\x1b[2Jc\x9b2Jd\u202eevil\ne\rf\x00g\ud800"


def test_printable_escapes_controls_and_keeps_ordinary_text() -> None:
    shown = printable(NASTY)
    assert not RAW_CONTROL.search(shown) and "\n" not in shown
    assert shown == ("a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x9b2Jd\\u202eevil\\ne\\rf\\x00g\\ud800")
    for text in ["café", "日本語の猫 🐱", "Ünïcödé — “quoted” ‘x’", "tab\u00a0nbsp", "👨‍👩‍👧"]:
        assert printable(text) == text


def test_printable_json_is_still_json_and_means_the_same() -> None:
    value = {"name": NASTY, NASTY: [NASTY, 1, None]}
    text = printable_json(json.dumps(value, ensure_ascii=False, indent=2))
    assert not RAW_CONTROL.search(text)
    assert json.loads(text) == value
