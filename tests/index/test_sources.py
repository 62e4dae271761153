"""Several source folders in one index; a version 2 folder (one source) migrated in place."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_ERROR, EXIT_OK, main
from zeroshot_vision._index import IndexFolder


def folder_of(root: Path, photos: list[Path], names: list[str]) -> Path:
    root.mkdir(parents=True)
    for name, photo in zip(names, photos):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / name)
    return root


def stored_ids(index: Path) -> list[str]:
    with SearchEngine.open(index) as engine:
        return sorted(engine.store.ids())


def test_several_sources_share_one_index(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    phone = folder_of(tmp_path / "phone", photo_paths[:2], ["a.png", "sub/b.png"])
    camera = folder_of(tmp_path / "camera", photo_paths[2:4], ["a.png", "c.jpg"])
    scans = folder_of(tmp_path / "scans", photo_paths[4:6], ["a.jpg", "d.png"])
    index = tmp_path / "index"
    assert main(["index", str(phone), str(camera), "--index", str(index),
                 "--model", str(tiny_model_dir)]) == EXIT_OK  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{phone}: indexed 2") and out[1].startswith(f"{camera}: indexed 2")
    assert main(["index", str(scans), "--index", str(index)]) == EXIT_OK
    assert stored_ids(index) == [
        "a.png", "camera/a.png", "camera/c.jpg", "scans/a.jpg", "scans/d.png", "sub/b.png"
    ]  # fmt: skip

    capsys.readouterr()
    assert main(["info", "--index", str(index), "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["sources"] == [
        {"path": str(phone), "id_prefix": ""},
        {"path": str(camera), "id_prefix": "camera"},
        {"path": str(scans), "id_prefix": "scans"},
    ]
    assert main(["info", "--index", str(index)]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.count("source:") == 3 and "(ids camera/...)" in text

    # Removal is scoped to the source re-scanned; the others are not judged by it.
    (camera / "c.jpg").unlink()
    assert main(["index", str(camera), "--index", str(index), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["removed"], summary["skipped"], summary["count"]) == (1, 1, 5)
    assert main(["index", str(phone), "--index", str(index), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["removed"] == 0
    # Ids are stable: a re-run of every source, in another order, changes none.
    assert main(["index", str(scans), str(phone), str(camera), "--index", str(index)]) == 0
    assert stored_ids(index) == [
        "a.png", "camera/a.png", "scans/a.jpg", "scans/d.png", "sub/b.png"
    ]  # fmt: skip


def test_a_source_inside_another_or_a_taken_id_is_refused(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = folder_of(tmp_path / "photos", photo_paths[:2], ["a.png", "trip/b.png"])
    index = tmp_path / "index"
    assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir)]) == 0
    capsys.readouterr()
    assert main(["index", str(photos / "trip"), "--index", str(index)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "lies inside" in err and err.count("\n") == 1
    # A second source named like a sub-folder of the first gets another prefix.
    other = folder_of(tmp_path / "elsewhere" / "trip", photo_paths[2:3], ["b.png"])
    assert main(["index", str(other), "--index", str(index)]) == EXIT_OK
    assert "trip-2/b.png" in stored_ids(index)


def downgrade_to_v2(index: Path) -> None:
    """Make ``index`` what version 2 wrote: manifest version 2, one ``source`` meta row."""
    manifest = json.loads((index / "settings.json").read_text())
    manifest["version"] = 2
    (index / "settings.json").write_text(json.dumps(manifest, indent=2))
    with sqlite3.connect(index / "state.sqlite") as db:
        (listed,) = db.execute("SELECT value FROM meta WHERE key = 'sources'").fetchone()
        db.execute("DELETE FROM meta WHERE key = 'sources'")
        db.execute("INSERT INTO meta VALUES ('source', ?)", (json.loads(listed)[0]["path"],))
    db.close()


def test_a_version_2_folder_opens_unchanged_and_migrates_in_place(
    tmp_path: Path,
    tiny_model_dir: Path,
    photo_paths: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = folder_of(tmp_path / "photos", photo_paths[:3], ["a.png", "b.png", "c.jpg"])
    index = tmp_path / "index"
    assert main(["index", str(photos), "--index", str(index), "--model", str(tiny_model_dir)]) == 0
    downgrade_to_v2(index)
    before = (index / "state.sqlite").read_bytes()

    folder = IndexFolder.open(index)  # reading changes nothing
    assert folder.manifest.version == 2 and folder.source() == str(photos)
    assert [s.path for s in folder.sources()] == [str(photos)]
    capsys.readouterr()
    assert main(["search", "a cat", "--index", str(index), "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert (index / "state.sqlite").read_bytes() == before

    assert main(["index", str(photos), "--index", str(index), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["indexed"], summary["skipped"]) == (0, 3)  # nothing re-encoded
    assert json.loads((index / "settings.json").read_text())["version"] == 3
    with sqlite3.connect(index / "state.sqlite") as db:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    db.close()
    assert "source" not in meta
    assert json.loads(meta["sources"]) == [{"path": str(photos), "prefix": ""}]

    more = folder_of(tmp_path / "more", photo_paths[3:4], ["d.png"])
    assert main(["index", str(more), "--index", str(index)]) == EXIT_OK
    assert stored_ids(index) == ["a.png", "b.png", "c.jpg", "more/d.png"]
