"""Keyword and metadata search over the catalog (SQLite FTS5, BM25).

Runs on whichever thread owns the Catalog it is given; it only reads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.errors import QueryError
from engine.search.query import ParsedQuery, parse_query

# BM25 weights per FTS column: name, folder, description, tags, ucs. A word in the
# file name says more about the sound than the same word in a folder name.
BM25_WEIGHTS = (10.0, 2.0, 4.0, 6.0, 5.0)

_COLUMNS = (
    "f.id, f.path, f.name, f.folder, f.duration, f.sample_rate, f.channels, f.format, "
    "f.subtype, f.bit_depth, f.size, f.offline"
)


@dataclass
class SearchResult:
    """One hit. `score` is higher-is-better; for keyword hits it is the negated BM25."""

    id: int
    path: str
    name: str
    folder: str
    score: float
    duration: float
    sample_rate: int
    channels: int
    format: str
    subtype: str | None
    bit_depth: int | None
    size: int
    start: float | None = None
    end: float | None = None
    offline: bool = False  # its folder could not be read at the last scan
    # False for a result shown only because it sounds alike (below the hybrid search's
    # relevance threshold): listed after the matches, not counted as one.
    match: bool = True

    def to_json(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies every field, which costs ~10x
        # more for the thousands of results a GUI search may return.
        return dict(self.__dict__)


_WEIGHTS = ", ".join(str(w) for w in BM25_WEIGHTS)
# Files whose search text matches an FTS5 expression (the one "?"), scored by BM25.
_MATCHING = (
    f"SELECT {_COLUMNS}, -bm25(files_fts, {_WEIGHTS}) AS score "
    "FROM files_fts JOIN files f ON f.id = files_fts.rowid WHERE files_fts MATCH ?"
)


def _result(row: dict[str, Any]) -> SearchResult:
    """A result from a row of _COLUMNS and a score (SQLite gives `offline` as 0/1)."""
    return SearchResult(**{**row, "offline": bool(row["offline"])})


# Candidates fetched per tier before ranking by coverage: enough for any page shown.
_POOL_MIN, _POOL_MAX = 400, 5000


def _ranked_by_coverage(
    catalog: Catalog,
    parsed: ParsedQuery,
    conditions: list[str],
    params: list[Any],
    limit: int,
    offset: int,
) -> list[SearchResult]:
    """A multi-word query: candidates that match all words and any word (best BM25 of
    each, a bounded pool), ranked by how many of the words they match, then BM25."""
    pool = min(max(4 * (limit + offset), _POOL_MIN), _POOL_MAX)
    sql = f"{_MATCHING} AND {' AND '.join(conditions)} ORDER BY score DESC LIMIT ?"
    rows: dict[int, dict[str, Any]] = {}
    try:
        for expression in (parsed.match, " OR ".join(parsed.groups)):
            for row in catalog.query(sql, [expression, *params, pool]):
                rows.setdefault(row["id"], row)
        coverage = dict.fromkeys(rows, 0)
        ids = id_set(rows)
        for group in parsed.groups:
            matched = catalog.conn.execute(
                f"SELECT rowid FROM files_fts WHERE files_fts MATCH ? AND rowid IN ({ID_SET})",
                (group, ids),
            )
            for (file_id,) in matched:
                coverage[file_id] += 1
    except sqlite3.OperationalError as exc:
        raise QueryError(f"cannot search for that: {exc}") from exc
    ranked = sorted(
        rows.values(),
        key=lambda r: (-coverage[r["id"]], -r["score"], r["name"].lower(), r["id"]),
    )
    return [_result(r) for r in ranked[offset : offset + limit]]


def results_for_ids(catalog: Catalog, file_ids: list[int]) -> list[SearchResult]:
    """The readable files among ``file_ids``, as results in that order (score 0)."""
    if not file_ids:
        return []
    rows = catalog.query(
        f"SELECT {_COLUMNS}, 0.0 AS score FROM files f "
        f"WHERE f.status = 'ok' AND f.id IN ({ID_SET})",
        [id_set(file_ids)],
    )
    by_id = {row["id"]: row for row in rows}
    return [_result(by_id[i]) for i in file_ids if i in by_id]


def keyword_search(
    catalog: Catalog, query: str | ParsedQuery, limit: int = 100, offset: int = 0
) -> list[SearchResult]:
    """Files matching `query`, best first. Raises QueryError for malformed queries.

    Files that match every word come first, then files matching fewer of them (most
    first), each tier by BM25; so a query finds something whenever any word matches.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    where, params = parsed.where()
    conditions = ["f.status = 'ok'", where]
    args: list[Any] = []
    for term in parsed.exclude:
        conditions.append("f.id NOT IN (SELECT rowid FROM files_fts WHERE files_fts MATCH ?)")
        params.append(term)
    if parsed.match and len(parsed.groups) > 1:
        return _ranked_by_coverage(catalog, parsed, conditions, params, limit, offset)
    if parsed.match:
        sql = (
            f"{_MATCHING} AND {' AND '.join(conditions)} "
            "ORDER BY score DESC, f.name COLLATE NOCASE LIMIT ? OFFSET ?"
        )
        args = [parsed.match, *params, limit, offset]
    else:
        sql = (
            f"SELECT {_COLUMNS}, 0.0 AS score FROM files f WHERE {' AND '.join(conditions)} "
            "ORDER BY f.name COLLATE NOCASE, f.path LIMIT ? OFFSET ?"
        )
        args = [*params, limit, offset]
    try:
        rows = catalog.query(sql, args)
    except sqlite3.OperationalError as exc:
        # FTS5 rejects some inputs the parser lets through (e.g. stray operators).
        raise QueryError(f"cannot search for that: {exc}") from exc
    return [_result(row) for row in rows]
