"""The search query language, shared by the CLI and the GUI. Pure functions, any thread.

Words are ANDed; `-word` excludes; `"a phrase"`; `a OR b`; field filters `dur:<2`,
`dur:1..5`, `sr:48000`, `sr:48k`, `ch:2`, `ch:stereo`, `bits:24`, `format:wav`,
`tag:foo`, `col:name`, `fav`, `cat:DOOR`, `folder:name`. Filters can be negated with `-`.
Files whose folder is offline are left out unless the query asks for them: `offline:any`
(online and offline), `is:offline` or `offline:only` (only those).
A malformed query raises QueryError with a message meant for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import QueryError
from engine.search.thesaurus import alike
from engine.search.words import split_words

FIELDS = ("dur", "sr", "ch", "bits", "format", "tag", "col", "cat", "folder", "is", "offline")

_FORMAT_ALIASES = {
    "wav": ("WAV", "WAVEX", "RF64", "W64"),
    "wave": ("WAV", "WAVEX", "RF64", "W64"),
    "bwf": ("WAV", "WAVEX", "RF64"),
    "aif": ("AIFF",),
    "aiff": ("AIFF",),
    "flac": ("FLAC",),
    "ogg": ("OGG",),
    "mp3": ("MP3",),
    "caf": ("CAF",),
}

MAX_QUERY_CHARS = 2000
_TOKEN = re.compile(r'\s*(-?)(?:([A-Za-z]+):)?("([^"]*)"|[^\s"]+)')
_UNIT = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass
class ParsedQuery:
    """A query split into an FTS5 MATCH expression, exclusions and SQL filters on `files`."""

    match: str | None = None
    exclude: list[str] = field(default_factory=list)
    filters: list[tuple[str, list[Any]]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    # The match's AND-ed groups, each an FTS5 expression: keyword ranking counts how many
    # of them a file matches (engine.search.keyword).
    groups: list[str] = field(default_factory=list)
    include_offline: bool = False  # the query named offline files (offline:any, is:offline)

    @property
    def has_text(self) -> bool:
        return self.match is not None

    def where(self) -> tuple[str, list[Any]]:
        """SQL conditions on `f` (files) for the filters, and their parameters."""
        parts, params = [] if self.include_offline else ["f.offline = 0"], []
        for sql, p in self.filters:
            parts.append(sql)
            params.extend(p)
        return " AND ".join(parts), params


def _fts_term(text: str, phrase: bool) -> str | None:
    words = [w.lower() for w in split_words(text)]
    if not words:
        return None
    body = " ".join(words).replace('"', "")
    if phrase or len(words) > 1:
        return f'"{body}"'
    # Prefix matching lets "expl" find "explosion" while typing; very short words
    # would match nearly everything, so they must match whole.
    term = f'"{body}"*' if len(body) >= 3 else f'"{body}"'
    others = alike(body)  # sound-design abbreviations and their spelled-out forms
    if not others:
        return term
    return "(" + " OR ".join([term, *(f'"{w}"' for w in others)]) + ")"


def _number(text: str, what: str, units: dict[str, float] | None = None) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)([a-zA-Z]*)", text.strip())
    if not m:
        raise QueryError(f"{what}: '{text}' is not a number")
    value, unit = float(m.group(1)), m.group(2).lower()
    if not unit:
        return value
    if units and unit in units:
        return value * units[unit]
    raise QueryError(f"{what}: unknown unit '{unit}' in '{text}'")


def _range_filter(
    column: str, spec: str, what: str, units: dict[str, float] | None = None, about: float = 0.0
) -> tuple[str, list[Any]]:
    """`<x`, `<=x`, `>x`, `>=x`, `a..b`, `..b`, `a..`, or `x` (± `about` as a fraction)."""
    spec = spec.strip()
    for op in ("<=", ">=", "<", ">", "="):
        if spec.startswith(op):
            value = _number(spec[len(op) :], what, units)
            return f"f.{column} {op} ?", [value]
    if ".." in spec:
        lo, hi = spec.split("..", 1)
        conds, params = [], []
        if lo:
            conds.append(f"f.{column} >= ?")
            params.append(_number(lo, what, units))
        if hi:
            conds.append(f"f.{column} <= ?")
            params.append(_number(hi, what, units))
        if not conds:
            raise QueryError(f"{what}: empty range '..'")
        return " AND ".join(conds), params
    value = _number(spec, what, units)
    if about:
        return f"f.{column} BETWEEN ? AND ?", [value * (1 - about), value * (1 + about)]
    return f"f.{column} = ?", [value]


def _filter(name: str, value: str) -> tuple[str, list[Any]]:
    name = name.lower()
    if not value and name != "is":
        raise QueryError(f"{name}: needs a value, e.g. {name}:{_EXAMPLES.get(name, 'x')}")
    if name == "dur":
        # A bare duration means "about": ±10%.
        return _range_filter("duration", value, "dur", _UNIT, about=0.1)
    if name == "sr":
        return _range_filter("sample_rate", value, "sr", {"k": 1000.0, "khz": 1000.0})
    if name == "ch":
        named = {"mono": "1", "stereo": "2"}
        return _range_filter("channels", named.get(value.lower(), value), "ch")
    if name == "bits":
        return _range_filter("bit_depth", value, "bits")
    if name == "format":
        low = value.lower()
        containers = _FORMAT_ALIASES.get(low, (value.upper(),))
        marks = ", ".join("?" for _ in containers)
        return (
            f"(upper(f.format) IN ({marks}) OR upper(f.subtype) = ?)",
            [*containers, value.upper()],
        )
    if name == "col":
        return (
            "f.id IN (SELECT i.file_id FROM collection_items i JOIN collections c "
            "ON c.id = i.collection_id WHERE c.name = ? COLLATE NOCASE)",
            [value],
        )
    if name == "tag":
        return (
            "f.id IN (SELECT file_id FROM user_tags WHERE tag = ? COLLATE NOCASE)",
            [value],
        )
    if name == "cat":
        return (
            "(f.ucs_category = ? COLLATE NOCASE OR f.ucs_catid = ? COLLATE NOCASE"
            " OR f.ucs_catid LIKE ? ESCAPE '\\')",
            [value, value, _like_prefix(value)],
        )
    if name == "folder":
        return "f.folder LIKE ? ESCAPE '\\'", ["%" + _like_escape(value) + "%"]
    if name == "is":
        if value.lower() in ("fav", "favorite", "favourite"):
            return _FAV
        if value.lower() == "offline":
            return _OFFLINE
        raise QueryError(f"is:{value}: is:fav and is:offline are known")
    if name == "offline":
        if value.lower() in ("only", "yes"):
            return _OFFLINE
        if value.lower() in ("any", "include", "show"):
            return "1", []
        raise QueryError(f"offline:{value}: offline:any or offline:only")
    raise QueryError(f"unknown filter '{name}:' (known: {', '.join(FIELDS)}, fav)")


_FAV: tuple[str, list[Any]] = ("f.id IN (SELECT file_id FROM favorites)", [])
_OFFLINE: tuple[str, list[Any]] = ("f.offline = 1", [])
_EXAMPLES = {"dur": "<2", "sr": "48000", "ch": "2", "bits": "24", "format": "wav",
             "tag": "impact", "col": "reel3", "cat": "DOOR", "folder": "foley",
             "offline": "any"}  # fmt: skip


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return _like_escape(text) + "%"


def parse_query(text: str) -> ParsedQuery:
    """Parse user text; raises QueryError for malformed input."""
    if len(text) > MAX_QUERY_CHARS:
        # Matching cost grows with the number of words: a pasted document is refused.
        raise QueryError(
            f"the query is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes from a terminal
        raise QueryError("the query holds characters that are not text; retype it") from None
    if text.count('"') % 2:
        raise QueryError('unclosed quote: add the missing " or remove it')
    query = ParsedQuery()
    groups: list[list[str]] = []  # AND of ORs
    join_or = False
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"cannot read the query near '{text[pos : pos + 20]}'")
        pos = m.end()
        negate, fname, raw, quoted = m.group(1), m.group(2), m.group(3), m.group(4)
        value = quoted if quoted is not None else raw
        if not fname and quoted is None and raw.endswith(":") and raw[:-1].lower() in FIELDS:
            name = raw[:-1].lower()
            raise QueryError(f"{name}: needs a value, e.g. {name}:{_EXAMPLES.get(name, 'fav')}")
        if fname and fname.lower() in FIELDS:
            condition = _filter(fname, value)
            if fname.lower() == "offline" or (fname.lower() == "is" and value.lower() == "offline"):
                query.include_offline = True
            query.filters.append((f"NOT ({condition[0]})", condition[1]) if negate else condition)
            continue
        if fname and quoted is None and not negate and re.fullmatch(r"[A-Za-z]+", fname):
            # "foo:bar" with an unknown field name: say so rather than silently matching words.
            raise QueryError(f"unknown filter '{fname}:' (known: {', '.join(FIELDS)}, fav)")
        if fname:
            value = f"{fname}:{value}"
        if quoted is None and raw == "OR" and not negate:
            if not groups:
                raise QueryError("OR needs a word on each side")
            join_or = True
            continue
        if quoted is None and raw.lower() in ("fav", "favs", "favorite", "favorites"):
            query.filters.append((f"NOT ({_FAV[0]})", []) if negate else _FAV)
            continue
        term = _fts_term(value, phrase=quoted is not None)
        if term is None:
            continue  # punctuation only
        if negate:
            query.exclude.append(term)
            join_or = False
            continue
        query.words.extend(split_words(value))
        if join_or:
            groups[-1].append(term)
            join_or = False
        else:
            groups.append([term])
    if join_or:
        raise QueryError("OR needs a word on each side")
    if groups:
        # A word typed twice ("door slam door") is one word: counted once in coverage,
        # and never a costly "door AND door" subset.
        query.groups = list(
            dict.fromkeys(g[0] if len(g) == 1 else "(" + " OR ".join(g) + ")" for g in groups)
        )
        query.match = " AND ".join(query.groups)
    return query
