"""Acting on near-duplicates, safely: keep one photo of each group, move the others aside.

Nothing is ever deleted. :func:`plan_moves` decides, per group from
:func:`~zeroshot_vision._near_duplicates.find_duplicates`, which photo to keep (``largest``: most
pixels, then bytes; ``newest`` / ``oldest``: by date taken, else modification time) and
where each other one goes: under ``move_to``, at its path relative to its source folder.
:func:`apply_moves` moves the files and keeps the index in step (their vectors and rows
are removed, as for files that are gone), writing first a log, one JSON line per move,
flushed to disk before the file moves. :func:`undo_moves` replays a log backwards: each
file goes back (never over another file) and its vector, metadata and state row return
to the index from the log, so nothing is re-encoded.

A run killed midway leaves a log whose last lines may name moves that did not happen;
undo checks where each file is and moves back only what was moved. A damaged line (a
full disk cuts the last one short) is reported and left alone; the log is checked whole
before the first file moves back.
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
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._index.folder import IndexFolder
    from zeroshot_vision._index.writer import IndexWriter
    from zeroshot_vision._types import DuplicateGroup

__all__ = [
    "KEEP_RULES",
    "MAX_LOG_LINE_BYTES",
    "LoggedMove",
    "MoveLog",
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
        damaged: For an undo, the log's lines that could not be read, as
            ``(line number, what is wrong)``; their files stay where they are.
        log: The log file.
    """

    moved: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    damaged: tuple[tuple[int, str], ...] = ()
    log: str = ""

    def __repr__(self) -> str:
        return (
            f"MoveReport(moved={len(self.moved)}, skipped={len(self.skipped)}, "
            f"damaged={len(self.damaged)}, log={self.log!r})"
        )


def _rank(rule: Keep, path: Path, metadata: Mapping[str, Any]) -> tuple[float, ...]:
    """A sort key: the photo to keep has the highest."""
    try:
        stat = path.stat()
    except OSError:
        return (float("-inf"),)
    if rule == "largest":
        pixels = metadata.get("width", 0) * metadata.get("height", 0)
        if not pixels:
            from zeroshot_vision._images.exif import photo_metadata

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


@dataclass(frozen=True, kw_only=True)
class LoggedMove:
    """One move of a log, checked.

    Attributes:
        line: Its line number in the log (1 is the header).
        id: The photo's id.
        source: Where it was (where undo moves it back to).
        target: Where it went.
        vector: Its vector as it was in the index, when it had one.
        metadata: Its metadata as it was in the index.
    """

    line: int
    id: str
    source: str
    target: str
    vector: np.ndarray[Any, Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class MoveLog:
    """A log of :func:`apply_moves`, read and checked line by line.

    Attributes:
        index: The index folder the moves were made in.
        moves: The lines that are whole, in the order written.
        damaged: The lines that are not, as ``(line number, what is wrong)``: a run cut
            short by a full disk leaves a truncated last line, which must not cost the
            other lines their undo.
    """

    index: str
    moves: tuple[LoggedMove, ...] = ()
    damaged: tuple[tuple[int, str], ...] = ()


MAX_LOG_LINE_BYTES = 8 << 20
"""The longest line a move log may hold: a vector and metadata of at most 1 MiB."""


def read_log(log: PathLike) -> MoveLog:
    """The index a log belongs to, its whole moves in order, and its damaged lines.

    The log is read line by line (each at most :data:`MAX_LOG_LINE_BYTES`), and only a
    regular file: a device or a FIFO is refused, not read forever.

    Raises:
        InvalidInputError: Not a regular file, or its first line is not the header of a
            log of these moves.
        OSError: It cannot be opened.
    """
    from zeroshot_vision._files import open_regular

    moves: list[LoggedMove] = []
    damaged: list[tuple[int, str]] = []
    index: str | None = None
    with open_regular(log, what="the move log") as handle:
        for number, raw in enumerate(_lines(handle), start=1):
            if raw is None:
                damaged.append((number, f"longer than {MAX_LOG_LINE_BYTES:,} bytes"))
                continue
            if index is None:
                index = _header(raw, log)
                continue
            if not raw.strip():
                continue
            try:
                moves.append(_logged_move(raw, number))
            except InvalidInputError as exc:
                damaged.append((number, str(exc)))
    if index is None:
        raise InvalidInputError(f"{log} is empty, not a log of zsv duplicates --apply")
    return MoveLog(index=index, moves=tuple(moves), damaged=tuple(damaged))


def _lines(handle: Any) -> Iterable[bytes | None]:
    """The lines of ``handle``; ``None`` for one longer than the limit (read past)."""
    while raw := handle.readline(MAX_LOG_LINE_BYTES + 1):
        if len(raw) > MAX_LOG_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = handle.readline(MAX_LOG_LINE_BYTES + 1)
            yield None
        else:
            yield raw


def _header(raw: bytes, log: PathLike) -> str:
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if (
        not isinstance(header, dict)
        or header.get("format") != _LOG_FORMAT
        or not isinstance(header.get("index"), str)
    ):
        raise InvalidInputError(f"{log} is not a log of zsv duplicates --apply")
    return str(header["index"])


def _logged_move(raw: bytes, number: int) -> LoggedMove:
    """One log line as a move, or an error saying what is wrong with it."""
    from zeroshot_vision._checks import check_id
    from zeroshot_vision._json import loads_bounded
    from zeroshot_vision.stores._base import MAX_METADATA_DEPTH

    line = loads_bounded(
        raw,
        max_depth=MAX_METADATA_DEPTH + 2,
        max_bytes=MAX_LOG_LINE_BYTES,
        what="the line",
    )
    if not isinstance(line, dict):
        raise InvalidInputError("the line is not a JSON object")
    check_id(line.get("id"), "its id")
    for key in ("from", "to"):
        if not isinstance(line.get(key), str) or not line[key]:
            raise InvalidInputError(f"its {key!r} is not a path")
    vector = None
    if "vector" in line:
        try:
            data = base64.b64decode(str(line["vector"]), validate=True)
        except ValueError:
            raise InvalidInputError("its vector is not base64") from None
        if not data or len(data) % 4:
            raise InvalidInputError("its vector is not a whole number of float32 values")
        vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    metadata = line.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInputError("its metadata is not a JSON object")
    return LoggedMove(
        line=number,
        id=line["id"],
        source=line["from"],
        target=line["to"],
        vector=vector,
        metadata=metadata,
    )


def undo_moves(log: PathLike, writer: IndexWriter) -> MoveReport:
    """Replay a log backwards: files move back, and their vectors return to the index.

    The whole log is checked before the first file moves: each damaged line (cut short,
    edited, a vector of another dimension) is reported in the result's ``damaged`` and
    left alone, and every whole line is undone. A file is moved back only when it is at
    the logged target and nothing is at its old place; anything else is skipped and
    reported. Should the index refuse a record all the same, its file is moved back to
    the target before the error is raised, so files and index still agree.

    Raises:
        InvalidInputError: See :func:`read_log`.
    """
    from zeroshot_vision._index.folder import FileEntry
    from zeroshot_vision.stores._base import prepare_upsert

    parsed = read_log(log)
    damaged = list(parsed.damaged)
    moves: list[LoggedMove] = []
    for move in parsed.moves:
        if move.vector is not None:
            try:  # the store's own rules, so that no write below can refuse it
                prepare_upsert(
                    [move.id],
                    move.vector[None, :],
                    [move.metadata or {"path": move.source}],
                    writer.store.dim,
                )
            except InvalidInputError as exc:
                damaged.append((move.line, str(exc)))
                continue
        moves.append(move)
    writer.begin()
    moved: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for move in reversed(moves):
        source, target = Path(move.source), Path(move.target)
        if not target.is_file():
            skipped.append((str(target), "not there (moved again, or never moved)"))
            continue
        if source.exists():
            skipped.append((str(target), f"{source} exists"))
            continue
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(target, source)
        if move.vector is not None:
            try:
                stat = source.stat()
                entry = FileEntry(
                    id=move.id, path=str(source), size=stat.st_size, mtime_ns=stat.st_mtime_ns
                )
                writer.write(
                    [entry], move.vector[None, :], [move.metadata or {"path": str(source)}]
                )
            except BaseException:
                shutil.move(source, target)  # back where the index expects it to be
                raise
        moved.append((str(target), str(source)))
    writer.commit()
    return MoveReport(
        moved=tuple(moved),
        skipped=tuple(skipped),
        damaged=tuple(sorted(damaged)),
        log=str(log),
    )
