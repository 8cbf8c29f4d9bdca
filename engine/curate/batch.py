"""Writing the catalog's metadata into many files: what each file should hold, one
verified write per file (engine/curate/write.py), the catalog told after each, and a
report of what was written, refused and why. The pending edits in the catalog are the
journal: a batch stopped by a kill, a full disk or Ctrl+C resumes with the files still
pending. Call on the thread that owns the Catalog.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.catalog.db import Catalog
from engine.catalog.edits import mark_written, pending_writes
from engine.catalog.fields import FIELDS, shown
from engine.catalog.paths import os_path
from engine.curate.write import write_fields
from engine.errors import CannotWrite, FileNotWritable
from engine.scan.analyze import fingerprint
from engine.scan.metadata import read_metadata


def file_values(catalog: Catalog, file_id: int) -> dict[str, str | None] | None:
    """What the file should hold, by field: the user's edit ("" for cleared), else what
    the catalog shows, else None (leave the file's own). None when there is no such row."""
    row = catalog.file_by_id(file_id)
    if row is None:
        return None
    edits = dict(
        catalog.conn.execute(
            "SELECT field, value FROM metadata_edits WHERE file_id = ?", (file_id,)
        ).fetchall()
    )
    values: dict[str, str | None] = {}
    for name, f in FIELDS.items():
        if name in edits:
            values[name] = str(edits[name])
        else:
            values[name] = shown(row[f.column]) or None
    return values


def write_files(
    catalog: Catalog,
    file_ids: Iterable[int] | None,
    *,
    keep_mtime: bool,
    dry_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Write each file's metadata (``file_ids``, else every file with edits not yet
    written). Returns {"written": [paths], "failed": [{"path", "error"}], "pending":
    [paths] (for a dry run: what would be written)}. A full disk or read-only folder
    stops the batch (CannotWrite); a file that cannot take metadata is reported and
    skipped."""
    ids = pending_writes(catalog) if file_ids is None else sorted(set(file_ids))
    report: dict[str, Any] = {"written": [], "failed": [], "pending": []}
    for done, file_id in enumerate(ids):
        # The time the values are read at: an edit made while the file is written (the
        # app edits on another thread) is newer, so it stays due.
        read_at = time.time()
        row = catalog.file_by_id(file_id)
        values = file_values(catalog, file_id)
        if row is None or values is None:
            continue  # removed from the library meanwhile
        if progress is not None:
            progress(done, len(ids), row["path"])
        if dry_run:
            report["pending"].append(row["path"])
            continue
        if row["offline"]:
            report["failed"].append(
                {"path": row["path"], "error": "its folder is offline: not written"}
            )
            continue
        changed = _changed_since_scan(row)
        if changed and _holds(row["path"], values):
            # Written already, the catalog not told (a kill between the rename and the
            # catalog's update): it takes the file's state now.
            st = os.stat(os_path(row["path"]))
            mark_written(catalog, file_id, st.st_size, st.st_mtime_ns,
                         fingerprint(row["path"], st.st_size), read_at)  # fmt: skip
            report["written"].append(row["path"])
            continue
        if changed:
            report["failed"].append({"path": row["path"], "error": changed})
            continue
        try:
            result = write_fields(row["path"], values, keep_mtime=keep_mtime)
        except FileNotWritable as exc:
            report["failed"].append({"path": row["path"], "error": str(exc)})
            continue
        except CannotWrite:
            raise
        try:
            mark_written(
                catalog, file_id, result.size, result.mtime_ns, result.fingerprint, read_at
            )
        except sqlite3.Error as exc:  # the file is right; the next scan reads it back
            report["failed"].append({"path": row["path"], "error": f"catalog not told: {exc}"})
            continue
        report["written"].append(row["path"])
    if progress is not None:
        progress(len(ids), len(ids), "")
    return report


def _holds(path: str, values: dict[str, str | None]) -> bool:
    """Whether the file's own metadata already says ``values``."""
    got = read_metadata(Path(path))
    return all(v is None or shown(got.get(FIELDS[name].column)) == v for name, v in values.items())


def _changed_since_scan(row: dict[str, Any]) -> str:
    """Why a file must be scanned before it is written ("" when it is as scanned): its
    own metadata may be newer than the catalog's, which a write would overwrite."""
    try:
        st = os.stat(os_path(row["path"]))
    except OSError:
        return ""  # the write says why (offline, unreadable)
    if (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"]):
        return "it changed since it was scanned (its own metadata may be newer): rescan, then write"
    return ""
