"""Safe file handling shared by the stores, the index folder, the downloader and the CLI.

Writing is crash-safe (a temp file and a rename) and replaces only regular files: a rename
over a device node or a FIFO would destroy something the project does not own (run as
root, ``--out /dev/null`` once replaced the device). Reading a file named by a user is
bounded and refuses what is not a regular file, which could never end (``/dev/zero``) or
never start (a FIFO with no writer).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from zeroshot_vision._errors import InvalidInputError

__all__ = [
    "check_replaceable",
    "folder_size",
    "fsync_dir",
    "is_temp_file",
    "open_regular",
    "read_regular",
    "remove_temp_files",
    "replace_file",
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

    Raises:
        InvalidInputError: ``path`` exists and is not a regular file (see
            :func:`check_replaceable`); nothing is written.
    """
    check_replaceable(path)
    replace_file(_write_temp(path, data), path)


def replace_file(tmp: Path, path: Path) -> None:
    """Rename the finished temp file ``tmp`` over ``path``, if ``path`` may be replaced.

    The one rename every atomic writer ends with: ``tmp`` is removed if the rename fails
    or is refused.

    Raises:
        InvalidInputError: ``path`` exists and is not a regular file.
    """
    try:
        check_replaceable(path)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """Refuse to replace ``path`` unless it is a regular file or nothing is there yet.

    Symbolic links are followed: a link to ``/dev/null`` is refused like ``/dev/null``.

    Raises:
        InvalidInputError: ``path`` is a folder, a device, a FIFO or a socket.
    """
    try:
        mode = Path(path).stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # a new file (or a dangling link, which the rename replaces)
    if not stat.S_ISREG(mode):
        hint = "; name a file inside it" if stat.S_ISDIR(mode) else ""
        raise InvalidInputError(
            f"{os.fspath(path)} is {_kind(mode)}: only a regular file is replaced{hint}"
        )


def open_regular(path: str | os.PathLike[str], *, what: str = "the file") -> BinaryIO:
    """Open ``path`` for reading in binary, if it is a regular file.

    The file is opened without blocking and checked through its open descriptor, so a
    FIFO is refused at once rather than waited on, and a file swapped after a check
    cannot slip through.

    Args:
        path: The file.
        what: What it is, for the error (``"the API key file"``).

    Raises:
        InvalidInputError: ``path`` is a folder, a device, a FIFO or a socket.
        OSError: It cannot be opened (missing, no permission).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise InvalidInputError(f"{what} {os.fspath(path)} is a folder, not a file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInputError(
                f"{what} {os.fspath(path)} is {_kind(mode)}; give a regular file"
            )
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], *, max_bytes: int, what: str = "the file") -> bytes:
    """The bytes of the regular file ``path``, if it holds at most ``max_bytes``.

    Reads at most ``max_bytes + 1`` bytes whatever the file claims, so a file that
    grows while it is read cannot exhaust memory.

    Raises:
        InvalidInputError: Not a regular file (see :func:`open_regular`), or larger
            than ``max_bytes``.
        OSError: It cannot be opened or read.
    """
    with open_regular(path, what=what) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"{what} {os.fspath(path)} is larger than {max_bytes:,} bytes; is it the right file?"
        )
    return data


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
