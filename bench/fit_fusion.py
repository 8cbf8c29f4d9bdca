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


def grid(library_dir: str, queries_path: str) -> dict[str, float]:
    queries = load_queries(queries_path)
    with Library(library_dir) as library:
        ids = relative_ids(library.catalog)
        ranked = rankings(library, queries)
        return {f"w={w},k={k}": score(queries, ids, ranked, w, k) for w in WEIGHTS for k in KS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries")
    parser.add_argument("--library", required=True)
    parser.add_argument("--check", help="queries to report the fitted setting on")
    parser.add_argument("--check-library")
    args = parser.parse_args()
    table = grid(args.library, args.queries)
    best = max(table, key=lambda key: (round(table[key], 4), key == "w=1.0,k=60"))
    result = {
        "fit_on": args.queries,
        "default (w=1.0,k=60)": round(table["w=1.0,k=60"], 4),
        "best": best,
        "best_mAP@10": round(table[best], 4),
        "grid": {k: round(v, 4) for k, v in table.items()},
    }
    if args.check:
        check = grid(args.check_library or args.library, args.check)
        result["check_on"] = args.check
        result["check default (w=1.0,k=60)"] = round(check["w=1.0,k=60"], 4)
        result["check best-from-fit"] = round(check[best], 4)
        result["check grid (for the record, never for choosing)"] = {
            k: round(v, 4) for k, v in check.items()
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
