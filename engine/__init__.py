"""Sonarium's engine, in rooms by concern (the map: docs/architecture.md). Never imports Qt.

The GUI and the CLI are both thin clients of :class:`engine.library.Library`. Importing
`engine` itself loads nothing heavy, so model modules can be used on their own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Library"]


def __getattr__(name: str) -> Any:
    if name == "Library":
        from engine.library import Library

        return Library
    raise AttributeError(name)
