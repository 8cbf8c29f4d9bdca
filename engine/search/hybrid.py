"""Hybrid search: content (text embedded into an audio space) fused with keyword BM25.

Runs on the thread that owns the Library's catalog; the keyword leg of a text query reads
beside it on a reader connection, on a thread of its own. Filters (`dur:`, `sr:`, `fav`...)
and exclusions are applied to both lists before fusing, and the content list is widened
until it holds enough filtered matches, so a filtered page is never empty while
matches exist. Fusion is a logistic model of the chance that a file is what the words ask
for, over what each leg knows of it: how far its content score stands above the query's
nearest candidates (in spreads, so cosines of any model and library compare), the share
of the query's words it matches, and its BM25 against the best keyword match's. Its
constants were fitted on the training corpus's judged queries (bench/fit_fusion.py) and
are reported on the dev queries by `eval`; its output is the relevance shown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Protocol

import numpy as np

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.vectors import VectorStore
from engine.search.keyword import SearchResult, keyword_ranking, keyword_search
from engine.search.query import ParsedQuery, parse_query
from engine.search.similar import SimilarIndex, best_moments, to_results

# The fusion's constants: logit = BIAS + CONTENT * z + COVERAGE * share of words matched
# + BM25 * (BM25 / the best keyword hit's). Fitted by logistic regression on the training
# corpus's judged queries, names shown and half of them hidden (bench/fit_fusion.py; never
# on the dev queries, which only measure): see docs/measurements.md, fusion.
FUSION_BIAS = -5.137
FUSION_CONTENT = 0.38
FUSION_COVERAGE = 0.654
FUSION_BM25 = 4.883
# Relevance from content alone: logit = BIAS + Z * z, for a file without words of its own
# that matches none of the query's, and for every file when no name matches (content-only
# search included). Fitted on the files without words among the content leg's first 100,
# half the training corpus's names hidden (bench/fit_fusion.py). A missing keyword match
# says nothing of a file with no name to match; of a named file it says "less likely",
# which the fusion's constants have learned.
CONTENT_ONLY_BIAS = -4.608
CONTENT_ONLY_Z = 1.122
# A file the content leg did not bring counts as this many spreads below the mean of the
# candidates it did bring (about the last of CONTENT_CANDIDATES, and below it).
CONTENT_MISSING_Z = -2.5
# Results at least this likely to be relevant are "matches"; the rest are shown after
# them as more that sound alike, and not counted.
MATCH_THRESHOLD = 0.2
# Results that get their best-matching moment (each costs a read of the file's windows).
MOMENTS_FOR = 200
# How many nearest files to fetch before filtering; doubled until the page is full.
CONTENT_CANDIDATES = 400


class TextSpace(Protocol):
    name: str

    def embed_text(self, texts: list[str]) -> np.ndarray: ...


def content_text(parsed: ParsedQuery) -> str:
    """The words a user typed, without filters or exclusions, for the text encoder."""
    return " ".join(parsed.words)


def _allowed(catalog: Catalog, parsed: ParsedQuery, ids: list[int]) -> set[int]:
    """The ids (of `ids`) that pass the query's filters and exclusions."""
    if not ids:
        return set()
    where, params = parsed.where()
    sql = f"SELECT f.id FROM files f WHERE f.status = 'ok' AND ({where}) AND f.id IN ({ID_SET})"
    args: list[Any] = [*params, id_set(ids)]
    for term in parsed.exclude:
        sql += " AND f.id NOT IN (SELECT rowid FROM files_fts WHERE files_fts MATCH ?)"
        args.append(term)
    return {row[0] for row in catalog.conn.execute(sql, args)}


# The content leg: (file id, score) best first, and the mean and spread of the scores of
# the query's nearest CONTENT_CANDIDATES (before filters), which the fusion measures in.
ContentLeg = tuple[list[tuple[int, float]], tuple[float, float]]
# The keyword leg: (file id, BM25 score, word groups matched) best first.
KeywordLeg = list[tuple[int, float, int]]


def content_hits(
    catalog: Catalog,
    index: SimilarIndex,
    space: TextSpace,
    parsed: ParsedQuery,
    text: str,
    needed: int,
) -> tuple[ContentLeg, np.ndarray]:
    """The content leg, filtered, at least `needed` long when possible, and the query's
    vector."""
    vector = space.embed_text([text])[0]
    total = VectorStore(catalog).embedded_count(index.space_id(space.name))
    # Candidates for a page: the index's nearest CONTENT_CANDIDATES (what eval measures)
    # or the page, doubled below while filters leave too few (each costs a read and a
    # score: at a million files this is most of a text query's time).
    k = max(CONTENT_CANDIDATES, needed)
    standardized = getattr(space, "query_is_standardized", False)
    # A space with its own ranking (engine.adapt.adapter) scores candidates itself.
    rank = getattr(space, "rank", None)
    stats: tuple[float, float] | None = None
    while True:
        if rank is not None:
            hits = rank(text, k)
        else:
            hits = index.query(space.name, vector, k, standardized=standardized)
        if stats is None:
            nearest = np.array([score for _, score in hits[:CONTENT_CANDIDATES]], np.float64)
            stats = (
                (float(nearest.mean()), float(nearest.std()) or 1.0) if len(nearest) else (0.0, 1.0)
            )
        allowed = _allowed(catalog, parsed, [fid for fid, _ in hits])
        kept = [(fid, score) for fid, score in hits if fid in allowed]
        if len(kept) >= needed or k >= total:
            return (kept, stats), vector
        k *= 2


# The keyword leg's thread: it reads through a reader connection of its own while the
# query thread ranks the content leg, so the two overlap on two cores (SQLite releases
# the GIL). One thread, used only here, so it never waits on itself.
_legs: ThreadPoolExecutor | None = None
_legs_lock = threading.Lock()


def _keyword_thread() -> ThreadPoolExecutor:
    global _legs
    with _legs_lock:
        if _legs is None:
            _legs = ThreadPoolExecutor(1, thread_name_prefix="keyword-leg")
        return _legs


def _both_legs(
    catalog: Catalog,
    index: SimilarIndex,
    space: TextSpace,
    parsed: ParsedQuery,
    text: str,
    limit: int,
) -> tuple[ContentLeg, np.ndarray, KeywordLeg]:
    """content_hits and the keyword ranking (CONTENT_CANDIDATES or `limit` long), side by
    side when the catalog lends a reader; in turn when it does not."""
    need = max(limit, CONTENT_CANDIDATES)
    with catalog.readers(1) as readers:
        if not readers:
            content, vector = content_hits(catalog, index, space, parsed, text, limit)
            return content, vector, keyword_ranking(catalog, parsed, need)
        leg = _keyword_thread().submit(keyword_ranking, catalog, parsed, need, readers[0])
        try:
            content, vector = content_hits(catalog, index, space, parsed, text, limit)
        finally:
            # The reader goes back to the catalog only once the leg is done with it.
            wait([leg])
        return content, vector, leg.result()


# The fusion's features, in the order of FUSION_WEIGHTS.
FEATURES = ("content_z", "coverage", "bm25")
FUSION_WEIGHTS = np.array([FUSION_CONTENT, FUSION_COVERAGE, FUSION_BM25])


def fusion_features(
    content: ContentLeg, keyword: KeywordLeg, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """(file ids, features (n, len(FEATURES))) of every file either leg brought, in id
    order: the content score in spreads above the candidates' mean, the share of the
    query's `groups` word groups matched, BM25 over the best keyword hit's. What the
    fusion's constants were fitted on (bench/fit_fusion.py)."""
    hits, (mean, spread) = content
    ids = sorted({fid for fid, _ in hits} | {fid for fid, _, _ in keyword})
    row = {fid: i for i, fid in enumerate(ids)}
    x = np.zeros((len(ids), len(FEATURES)))
    x[:, 0] = CONTENT_MISSING_Z
    for fid, score in hits:
        x[row[fid], 0] = (score - mean) / spread
    best = max((score for _, score, _ in keyword), default=0.0)
    for fid, score, matched in keyword:
        x[row[fid], 1] = matched / max(groups, 1)
        x[row[fid], 2] = score / best if best > 0 else 0.0
    return np.array(ids, dtype=np.int64), x


def fuse(
    content: ContentLeg,
    keyword: KeywordLeg,
    groups: int,
    described: Callable[[np.ndarray], np.ndarray | None] | None = None,
    *,
    weights: np.ndarray | None = None,
    bias: float | None = None,
    content_only: tuple[float, float] | None = None,
) -> list[tuple[int, float]]:
    """(file id, chance that it is what was asked for) of every file either leg
    brought, best first (ties by id).

    A file missing every word of the query is less likely what was asked for only if it
    has words of its own: so the content-only relevance answers for the files that
    `described(ids)` (a mask; None, or None returned: cannot tell, all of them) says
    have none, and for every file when no name matches any word. `weights`, `bias` and
    `content_only` (bias, z) replace the shipped constants (for fitting them)."""
    ids, x = fusion_features(content, keyword, groups)
    c0, c1 = (CONTENT_ONLY_BIAS, CONTENT_ONLY_Z) if content_only is None else content_only
    alone = c0 + c1 * x[:, 0]
    if keyword:
        w = FUSION_WEIGHTS if weights is None else weights
        logits = x @ w + (FUSION_BIAS if bias is None else bias)
        named = described(ids) if described is not None else None
        if named is not None:
            unnamed = (x[:, 1] == 0) & ~named
            logits[unnamed] = alone[unnamed]
    else:
        logits = alone
    order = np.lexsort((ids, -logits))
    chance = 1.0 / (1.0 + np.exp(-logits[order]))
    return list(zip(ids[order].tolist(), chance.tolist(), strict=True))


def hybrid_search(
    catalog: Catalog,
    index: SimilarIndex,
    space: TextSpace,
    query: str,
    limit: int = 100,
    content_only: bool = False,
) -> list[SearchResult]:
    """Best `limit` files for `query`, each with its best-matching moment."""
    parsed = parse_query(query)
    text = content_text(parsed)
    if not text:
        # Only filters: nothing for the text encoder to match.
        return [] if content_only else keyword_search(catalog, parsed, limit=limit)
    if content_only or not parsed.match:
        # Content only, or no words to match by name (nothing for the keyword leg).
        content, vector = content_hits(catalog, index, space, parsed, text, limit)
        keyword: KeywordLeg = []
    else:
        content, vector, keyword = _both_legs(catalog, index, space, parsed, text, limit)
    described = getattr(space, "described", None)
    ranked = fuse(content, keyword, len(parsed.groups), described)[:limit]
    store = VectorStore(catalog)
    space_id = index.space_id(space.name)
    # Window vectors are stored raw; a standardised query is mapped back to compare.
    to_windows = getattr(space, "to_window_space", None)
    window_query = to_windows(vector) if to_windows else vector
    # Moments for the results a user looks at first; the rest play from their start.
    moments = best_moments(store, space_id, [fid for fid, _ in ranked[:MOMENTS_FOR]], window_query)
    results = to_results(catalog, ranked, moments)
    for r in results:
        r.match = r.score >= MATCH_THRESHOLD
    return results
