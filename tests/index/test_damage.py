"""Damage generated systematically, for every file an index folder reads back.

For each JSON file (the folder's ``settings.json``, the store's ``store.json``, its
records file and a delta file) and each field in it: the field missing, null, of the
wrong type, and out of range; for each file, and ``state.sqlite``: truncated, empty, not
JSON, nested 2,500 deep, a directory in its place. Whatever the damage, opening the
folder either works (only where the file's model says the field may be absent or null,
and the files still agree) or raises ``IndexDamagedError`` naming the file and the
field, and ``zsv info`` prints one line and no traceback. Nothing else escapes: no
``TypeError``, no ``RecursionError``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from zeroshot_vision import IndexDamagedError
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._index import FileEntry, IndexFolder, IndexManifest, IndexWriter
from zeroshot_vision._index.folder import StoreSpec
from zeroshot_vision.stores._faiss_files import DeltaFile, RecordsFile, StoreManifest

DIM = 8


def _vectors(seed: int, n: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index folder with a generation and one delta (two commits), and a state."""
    path = tmp_path_factory.mktemp("damage") / "index"
    folder = IndexFolder.create(path, model="m", dim=DIM)
    for commit, ids in enumerate((["a", "b", "c"], ["d"])):
        entries = [FileEntry(id=i, path=f"/photos/{i}.jpg", size=10, mtime_ns=1) for i in ids]
        with IndexWriter(folder.open_store(), folder) as writer:
            writer.write(entries, _vectors(commit, len(ids)), [{"n": i} for i in ids])
        folder = IndexFolder.open(path)
    assert sorted(p.name for p in (path / "store").iterdir()) == [
        "delta-1-1.f32",
        "delta-1-1.json",
        "index-1.faiss",
        "records-1.json",
        "store.json",
    ]
    return path


@dataclass(frozen=True)
class Damage:
    file: str  # relative to the index folder
    label: str
    apply: Callable[[Path], None]
    field: str | None = None  # the field at fault, which the message must name
    harmless: bool = False  # the file's model allows it (an optional or defaulted field),
    # so it may open; it may still be refused when the files then disagree (no deltas)


def _allows(model: type[pydantic.BaseModel], key: str, kind: str) -> bool:
    field = model.model_fields[key]
    if kind == "missing":
        return not field.is_required()
    if kind == "null":
        annotation = field.annotation
        return annotation is None or (
            typing.get_origin(annotation) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(annotation)
        )
    return False


def _wrong_type(value: Any) -> Any:
    if isinstance(value, (bool, int)):
        return "7"
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return {"not": "a list"}
    return ["not", "an object"]


def _out_of_range(value: Any) -> list[Any]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [-1, 2**70]
    if isinstance(value, str):
        bad = ["", "x" * 5_000]
        if value.endswith((".faiss", ".json", ".f32")):  # a file name: never outside the folder
            bad.append("../../outside/" + value)
        return bad
    if isinstance(value, list):
        return [[7], [["id", -1, None]], [["id", "key", None]], [""], [["", 1, None]]]
    return []


def _edit(doc_path: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        file = root / doc_path
        doc = json.loads(file.read_text(encoding="utf-8"))
        change(doc)
        file.write_text(json.dumps(doc), encoding="utf-8")

    return apply


def _field_damages(
    file: str, doc: dict[str, Any], model: type[pydantic.BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[Damage]:
    for key, value in doc.items():
        if key not in model.model_fields:
            continue
        where = (*prefix, key)
        name = ".".join(where)

        def setter(new: Any, where: tuple[str, ...] = where) -> Callable[[dict[str, Any]], None]:
            def change(doc: dict[str, Any]) -> None:
                node = doc
                for part in where[:-1]:
                    node = node[part]
                node[where[-1]] = new

            return change

        def remover(where: tuple[str, ...] = where) -> Callable[[dict[str, Any]], None]:
            def change(doc: dict[str, Any]) -> None:
                node = doc
                for part in where[:-1]:
                    node = node[part]
                del node[where[-1]]

            return change

        yield Damage(file, f"{name} missing", _edit(file, remover()), name,
                     _allows(model, key, "missing"))  # fmt: skip
        yield Damage(file, f"{name} null", _edit(file, setter(None)), name,
                     _allows(model, key, "null"))  # fmt: skip
        yield Damage(file, f"{name} wrong type", _edit(file, setter(_wrong_type(value))), name)
        for bad in _out_of_range(value):
            yield Damage(file, f"{name} = {bad!r:.20}", _edit(file, setter(bad)), name)
        if isinstance(value, dict) and key == "store":
            yield from _field_damages(file, value, StoreSpec, where)


def _file_damages(file: str) -> Iterator[Damage]:
    def truncated(root: Path) -> None:
        data = (root / file).read_bytes()
        (root / file).write_bytes(data[: len(data) // 2])

    def as_directory(root: Path) -> None:
        (root / file).unlink()
        (root / file).mkdir()

    yield Damage(file, "truncated", truncated)
    yield Damage(file, "empty", lambda root: (root / file).write_bytes(b""))
    yield Damage(file, "not JSON", lambda root: (root / file).write_bytes(b"\x00garbage\xff"))
    deep = b"[" * 2_500 + b"]" * 2_500
    yield Damage(file, "2,500 deep", lambda root: (root / file).write_bytes(deep))
    yield Damage(file, "a directory", as_directory)


def _all_damages(pristine: Path) -> list[Damage]:
    damages: list[Damage] = []
    files = {
        "settings.json": IndexManifest,
        "store/store.json": StoreManifest,
        "store/records-1.json": RecordsFile,
        "store/delta-1-1.json": DeltaFile,
    }
    for file, model in files.items():
        doc = json.loads((pristine / file).read_text(encoding="utf-8"))
        damages += _field_damages(file, doc, model)
        damages += _file_damages(file)
    return damages


def _open_everything(root: Path) -> None:
    folder = IndexFolder.open(root)
    store = folder.open_store()
    try:
        assert len(store) == 4
        assert store.query(_vectors(0, 1)[0], k=1)[0].id == "a"
    finally:
        store.close()
    folder.counts()
    folder.source()


def test_every_field_and_file_damage_is_index_damaged_error_naming_it(
    pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damages = _all_damages(pristine)
    assert len(damages) > 100  # generated, not hand-picked
    opened: list[str] = []
    for number, damage in enumerate(damages):
        root = tmp_path / f"case-{number}"
        shutil.copytree(pristine, root)
        damage.apply(root)
        case = f"{damage.file}: {damage.label}"
        try:
            _open_everything(root)
        except IndexDamagedError as exc:
            message = str(exc)
            assert "\n" not in message, case
            assert Path(exc.path).name in message, f"{case}: {message}"
            if damage.field and not damage.harmless and "newer zeroshot-vision" not in message:
                assert damage.field.split(".")[-1] in message, f"{case}: {message}"
        else:
            assert damage.harmless, f"{case}: opened although damaged"
            opened.append(case)
        code = main(["info", "--index", str(root)])
        err = capsys.readouterr().err
        assert "Traceback" not in err, case
        if code == EXIT_ERROR:
            assert err.count("\n") == 1 and err.startswith("zsv: error: "), (case, err)
            assert Path(damage.file).name in err, (case, err)
        else:
            assert code == EXIT_OK and case in opened, (case, err)
    assert opened  # the models' defaults were exercised too (e.g. ef_search missing)


def test_the_reported_manifest_field_of_the_wrong_type_is_one_line(
    pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 1: ``"dim": null`` in ``store/store.json`` was a ``TypeError`` from int()."""
    root = tmp_path / "index"
    shutil.copytree(pristine, root)
    _edit("store/store.json", lambda doc: doc.update(dim=None))(root)
    with pytest.raises(IndexDamagedError, match=r"store\.json is damaged: field 'dim'") as exc:
        IndexFolder.open(root).open_store()
    assert exc.value.path == str(root / "store" / "store.json")
    assert main(["info", "--index", str(root)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Input should be a valid integer (got None)" in err


def _sqlite_damages() -> Iterator[tuple[str, Callable[[Path], None]]]:
    def run(sql: str) -> Callable[[Path], None]:
        def apply(root: Path) -> None:
            with sqlite3.connect(root / "state.sqlite") as db:
                db.execute(sql)
            db.close()

        return apply

    yield "a null id", run("INSERT INTO files VALUES (NULL, '/p', 1, 1, 'indexed', NULL)")
    yield "a size of text", run("UPDATE files SET size = 'big' WHERE id = 'a'")
    yield "a negative size", run("UPDATE files SET size = -5 WHERE id = 'a'")
    yield "a path of bytes", run("UPDATE files SET path = x'00ff' WHERE id = 'a'")
    yield "an mtime of text", run("UPDATE files SET mtime_ns = 'yesterday' WHERE id = 'b'")
    yield "sources of bytes", run("INSERT OR REPLACE INTO meta VALUES ('sources', x'00ff')")
    yield "sources not JSON", run("INSERT OR REPLACE INTO meta VALUES ('sources', '[{')")
    yield "sources of the wrong shape", run("INSERT OR REPLACE INTO meta VALUES ('sources', '[1]')")
    for damage in _file_damages("state.sqlite"):
        yield damage.label, damage.apply


@pytest.mark.parametrize(("label", "damage"), list(_sqlite_damages()))
def test_a_damaged_state_is_index_damaged_error(
    pristine: Path, tmp_path: Path, label: str, damage: Callable[[Path], None]
) -> None:
    root = tmp_path / "index"
    shutil.copytree(pristine, root)
    damage(root)
    folder = IndexFolder.open(root)
    with pytest.raises(IndexDamagedError, match=r"state\.sqlite is damaged") as exc:
        folder.counts()
        folder.source()
        folder.lock()
        try:
            folder.state().entries()
        finally:
            folder.unlock()
    assert "\n" not in str(exc.value)
