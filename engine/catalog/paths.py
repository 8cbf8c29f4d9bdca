"""Where a library's files live on disk. Any thread may call these."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

import platformdirs

from engine import config

CATALOG_NAME = "catalog.sqlite"


def default_library_dir() -> Path:
    """The library folder: $SONARIUM_LIBRARY, else the platform's user data dir."""
    override = config.value("library")
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_data_dir("Sonarium", appauthor=False)) / "library"


def resolve_library_dir(library: str | os.PathLike[str] | None) -> Path:
    """`library` when given (the CLI's --library), else the default; created if missing."""
    path = Path(library).expanduser().resolve() if library else default_library_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def catalog_path(library_dir: Path) -> Path:
    return library_dir / CATALOG_NAME


# -- file names the OS holds as bytes that are not UTF-8 ---------------------------------
#
# Python gives such a name as a str with lone surrogates (U+DC80-U+DCFF, one per byte:
# PEP 383), which SQLite, JSON and Qt cannot hold. The catalog stores a path in a form
# that any of them can: each such byte as ESCAPE plus two hex digits, ESCAPE itself as
# ESCAPE twice. The mapping is injective and works character by character, so a folder's
# stored form is a prefix of its files' stored forms, and every name that is valid UTF-8
# (nearly all of them) is stored unchanged. U+FFFF is a Unicode noncharacter: no real
# name uses it, and if one did it would still round-trip.
ESCAPE = "\uffff"
_SURROGATE_LO, _SURROGATE_HI = 0xDC80, 0xDCFF


def to_catalog(os_path: str | os.PathLike[str]) -> str:
    """The catalog's form of a path as the OS gave it (os.fsdecode). Any thread."""
    text = os.fspath(os_path)
    if text.isascii():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if _SURROGATE_LO <= code <= _SURROGATE_HI:
            out.append(f"{ESCAPE}{code - 0xDC00:02X}")
        elif ch == ESCAPE:
            out.append(ESCAPE + ESCAPE)
        elif 0xD800 <= code <= 0xDFFF:  # a surrogate no OS call produces: keep it visible
            out.append(f"{ESCAPE}u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


_ESCAPED = re.compile(f"{ESCAPE}({ESCAPE}|u[0-9A-F]{{4}}|[0-9A-F]{{2}})")


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code == ESCAPE:
        return ESCAPE
    return chr(int(code[1:], 16)) if code[0] == "u" else chr(0xDC00 + int(code, 16))


def os_path(stored: str) -> str:
    """The path to open for a catalog path (the inverse of to_catalog). Any thread."""
    if ESCAPE not in stored:
        return stored
    return _ESCAPED.sub(_unescape, stored)


def os_bytes(stored: str) -> bytes:
    """The exact bytes of a catalog path's name on disk (for libraries that take bytes,
    such as libsndfile, and for file URLs)."""
    return os.fsencode(os_path(stored))


def shown(stored: str) -> str:
    """A catalog path for people: each byte that is not UTF-8 as \\xNN (the catalog keeps
    the exact name). Escaping control characters is the front end's job."""
    if ESCAPE not in stored:
        return stored
    text = os_path(stored)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an undecodable byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def words_text(stored: str) -> str:
    """A catalog path or name with its undecodable bytes as spaces, for word indexing."""
    if ESCAPE not in stored:
        return stored
    return _ESCAPED.sub(" ", stored)


class NotAFile(OSError):
    """A library path that is now a FIFO, a socket, a device or a folder: reading it
    could block for ever or never end."""


def open_fd(stored: str) -> int:
    """A read-only descriptor for a catalog path, only when it is a regular file (checked
    on the open descriptor, so a swap after the check cannot matter; opening never blocks,
    even on a FIFO). Raises NotAFile or what os.open raises. Any thread."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(os_bytes(stored), flags | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAFile(
                f"not a regular file (a pipe, socket, device or folder): {shown(stored)}"
            )
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_binary(stored: str) -> BinaryIO:
    """open_fd as a binary file object."""
    return os.fdopen(open_fd(stored), "rb")
