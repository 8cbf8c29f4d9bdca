"""Text search learned on one library, applied to another whose names are all hidden.

    python bench/transfer_bench.py SOURCE_LIB TARGET_LIB QUERIES.json

Prints one JSON object. SOURCE_LIB's saved adapter (``sonarium adapt`` there, e.g. on
the training corpus) answers QUERIES content-only over every file of TARGET_LIB (e.g.
the dev corpus), as if TARGET_LIB had no usable names: the question behind shipping
base knowledge (issue 15's never-seen protocol). Nothing is written to either library.

Variants, each mAP@10 and R@10 over the same queries in the same run:
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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapt.adapter import Adapter, adapter_path  # noqa: E402
from engine.catalog.db import Catalog  # noqa: E402
from engine.catalog.paths import catalog_path  # noqa: E402
from engine.catalog.vectors import VectorStore, normalise  # noqa: E402
from engine.config import DEFAULT_SIMILAR_SPACE  # noqa: E402
from engine.eval.metrics import evaluate_text, load_queries, relative_ids  # noqa: E402
from engine.models.text_encoder import shared_encoder  # noqa: E402


def _z(s: np.ndarray) -> np.ndarray:
    return (s - s.mean()) / (s.std() + 1e-9)


def _scores(a: Adapter, x: np.ndarray, q: np.ndarray, kernel: bool, heads: bool) -> np.ndarray:
    o = a.options
    sims = a.text_vectors @ q
    top = np.argsort(-sims, kind="stable")[: o.neighbours]
    w = np.clip(sims[top], 0, None) ** o.power
    nb = a.audio_vectors[top].astype(np.float32)
    total = _z(x @ normalise((w[:, None] * nb).sum(0)[None])[0])
    if kernel:
        s = x @ nb.T
        total += o.kernel_weight * _z(np.log((np.exp((s - 1) / o.kernel_tau) * w).sum(1) + 1e-30))
    if heads and a.heads is not None:
        h = a.heads
        hq = normalise((q @ h["wt"] + h["bt"])[None])[0]
        total += o.heads_weight * _z(normalise(x @ h["wa"] + h["ba"]) @ hq)
    return total


def _feedback(x: np.ndarray, s: np.ndarray, m: int) -> np.ndarray:
    top = np.argsort(-s, kind="stable")[:m]
    return _z(s) + _z(x @ normalise(x[top].mean(0)[None])[0])


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
    rel = relative_ids(catalog)
    queries = load_queries(args.queries)
    texts = [q["query"] for q in queries]
    vectors = dict(zip(texts, shared_encoder().encode(texts), strict=True))
    x_source = normalise((raw - adapter.mean) / adapter.std)
    x_target = normalise((raw - raw.mean(0)) / (raw.std(0) + 1e-6))

    variants = {
        "source_statistics": lambda q: _scores(adapter, x_source, q, True, True),
        "target_statistics": lambda q: _scores(adapter, x_target, q, True, True),
        "centroid_only": lambda q: _scores(adapter, x_target, q, False, False),
        "no_heads": lambda q: _scores(adapter, x_target, q, True, False),
    }
    for m in (5, 10, 20):
        variants[f"feedback_m{m}"] = lambda q, m=m: _feedback(
            x_target, _scores(adapter, x_target, q, True, True), m
        )
    out: dict[str, object] = {
        "source_pairs": adapter.stats.get("pairs"), "target_files": len(ids),
        "queries": len(queries),
    }  # fmt: skip
    for name, score in variants.items():
        ranked = {t: [int(ids[j]) for j in np.argsort(-score(vectors[t]))[:10]] for t in texts}
        overall = evaluate_text(queries, rel, ranked.__getitem__)["overall"]
        out[name] = {"mAP@10": round(overall["AP@10"], 4), "R@10": round(overall["R@10"], 3)}
    catalog.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
