"""Universal Category System: parsing `CatID_FXName_CreatorID_SourceID` file names.

Which CatIDs exist comes from a table the user supplies (JSON list of objects with
CatID/Category/SubCategory, or a CSV with those columns); without one, names that have
the UCS shape are still parsed, but get no category names.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

# CatID: an upper-case category short name followed by a capitalised subcategory
# ("DOORWood", "AIRBrst"); an optional "-UserCategory" may follow it.
_UCS_NAME = re.compile(
    r"^(?P<catid>[A-Z]+[a-z][A-Za-z]*)(?:-(?P<usercat>[^_]+))?"
    r"_(?P<fx>[^_]+)_(?P<creator>[^_]+)_(?P<source>[^_]+)(?:_.*)?$"
)


@dataclass(frozen=True)
class UcsEntry:
    catid: str
    category: str
    subcategory: str
    explanation: str = ""
    synonyms: tuple[str, ...] = ()


class UcsTable:
    """CatID → category names. Immutable once loaded, so any thread may use it."""

    def __init__(self, entries: list[UcsEntry]) -> None:
        self.by_catid = {e.catid: e for e in entries}
        self.categories = {e.category.upper() for e in entries}
        # Synonym -> the entries that list it, in table order (for query expansion).
        self.by_synonym: dict[str, list[UcsEntry]] = {}
        for e in entries:
            for word in e.synonyms:
                self.by_synonym.setdefault(word, []).append(e)

    @classmethod
    def load(cls, path: str | Path) -> UcsTable:
        path = Path(path)
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise ValueError(f"{path}: not a UCS table (expected a list of rows)")
        entries = []
        for row in rows:
            if not isinstance(row, dict):
                continue  # a stray value in the list: not a row
            norm = {str(k).replace(" ", "").lower(): v for k, v in row.items()}
            catid, cat, sub = norm.get("catid"), norm.get("category"), norm.get("subcategory")
            if catid and cat:
                entries.append(
                    UcsEntry(
                        str(catid), str(cat), str(sub or ""),
                        explanation=str(norm.get("explanations") or ""),
                        # The CSV's column is "Synonyms - Comma Separated".
                        synonyms=_synonyms(
                            next((v for k, v in norm.items() if k.startswith("synonym")), None)
                        ),
                    )
                )  # fmt: skip
        if not entries:
            raise ValueError(f"{path}: no UCS rows (need CatID and Category columns)")
        return cls(entries)


def _synonyms(value: object) -> tuple[str, ...]:
    """Synonyms as the JSON table gives them (a list) or a CSV cell ("a, b, c")."""
    if isinstance(value, list):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = re.split(r"[,;]", value)
    else:
        return ()
    return tuple(w.strip().lower() for w in items if w.strip())


def parse_ucs(stem: str, table: UcsTable | None) -> dict[str, str | None] | None:
    """UCS fields of a file name without extension, or None when it is not a UCS name.

    With a table, the CatID must be one of its CatIDs (so `Door_Open_a_b` is not taken
    for UCS by accident); without one, the shape alone decides.
    """
    m = _UCS_NAME.match(stem)
    if not m:
        return None
    catid = m.group("catid")
    entry = table.by_catid.get(catid) if table else None
    if table is not None and entry is None:
        return None
    return {
        "ucs_catid": catid,
        "ucs_category": entry.category if entry else None,
        "ucs_subcategory": entry.subcategory if entry else None,
        "ucs_fx_name": m.group("fx"),
        "ucs_creator": m.group("creator"),
        "ucs_source": m.group("source"),
    }
