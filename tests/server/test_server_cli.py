"""``zsv search|classify|tag --server URL``: byte for byte what the local path prints, from
a CLI process that never imports torch or transformers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import LiveServer, open_service, start_server, stop_server

from zeroshot_vision._cli import main


@pytest.fixture(scope="module")
def cli_server(photo_index: Path, tiny_model_dir: Path) -> Iterator[LiveServer]:
    """A server whose encoder is loaded as the CLI loads one (its default dtype)."""
    from zeroshot_vision import Encoder

    encoder = Encoder.from_pretrained(tiny_model_dir)
    service = open_service(photo_index, encoder)
    server, running = start_server(service)
    try:
        yield server
    finally:
        stop_server(running)
        service.close()
        encoder.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # the table's width, the same for both paths
    monkeypatch.delenv("ZSV_SERVER", raising=False)


def commands(index: Path, photos: list[Path], folder: Path, model: Path) -> list[list[str]]:
    chelsea, rocket = str(photos[2]), str(photos[3])
    return [
        ["search", "a cat on a sofa", "--index", str(index)],
        ["search", "a cat on a sofa", "--index", str(index), "--json", "-k", "3"],
        ["search", "an animal", "--image", chelsea, "--not", "people", "--index", str(index)],
        ["search", "--image", rocket, "--index", str(index), "--json"],
        ["search", "a photo", "--index", str(index), "--min-probability", "0.5", "--json"],
        ["classify", chelsea, "--labels", "a cat,a dog,a rocket", "--model", str(model)],
        ["classify", chelsea, rocket, "--labels", "a cat,a rocket", "--json", "--model",
         str(model)],
        ["tag", str(index), "--labels", "a cat,a rocket", "--min-probability", "0.3"],
        ["tag", str(index), "--labels", "a cat,a rocket", "--format", "json"],
        ["tag", str(folder), "--labels", "a cat,a rocket", "--model", str(model)],
    ]  # fmt: skip


def without_model(argv: list[str]) -> list[str]:
    if "--model" not in argv:
        return argv
    at = argv.index("--model")
    return argv[:at] + argv[at + 2 :]


def test_server_output_is_byte_identical_to_the_local_output(
    cli_server: LiveServer,
    photo_index: Path,
    photo_paths: list[Path],
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = photo_index.parent / "photos"  # the six photos the index was built from
    for argv in commands(photo_index, photo_paths, folder, tiny_model_dir):
        local = run(capsys, *argv)
        remote = run(capsys, *without_model(argv), "--server", cli_server.url)
        assert local[0] == 0 and local[1], (argv, local)
        assert remote == local, argv


def test_zsv_server_environment_variable(
    cli_server: LiveServer,
    photo_index: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = run(capsys, "search", "a rocket", "--index", str(photo_index), "--json")
    monkeypatch.setenv("ZSV_SERVER", cli_server.url)
    remote = run(capsys, "search", "a rocket", "--index", "photos", "--json")
    # ZSV_SERVER routes the search to the server: the same photos, in the same order, with
    # the same scores, byte for byte (also after the byte-identical test above).
    assert remote[0] == local[0] == 0 and remote[2] == local[2]
    assert remote[1] == local[1]


def test_server_mode_errors_are_one_line(
    cli_server: LiveServer, photo_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "search", "x", "--index", str(photo_index), "--server", cli_server.url,
        "--model", "other",
    )  # fmt: skip
    assert code == 1 and "--model" in err and "server's model" in err
    code, _, err = run(capsys, "search", "x", "--index", "elsewhere", "--server", cli_server.url)
    assert code == 1 and "no index named 'elsewhere'" in err
    code, _, err = run(
        capsys, "search", "x", "--index", str(photo_index), "--filter", '{"a": {"$near": 1}}',
        "--server", cli_server.url,
    )  # fmt: skip
    assert code == 1 and "$near" in err
    code, _, err = run(capsys, "search", "x", "--index", "i", "--server", "127.0.0.1:1")
    assert code == 1 and "http:// or https://" in err
    code, _, err = run(capsys, "search", "x", "--index", "i", "--server", "http://127.0.0.1:1")
    assert code == 1 and "no zsv server answers" in err and err.count("\n") == 1


def test_the_cli_process_never_imports_torch_with_a_server(
    cli_server: LiveServer, photo_index: Path, photo_paths: list[Path], tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["search", "a cat", "--index", str(photo_index), "--image", str(photo_paths[2])]
    local = run(capsys, *argv)
    code = (
        "import sys\n"
        "from zeroshot_vision._cli import main\n"
        f"code = main({[*argv, '--server', cli_server.url]!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "print('heavy:', heavy, code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert "heavy: [] 0" in done.stderr, done.stderr
    assert done.stdout == local[1]


def test_serve_needs_an_index_or_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve")
    assert code == 1 and "--index DIR" in err
    assert run(capsys, "serve", "--max-wait-ms", "-1")[0] == 2
    assert run(capsys, "serve", "--port", "-1")[0] == 2


def test_serve_refuses_an_exposed_address_without_a_key(
    photo_index: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZSV_API_KEY", raising=False)
    code, _, err = run(capsys, "serve", "--index", str(photo_index), "--host", "0.0.0.0")
    assert code == 1 and "API key" in err


def test_any_server_mode_needs_no_model_dir(tmp_path: Path, capsys: Any) -> None:
    """A bare name for --index is sent as it is (the server resolves it)."""
    from zeroshot_vision._cli.remote import index_reference

    assert index_reference("photos") == "photos"
    assert index_reference(str(tmp_path)) == str(tmp_path)


def test_the_cli_reads_the_library_constants_from_the_light_module() -> None:
    """One value each: the owners take theirs from _constants, which the CLI imports."""
    from zeroshot_vision import _constants
    from zeroshot_vision._duplicate_moves import KEEP_RULES
    from zeroshot_vision._index.folder import MANIFEST
    from zeroshot_vision._near_duplicates import DEFAULT_DUPLICATE_THRESHOLD
    from zeroshot_vision.stores._filters import MAX_FILTER_DEPTH

    assert MANIFEST is _constants.INDEX_MANIFEST
    assert DEFAULT_DUPLICATE_THRESHOLD is _constants.DEFAULT_DUPLICATE_THRESHOLD
    assert KEEP_RULES is _constants.KEEP_RULES
    assert MAX_FILTER_DEPTH is _constants.MAX_FILTER_DEPTH
    lines = Path(_constants.__file__).read_text(encoding="utf-8").splitlines()
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations"]  # cheap for the CLI to import


def test_a_search_through_a_server_imports_neither_numpy_nor_the_stores(
    cli_server: LiveServer, photo_index: Path
) -> None:
    code = (
        "import sys\n"
        "from zeroshot_vision._cli import main\n"
        f"main(['search', 'a cat', '--index', 'photos', '--server', {cli_server.url!r}])\n"
        "print('loaded:', [m for m in ('numpy', 'PIL', 'zeroshot_vision.stores', 'pydantic')"
        " if m in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "loaded: []" in done.stderr, done.stderr


HEAVY = ("numpy", "pydantic", "httpx", "torch", "transformers", "faiss", "PIL", "fastapi")
"""Modules the ``--server`` path of ``zsv search`` must not import (each costs tens of ms
or more in a process that lives for one query)."""

NOT_NEEDED = (
    "http.client", "email", "ssl", "calendar", "datetime", "base64", "encodings.idna",
    "zeroshot_vision._types", "logging",
)  # fmt: skip
"""Modules the ``http://`` path does without (about 37 ms of CPU together on 2 cores):
``server/_wire.py`` speaks HTTP over a socket and hands getaddrinfo bytes, dates are
parsed only for ``--since``/``--until``, base64 only for ``--image``, of the value
types only ``SearchResult`` (``_search_result``) is built, and logging is configured
for a command a server answers only with ``-v``."""

OTHER_COMMANDS = (
    "index", "classify", "serve", "eval", "download", "duplicates", "info", "reindex",
    "models", "app", "ask", "export_import",
)  # fmt: skip
"""``zeroshot_vision._cli`` modules of other subcommands: the parser registers only the
subcommand being run."""


def test_a_server_command_configures_logging_only_when_asked(
    cli_server: LiveServer, photo_index: Path
) -> None:
    """Without ``-v`` a ``--server`` search leaves logging unimported; with ``-v`` it
    sets up the ``zsv: LEVEL:`` handler as every local command does."""
    code = (
        "import sys\n"
        "from zeroshot_vision._cli import main\n"
        "code = main(sys.argv[1:])\n"
        "logging = sys.modules.get('logging')\n"
        "handlers = logging.getLogger('zeroshot_vision').handlers if logging else None\n"
        "print('logging:', handlers and handlers[0].formatter._fmt, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    argv = ["search", "a cat", "--index", str(photo_index), "--server", cli_server.url]
    outcomes = {}
    for extra in ([], ["-v"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv, *extra], capture_output=True, text=True,
            timeout=120, env={**os.environ, "ZSV_SERVER": ""},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outcomes[" ".join(extra)] = done.stderr.strip().splitlines()[-1]
    assert outcomes == {
        "": "logging: None",
        "-v": "logging: zsv: %(levelname)s: %(name)s: %(message)s",
    }


def test_zsv_search_server_process_imports_only_what_it_needs(
    cli_server: LiveServer, photo_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -X importtime -m zeroshot_vision search ... --server URL`` (the ``zsv``
    entry point): every module it imported is listed on stderr; none is heavy, no other
    command's module is built, the installed version is not looked up, and what it prints
    equals the in-process search."""
    argv = ["search", "a cat on a sofa", "--index", str(photo_index), "-k", "4"]
    local = run(capsys, *argv)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "zeroshot_vision", *argv,
         "--server", cli_server.url],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "100", "ZSV_SERVER": ""},
    )  # fmt: skip
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "zeroshot_vision._cli.search" in imported, done.stderr[-2000:]  # the parse works
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy
    not_needed = sorted(
        m for m in imported if any(m == name or m.startswith(f"{name}.") for name in NOT_NEEDED)
    )
    assert not_needed == [], not_needed
    others = sorted(m for m in OTHER_COMMANDS if f"zeroshot_vision._cli.{m}" in imported)
    assert others == [], others
    assert "importlib.metadata" not in imported  # the version is looked up for --version only
    assert done.returncode == local[0] == 0
    assert done.stdout == local[1] and local[1].count("\n") >= 2
