"""Acting on near-duplicates, safely: keep one photo of each group, move the others aside.

Nothing is ever deleted. :func:`plan_moves` decides, per group from
:func:`~zeroshot_vision.near_duplicates.find_duplicates`, which photo to keep (``largest``: most
pixels, then bytes; ``newest`` / ``oldest``: by date taken, else modification time) and
where each other one goes: under ``move_to``, at its path relative to its source folder.
:func:`apply_moves` moves the files and keeps the index in step (their vectors and rows
are removed, as for files that are gone), writing first a log, one JSON line per move,
flushed to disk before the file moves. :func:`undo_moves` replays a log backwards: each
file goes back (never over another file) and its vector, metadata and state row return
to the index from the log, so nothing is re-encoded.

A run killed midway leaves a log whose last lines may name moves that did not happen;
undo checks where each file is and moves back only what was moved.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from zeroshot_vision._constants import KEEP_RULES
from zeroshot_vision.errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision.index.folder import IndexFolder
    from zeroshot_vision.index.writer import IndexWriter
    from zeroshot_vision.types import DuplicateGroup

__all__ = [
    "KEEP_RULES",
    "MoveReport",
    "PlannedMove",
    "apply_moves",
    "log_name",
    "plan_moves",
    "read_log",
    "undo_moves",
]

logger = logging.getLogger(__name__)

Keep = Literal["largest", "newest", "oldest"]
PathLike = str | os.PathLike[str]
_LOG_FORMAT = "zeroshot-vision/duplicate-moves"


@dataclass(frozen=True, kw_only=True)
class PlannedMove:
    """One photo to move aside.

    Attributes:
        id: Its id in the index.
        source: Where it is.
        target: Where it goes (a file that does not exist yet).
        kept: The id of the photo of its group that stays.
    """

    id: str
    source: str
    target: str
    kept: str


@dataclass(frozen=True, kw_only=True)
class MoveReport:
    """What :func:`apply_moves` or :func:`undo_moves` did.

    Attributes:
        moved: The files moved (for an undo: moved back), as ``(from, to)``.
        skipped: Moves not made, with the reason (a file missing, a target taken).
        log: The log file.
    """

    moved: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    log: str = ""

    def __repr__(self) -> str:
        return f"MoveReport(moved={len(self.moved)}, skipped={len(self.skipped)}, log={self.log!r})"


def _rank(rule: Keep, path: Path, metadata: Mapping[str, Any]) -> tuple[float, ...]:
    """A sort key: the photo to keep has the highest."""
    try:
        stat = path.stat()
    except OSError:
        return (float("-inf"),)
    if rule == "largest":
        pixels = metadata.get("width", 0) * metadata.get("height", 0)
        if not pixels:
            from zeroshot_vision.images.exif import photo_metadata

            found = photo_metadata(path)
            pixels = found.get("width", 0) * found.get("height", 0)
        return (float(pixels), float(stat.st_size))
    taken = metadata.get("taken")
    when = float(taken) if isinstance(taken, int | float) else stat.st_mtime
    return (when,) if rule == "newest" else (-when,)


def plan_moves(
    groups: Sequence[DuplicateGroup],
    folder: IndexFolder,
    metadata: Mapping[str, Mapping[str, Any]],
    *,
    keep: Keep,
    move_to: PathLike,
) -> list[PlannedMove]:
    """Which photo of each group stays, and where the others go.

    Args:
        groups: Near-duplicate groups.
        folder: The index folder (its state says where each file is and its source).
        metadata: Each id's stored metadata (for ``width``, ``height``, ``taken``).
        keep: ``largest``, ``newest`` or ``oldest``.
        move_to: The folder the others go to; it must not lie inside a source folder
            (the next run would index them again).

    Raises:
        InvalidInputError: An unknown rule, or ``move_to`` inside a source.
    """
    if keep not in KEEP_RULES:
        raise InvalidInputError(f"--keep must be one of {', '.join(KEEP_RULES)}, not {keep!r}")
    destination = Path(os.path.abspath(Path(move_to).expanduser()))  # noqa: PTH100
    sources = folder.sources()
    for source in sources:
        if destination.is_relative_to(source.path):
            raise InvalidInputError(
                f"{destination} lies inside {source.path}, which the index mirrors: the moved "
                "photos would be indexed again; move them outside it"
            )
    entries = folder.entries()
    moves: list[PlannedMove] = []
    taken_targets: set[Path] = set()
    for group in groups:
        files = {i: Path(entries[i].path) for i in group.ids if i in entries and entries[i].path}  # type: ignore[arg-type]
        if len(files) < 2:
            continue
        # Ties go to the first id in sort order (max keeps the first of equals).
        kept = max(sorted(files), key=lambda i: _rank(keep, files[i], metadata.get(i, {})))
        for item in sorted(files):
            if item == kept:
                continue
            target = _target(destination, files[item], sources, taken_targets)
            taken_targets.add(target)
            moves.append(
                PlannedMove(id=item, source=str(files[item]), target=str(target), kept=kept)
            )
    return moves


def _target(destination: Path, path: Path, sources: Iterable[Any], taken: set[Path]) -> Path:
    relative = Path(path.name)
    for source in sources:
        if path.is_relative_to(source.path):
            relative = Path(Path(source.path).name) / path.relative_to(source.path)
            break
    target = destination / relative
    n = 1
    while target in taken or target.exists():
        target = target.with_name(f"{relative.stem}-{n}{relative.suffix}")
        n += 1
    return target


def _write_line(handle: Any, value: Mapping[str, Any]) -> None:
    handle.write(json.dumps(value, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def apply_moves(
    moves: Sequence[PlannedMove], writer: IndexWriter, *, log: PathLike | None = None
) -> MoveReport:
    """Move the planned files and remove them from the index, logging every move first.

    Args:
        moves: From :func:`plan_moves`.
        writer: The index's writer (its folder's lock is taken).
        log: The log file to write (default: ``zsv-duplicates-<time>.jsonl`` in the
            folder the first move goes to).

    Raises:
        InvalidInputError: The writer has no index folder.
    """
    folder = writer.folder
    if folder is None:
        raise InvalidInputError("moving duplicates needs an index folder")
    if not moves:
        return MoveReport()
    log_path = Path(log) if log else _log_root(moves) / log_name()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    writer.begin()
    entries = folder.state().entries()
    records = writer.store.fetch([move.id for move in moves])
    moved: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    gone: list[str] = []
    with log_path.open("x", encoding="utf-8") as handle:
        _write_line(handle, {"format": _LOG_FORMAT, "index": str(Path(folder.path).resolve())})
        for move in moves:
            source, target = Path(move.source), Path(move.target)
            if not source.is_file():
                skipped.append((move.source, "no longer there"))
                continue
            if target.exists():
                skipped.append((move.source, f"{target} exists"))
                continue
            record, entry = records.get(move.id), entries.get(move.id)
            line: dict[str, Any] = {"id": move.id, "from": move.source, "to": move.target}
            if record is not None:
                line["vector"] = base64.b64encode(record.vector.astype("<f4").tobytes()).decode()
                line["metadata"] = dict(record.metadata)
            if entry is not None:
                line["size"], line["mtime_ns"] = entry.size, entry.mtime_ns
            _write_line(handle, line)  # durable before the file moves
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            moved.append((move.source, move.target))
            gone.append(move.id)
    if gone:
        writer.delete(gone)
        writer.commit()
    logger.info("moved %d duplicates; log %s", len(moved), log_path)
    return MoveReport(moved=tuple(moved), skipped=tuple(skipped), log=str(log_path))


def log_name() -> str:
    """A new log's file name: ``zsv-duplicates-<UTC time>.jsonl``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"zsv-duplicates-{stamp}.jsonl"


def _log_root(moves: Sequence[PlannedMove]) -> Path:
    """The folder ``move_to`` named: the common parent of the targets."""
    return Path(os.path.commonpath([str(Path(m.target).parent) for m in moves]))


def read_log(log: PathLike) -> tuple[str, list[dict[str, Any]]]:
    """The index a log belongs to, and its moves in order.

    Raises:
        InvalidInputError: Not a log of these moves.
    """
    try:
        lines = [
            json.loads(line)
            for line in Path(log).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the move log {log}: {exc}") from exc
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != _LOG_FORMAT:
        raise InvalidInputError(f"{log} is not a log of zsv duplicates --apply")
    return str(lines[0]["index"]), [line for line in lines[1:] if isinstance(line, dict)]


def undo_moves(log: PathLike, writer: IndexWriter) -> MoveReport:
    """Replay a log backwards: files move back, and their vectors return to the index.

    A file is moved back only when it is at the logged target and nothing is at its old
    place; anything else is skipped and reported.
    """
    from zeroshot_vision.index.folder import FileEntry

    _, lines = read_log(log)
    writer.begin()
    moved: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for line in reversed(lines):
        source, target = Path(str(line["from"])), Path(str(line["to"]))
        if not target.is_file():
            skipped.append((str(target), "not there (moved again, or never moved)"))
            continue
        if source.exists():
            skipped.append((str(target), f"{source} exists"))
            continue
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(target, source)
        moved.append((str(target), str(source)))
        if "vector" in line:
            vector = np.frombuffer(base64.b64decode(line["vector"]), dtype="<f4").astype(np.float32)
            stat = source.stat()
            entry = FileEntry(
                id=str(line["id"]), path=str(source), size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
            writer.write([entry], vector[None, :], [line.get("metadata") or {"path": str(source)}])
    writer.commit()
    return MoveReport(moved=tuple(moved), skipped=tuple(skipped), log=str(log))
