"""Where a library's files live on disk. Any thread may call these."""

from __future__ import annotations

import os
from pathlib import Path

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
