"""Crash-safe file writing shared by the stores, the index folder and the downloader."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

__all__ = [
    "folder_size",
    "fsync_dir",
    "is_temp_file",
    "remove_temp_files",
    "write_atomic",
    "write_exclusive",
]

# write_atomic's temp files: ".<final name>.<mkstemp's 8 random characters>.tmp", hidden
# and in the folder of the file they become. A process killed mid-write leaves them.
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


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
    the usual permissions (0o666 less the umask). A process killed mid-write leaves its
    temp file behind: :func:`is_temp_file` recognizes it by name, and
    :func:`remove_temp_files` removes such leftovers.
    """
    tmp = _write_temp(path, data)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new temp file beside ``path``, flushed to disk, with the usual mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


# link() fails with these where a file system has no hard links (FAT, some FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` only if nothing is there yet, atomically.

    The data goes to a temp file first, which is then hard-linked to ``path``: ``link``
    fails when ``path`` exists, so of two processes creating one file exactly one wins,
    and readers never see it partly written. Where the file system has no hard links, an
    ``O_EXCL`` create keeps it exclusive (a reader may then briefly see it empty).

    Raises:
        FileExistsError: ``path`` already exists (created by someone else first).
    """
    tmp = _write_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _write_excl_open(path, data)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _write_excl_open(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


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


def is_temp_file(name: str) -> bool:
    """Whether a file name is one of :func:`write_atomic`'s temp files."""
    return _TEMP_FILE.match(name) is not None


def remove_temp_files(folder: Path) -> int:
    """Remove :func:`write_atomic`'s leftover temp files from ``folder``; return how many.

    Only call this while no other writer can be writing to ``folder``: it would remove
    that writer's temp file before its rename.
    """
    removed = 0
    for path in folder.iterdir():
        if is_temp_file(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def folder_size(folder: Path) -> int:
    """The total size in bytes of the files under ``folder``, leaving temp files out."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if is_temp_file(name):
                continue
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:  # removed while we walk (a concurrent save)
                continue
    return total
