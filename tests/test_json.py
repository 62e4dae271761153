"""``_json``: depth and size limits before parsing; RecursionError never escapes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pydantic
import pytest

from zeroshot_vision import InvalidFilterError, InvalidInputError
from zeroshot_vision._cli import EXIT_ERROR, main
from zeroshot_vision._cli.search import parse_filter
from zeroshot_vision._json import json_depth, loads_bounded, read_model
from zeroshot_vision.stores._filters import MAX_FILTER_DEPTH


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[{{{"', 0),  # brackets inside strings nest nothing
        ('{"a": [1, {"b": "]]]\\"[["}]}', 3),
        ("[" * 10 + "]" * 10, 10),
        ("[" * 300_000 + "]" * 300_000, 300_000),  # the numpy path, no recursion
    ],
)
def test_json_depth_counts_nesting_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize("deep", [2_500, 100_000])
def test_deep_json_is_a_one_line_error_never_a_recursion_error(deep: int) -> None:
    text = '{"a":' * deep + "1" + "}" * deep
    with pytest.raises(InvalidInputError, match=rf"nests JSON {deep} levels deep") as exc:
        loads_bounded(text, max_depth=64, max_bytes=10**7, what="the text")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x" * 10_001, "10,001 bytes of JSON, more than the 10,000 allowed"),
        (b"\xff\xfe", "not UTF-8"),
        ("{bad", "not valid JSON"),
        ("1" * 5_000, "cannot be parsed"),  # more digits than Python converts
    ],
)
def test_limits_and_syntax_errors_are_the_given_error(text: str | bytes, message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message):
        loads_bounded(text, max_depth=4, max_bytes=10_000, what="it", error=InvalidFilterError)


def test_within_the_limits_it_parses() -> None:
    assert loads_bounded('{"a": [1, 2]}', max_depth=2, max_bytes=100, what="it") == {"a": [1, 2]}
    with pytest.raises(InvalidInputError, match="more than the 1 allowed"):
        loads_bounded('{"a": [1, 2]}', max_depth=1, max_bytes=100, what="it")


def test_the_reported_deep_filter_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 2: ``--filter`` nested 2,500 deep was a RecursionError from json.loads."""
    deep = '{"$and":[' * 2_500 + '{"a":1}' + "]}" * 2_500
    with pytest.raises(InvalidFilterError, match="--filter nests JSON 5001 levels deep"):
        parse_filter(deep)
    code = main(["search", "cat", "--index", str(tmp_path), "--filter", deep])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and err.count("\n") == 1 and "Traceback" not in err
    assert "--filter nests JSON" in err and len(err) < 300
    # Just past the filter language's own limit, its own message speaks.
    nested = '{"$and":[' * (MAX_FILTER_DEPTH + 1) + '{"a":1}' + "]}" * (MAX_FILTER_DEPTH + 1)
    with pytest.raises(InvalidFilterError, match=f"more than {MAX_FILTER_DEPTH} deep"):
        parse_filter(nested)
    with pytest.raises(InvalidFilterError, match="more than the 1,048,576 allowed"):
        parse_filter(json.dumps({"id": {"$in": ["x" * 1_000] * 1_100}}))


class _Small(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)
    n: int


def test_read_model_refuses_special_files_and_big_ones_without_reading_them(
    tmp_path: Path,
) -> None:
    def damaged(problem: str) -> InvalidInputError:
        return InvalidInputError(problem)

    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")  # would never end if read
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_model(link, _Small, max_bytes=100, max_depth=2, damaged=damaged)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it without O_NONBLOCK would block until a writer came
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_model(fifo, _Small, max_bytes=100, max_depth=2, damaged=damaged)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 200)
    with pytest.raises(InvalidInputError, match="200 bytes, more than the 100"):
        read_model(big, _Small, max_bytes=100, max_depth=2, damaged=damaged)
    good = tmp_path / "good.json"
    good.write_text('{"n": 3}', encoding="utf-8")
    assert read_model(good, _Small, max_bytes=100, max_depth=2, damaged=damaged).n == 3
    with pytest.raises(FileNotFoundError):
        read_model(tmp_path / "missing.json", _Small, max_bytes=100, max_depth=2, damaged=damaged)
