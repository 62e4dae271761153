"""Crash-safe file writing shared by the stores, the index folder and the downloader."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_dir", "is_temporary", "write_atomic"]


def _default_file_mode() -> int:
    # mkstemp creates files readable by their owner only; finished files should get the
    # mode an ordinary open() would give them (0o666 less the umask). Reading the umask
    # means setting it, so do it once, at import.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename.

    Readers see the old file or the new one, never a partial write; the new file gets
    the usual permissions (0o666 less the umask).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`write_atomic`'s temp files (``.NAME.XXXX.tmp``).

    Such a file outlives its write only when the process was killed mid-write.
    """
    return name.startswith(".") and name.endswith(".tmp")


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
