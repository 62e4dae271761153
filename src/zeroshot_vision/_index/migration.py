"""Older index folders, upgraded in place the first time a writer opens them.

* Version 1 kept its state in ``state.json`` (indexed and failed files, one source): it
  is read as it is (readers see it as version 3 would show it), and its rows move into
  ``state.sqlite`` when a writer opens the folder.
* Version 2 recorded one source folder (``meta`` row ``source``); version 3 lists them
  (``sources``). The state changes in one transaction, then the manifest is replaced
  atomically; a writer killed between the two leaves a version 2 manifest over a version
  3 state, which the next writer finishes (reading either works meanwhile).
"""

from __future__ import annotations

import logging
from pathlib import Path

from zeroshot_vision._files import write_atomic
from zeroshot_vision._index.manifest import FORMAT_VERSION, MANIFEST, IndexManifest, damaged
from zeroshot_vision._index.state import FileEntry, FolderState, SourceFolder
from zeroshot_vision._json import loads_bounded

__all__ = ["V1_STATE", "read_v1_state", "upgrade", "v1_counts", "v1_sources"]

logger = logging.getLogger(__name__)

V1_STATE = "state.json"
"""Version 1's state file."""
_V1_STATE_MAX_BYTES = 1 << 32
_V1_STATE_FORMAT = "zeroshot-vision/index-state"


def upgrade(folder: Path, manifest: IndexManifest, state: FolderState) -> IndexManifest:
    """Bring the folder's state and manifest to :data:`FORMAT_VERSION`; the new manifest.

    ``state`` is the writer's (the folder's lock is held).
    """
    old = folder / V1_STATE
    if old.exists():
        source, entries = read_v1_state(old)
        if source and state.meta("source") is None:
            state.set_meta("source", source)
        state.write(entries)
        old.unlink()
        manifest = _write_version(folder, manifest)
    if state.meta("sources") is None:
        state.set_sources(state.sources())
    return _write_version(folder, manifest)


def _write_version(folder: Path, manifest: IndexManifest) -> IndexManifest:
    if manifest.version >= FORMAT_VERSION:
        return manifest
    upgraded = manifest.model_copy(update={"version": FORMAT_VERSION})
    write_atomic(folder / MANIFEST, upgraded.model_dump_json(indent=2).encode())
    logger.info("upgraded %s to index format %d", folder, FORMAT_VERSION)
    return upgraded


def v1_counts(folder: Path) -> dict[str, int]:
    """The statuses of a version 1 state not yet upgraded (all zero when there is none)."""
    counts = {"indexed": 0, "failed": 0, "pending": 0}
    if (folder / V1_STATE).exists():
        for entry in read_v1_state(folder / V1_STATE)[1]:
            counts[entry.status] += 1
    return counts


def v1_sources(folder: Path) -> list[SourceFolder]:
    """The one source folder of a version 1 state not yet upgraded (if any)."""
    if (folder / V1_STATE).exists():
        single = read_v1_state(folder / V1_STATE)[0]
        return [SourceFolder(path=single)] if single else []
    return []


def read_v1_state(path: Path) -> tuple[str, list[FileEntry]]:
    """The source folder and the rows of a version 1 ``state.json``."""
    try:
        raw = loads_bounded(
            path.read_bytes(), max_depth=4, max_bytes=_V1_STATE_MAX_BYTES, what="it"
        )
        if raw.get("format") != _V1_STATE_FORMAT:
            raise ValueError("not an index state file")
        entries = [
            FileEntry(
                id=str(item),
                path=str(entry["path"]),
                size=int(entry["size"]),
                mtime_ns=int(entry["mtime_ns"]),
            )
            for item, entry in raw["files"].items()
        ]
        entries += [
            FileEntry(
                id=str(item),
                path=str(entry["path"]),
                size=int(entry["size"]),
                mtime_ns=int(entry["mtime_ns"]),
                status="failed",
                reason=str(entry.get("reason", "")),
            )
            for item, entry in raw["failed"].items()
        ]
        return str(raw["source"]), entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # InvalidInputError (too large, too deep, not JSON) is a ValueError too.
        raise damaged(path, exc) from exc
