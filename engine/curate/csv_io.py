"""Metadata as CSV, the way other sound-library tools exchange it: export a library's
(or a selection's) fields with their technical columns, and import a CSV edited in a
spreadsheet: rows matched to files by path, else by file name, with a preview of every
change and of the rows that matched nothing. Call on the thread that owns the Catalog.

Import reads UTF-8 (a byte-order mark or none), else Windows-1252 as spreadsheets save
it; the delimiter is whichever of , ; tab | the file uses. An empty cell changes nothing
(spreadsheets leave cells empty for "unknown"); clearing is done in the app or CLI.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.fields import FIELDS, Field, clean, field, shown
from engine.catalog.paths import to_catalog
from engine.catalog.sidefiles import written

# The columns other tools use, in their order; then the rest of the fields.
TECHNICAL = ("Duration", "SampleRate", "BitDepth", "Channels")
_FIRST = ("description", "keywords", "category", "subcategory", "catid", "fx_name",
          "creator_id", "source_id", "designer", "library", "notes", "rating")  # fmt: skip
FIELD_ORDER: tuple[Field, ...] = tuple(FIELDS[n] for n in _FIRST) + tuple(
    f for n, f in FIELDS.items() if n not in _FIRST
)
HEADER = ("Filename", "Path", *(f.csv for f in FIELD_ORDER[: len(_FIRST)]), *TECHNICAL,
          *(f.csv for f in FIELD_ORDER[len(_FIRST) :]))  # fmt: skip
QUERY_ROWS = 100_000  # the most results of a query exported
MAX_IMPORT_BYTES = 512 * 1024 * 1024  # a CSV of a few million rows; larger is not metadata
_BATCH = 5000
# Columns that say which file a row is, or what it is: read, never imported as fields.
_NOT_FIELDS = {"filename", "path", "file", "name", "filepath", *(t.lower() for t in TECHNICAL)}


def export_csv(
    catalog: Catalog, out: str | os.PathLike[str], file_ids: Iterable[int] | None
) -> int:
    """Write the metadata of ``file_ids`` (None: every file that could be read) to a CSV
    at ``out`` (UTF-8 with a byte-order mark, which spreadsheets need to read it as
    UTF-8), written whole; returns how many rows."""
    count = 0
    with written(out) as temp, open(temp, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for row in _rows(catalog, file_ids):
            cells = {f.csv: shown(row[f.column]) for f in FIELD_ORDER}
            duration = row["duration"]
            cells.update(
                Filename=row["name"], Path=row["path"],
                Duration="" if duration is None else f"{duration:.3f}",
                SampleRate=shown(row["sample_rate"]), BitDepth=shown(row["bit_depth"]),
                Channels=shown(row["channels"]),
            )  # fmt: skip
            writer.writerow([cells[h] for h in HEADER])
            count += 1
    return count


def _rows(catalog: Catalog, file_ids: Iterable[int] | None) -> Iterator[dict[str, Any]]:
    if file_ids is None:
        last = 0
        while True:  # pages by id: memory stays at one page on a million files
            page = catalog.query(
                "SELECT * FROM files WHERE status = 'ok' AND id > ? ORDER BY id LIMIT ?",
                (last, _BATCH),
            )
            if not page:
                return
            yield from page
            last = page[-1]["id"]
    ids = list(file_ids)
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        by_id = {
            r["id"]: r
            for r in catalog.query(f"SELECT * FROM files WHERE id IN ({ID_SET})", (id_set(chunk),))
        }
        yield from (by_id[i] for i in chunk if i in by_id)


def read_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file, its encoding and delimiter found; ValueError when it
    is not a CSV this can read."""
    p = Path(path)
    if p.stat().st_size > MAX_IMPORT_BYTES:
        raise ValueError(f"{p.name} is larger than {MAX_IMPORT_BYTES >> 20} MB")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    if not text.strip():
        raise ValueError(f"{p.name} is empty")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    return header, [
        dict(zip(header, r, strict=False)) for r in rows[1:] if any(c.strip() for c in r)
    ]


def plan_import(catalog: Catalog, path: str | os.PathLike[str]) -> dict[str, Any]:
    """What importing the CSV at ``path`` would change, changing nothing: {"changes":
    {file id: {field: new}}, "preview": [{"path", "field", "old", "new"}], "unmatched":
    [{"line", "name", "reason"}], "invalid": [{"line", "name", "reason"}], "matched",
    "rows", "columns" (the fields read), "ignored" (columns that are no field)}."""
    header, rows = read_csv(path)
    columns: dict[str, Field] = {}
    ignored = []
    for name in header:
        if name.lower() in (
            "filename",
            "path",
            "file",
            "name",
            "filepath",
            *map(str.lower, TECHNICAL),
        ):
            continue
        try:
            columns[name] = field(name)
        except ValueError:
            ignored.append(name)
    path_col = next((h for h in header if h.lower() in ("path", "filepath")), None)
    name_col = next((h for h in header if h.lower() in ("filename", "file", "name")), None)
    if path_col is None and name_col is None:
        raise ValueError("the CSV has neither a Path nor a Filename column to match files by")
    names = _names(catalog)
    plan: dict[str, Any] = {
        "changes": {}, "preview": [], "unmatched": [], "invalid": [], "matched": 0,
        "rows": len(rows), "columns": sorted({f.name for f in columns.values()}),
        "ignored": ignored,
    }  # fmt: skip
    for line, row in enumerate(rows, start=2):
        file_id, reason = _match(catalog, names, row.get(path_col or ""), row.get(name_col or ""))
        label = (row.get(path_col or "") or row.get(name_col or "") or "").strip()
        if file_id is None:
            plan["unmatched"].append({"line": line, "name": label, "reason": reason})
            continue
        plan["matched"] += 1
        current = catalog.file_by_id(file_id)
        assert current is not None
        wanted: dict[str, str] = {}
        for column, f in columns.items():
            cell = (row.get(column) or "").strip()
            if not cell:
                continue
            try:
                value = clean(f, cell)
            except ValueError as exc:
                plan["invalid"].append({"line": line, "name": label, "reason": str(exc)})
                continue
            old = shown(current[f.column])
            if value != old:
                wanted[f.name] = value
                plan["preview"].append(
                    {"path": current["path"], "field": f.name, "old": old, "new": value}
                )
        if wanted:
            plan["changes"].setdefault(file_id, {}).update(wanted)
    return plan


def _names(catalog: Catalog) -> dict[str, list[int]]:
    """file name (case-folded) -> ids, for rows that name a file without its folder."""
    out: dict[str, list[int]] = {}
    for file_id, name in catalog.conn.execute("SELECT id, name FROM files"):
        out.setdefault(name.casefold(), []).append(file_id)
    return out


def _match(
    catalog: Catalog, names: dict[str, list[int]], path: str | None, name: str | None
) -> tuple[int | None, str]:
    path, name = (path or "").strip(), (name or "").strip()
    if path:
        row = catalog.file_by_path(path) or catalog.file_by_path(to_catalog(path))
        if row is not None:
            return int(row["id"]), ""
        name = name or os.path.basename(path.replace("\\", "/"))
    if not name:
        return None, "no path or file name in this row"
    ids = names.get(name.casefold(), [])
    if len(ids) == 1:
        return ids[0], ""
    if not ids:
        return None, "no file of the library has this path or name"
    return None, f"{len(ids)} files of the library have this name; give its path"
