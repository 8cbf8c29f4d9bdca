"""Hybrid search: content (text embedded into an audio space) fused with keyword BM25.

Runs on the thread that owns the Library's catalog; the keyword leg of a text query reads
beside it on a reader connection, on a thread of its own. Filters (`dur:`, `sr:`, `fav`...)
and exclusions are applied to both lists before fusing, and the content list is widened
until it holds enough filtered matches, so a filtered page is never empty while
matches exist. Fusion is weighted reciprocal-rank fusion: it needs no calibration
between BM25 and cosine scores, which differ per model and library; its weights and k, and
the calibration of the relevance shown, were fitted on the training corpus's judged
queries (bench/fit_fusion.py) and are reported on the dev queries by `eval`.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Protocol

import numpy as np

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.vectors import VectorStore
from engine.search.keyword import SearchResult, keyword_ranking, keyword_search
from engine.search.query import ParsedQuery, parse_query
from engine.search.similar import SimilarIndex, best_moments, to_results

RRF_K = 100
# How much each list's rank counts in the fusion. Fitted on the training corpus's judged
# queries (bench/fit_fusion.py; never on the dev queries, which only measure): see
# docs/measurements.md, fusion.
CONTENT_WEIGHT = 0.25
KEYWORD_WEIGHT = 1.0
# Relevance shown for a result: sigmoid(A * share + B), share = its fused score over the
# best possible. Fitted with the weights above (docs/measurements.md, fusion).
RELEVANCE_A = 7.94
RELEVANCE_B = -6.602
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


def content_hits(
    catalog: Catalog,
    index: SimilarIndex,
    space: TextSpace,
    parsed: ParsedQuery,
    text: str,
    needed: int,
) -> tuple[list[tuple[int, float]], np.ndarray]:
    """(file id, score) best first, filtered, at least `needed` long when possible."""
    vector = space.embed_text([text])[0]
    total = VectorStore(catalog).embedded_count(index.space_id(space.name))
    # Candidates for a page: the index's nearest CONTENT_CANDIDATES (what eval measures)
    # or the page, doubled below while filters leave too few (each costs a read and a
    # score: at a million files this is most of a text query's time).
    k = max(CONTENT_CANDIDATES, needed)
    standardized = getattr(space, "query_is_standardized", False)
    # A space with its own ranking (engine.adapt.adapter) scores candidates itself.
    rank = getattr(space, "rank", None)
    while True:
        if rank is not None:
            hits = rank(text, k)
        else:
            hits = index.query(space.name, vector, k, standardized=standardized)
        allowed = _allowed(catalog, parsed, [fid for fid, _ in hits])
        kept = [(fid, score) for fid, score in hits if fid in allowed]
        if len(kept) >= needed or k >= total:
            return kept, vector
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
) -> tuple[list[tuple[int, float]], np.ndarray, list[int]]:
    """content_hits and the keyword ranking's ids (CONTENT_CANDIDATES or `limit` of
    them), side by side when the catalog lends a reader; in turn when it does not."""
    need = max(limit, CONTENT_CANDIDATES)
    with catalog.readers(1) as readers:
        if not readers:
            content, vector = content_hits(catalog, index, space, parsed, text, limit)
            return content, vector, [fid for fid, _ in keyword_ranking(catalog, parsed, need)]
        leg = _keyword_thread().submit(keyword_ranking, catalog, parsed, need, readers[0])
        try:
            content, vector = content_hits(catalog, index, space, parsed, text, limit)
        finally:
            # The reader goes back to the catalog only once the leg is done with it.
            wait([leg])
        return content, vector, [fid for fid, _ in leg.result()]


def fuse(
    content: list[int],
    keyword: list[int],
    content_weight: float | None = None,
    keyword_weight: float | None = None,
    k: int = RRF_K,
) -> dict[int, float]:
    """Weighted reciprocal-rank fusion of two rankings (file ids, best first)."""
    wc = CONTENT_WEIGHT if content_weight is None else content_weight
    wk = KEYWORD_WEIGHT if keyword_weight is None else keyword_weight
    fused: dict[int, float] = {}
    for rank, fid in enumerate(content, start=1):
        fused[fid] = fused.get(fid, 0.0) + wc / (k + rank)
    for rank, fid in enumerate(keyword, start=1):
        fused[fid] = fused.get(fid, 0.0) + wk / (k + rank)
    return fused


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
        content, vector = content_hits(catalog, index, space, parsed, text, limit)
        keyword = (
            []
            if content_only
            else [h.id for h in keyword_search(catalog, parsed, max(limit, CONTENT_CANDIDATES))]
        )
    else:
        content, vector, keyword = _both_legs(catalog, index, space, parsed, text, limit)
    fused = fuse([fid for fid, _ in content], keyword)
    # The fused score as a share of the best possible (first in both lists; content-only:
    # first in one), then calibrated into the chance that the file is what was asked for.
    best = CONTENT_WEIGHT / (RRF_K + 1) + (0.0 if content_only else KEYWORD_WEIGHT / (RRF_K + 1))
    ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    store = VectorStore(catalog)
    space_id = index.space_id(space.name)
    # Window vectors are stored raw; a standardised query is mapped back to compare.
    to_windows = getattr(space, "to_window_space", None)
    window_query = to_windows(vector) if to_windows else vector
    # Moments for the results a user looks at first; the rest play from their start.
    moments = best_moments(store, space_id, [fid for fid, _ in ranked[:MOMENTS_FOR]], window_query)
    results = to_results(
        catalog, [(fid, relevance(score / best)) for fid, score in ranked], moments
    )
    for r in results:
        r.match = r.score >= MATCH_THRESHOLD
    return results


def relevance(share: float) -> float:
    """The chance that a result is relevant, from its fused score as a share of the best
    possible (Platt scaling; constants fitted on the training corpus's judged queries)."""
    return 1.0 / (1.0 + math.exp(-(RELEVANCE_A * share + RELEVANCE_B)))
