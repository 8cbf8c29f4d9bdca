"""Fitting the hybrid search's fusion and its relevance on judged queries.

    python bench/fit_fusion.py QUERIES.json --library DIR [--check OTHER_QUERIES.json
        --check-library OTHER_DIR] [--hide 0.5] [--seed 1]

Fit on the training corpus's queries (`bench/train_queries.json`, written for the
training corpus, never the dev corpus) and report the fitted constants on the dev queries
with --check: the dev numbers judge, they never choose. Each query's two legs are
computed once with the product's own code (engine.search.hybrid: content_hits,
keyword_ranking, fusion_features), on the library as it is and on a copy with a seeded
share of its names hidden (the adapter learned again without them, as `eval
--hide-names` does), so the fusion learns what a keyword match is worth when some
names say nothing. Then:

- the fusion: logistic regression (L2 1.0, Newton's method) of "relevant" over the
  features of every file either leg brought;
- the content-only relevance (no keyword leg: content-only mode, or no word of the
  query matches a name, or a file without words of its own that matches none): logistic
  regression over the content score in spreads, for the files without words among the
  content leg's first 100 with names hidden.

Both are printed as constants for engine/search/hybrid.py, with mAP@10 of the fitted
fusion against the shipped one and against reciprocal-rank fusion (w=1, k=60) on the same
legs, and the share of results relevant per predicted band. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapt.adapter import AdaptOptions  # noqa: E402
from engine.adapt.base import compose_text_space  # noqa: E402
from engine.adapt.training import train_adapter  # noqa: E402
from engine.eval.hidden import choose_hidden, copy_catalog, hide_metadata  # noqa: E402
from engine.eval.metrics import average_precision_at, load_queries, relative_ids  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.search import hybrid  # noqa: E402
from engine.search.keyword import keyword_ranking  # noqa: E402
from engine.search.query import parse_query  # noqa: E402
from engine.search.similar import SimilarIndex  # noqa: E402

L2 = 1.0
BANDS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.01))


def legs(catalog, index, space, queries, ids) -> list[dict[str, Any]]:
    """Each judged query's legs, as the product computes them."""
    out = []
    for q in queries:
        relevant = {ids[p] for p in q["relevant"] if p in ids}
        if not relevant:
            continue
        parsed = parse_query(q["query"])
        content, _ = hybrid.content_hits(
            catalog, index, space, parsed, hybrid.content_text(parsed), hybrid.CONTENT_CANDIDATES
        )
        keyword = keyword_ranking(catalog, parsed, hybrid.CONTENT_CANDIDATES)
        brought, _ = hybrid.fusion_features(content, keyword, len(parsed.groups))
        named = space.described(brought)
        described = set((brought if named is None else brought[named]).tolist())
        out.append({"content": content, "keyword": keyword, "groups": len(parsed.groups),
                    "relevant": relevant, "described": described})  # fmt: skip
    return out


def collect(library_dir: str, queries_path: str, hide: float, seed: int) -> dict[str, list]:
    """{"shown": legs with every name, "hidden": legs with `hide` of them hidden}."""
    queries = load_queries(queries_path)
    with Library(library_dir) as library:
        ids = relative_ids(library.catalog)
        space = library.text_space()
        if space is None:
            raise SystemExit("the library has no text search over sound yet: run sonarium scan")
        found = {"shown": legs(library.catalog, library._similar_index(), space, queries, ids)}
        hidden = choose_hidden(ids, hide, seed)
        with tempfile.TemporaryDirectory(prefix="sonarium-fit-") as tmp:
            catalog = copy_catalog(library.catalog, Path(tmp))
            try:
                hide_metadata(catalog, hidden)
                index = SimilarIndex(catalog, Path(tmp))
                ucs = library.ucs_table()
                adapter = train_adapter(catalog, space.name, AdaptOptions(), ucs=ucs, hidden=hidden)
                hidden_space = compose_text_space(
                    catalog, index, adapter, library.base_knowledge(), ucs
                )
                found["hidden"] = legs(catalog, index, hidden_space, queries, ids)
            finally:
                catalog.close()
    return found


def logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights (bias first) of an L2-regularised logistic regression."""
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        g = x.T @ (p - y) + L2 * w
        h = (x * (p * (1 - p))[:, None]).T @ x + L2 * np.eye(len(w))
        w -= np.linalg.solve(h, g)
    return w


def fusion_points(sets: list[list[dict]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for found in sets:
        # A query whose words match no name gets the content-only relevance instead.
        for q in (q for q in found if q["keyword"]):
            ids, x = hybrid.fusion_features(q["content"], q["keyword"], q["groups"])
            # A file without words of its own and no keyword hit: content-only relevance.
            kept = (x[:, 1] > 0) | np.isin(ids, list(q["described"]))
            xs.append(x[kept])
            ys.append(np.isin(ids[kept], list(q["relevant"])).astype(float))
    return np.vstack(xs), np.concatenate(ys)


def content_points(found: list[dict], top: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Content score in spreads of the files without words of their own among each
    query's content leg (its first `top` of them)."""
    xs, ys = [], []
    for q in found:
        hits, (mean, spread) = q["content"]
        kept = [(fid, s) for fid, s in hits if fid not in q["described"]][:top]
        xs += [(s - mean) / spread for _, s in kept]
        ys += [fid in q["relevant"] for fid, _ in kept]
    return np.array(xs).reshape(-1, 1), np.array(ys, dtype=float)


def rrf(q: dict, k: int = 60) -> list[int]:
    fused: dict[int, float] = {}
    for rank, (fid, _) in enumerate(q["content"][0], start=1):
        fused[fid] = fused.get(fid, 0.0) + 1 / (k + rank)
    for rank, (fid, _, _) in enumerate(q["keyword"], start=1):
        fused[fid] = fused.get(fid, 0.0) + 1 / (k + rank)
    return [fid for fid, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]


def measure(found: list[dict], w: np.ndarray, c: np.ndarray) -> dict[str, Any]:
    """mAP@10 of the fusion with weights `w` (bias first; `c`: the content-only
    relevance's), of the shipped one and of
    RRF, and the share relevant per predicted band over each query's first 100."""
    aps: dict[str, list[float]] = {"fitted": [], "shipped": [], "rrf w=1 k=60": []}
    predicted, observed = [], []
    for q in found:
        args = (q["content"], q["keyword"], q["groups"])
        described = lambda ids, q=q: np.isin(ids, list(q["described"]))  # noqa: E731
        ranked = hybrid.fuse(
            *args, described, weights=w[1:], bias=float(w[0]), content_only=(c[0], c[1])
        )
        aps["fitted"].append(average_precision_at([f for f, _ in ranked], q["relevant"]))
        shipped = [f for f, _ in hybrid.fuse(*args, described)]
        aps["shipped"].append(average_precision_at(shipped, q["relevant"]))
        aps["rrf w=1 k=60"].append(average_precision_at(rrf(q), q["relevant"]))
        predicted += [p for _, p in ranked[:100]]
        observed += [f in q["relevant"] for f, _ in ranked[:100]]
    return {**{k: round(float(np.mean(v)), 4) for k, v in aps.items()},
            "share relevant per predicted band [share, n]": bands(predicted, observed)}  # fmt: skip


def bands(predicted: list[float], observed: list[bool]) -> dict[str, list]:
    p, y = np.array(predicted), np.array(observed, dtype=float)
    out = {}
    for lo, hi in BANDS:
        inside = (p >= lo) & (p < hi)
        out[f"{lo:.1f}-{min(hi, 1):.1f}"] = [
            round(float(y[inside].mean()), 3) if inside.any() else None,
            int(inside.sum()),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries")
    parser.add_argument("--library", required=True)
    parser.add_argument("--check", help="queries to report the fitted constants on")
    parser.add_argument("--check-library")
    parser.add_argument("--hide", type=float, default=0.5, help="share of names hidden")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fit = collect(args.library, args.queries, args.hide, args.seed)
    w = logistic(*fusion_points([fit["shown"], fit["hidden"]]))
    c = logistic(*content_points(fit["hidden"]))
    result: dict[str, Any] = {
        "fit_on": args.queries,
        "constants": {"FUSION_BIAS": round(float(w[0]), 3),
                      **{f"FUSION_{n.split('_')[0].upper()}": round(float(v), 3)
                         for n, v in zip(hybrid.FEATURES, w[1:], strict=True)},
                      "CONTENT_ONLY_BIAS": round(float(c[0]), 3),
                      "CONTENT_ONLY_Z": round(float(c[1]), 3)},
        "fit": {name: measure(found, w, c) for name, found in fit.items()},
    }  # fmt: skip
    if args.check:
        check = collect(args.check_library or args.library, args.check, args.hide, args.seed)
        result["check_on"] = args.check
        result["check (never for choosing)"] = {name: measure(f, w, c) for name, f in check.items()}
        x, y = content_points(check["hidden"])
        p = 1 / (1 + np.exp(-(c[0] + c[1] * x[:, 0])))
        result["check content-only relevance per band"] = bands(p.tolist(), y.astype(bool).tolist())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
