"""sqlite-utils, imported without pandas. Imported once, with the catalog, on the main
thread at start (another thread importing pandas at that moment would be refused it).

sqlite-utils imports pandas whenever it is installed (Ray's data library brings it) only
to map pandas' Timestamp to a column type when inserting data frames, which the catalog
never does; that import was 0.35 s of every process start, on the way to the first
query (docs/scale.md). pandas stays importable for everything else.
"""

from __future__ import annotations

import sys

if "pandas" in sys.modules:
    import sqlite_utils
else:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # "import pandas" fails
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]

__all__ = ["sqlite_utils"]
