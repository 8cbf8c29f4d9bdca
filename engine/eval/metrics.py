"""Retrieval evaluation against a list of queries with their relevant files.

Query file format: `[{"query": "...", "relevant": ["folder/relative/path.wav", ...]}]`,
paths relative to a library folder. Metrics follow the usual definitions:
R@k is the share of queries with at least one relevant file in the top k; AP@10 is
sum over ranks k <= 10 of P@k for relevant hits, divided by min(#relevant, 10);
P@10 is the share of the top 10 that is relevant.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.catalog.db import Catalog
from engine.errors import LibraryError


def average_precision_at(ranked: Sequence[int], relevant: set[int], k: int = 10) -> float:
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), k)


def precision_at(ranked: Sequence[int], relevant: set[int], k: int = 10) -> float:
    return sum(1 for item in ranked[:k] if item in relevant) / k


def hit_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def load_queries(path: str | Path) -> list[dict[str, Any]]:
    """Judged queries from a JSON file; LibraryError when unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LibraryError(f"cannot read the queries in {path}: {exc}") from exc
    ok = isinstance(data, list) and all(
        isinstance(q, dict) and "query" in q and isinstance(q.get("relevant"), list) for q in data
    )
    if not ok:
        raise LibraryError(f"{path}: expected a JSON list of {{'query', 'relevant'}} objects")
    return data


def relative_ids(catalog: Catalog) -> dict[str, int]:
    """Library-relative path -> file id for every readable file (relative to its root)."""
    out: dict[str, int] = {}
    for row in catalog.query(
        "SELECT f.id, f.path, r.path AS root FROM files f JOIN roots r ON r.id = f.root_id "
        "WHERE f.status = 'ok'"
    ):
        out[os.path.relpath(row["path"], row["root"])] = row["id"]
    return out


def evaluate_text(
    queries: list[dict[str, Any]], ids: dict[str, int], rank: Callable[[str], list[int]]
) -> dict[str, Any]:
    """R@1/5/10 and mAP@10 of `rank(query) -> file ids` over the queries."""
    per_query = []
    for q in queries:
        relevant = {ids[p] for p in q["relevant"] if p in ids}
        if not relevant:
            continue
        ranked = rank(q["query"])
        per_query.append(
            {
                "query": q["query"],
                "relevant": len(relevant),
                "R@1": hit_at(ranked, relevant, 1),
                "R@5": hit_at(ranked, relevant, 5),
                "R@10": hit_at(ranked, relevant, 10),
                "AP@10": average_precision_at(ranked, relevant),
            }
        )
    return {"overall": _mean(per_query, ("R@1", "R@5", "R@10", "AP@10")), "queries": per_query}


def evaluate_by_example(
    queries: list[dict[str, Any]],
    ids: dict[str, int],
    rank_similar: Callable[[int], list[int] | None],
    examples_per_query: int = 5,
) -> dict[str, Any]:
    """Query by example: each of a query's first five relevant files is the example, its
    other relevant files are the targets; the example itself is excluded from the ranking.
    `rank_similar(file_id)` returns ranked file ids, or None when the file has no vector."""
    per_query = []
    examples_total = 0
    for q in queries:
        present = [ids[p] for p in q["relevant"] if p in ids]
        if len(present) < 2:
            continue
        aps, p10s = [], []
        for example in present[:examples_per_query]:
            targets = set(present) - {example}
            ranked = rank_similar(example)
            if ranked is None:
                continue
            ranked = [i for i in ranked if i != example]
            aps.append(average_precision_at(ranked, targets))
            p10s.append(precision_at(ranked, targets))
        if not aps:
            continue
        examples_total += len(aps)
        per_query.append(
            {
                "query": q["query"],
                "examples": len(aps),
                "mAP@10": sum(aps) / len(aps),
                "P@10": sum(p10s) / len(p10s),
                "_aps": aps,
                "_p10s": p10s,
            }
        )
    all_aps = [a for q in per_query for a in q.pop("_aps")]
    all_p10 = [p for q in per_query for p in q.pop("_p10s")]
    overall = {
        "examples": examples_total,
        "queries": len(per_query),
        # Averaged over examples (each example is one ranking).
        "mAP@10": sum(all_aps) / len(all_aps) if all_aps else 0.0,
        "P@10": sum(all_p10) / len(all_p10) if all_p10 else 0.0,
    }
    return {"overall": overall, "queries": per_query}


def _mean(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    if not rows:
        return {k: 0.0 for k in keys} | {"queries": 0}
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys} | {"queries": len(rows)}
