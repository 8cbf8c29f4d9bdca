"""Writing the files kept beside the catalog (indexes, adapters, statistics, clips) so that
no reader ever sees half of one. Any thread, any process.

Each is written to a unique temporary name in the same folder, flushed to disk and renamed
over the old one: a kill or a full disk leaves the old file whole (and no temporary file),
and two processes writing the same file at once never tear each other's bytes: the last
rename wins with a complete file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.errors import CannotWrite


def _read_umask() -> int:
    """The process's umask. Read once, at import (on the thread that imports the engine):
    setting it to read it back is not safe while other threads create files."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes a file only its owner may read (0600); what we hand to the user (exports,
# dragged clips, copies in their folders) gets the mode a plain open() would give it.
FILE_MODE = 0o666 & ~_read_umask()


def temp_file(folder: str | os.PathLike[str], name: str) -> Path:
    """A new empty file with a unique hidden name beside `name` in `folder` (same suffix),
    with the usual mode (FILE_MODE); the caller renames it into place or removes it."""
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=Path(name).suffix, dir=folder)
    os.close(fd)
    try:
        os.chmod(temp, FILE_MODE)
    except OSError:
        os.unlink(temp)
        raise
    return Path(temp)


@contextlib.contextmanager
def written(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a fresh temporary path beside ``path`` (same suffix, so writers that add one
    keep it); when the block ends normally the file is fsynced and renamed onto ``path``,
    otherwise it is removed and ``path`` is left as it was."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_file(target.parent, target.name)
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, target)
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _sync_folder(target.parent)


# errno values that mean "this folder cannot take writes now", not a bug.
_NO_ROOM = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_WRITE = {errno.EROFS, errno.EACCES, errno.EPERM}


def cannot_write(target: Path, exc: OSError) -> OSError:
    """CannotWrite for a full disk or a read-only folder, else ``exc`` itself."""
    if exc.errno in _NO_ROOM:
        return CannotWrite(
            f"the disk holding {target.parent} is full: {target.name} was not written (the "
            "previous copy, if any, is intact); free some space and try again"
        )
    if exc.errno in _NO_WRITE:
        return CannotWrite(
            f"{target.parent} is read-only here: {target.name} was not written; searching "
            "and listening still work, changes need write access"
        )
    return exc


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
