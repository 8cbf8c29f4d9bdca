"""Writing the files kept beside the catalog (indexes, adapters, statistics, clips) so that
no reader ever sees half of one. Any thread, any process.

Each is written to a unique temporary name in the same folder, flushed to disk and renamed
over the old one: a kill or a full disk leaves the old file whole (and no temporary file),
and two processes writing the same file at once never tear each other's bytes: the last
rename wins with a complete file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def written(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a fresh temporary path beside ``path`` (same suffix, so writers that add one
    keep it); when the block ends normally the file is fsynced and renamed onto ``path``,
    otherwise it is removed and ``path`` is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _sync_folder(target.parent)


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
