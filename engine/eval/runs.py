"""Evaluation runs with their baselines measured in the same run, on the same queries.

Every ``eval`` mode is computed here, called through :class:`engine.library.Library`'s
``evaluate_*`` methods: text search (hybrid or content-only, with keyword-only and
content-only baselines), query by example (with MFCC and random baselines) and the
hidden-names protocol (engine/eval/hidden.py, with keyword-only under the same hiding).
Call on the library's owning thread.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import NotIndexed
from engine.eval.metrics import evaluate_by_example, evaluate_text, relative_ids

if TYPE_CHECKING:
    from engine.adapt.adapter import AdaptOptions
    from engine.library import Library

MODE_NAMES = {"auto": "hybrid", "content": "content", "keyword": "keyword"}


def text_run(
    library: Library, queries: list[dict[str, Any]], content_only: bool = False
) -> dict[str, Any]:
    """R@k and mAP@10 of text search: hybrid (or content-only), plus the other modes as
    baselines; keyword only when the library has no text-to-audio space yet."""
    ids = relative_ids(library.catalog)

    def by_text(mode: str) -> dict[str, Any]:
        return evaluate_text(
            queries, ids, lambda q: [r.id for r in library.search(q, 10, mode=mode)]
        )

    mode = "content" if content_only else "auto"
    if library.text_space() is None:
        if content_only:
            raise NotIndexed("content search needs embedded sounds: scan the library first")
        mode = "keyword"
    result = by_text(mode)
    result["mode"] = MODE_NAMES[mode]
    others = [m for m in ("keyword", "content") if m != mode and mode != "keyword"]
    result["baselines"] = {m: by_text(m)["overall"] for m in others}
    result["baselines"]["or_bm25"] = evaluate_text(
        queries, ids, lambda q: plain_or_bm25(library, q)
    )["overall"]
    return result


def plain_or_bm25(library: Library, query: str, limit: int = 10) -> list[int]:
    """The simplest keyword search worth beating: the query's words OR-ed, BM25 over
    file names and folders only, no stemming beyond the index's, no thesaurus."""
    from engine.search.words import split_words

    words = {w.lower().replace('"', "") for w in split_words(query)}
    if not words:
        return []
    expression = "{name folder} : (" + " OR ".join(f'"{w}"' for w in sorted(words)) + ")"
    rows = library.catalog.conn.execute(
        "SELECT rowid FROM files_fts WHERE files_fts MATCH ? ORDER BY bm25(files_fts) LIMIT ?",
        (expression, limit),
    )
    return [r[0] for r in rows]


def random_ranker(ids: dict[str, int], limit: int = 11) -> Callable[[int], list[int]]:
    """Chance level: a fixed-seed random ranking of the library for each example."""
    pool = sorted(set(ids.values()))

    def rank(file_id: int) -> list[int]:
        return random.Random(file_id).sample(pool, min(limit, len(pool)))

    return rank


def by_example_run(library: Library, queries: list[dict[str, Any]], space: str) -> dict[str, Any]:
    """mAP@10 and P@10 of find-similar in ``space``, with random and MFCC baselines.

    Raises NotIndexed when ``space`` has no vectors; the MFCC baseline is left out when
    MFCC has none.
    """
    ids = relative_ids(library.catalog)

    def by_example(name: str) -> dict[str, Any]:
        return evaluate_by_example(queries, ids, lambda fid: library.similar_ids(fid, 11, name))

    result = by_example(space)
    result["space"] = space
    baselines = {"random": evaluate_by_example(queries, ids, random_ranker(ids))}
    if space != "mfcc":
        with contextlib.suppress(NotIndexed):
            baselines["mfcc"] = by_example("mfcc")
    result["baselines"] = {k: v["overall"] for k, v in baselines.items()}
    if "mfcc" in baselines and baselines["mfcc"]["overall"]["mAP@10"] > 0:
        result["ratio_vs_mfcc"] = (
            result["overall"]["mAP@10"] / baselines["mfcc"]["overall"]["mAP@10"]
        )
    return result


def hidden_run(
    library: Library,
    queries: list[dict[str, Any]],
    fraction: float,
    seed: int,
    options: AdaptOptions,
    *,
    ablations: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The hidden-names protocol (engine/eval/hidden.py) with each configuration's hybrid
    mAP@10 as a multiple of keyword-only under the same hiding."""
    from engine.eval.hidden import evaluate_hidden

    result = evaluate_hidden(
        library.catalog, queries, fraction, seed, options,
        ucs=library.ucs_table(), ablations=ablations, log=log, base=library.base_knowledge(),
    )  # fmt: skip
    base = result["keyword"]["overall"]["AP@10"]
    for config in result["configs"].values():
        config["hybrid_vs_keyword"] = config["hybrid"]["overall"]["AP@10"] / base if base else None
    return result
