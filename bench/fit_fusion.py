"""Fitting the hybrid search's fusion on judged queries: weighted reciprocal-rank fusion
of the content and keyword rankings, over a grid of content weight and RRF k.

    python bench/fit_fusion.py QUERIES.json --library DIR [--check OTHER_QUERIES.json
        --check-library OTHER_DIR]

Fit on the training corpus's queries (`bench/train_queries.json`, written for the
training corpus, never the dev corpus) and report the chosen setting on the dev queries
with --check: the dev numbers judge, they never choose. Each query's two rankings are
computed once (the product's own code) and fused in memory for every setting. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.eval.metrics import evaluate_text, load_queries, relative_ids  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.search.hybrid import CONTENT_CANDIDATES, content_hits, content_text, fuse  # noqa: E402
from engine.search.keyword import keyword_search  # noqa: E402
from engine.search.query import parse_query  # noqa: E402

WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
KS = (5, 10, 20, 30, 60, 100)


def rankings(library: Library, queries: list[dict]) -> dict[str, tuple[list[int], list[int]]]:
    space = library.text_space()
    if space is None:
        raise SystemExit("the library has no text search over sound yet: run sonarium scan")
    index = library._similar_index()
    out = {}
    for q in queries:
        parsed = parse_query(q["query"])
        content, _ = content_hits(
            library.catalog, index, space, parsed, content_text(parsed), CONTENT_CANDIDATES
        )
        keyword = keyword_search(library.catalog, parsed, limit=CONTENT_CANDIDATES)
        out[q["query"]] = ([fid for fid, _ in content], [h.id for h in keyword])
    return out


def score(queries, ids, ranked, weight: float, k: int) -> float:
    def rank(query: str) -> list[int]:
        content, keyword = ranked[query]
        fused = fuse(content, keyword, weight, 1.0, k)
        return [fid for fid, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]

    return evaluate_text(queries, ids, rank)["overall"]["AP@10"]


def grid(library_dir: str, queries_path: str) -> tuple[dict[str, float], Any]:
    queries = load_queries(queries_path)
    with Library(library_dir) as library:
        ids = relative_ids(library.catalog)
        ranked = rankings(library, queries)
        table = {f"w={w},k={k}": score(queries, ids, ranked, w, k) for w in WEIGHTS for k in KS}
    return table, (queries, ids, ranked)


def calibration(
    data: Any, weight: float, k: int, top: int = 100, given: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Platt scaling: P(relevant) = sigmoid(a * s + b) for s, the fused score as a share
    of the best possible, over each query's first ``top`` results. Newton's method on
    the log-likelihood (two parameters, a few thousand points)."""
    queries, ids, ranked = data
    best = (weight + 1.0) / (k + 1)
    xs, ys = [], []
    for q in queries:
        relevant = {ids[p] for p in q["relevant"] if p in ids}
        if not relevant:
            continue
        fused = fuse(*ranked[q["query"]], weight, 1.0, k)
        for fid, s in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
            xs.append(s / best)
            ys.append(1.0 if fid in relevant else 0.0)
    x, y = np.array(xs), np.array(ys)
    a, b = given or (1.0, 0.0)
    for _ in range(0 if given else 50):
        p = 1 / (1 + np.exp(-(a * x + b)))
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9
        a, b = np.array([a, b]) - np.linalg.solve(h, g)
    p = 1 / (1 + np.exp(-(a * x + b)))
    bins = [(lo, hi) for lo, hi in ((0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.01))]
    reliability = {
        f"{lo:.1f}-{min(hi, 1):.1f}": [round(float(y[(p >= lo) & (p < hi)].mean()), 3)
                                        if ((p >= lo) & (p < hi)).any() else None,
                                        int(((p >= lo) & (p < hi)).sum())]
        for lo, hi in bins
    }  # fmt: skip
    return {"a": round(float(a), 3), "b": round(float(b), 3), "points": len(x),
            "observed share relevant per predicted band [share, n]": reliability}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries")
    parser.add_argument("--library", required=True)
    parser.add_argument("--check", help="queries to report the fitted setting on")
    parser.add_argument("--check-library")
    args = parser.parse_args()
    table, data = grid(args.library, args.queries)
    best = max(table, key=lambda key: (round(table[key], 4), key == "w=1.0,k=60"))
    w, k = (float(part.split("=")[1]) for part in best.split(","))
    result = {
        "fit_on": args.queries,
        "default (w=1.0,k=60)": round(table["w=1.0,k=60"], 4),
        "best": best,
        "best_mAP@10": round(table[best], 4),
        "grid": {key: round(v, 4) for key, v in table.items()},
        "calibration (fit)": calibration(data, w, int(k)),
    }
    if args.check:
        check, check_data = grid(args.check_library or args.library, args.check)
        result["check_on"] = args.check
        result["check default (w=1.0,k=60)"] = round(check["w=1.0,k=60"], 4)
        result["check best-from-fit"] = round(check[best], 4)
        result["check grid (for the record, never for choosing)"] = {
            key: round(v, 4) for key, v in check.items()
        }
        fitted = result["calibration (fit)"]
        result["calibration from the fit, on the check queries"] = calibration(
            check_data, w, int(k), given=(fitted["a"], fitted["b"])
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
