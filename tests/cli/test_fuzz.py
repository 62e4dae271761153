"""``zsv`` under generated hostile arguments: documented exit codes, never a traceback.

Hypothesis builds command lines for the commands that read an index or images (search,
classify, tag, duplicates, info, export, import) from hostile parts: odd paths (missing,
a folder, ``/dev/zero``, a damaged index, names with control characters and lone
surrogates), numbers (``nan``, ``-1``, ``1e309``, huge integers), filters (random JSON,
deep JSON, random text), texts and models. Each run must end with an exit code the help
text documents (0, 1, 2, 3), with no traceback on stderr, and an error must be one line.
Bounded: a fixed number of examples, each command in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.helpers import build_index

from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main

DOCUMENTED_EXITS = {EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL}
REQUIRED = {"--index", "--labels", "--out"}  # always given, so most runs get past argparse


@pytest.fixture(scope="module")
def places(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, photo_paths: list[Path]
) -> dict[str, str]:
    """The paths the fuzzer draws from: a sound index, a damaged one, odd files."""
    root = tmp_path_factory.mktemp("fuzz")
    index = build_index(root / "index", tiny_model_dir, photo_paths[:3])
    damaged = root / "damaged"  # finding 1 of issue 20: a manifest field of the wrong type
    shutil.copytree(index, damaged)
    manifest = json.loads((damaged / "store" / "store.json").read_text(encoding="utf-8"))
    manifest["dim"] = None
    (damaged / "store" / "store.json").write_text(json.dumps(manifest), encoding="utf-8")
    (root / "file.txt").write_text("not an image", encoding="utf-8")
    (root / "not.parquet").write_bytes(b"PAR1 but not really")
    (root / "dir.jpg").mkdir()
    return {
        "index": str(index),
        "damaged": str(damaged),
        "photo": str(photo_paths[0]),
        "file": str(root / "file.txt"),
        "parquet": str(root / "not.parquet"),
        "dirjpg": str(root / "dir.jpg"),
        "missing": str(root / "missing"),
        "model": str(tiny_model_dir),
        "root": str(root),
    }


_WEIRD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(["", " ", "-", "--", "\udcff", "a\nb", "\t", "../..", "x" * 5_000])
_VALID_NUMBER = st.sampled_from(["1", "3", "0.5", "2"])
_HOSTILE_NUMBER = st.sampled_from(
    ["0", "-1", "nan", "inf", "-inf", "1e309", "1e-320", "9" * 400, "0x10", "", "one", "1_000"]
)
_NUMBER = _VALID_NUMBER | _VALID_NUMBER | _HOSTILE_NUMBER  # mostly past argparse
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FILTER = (
    _JSON.map(json.dumps)
    | _WEIRD_TEXT
    | st.integers(2, 3_000).map(lambda n: '{"$and":[' * n + '{"a":1}' + "]}" * n)
    | st.sampled_from(['{"country": {"$in": ' + json.dumps(list(range(20_000))) + "}}",
                       '{"year": {"$gt": NaN}}', '{"$or": []}', '{"a": {"$regex": "x"}}'])
)  # fmt: skip


def _path(places: dict[str, str]) -> st.SearchStrategy[str]:
    keys = ["index", "damaged", "photo", "file", "parquet", "dirjpg", "missing", "root"]
    return st.sampled_from([places[k] for k in keys] + ["/dev/zero", "/dev/null", "/"]) | (
        _WEIRD_TEXT.map(lambda text: str(Path(places["root"]) / text.replace("/", "_")[:200]))
    )


def _command(places: dict[str, str]) -> st.SearchStrategy[list[str]]:
    path, index = _path(places), st.sampled_from([places["index"], places["index"]]) | _path(places)
    model = st.sampled_from([places["model"], places["missing"], places["file"], "tiny"])
    options = {
        "search": [("--index", index), ("--image", path), ("--image-weight", _NUMBER),
                   ("--not", _WEIRD_TEXT), ("-k", _NUMBER), ("--filter", _FILTER),
                   ("--min-probability", _NUMBER), ("--model", model)],
        "classify": [("--labels", _WEIRD_TEXT), ("--model", model)],
        "tag": [("--labels", _WEIRD_TEXT), ("--min-probability", _NUMBER),
                ("--batch-size", _NUMBER), ("--model", model), ("--exclude", _WEIRD_TEXT)],
        "duplicates": [("--index", index), ("--threshold", _NUMBER)],
        "info": [("--index", index)],
        "export": [("--index", index), ("--out", path), ("--batch-size", _NUMBER)],
        "import": [("--index", st.just(places["missing"]) | path),
                   ("--batch-size", _NUMBER), ("--wait", _NUMBER)],
    }  # fmt: skip
    positional = {
        "search": _WEIRD_TEXT,
        "classify": path,
        "tag": path,
        "import": path,
    }

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        name = draw(st.sampled_from(sorted(options)))
        argv = [name]
        if name in positional:
            argv.append(draw(positional[name]))
        for flag, values in options[name]:
            if flag in REQUIRED or draw(st.booleans()):
                argv += [flag, draw(values)]
        if draw(st.booleans()):
            argv.append("--json")
        return argv

    return build()


@pytest.mark.slow
def test_zsv_never_prints_a_traceback(places: dict[str, str]) -> None:
    seen: dict[int, int] = {}
    deep = '{"$and":[' * 2_500 + '{"a":1}' + "]}" * 2_500  # finding 2 of issue 20

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,  # the same command lines in every run, in CI too
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @example(argv=["search", "a photo", "--index", places["index"], "--filter", deep])
    @example(argv=["search", "a photo", "--index", places["damaged"]])
    @example(argv=["info", "--index", places["damaged"]])
    @example(argv=["export", "--index", places["damaged"], "--out", places["missing"]])
    @given(argv=_command(places))
    def run(argv: list[str]) -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        text = err.getvalue()
        assert code in DOCUMENTED_EXITS, (argv, code, text)
        assert "Traceback" not in text, (argv, text)
        if code == EXIT_ERROR:
            errors = [line for line in text.splitlines() if line.startswith("zsv: error:")]
            assert len(errors) == 1, (argv, text)
        seen[code] = seen.get(code, 0) + 1

    run()
    # Hostile arguments, but not only usage errors: the library's errors were reached.
    assert seen.get(EXIT_ERROR, 0) > 30 and seen.get(EXIT_USAGE, 0) > 10, seen
    assert seen.get(EXIT_OK, 0) > 0, seen
