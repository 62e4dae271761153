"""The parser itself: cheap to build, and options shared by commands declared once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zeroshot_vision._cli import build_parser
from zeroshot_vision._cli.options import (
    non_negative_int_arg,
    positive_int_arg,
    positive_seconds_arg,
    probability_arg,
    seconds_arg,
)

HEAVY = ("torch", "transformers", "faiss")


def _heavy_after(code: str) -> list[str]:
    # The last line printed names what was loaded (an empty line: nothing).
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    last = out.stdout.splitlines()[-1] if out.stdout.strip() else ""
    return [name for name in last.split(",") if name]


def test_parsing_and_output_import_no_model_or_vector_library() -> None:
    # A future client mode must run without torch: building the parser, parsing every
    # command's arguments and printing through the output helpers must not load it.
    code = "\n".join(
        [
            "import zeroshot_vision._cli.parser",
            "from zeroshot_vision._cli import build_parser",
            "from zeroshot_vision._cli import output",
            "parser = build_parser()",
            "parser.format_help()",
            "for argv in (['search', 'a cat', '--index', 'i', '-k', '3'],",
            "             ['index', 'photos', '--index', 'i', '--workers', '0'],",
            "             ['classify', 'a.jpg', '--labels', 'a,b'], ['info', '--index', 'i'],",
            "             ['duplicates', '--index', 'i', '--threshold', '0.9'],",
            "             ['eval', 'classify', '--data', 'd', '--precision', '0.8'],",
            "             ['app', '--index', 'i'], ['export', '--index', 'i', '--out', 'f']):",
            "    parser.parse_args(argv)",
            "output.print_json({'a': 1}); output.say(output.one_line('x' * 50, 10))",
        ]
    )
    assert _heavy_after(code) == []


def test_help_runs_without_loading_torch() -> None:
    code = (
        "from zeroshot_vision._cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "    assert main(['search', '--help']) == 0"
    )
    assert _heavy_after(code) == []


def test_the_evaluation_library_does_not_import_the_cli() -> None:
    code = (
        "import sys\n"
        "import zeroshot_vision.eval, zeroshot_vision.eval._run, zeroshot_vision.eval._report\n"
        "import zeroshot_vision.eval._labelled_data, zeroshot_vision.eval._metrics\n"
        "assert not [m for m in sys.modules if m.startswith('zeroshot_vision._cli')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_index_option_is_the_same_one() -> None:
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    found = {}
    for name, parser in subcommands.items():
        for action in parser._actions:
            if "--index" in action.option_strings:
                found[name] = (action.required, action.metavar, action.help)
    # zsv serve takes several indexes, each optionally named: its own, repeatable form.
    assert found.pop("serve")[:2] == (False, "[NAME=]DIR")
    assert set(found) == {
        "index",
        "search",
        "ask",
        "info",
        "duplicates",
        "export",
        "import",
        "app",
        "reindex",
    }
    assert set(found.values()) == {(True, "INDEX_DIR", "the index folder")}


@pytest.mark.parametrize(
    ("arg_type", "text", "message"),
    [
        (positive_int_arg, "0", "must be a positive integer, got 0"),
        (positive_int_arg, "1.5", "invalid int value: '1.5'"),
        (non_negative_int_arg, "-1", "must be 0 or more, got -1"),
        (seconds_arg, "nan", "must be 0 or more seconds, got nan"),
        (positive_seconds_arg, "0", "must be a positive number of seconds, got 0.0"),
        (probability_arg, "1.5", "must be a probability in [0, 1], got 1.5"),
    ],
)
def test_bad_numbers_are_argparse_type_errors_without_the_placeholder_name(
    arg_type: object, text: str, message: str
) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as info:
        arg_type(text)  # type: ignore[operator]
    assert str(info.value) == message


def test_good_numbers_pass_converted() -> None:
    assert positive_int_arg("3") == 3
    assert non_negative_int_arg("0") == 0
    assert seconds_arg("0") == 0.0 and positive_seconds_arg("2.5") == 2.5
    assert probability_arg("1") == 1.0


def test_the_console_script_is_main_with_a_cheaper_shutdown() -> None:
    """``run`` (``zsv``) prints what ``main`` prints and returns its code; it freezes the
    collector of its own process only, after ``main`` returned, and ``main`` never does
    (programs and tests call it)."""
    code = (
        "import contextlib, gc, io, sys\n"
        "from zeroshot_vision._cli import main, run\n"
        "with contextlib.redirect_stdout(io.StringIO()) as printed:\n"
        "    assert main(['models']) == 0\n"
        "assert gc.get_freeze_count() == 0\n"
        "sys.stdout.write(printed.getvalue())\n"
        "sys.stdout.write('---\\n')\n"
        "sys.argv = ['zsv', 'models']\n"
        "status = run()\n"
        "print('frozen:', gc.get_freeze_count() > 0, 'status:', status, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    by_main, by_run = done.stdout.split("---\n")
    assert by_main == by_run and by_main.count("\n") >= 2
    assert "frozen: True status: 0" in done.stderr
