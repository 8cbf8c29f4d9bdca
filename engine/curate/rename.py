"""Renaming files to UCS names (``CatID[-UserCategory]_FXName_CreatorID_SourceID
[_UserData].ext``): a preview of every old and new name, numbering where names collide,
the renames done one by one with the catalog following each (its row, tags, edits and
vectors kept), and an undo log. Call on the thread that owns the Catalog.

A rename never replaces a file: it is a hard link to the new name and the old name's
removal (or, where the disk has no hard links, a rename after checking that the name is
free). A kill between the rename and the catalog's update is healed by the next scan,
which finds the file by its fingerprint.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.catalog.db import Catalog
from engine.catalog.fields import shown
from engine.catalog.paths import os_path
from engine.catalog.sidefiles import cannot_write

# What a UCS field may not hold: the separator, path separators and what file systems
# refuse (Windows' reserved characters too: libraries move between systems).
_FORBIDDEN = re.compile(r'[_/\\:*?"<>|\x00-\x1f\x7f]')
MAX_NAME_BYTES = 255
_NUMBERED = 999


def _part(value: object, spaces: bool) -> str:
    text = _FORBIDDEN.sub(" " if spaces else "-", shown(value)).strip()
    text = re.sub(r"\s+", " " if spaces else "", text)
    return text.strip(" .-")


def ucs_name(row: dict[str, Any], creator: str | None, source: str | None) -> tuple[str, str]:
    """(new file name, "") or ("", why not) for a catalog row: CatID and FXName from its
    fields; CreatorID and SourceID from its fields, else ``creator``/``source``."""
    catid = _part(row.get("ucs_catid"), spaces=False)
    fx = _part(row.get("ucs_fx_name"), spaces=True)
    who = _part(row.get("ucs_creator") or creator, spaces=False)
    src = _part(row.get("ucs_source") or source, spaces=False)
    missing = [n for n, v in (("CatID", catid), ("FXName", fx), ("CreatorID", who),
                              ("SourceID", src)) if not v]  # fmt: skip
    if missing:
        return "", "no " + ", ".join(missing) + " (set them first)"
    user = _part(row.get("ucs_user_category"), spaces=False)
    head = f"{catid}-{user}" if user else catid
    return f"{head}_{fx}_{who}_{src}{Path(row['name']).suffix.lower()}", ""


def plan_renames(
    catalog: Catalog,
    file_ids: Iterable[int],
    *,
    creator: str | None = None,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """[{"id", "old", "new", "action": "rename"|"keep"|"skip", "reason"}] for the files,
    changing nothing. Names taken on disk or by another file of the plan get a number
    after the FXName ("Door Slam 02")."""
    plan: list[dict[str, Any]] = []
    taken: set[str] = set()
    for file_id in file_ids:
        row = catalog.file_by_id(file_id)
        if row is None:
            continue
        entry: dict[str, Any] = {"id": file_id, "old": row["path"], "new": row["path"],
                                 "action": "skip", "reason": ""}  # fmt: skip
        plan.append(entry)
        name, why = ucs_name(row, creator, source)
        if not name:
            entry["reason"] = why
            continue
        if row["offline"]:
            entry["reason"] = "its folder is offline"
            continue
        folder = Path(row["path"]).parent
        stem, suffix = name[: -len(Path(name).suffix) or None], Path(name).suffix
        fx_end = stem.index("_", stem.index("_") + 1)  # after CatID_FXName
        candidate = name
        for number in range(2, _NUMBERED + 2):
            path = str(folder / candidate)
            if path == row["path"]:
                break
            if path not in taken and not os.path.lexists(os_path(path)):
                break
            candidate = f"{stem[:fx_end]} {number:02d}{stem[fx_end:]}{suffix}"
        else:
            entry["reason"] = "every numbered name is taken"
            continue
        if len(os.fsencode(candidate)) > MAX_NAME_BYTES:
            entry["reason"] = "the UCS name is longer than file names may be"
            continue
        new = str(folder / candidate)
        taken.add(new)
        entry["new"] = new
        entry["action"] = "keep" if new == row["path"] else "rename"
    return plan


def apply_renames(catalog: Catalog, plan: list[dict[str, Any]]) -> dict[str, Any]:
    """Rename the plan's files (one journal batch); returns {"batch", "renamed",
    "failed": [{"path", "error"}]}. A file that changed or vanished since the plan is
    left and reported."""
    batch = _next_batch(catalog)
    report: dict[str, Any] = {"batch": batch, "renamed": 0, "failed": []}
    for entry in plan:
        if entry["action"] != "rename":
            continue
        error = _move(catalog, entry["id"], entry["old"], entry["new"], batch)
        if error:
            report["failed"].append({"path": entry["old"], "error": error})
        else:
            report["renamed"] += 1
    return report


def undo_renames(catalog: Catalog) -> dict[str, Any] | None:
    """Give the newest batch of renames back its old names; None when there is none."""
    row = catalog.conn.execute("SELECT MAX(batch) FROM rename_journal WHERE undone = 0").fetchone()
    if row[0] is None:
        return None
    batch = int(row[0])
    entries = catalog.conn.execute(
        "SELECT id, file_id, old_path, new_path FROM rename_journal WHERE batch = ? "
        "ORDER BY id DESC",
        (batch,),
    ).fetchall()
    report: dict[str, Any] = {"batch": batch, "renamed": 0, "failed": []}
    for entry_id, file_id, old, new in entries:
        error = _move(catalog, file_id, new, old, None) if file_id is not None else "forgotten"
        if error:  # stays in the log: the next undo tries it again
            report["failed"].append({"path": new, "error": error})
            continue
        report["renamed"] += 1
        with catalog.transaction() as c:
            c.execute("UPDATE rename_journal SET undone = 1 WHERE id = ?", (entry_id,))
    return report


def _next_batch(catalog: Catalog) -> int:
    row = catalog.conn.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM rename_journal")
    return int(row.fetchone()[0])


def _move(catalog: Catalog, file_id: int, old: str, new: str, batch: int | None) -> str:
    """Rename ``old`` to ``new`` without ever replacing a file, then point the catalog
    row at it (and log it when ``batch``); the reason when it was not done."""
    row = catalog.file_by_id(file_id)
    if row is None or row["path"] != old:
        return "it is no longer where the catalog had it"
    source, target = os_path(old), os_path(new)
    try:
        try:
            os.link(source, target)  # fails when the name is taken: nothing is replaced
            os.unlink(source)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                 errno.EMLINK):  # fmt: skip
                raise
            if os.path.lexists(target):  # a disk without hard links: check, then rename
                raise FileExistsError(errno.EEXIST, "exists", target) from None
            os.rename(source, target)
    except FileExistsError:
        return f"{Path(new).name} exists already"
    except FileNotFoundError:
        return "the file is not there (offline or moved)"
    except OSError as exc:
        raised = cannot_write(Path(target), exc)
        return str(raised) if raised is not exc else f"cannot rename: {exc.strerror or exc}"
    st = os.stat(target)
    with catalog.transaction() as c:
        catalog.move_file(file_id, new, row["root_id"], st.st_size, st.st_mtime_ns)
        if batch is not None:
            c.execute(
                "INSERT INTO rename_journal (batch, file_id, old_path, new_path, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch, file_id, old, new, time.time()),
            )
    return ""
