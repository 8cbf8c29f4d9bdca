"""Keyword and metadata search over the catalog (SQLite FTS5, BM25).

Runs on whichever thread owns the Catalog it is given; it only reads. A query of several
words also reads on the catalog's read-only helper connections, from a small shared pool
of threads, for the length of the call.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.errors import QueryError
from engine.search.query import ParsedQuery, parse_query

# BM25 weights per FTS column: name, folder, description, tags, ucs. A word in the
# file name says more about the sound than the same word in a folder name.
BM25_WEIGHTS = (10.0, 2.0, 4.0, 6.0, 5.0)

_COLUMNS = (
    "f.id, f.path, f.name, f.folder, f.duration, f.sample_rate, f.channels, f.format, "
    "f.subtype, f.bit_depth, f.size, f.offline, f.loudness_lufs, f.true_peak_db"
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
    # Measured at scan (None: silent, or not measured yet): loudness-matched audition.
    loudness_lufs: float | None = None
    true_peak_db: float | None = None
    # False for a result shown only because it sounds alike (below the hybrid search's
    # relevance threshold): listed after the matches, not counted as one.
    match: bool = True

    def to_json(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies every field, which costs ~10x
        # more for the thousands of results a GUI search may return.
        return dict(self.__dict__)


_WEIGHTS = ", ".join(str(w) for w in BM25_WEIGHTS)
# The best-scored files matching an FTS5 expression: BM25 is computed for at most
# MAX_SCORED matches (the first in catalog order), so a word or prefix that half a
# million files match ("s" while typing) costs what 20,000 do. Joining `files` only for
# the pool keeps a common word from reading every matching row (measured 3x faster at
# 100,000 files: docs/measurements.md).
MAX_SCORED = 20_000
_TOP = (
    "SELECT rowid, score FROM (SELECT rowid, -bm25(files_fts, "
    + _WEIGHTS
    + ") AS score FROM files_fts WHERE files_fts MATCH ? LIMIT ?) "
    "ORDER BY score DESC, rowid LIMIT ?"
)
# A query of more words than this ranks the files missing some of them as one tier of
# "any word" (one expression) instead of tier by tier (subsets of words).
_MAX_TIERED_WORDS = 4


def _result(row: dict[str, Any]) -> SearchResult:
    """A result from a row of _COLUMNS and a score (SQLite gives `offline` as 0/1)."""
    return SearchResult(**{**row, "offline": bool(row["offline"])})


def _top_matches(
    conn: sqlite3.Connection,
    expression: str,
    conditions: list[str],
    params: list[Any],
    need: int,
) -> list[tuple[int, float, str]]:
    """(file id, score, name) of the best-scored files matching `expression` that pass
    `conditions`, best first: at least `need` when that many exist among the scored."""
    pool = need  # widened fourfold while filters leave fewer than that
    passing = " AND ".join(conditions)
    sql = f"SELECT f.id, f.name FROM files f WHERE f.id IN ({ID_SET}) AND {passing}"
    while True:
        try:
            hits = conn.execute(_TOP, (expression, MAX_SCORED, pool)).fetchall()
            passed = conn.execute(sql, [id_set(h[0] for h in hits), *params])
            names = dict(passed.fetchall())
        except sqlite3.OperationalError as exc:
            # FTS5 rejects some inputs the parser lets through (e.g. stray operators).
            raise QueryError(f"cannot search for that: {exc}") from exc
        rows = [(i, score, names[i]) for i, score in hits if i in names]
        if len(rows) >= need or len(hits) < pool:
            return rows
        pool *= 4


# Helper threads for a tier's expressions (several subsets of the words): each one's
# FTS5 work runs in SQLite with the GIL released, so on two cores a three-word query's
# pairs take about half the time (docs/measurements.md). Shared by every search.
_HELPERS = max(0, min(3, (os.cpu_count() or 1) - 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helper_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_HELPERS, thread_name_prefix="keyword")
        return _pool


def _all_top_matches(
    catalog: Catalog,
    expressions: list[str],
    conditions: list[str],
    params: list[Any],
    need: int,
    conn: sqlite3.Connection | None = None,
) -> list[list[tuple[int, float, str]]]:
    """`_top_matches` of each expression, in their order; several at once on the
    catalog's readers when there are several and cores to spare. Owning thread only,
    unless `conn` is given: then everything is read in turn through that connection
    (a reader lent to the calling thread)."""
    if conn is not None:
        return [_top_matches(conn, e, conditions, params, need) for e in expressions]
    # No readers for one expression, on one core, or inside a transaction: read in turn.
    with catalog.readers(min(_HELPERS, len(expressions) - 1)) as readers:
        if not readers:
            return [_top_matches(catalog.conn, e, conditions, params, need) for e in expressions]
        found: list[list[tuple[int, float, str]] | None] = [None] * len(expressions)
        queue = iter(range(len(expressions)))
        lock = threading.Lock()

        def work(conn: sqlite3.Connection) -> None:
            # Each connection takes the next expression until none is left.
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                found[i] = _top_matches(conn, expressions[i], conditions, params, need)

        helpers = [_helper_pool().submit(work, reader) for reader in readers]
        try:
            work(catalog.conn)
        finally:
            # Every helper done before its connection goes back to the pool.
            wait(helpers)
            for helper in helpers:
                helper.result()  # a helper's QueryError reaches the caller
        assert all(rows is not None for rows in found)  # every expression was read
        return [rows or [] for rows in found]


def _tiers(groups: list[str]) -> Iterator[list[tuple[int, str]]]:
    """Batches of (words matched, expression), most words first: one batch per tier,
    except that a query of three or more words reads its first two tiers together (all
    of its words rarely fill a page, and the subsets then run beside the full match)."""
    n = len(groups)
    first = [(n, " AND ".join(groups))]
    if n > _MAX_TIERED_WORDS:
        yield first
        yield [(1, " OR ".join(groups))]
        return
    tiers = [[(m, " AND ".join(c)) for c in combinations(groups, m)] for m in range(n - 1, 0, -1)]
    if n >= 3:
        first += tiers.pop(0)
    yield first
    yield from tiers


def _ranked_by_coverage(
    catalog: Catalog,
    parsed: ParsedQuery,
    conditions: list[str],
    params: list[Any],
    need: int,
    conn: sqlite3.Connection | None,
) -> list[tuple[int, float, int]]:
    """(file id, score, words matched) of the best `need` files matching all of the
    query's words, then most of them, tier by tier, each tier by BM25; lower tiers are
    read only while there are fewer than `need`."""
    best: dict[int, tuple[int, float, str]] = {}  # file id -> (words matched, score, name)
    for batch in _tiers(parsed.groups):
        found = _all_top_matches(catalog, [e for _, e in batch], conditions, params, need, conn)
        # Merged in tier order, so a file keeps the most words it matches.
        for (matched, _), rows in zip(batch, found, strict=True):
            for file_id, score, name in rows:
                known = best.get(file_id)
                if known is None or (known[0] == matched and score > known[1]):
                    best[file_id] = (matched, score, name)
        if len(best) >= need:
            break
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[1][2].lower(), kv[0]))
    return [(file_id, entry[1], entry[0]) for file_id, entry in ranked[:need]]


def _conditions(parsed: ParsedQuery) -> tuple[list[str], list[Any]]:
    """SQL conditions on `files f` (and their parameters) for the query's filters and
    exclusions."""
    where, params = parsed.where()
    conditions = ["f.status = 'ok'", where]
    for term in parsed.exclude:
        conditions.append("f.id NOT IN (SELECT rowid FROM files_fts WHERE files_fts MATCH ?)")
        params.append(term)
    return conditions, params


def keyword_ranking(
    catalog: Catalog,
    query: str | ParsedQuery,
    limit: int,
    conn: sqlite3.Connection | None = None,
) -> list[tuple[int, float, int]]:
    """(file id, score, how many of the query's word groups it matches) of the best
    `limit` files matching the query's words, ranked as keyword_search ranks them; empty
    for a query without words. (A query of more than four words ranks the files missing
    some of them as one tier, matching 1.) Reads through the catalog on its owning
    thread, or only through `conn` (a reader lent to the calling thread: hybrid search
    ranks keywords beside its content leg)."""
    parsed = parse_query(query) if isinstance(query, str) else query
    if not parsed.match:
        return []
    conditions, params = _conditions(parsed)
    return _ranked_by_coverage(catalog, parsed, conditions, params, limit, conn)


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
    conditions, params = _conditions(parsed)
    if parsed.match:
        ranked = _ranked_by_coverage(catalog, parsed, conditions, params, limit + offset, None)
        page = ranked[offset:]
        results = results_for_ids(catalog, [file_id for file_id, _, _ in page])
        scores = {file_id: score for file_id, score, _ in page}
        for result in results:
            result.score = scores[result.id]
        return results
    # Filters only: files by name, read in the order of files_name_order so a page stops
    # after its rows ("+" keeps SQLite from reading by status instead, which every
    # file shares, and sorting all of them).
    conditions[0] = "+" + conditions[0]
    sql = (
        f"SELECT {_COLUMNS}, 0.0 AS score FROM files f WHERE {' AND '.join(conditions)} "
        "ORDER BY f.name COLLATE NOCASE, f.path LIMIT ? OFFSET ?"
    )
    args: list[Any] = [*params, limit, offset]
    try:
        rows = catalog.query(sql, args)
    except sqlite3.OperationalError as exc:
        # FTS5 rejects some inputs the parser lets through (e.g. stray operators).
        raise QueryError(f"cannot search for that: {exc}") from exc
    return [_result(row) for row in rows]
