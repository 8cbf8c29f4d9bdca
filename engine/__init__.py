"""Sonarium's engine: catalog, scanner, search. Never imports Qt.

The GUI and the CLI are both thin clients of :class:`engine.library.Library`.
"""

from engine.library import Library

__all__ = ["Library"]
