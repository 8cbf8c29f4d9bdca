"""Text search learned on one library, applied to another whose names are all hidden.

    python bench/transfer_bench.py SOURCE_LIB TARGET_LIB QUERIES.json

Prints one JSON object. SOURCE_LIB's saved adapter (``sonarium adapt`` there, e.g. on
the training corpus) answers QUERIES content-only over every file of TARGET_LIB (e.g.
the dev corpus), as if TARGET_LIB had no usable names: the question behind shipping
base knowledge (issue 15's never-seen protocol). Nothing is written to either library.

Variants, each scored by the product's own AdaptedTextSpace (the first is exactly what
``search --adapter`` ranks by), mAP@10 and R@10 over the same queries in the same run:
- ``source_statistics``: target vectors standardised with the source library's mean and
  std (what ``--adapter`` does today): the baseline;
- ``target_statistics``: standardised with the target library's own statistics;
- ``centroid_only`` / ``no_heads``: parts of the adapter switched off;
- ``feedback_m{M}``: pseudo-relevance feedback in the target's own space (the centroid
  of the first M results joins the score), in-domain refinement without any label.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapt.adapter import Adapter, adapter_path  # noqa: E402
from engine.adapt.text_space import AdaptedTextSpace  # noqa: E402
from engine.catalog.db import Catalog  # noqa: E402
from engine.catalog.paths import catalog_path  # noqa: E402
from engine.catalog.vectors import VectorStore, normalise  # noqa: E402
from engine.config import DEFAULT_SIMILAR_SPACE  # noqa: E402
from engine.eval.metrics import evaluate_text, load_queries, relative_ids  # noqa: E402


def _z(s: np.ndarray) -> np.ndarray:
    return (s - s.mean()) / (s.std() + 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("queries", type=Path)
    args = p.parse_args()
    adapter = Adapter.load(adapter_path(args.source))
    catalog = Catalog(catalog_path(args.target))
    store = VectorStore(catalog)
    space = store.space(DEFAULT_SIMILAR_SPACE)
    if space is None or space["identity"] != adapter.audio_identity:
        sys.exit("the two libraries were not embedded with the same audio model")
    ids, raw = store.all_file_vectors(space["id"])
    all_ids = [int(f) for f in ids]
    rel = relative_ids(catalog)
    queries = load_queries(args.queries)
    own = replace(adapter, mean=raw.mean(0), std=raw.std(0) + 1e-6)
    x_target = normalise((raw - own.mean) / own.std)

    def product(a: Adapter) -> Callable[[str], np.ndarray]:
        """The product's scoring (what --adapter answers with), over every target file.
        Only score() is called, which needs no FAISS index."""
        text_space = AdaptedTextSpace(catalog, None, a)

        def score(text: str) -> np.ndarray:
            scores = text_space.score(text, all_ids)
            return np.array([scores[f] for f in all_ids])

        return score

    def feedback(m: int) -> Callable[[str], np.ndarray]:
        first = product(own)

        def score(text: str) -> np.ndarray:
            s = first(text)
            top = np.argsort(-s, kind="stable")[:m]
            return _z(s) + _z(x_target @ normalise(x_target[top].mean(0)[None])[0])

        return score

    variants = {
        "source_statistics": product(adapter),
        "target_statistics": product(own),
        "centroid_only": product(
            replace(own, options=own.options.replace(kernel_weight=0.0, heads=False))
        ),
        "no_heads": product(replace(own, options=own.options.replace(heads=False))),
    } | {f"feedback_m{m}": feedback(m) for m in (5, 10, 20)}
    out: dict[str, object] = {
        "source_pairs": adapter.stats.get("pairs"), "target_files": len(ids),
    }  # fmt: skip
    for name, score in variants.items():
        ranked = {}
        for q in queries:
            ranked[q["query"]] = [all_ids[j] for j in np.argsort(-score(q["query"]))[:10]]
        result = evaluate_text(queries, rel, ranked.__getitem__)
        out["judged_queries"] = len(result["queries"])
        overall = result["overall"]
        out[name] = {"mAP@10": round(overall["AP@10"], 4), "R@10": round(overall["R@10"], 3)}
    catalog.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
