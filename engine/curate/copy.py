"""Copying library files into a folder (a collection handed to a client, a DAW session's
folder): each copy written whole under a temporary name and then given its name without
ever replacing a file there (a name taken gets " 2", " 3"... before its suffix). Any
thread; the files it is given are catalog paths.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.catalog.paths import os_path, shown
from engine.catalog.sidefiles import cannot_write

_MAX_NUMBER = 9999


def copy_files(paths: list[str], folder: Path) -> dict[str, Any]:
    """Copy ``paths`` into ``folder``; {"copied": [new paths], "failed": [{"path",
    "error"}]}. A full disk or read-only folder stops the copying (CannotWrite)."""
    report: dict[str, Any] = {"copied": [], "failed": []}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(folder / "x", exc) from exc
    for path in paths:
        source = os_path(path)
        if not os.path.isfile(source):
            report["failed"].append({"path": path, "error": "not there (offline or moved)"})
            continue
        try:
            report["copied"].append(str(_copy_one(source, folder)))
        except OSError as exc:
            raised = cannot_write(folder / os.path.basename(source), exc)
            if raised is not exc:
                raise raised from exc
            report["failed"].append({"path": path, "error": f"{shown(path)}: {exc}"})
    return report


def _copy_one(source: str, folder: Path) -> Path:
    name = Path(source).name
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=Path(name).suffix, dir=folder)
    os.close(fd)
    temp = Path(temp_name)
    try:
        shutil.copy2(source, temp)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        return link_free_name(temp, folder, name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def link_free_name(temp: Path, folder: Path, name: str) -> Path:
    """Give the finished file `temp` the name `name` in `folder`, or `name` numbered
    (" 2", " 3"...) when it is taken; never replaces a file. Returns the new path."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for number in range(1, _MAX_NUMBER + 1):
        target = folder / (name if number == 1 else f"{stem} {number}{suffix}")
        try:
            os.link(temp, target)
            return target
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if not target.exists():  # a folder without hard links: check, then copy
                os.rename(temp, target)
                return target
    raise FileExistsError(errno.EEXIST, f"every numbered name of {name} is taken")
