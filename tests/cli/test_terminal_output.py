"""What ``zsv`` prints never carries raw control characters from names or descriptions.

File names and dataset text may hold terminal escape sequences (ESC, CSI as ``\\x1b[`` or
the one-byte C1 ``\\x9b``, OSC titles ended by BEL), newlines and bidi overrides. Printed
raw, they retitle or clear the terminal, or break a one-line message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import RAW_CONTROL, make_jpeg

from zeroshot_vision._cli import EXIT_OK, main


@pytest.fixture(scope="module")
def nasty_index(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("nasty")
    photos = root / "photos"
    photos.mkdir()
    (photos / "ok.jpg").write_bytes(make_jpeg(1))
    (photos / "title\x1b]0;pwned\x07\x9b2J\u202egpj.jpg").write_bytes(make_jpeg(2))
    (photos / "broken\nzsv: error: fake line\x1b[2J.png").write_bytes(b"\x89PNG broken")
    return root


def test_index_prints_a_skipped_file_on_one_escaped_line(
    nasty_index: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "index",
            str(nasty_index / "photos"),
            "--index",
            str(nasty_index / "index"),
            "--model",
            str(tiny_model_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == EXIT_OK
    skipped = [line for line in err.splitlines() if line.startswith("zsv: skipped")]
    assert len(skipped) == 1
    assert "broken\\nzsv: error: fake line\\x1b[2J.png" in skipped[0]
    assert "zsv: error" not in err.replace(skipped[0], "")
    assert not RAW_CONTROL.search(out + err)


def test_search_table_and_json_carry_no_raw_controls(
    nasty_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = str(nasty_index / "index")
    assert main(["index", str(nasty_index / "photos"), "--index", index]) == EXIT_OK
    capsys.readouterr()
    assert main(["search", "a photo", "--index", index, "-k", "5"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "\\x1b]0;pwned\\x07\\x9b2J\\u202e" in out
    assert not RAW_CONTROL.search(out + err)
    assert main(["search", "a photo", "--index", index, "-k", "5", "--json"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert not RAW_CONTROL.search(out + err)
    ids = [hit["id"] for hit in json.loads(out)]
    assert any("\x1b]0;pwned\x07\x9b2J\u202e" in i for i in ids)  # the same value, escaped
    assert main(["info", "--index", index]) == EXIT_OK
    out, err = capsys.readouterr()
    assert not RAW_CONTROL.search(out + err)


def test_errors_are_one_escaped_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no\x1b[2Jsuch\nindex"
    code = main(["search", "x", "--index", str(missing)])
    _, err = capsys.readouterr()
    assert code != EXIT_OK
    assert err.count("\n") == 1 and err.startswith("zsv: error: ")
    assert not RAW_CONTROL.search(err) and "\\x1b[2J" in err
