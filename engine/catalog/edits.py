"""Metadata edits in the catalog: set or append fields on many files at once (one batch,
one transaction), undo and redo by batch, re-applying edits after a rescan, and the
pending writes into files. Call on the thread that owns the Catalog.

An edit goes to the catalog first: it is searchable at once and survives everything the
catalog survives (a rescan re-applies it: Catalog.write_file; moves keep the row).
Writing it into the file is a separate, explicit step (engine/curate/write.py) that
marks it written.
"""

from __future__ import annotations

import getpass
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.fields import FIELDS, Field, clean, shown, stored

# Joining an appended value to what a field has: keywords are a list, text a sentence.
_JOIN = {"keywords": ", "}


def editor() -> str:
    """Who is editing: the login name, as Soundminer-style journals record it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "unknown"


def set_fields(
    catalog: Catalog,
    file_ids: Iterable[int],
    changes: Mapping[str, object],
    *,
    append: bool = False,
    who: str | None = None,
) -> dict[str, Any]:
    """Set (or with ``append``, add to) fields on files, as one undoable batch.

    ``changes`` maps field names (engine/catalog/fields.py) to values; "" clears. Values
    are validated first (ValueError, nothing written). Returns {"batch", "files",
    "changes"}: the batch is None when nothing differed from what the files had."""
    return set_many(catalog, dict.fromkeys(file_ids, changes), append=append, who=who)


def set_many(
    catalog: Catalog,
    changes: Mapping[int, Mapping[str, object]],
    *,
    append: bool = False,
    who: str | None = None,
) -> dict[str, Any]:
    """Each file its own changes (file id -> {field: value}), all as one undoable batch
    (a CSV import); otherwise as set_fields."""
    cleaned = {
        int(file_id): [(f, clean(f, v)) for f, v in _fields(fields)]
        for file_id, fields in changes.items()
    }
    who = who or editor()
    now = time.time()
    with catalog.transaction() as c:
        batch = int(c.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM edit_journal").fetchone()[0])
        changed_files: set[int] = set()
        count = 0
        for file_id in _existing(c, sorted(cleaned)):
            wanted = cleaned[file_id]
            row = c.execute(
                f"SELECT {', '.join(f.column for f, _ in wanted)} FROM files WHERE id = ?",
                (file_id,),
            ).fetchone()
            for (f, value), before in zip(wanted, row, strict=True):
                new = _appended(f, shown(before), value) if append else value
                if new == shown(before):
                    continue  # already so: nothing to change or write
                c.execute(
                    "INSERT INTO edit_journal (batch, file_id, field, old_edit, old_shown, "
                    "new_value, at, editor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch, file_id, f.name, _edit(c, file_id, f),
                     None if before is None else shown(before), new, now, who),
                )  # fmt: skip
                _put(c, file_id, f, new, now, who)
                changed_files.add(file_id)
                count += 1
        if count:
            # A new change ends what could be redone.
            c.execute("DELETE FROM edit_journal WHERE undone = 1")
            for file_id in changed_files:
                catalog._refresh_fts(file_id)
    return {"batch": batch if count else None, "files": len(changed_files), "changes": count}


def undo(catalog: Catalog) -> dict[str, Any] | None:
    """Take back the newest batch not yet undone; None when there is none. Returns
    {"batch", "files", "changes"}. The catalog goes back exactly (the edit, or its
    absence, and the value shown); files it was written into need writing again."""
    with catalog.transaction() as c:
        row = c.execute("SELECT MAX(batch) FROM edit_journal WHERE undone = 0").fetchone()
        if row[0] is None:
            return None
        batch = int(row[0])
        entries = c.execute(
            "SELECT id, file_id, field, old_edit, old_shown FROM edit_journal "
            "WHERE batch = ? ORDER BY id DESC",
            (batch,),
        ).fetchall()
        files = set()
        # Which of the batch's edits are in their files, read before any is changed (the
        # loop marks every edit of a file due, which would hide it).
        in_file = {
            (file_id, name)
            for _, file_id, name, _, _ in entries
            for (written_at,) in c.execute(
                "SELECT written_at FROM metadata_edits WHERE file_id = ? AND field = ?",
                (file_id, name),
            )
            if written_at is not None
        }
        for entry_id, file_id, name, old_edit, old_shown in entries:
            f = FIELDS[name]
            if old_edit is None and (file_id, name) in in_file:
                # The file holds the value being taken back: keep the old one as an edit,
                # due to be written, so the file follows.
                c.execute(
                    "UPDATE metadata_edits SET value = ? WHERE file_id = ? AND field = ?",
                    (old_shown or "", file_id, name),
                )
            elif old_edit is None:
                c.execute(
                    "DELETE FROM metadata_edits WHERE file_id = ? AND field = ?", (file_id, name)
                )
            else:
                c.execute(
                    "UPDATE metadata_edits SET value = ? WHERE file_id = ? AND field = ?",
                    (old_edit, file_id, name),
                )
            c.execute(
                f"UPDATE files SET {f.column} = ? WHERE id = ?",
                (stored(f, old_shown or ""), file_id),
            )
            _mark_unwritten(c, file_id)
            c.execute("UPDATE edit_journal SET undone = 1 WHERE id = ?", (entry_id,))
            files.add(file_id)
        for file_id in files:
            catalog._refresh_fts(file_id)
    return {"batch": batch, "files": len(files), "changes": len(entries)}


def redo(catalog: Catalog) -> dict[str, Any] | None:
    """Apply again the batch undone last; None when there is none."""
    with catalog.transaction() as c:
        row = c.execute("SELECT MIN(batch) FROM edit_journal WHERE undone = 1").fetchone()
        if row[0] is None:
            return None
        batch = int(row[0])
        entries = c.execute(
            "SELECT id, file_id, field, new_value, at, editor FROM edit_journal "
            "WHERE batch = ? ORDER BY id",
            (batch,),
        ).fetchall()
        files = set()
        for entry_id, file_id, name, new, at, who in entries:
            _put(c, file_id, FIELDS[name], new, at, who)
            _mark_unwritten(c, file_id)  # the file may hold what the undo brought back
            c.execute("UPDATE edit_journal SET undone = 0 WHERE id = ?", (entry_id,))
            files.add(file_id)
        for file_id in files:
            catalog._refresh_fts(file_id)
    return {"batch": batch, "files": len(files), "changes": len(entries)}


def edits_of(catalog: Catalog, file_id: int) -> dict[str, dict[str, Any]]:
    """field -> {"value", "edited_at", "editor", "written_at"} of a file's edits."""
    rows = catalog.query(
        "SELECT field, value, edited_at, editor, written_at FROM metadata_edits "
        "WHERE file_id = ? ORDER BY field",
        (file_id,),
    )
    return {r.pop("field"): r for r in rows}


def fields_of(row: Mapping[str, Any]) -> dict[str, str]:
    """The editable fields' shown values of a catalog row, by field name ("" for none)."""
    return {name: shown(row.get(f.column)) for name, f in FIELDS.items()}


def pending_writes(catalog: Catalog, file_ids: Iterable[int] | None = None) -> list[int]:
    """Files whose edits are not in the file yet (all of them, or of ``file_ids``)."""
    where = "written_at IS NULL OR written_at < edited_at"
    if file_ids is None:
        rows = catalog.conn.execute(
            f"SELECT DISTINCT file_id FROM metadata_edits WHERE {where} ORDER BY file_id"
        )
    else:
        rows = catalog.conn.execute(
            f"SELECT DISTINCT file_id FROM metadata_edits WHERE ({where}) "
            f"AND file_id IN ({ID_SET}) ORDER BY file_id",
            (id_set(file_ids),),
        )
    return [r[0] for r in rows]


def mark_written(
    catalog: Catalog, file_id: int, size: int, mtime_ns: int, fingerprint: str, at: float
) -> None:
    """After a verified write into a file: its edits are in it, and the catalog row takes
    the file's new size, time and fingerprint (the audio is unchanged, so its vectors and
    peaks stay and the next scan sees nothing new)."""
    with catalog.transaction() as c:
        c.execute(
            "UPDATE metadata_edits SET written_at = ? WHERE file_id = ? AND edited_at <= ?",
            (at, file_id, at),
        )
        c.execute(
            "UPDATE files SET size = ?, mtime_ns = ?, fingerprint = ? WHERE id = ?",
            (size, mtime_ns, fingerprint, file_id),
        )


def history(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches: {"batch", "at", "editor", "files", "changes", "undone"}."""
    return catalog.query(
        "SELECT batch, MAX(at) AS at, MAX(editor) AS editor, COUNT(DISTINCT file_id) AS files,"
        " COUNT(*) AS changes, MAX(undone) AS undone FROM edit_journal GROUP BY batch "
        "ORDER BY batch DESC LIMIT ?",
        (limit,),
    )


# -- helpers -----------------------------------------------------------------------------


def _fields(changes: Mapping[str, object]) -> list[tuple[Field, object]]:
    from engine.catalog.fields import field

    out: dict[str, tuple[Field, object]] = {}
    for name, value in changes.items():
        f = field(name)
        out[f.name] = (f, value)
    if not out:
        raise ValueError("no field to change")
    return list(out.values())


def _existing(c: sqlite3.Connection, ids: list[int]) -> list[int]:
    rows = c.execute(f"SELECT id FROM files WHERE id IN ({ID_SET}) ORDER BY id", (id_set(ids),))
    return [r[0] for r in rows]


def _edit(c: sqlite3.Connection, file_id: int, f: Field) -> str | None:
    row = c.execute(
        "SELECT value FROM metadata_edits WHERE file_id = ? AND field = ?", (file_id, f.name)
    ).fetchone()
    return None if row is None else str(row[0])


def _put(c: sqlite3.Connection, file_id: int, f: Field, value: str, at: float, who: str) -> None:
    c.execute(
        "INSERT INTO metadata_edits (file_id, field, value, edited_at, editor) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (file_id, field) DO UPDATE SET "
        "value = excluded.value, edited_at = excluded.edited_at, editor = excluded.editor",
        (file_id, f.name, value, at, who),
    )
    c.execute(f"UPDATE files SET {f.column} = ? WHERE id = ?", (stored(f, value), file_id))


def _mark_unwritten(c: sqlite3.Connection, file_id: int) -> None:
    # An undone or redone edit: the file may hold another value, so every edit of the
    # file is due to be written again (edited now). written_at stays: it still says the
    # file took these fields once, which a later undo needs to know.
    c.execute(
        "UPDATE metadata_edits SET edited_at = MAX(edited_at, ?) + 1e-6 WHERE file_id = ?",
        (time.time(), file_id),
    )


def _appended(f: Field, current: str, value: str) -> str:
    if not value or not current:
        return value or current
    if f.kind in ("rating", "date"):
        return value  # nothing to append to: a new value replaces
    if f.name == "keywords":
        have = {k.strip().lower() for k in current.split(",")}
        extra = [k.strip() for k in value.split(",") if k.strip().lower() not in have]
        return current + ", " + ", ".join(extra) if extra else current
    if value.lower() in current.lower():
        return current
    return current + _JOIN.get(f.name, " ") + value
