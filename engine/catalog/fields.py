"""The metadata fields a user edits: their one home (names, catalog columns, labels, the
column names other tools' CSV files use, limits and validation). Any thread.

A field's value in the catalog column is what Sonarium shows and searches: what the
file's own metadata said, unless the user edited it (engine/catalog/edits.py keeps the
edit, which a rescan re-applies). "" means cleared on purpose; None, not known.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str  # as the CLI takes it (--field NAME=VALUE) and JSON prints it
    column: str  # the files column holding the shown value
    label: str  # as the app shows it
    csv: str  # the column name Soundminer/BaseHead-style CSV files use
    limit: int  # the most characters a value may have
    kind: str = "text"  # "text", "line" (no line breaks), "rating" or "date"

    @property
    def tag(self) -> str:
        """Its name in iXML's USER element, Vorbis comments and ID3 TXXX frames (the
        upper-case CSV name: CATID, FXNAME, DESIGNER...), as other tools write them."""
        return self.csv.upper()


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("description", "description", "Description", "Description", 4096),
        Field("keywords", "keywords", "Keywords", "Keywords", 2048, "line"),
        Field("notes", "ixml_note", "Notes", "Notes", 4096),
        Field("designer", "designer", "Designer", "Designer", 256, "line"),
        Field("library", "library", "Library", "Library", 256, "line"),
        Field("rating", "rating", "Rating", "Rating", 1, "rating"),
        Field("catid", "ucs_catid", "CatID", "CatID", 64, "line"),
        Field("category", "ucs_category", "Category", "Category", 128, "line"),
        Field("subcategory", "ucs_subcategory", "SubCategory", "SubCategory", 128, "line"),
        Field("fx_name", "ucs_fx_name", "FX name", "FXName", 256, "line"),
        Field("creator_id", "ucs_creator", "Creator ID", "CreatorID", 64, "line"),
        Field("source_id", "ucs_source", "Source ID", "SourceID", 64, "line"),
        Field("user_category", "ucs_user_category", "User category", "UserCategory", 64,
              "line"),
        Field("vendor_category", "ucs_vendor_category", "Vendor category", "VendorCategory",
              64, "line"),
        # BWF bext's fixed-size fields: their byte limits are the chunk's.
        Field("originator", "originator", "Originator (bext)", "Originator", 32, "line"),
        Field("originator_reference", "originator_reference", "Originator reference (bext)",
              "OriginatorReference", 32, "line"),
        Field("origination_date", "origination_date", "Origination date (bext)",
              "OriginationDate", 19, "date"),
    )
}  # fmt: skip

COLUMNS = {f.column: f for f in FIELDS.values()}
_BY_CSV = {f.csv.lower(): f for f in FIELDS.values()}

# By the name other tools write them under (iXML USER, Vorbis comments, ID3 TXXX).
BY_TAG = {f.tag: f for f in FIELDS.values()}


def is_field_tag(key: str) -> bool:
    """Whether an embedded tag (as read: lower case) is one of the fields, whose column
    holds its value (RIFF INFO's IKEY reads as "keywords")."""
    return key.upper().removeprefix("TXXX:") in BY_TAG


# Control characters, and what XML cannot hold (iXML): non-characters and lone surrogates.
def tag_values(tags: Mapping[str, object]) -> Iterator[tuple[Field, str | int]]:
    """(field, column value) of each embedded tag named like a field (CATID, txxx:catid...)
    whose value the field takes; the rest are passed over."""
    for key, text in tags.items():
        f = BY_TAG.get(str(key).upper().removeprefix("TXXX:"))
        if f is None or not isinstance(text, str):
            continue
        try:
            value = stored(f, clean(f, text))
        except ValueError:
            continue
        if value is not None:
            yield f, value


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")


def field(name: str) -> Field:
    """The field called ``name`` (its CLI name, column or CSV name, any case);
    ValueError naming the known ones otherwise."""
    key = name.strip().lower().replace("-", "_")
    found = FIELDS.get(key) or COLUMNS.get(key) or _BY_CSV.get(key.replace("_", ""))
    if found is None:
        found = _BY_CSV.get(name.strip().lower())
    if found is None:
        raise ValueError(f"no metadata field {name!r}; the fields are {', '.join(FIELDS)}")
    return found


def clean(f: Field, value: object) -> str:
    """``value`` as the field stores it ("" clears it); ValueError saying what is wrong.
    Line breaks are kept only in free text; other control characters never."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if f.kind != "text":
        text = " ".join(text.split("\n"))
    text = _CONTROL.sub("", text).strip()
    if f.kind == "rating" and text:
        if text not in {"0", "1", "2", "3", "4", "5"}:
            raise ValueError(f"rating must be a whole number from 0 to 5, not {text!r}")
    elif f.kind == "date" and text:
        m = _DATE.match(text)
        if not m or not _valid_date(m):
            raise ValueError(
                f"{f.name} must be a date YYYY-MM-DD, optionally with a time HH:MM:SS, not {text!r}"
            )
        year, month, day, hour, minute, second = m.groups()
        text = f"{year}-{month}-{day}"
        if hour is not None:
            text += f" {hour}:{minute}:{second or '00'}"
    if len(text) > f.limit:
        raise ValueError(f"{f.name} may have at most {f.limit} characters, not {len(text)}")
    return text


def _valid_date(m: re.Match[str]) -> bool:
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60


def stored(f: Field, text: str) -> str | int | None:
    """The column value for a cleaned text (None for cleared; ratings as numbers)."""
    if not text:
        return None
    return int(text) if f.kind == "rating" else text


def shown(value: object) -> str:
    """A column's value as the text an edit compares with ("" for none)."""
    return "" if value is None else str(value)
