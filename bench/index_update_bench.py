"""What a few changed vectors cost the search index: applied in memory, against a rebuild.

    python bench/index_update_bench.py LIBRARY_DIR [--space aisfx] [--changes 1000]

Prints one JSON object. Opens the library as the app does (Library.warm: the saved index
loaded and tracked), stores --changes of its files' vectors again (each a copy moved a
little, as a re-embedded file would be: new catalog rows, so the index must follow), and
times the next find-similar query, which brings the index up to date in memory. Then a
fresh SimilarIndex over a temporary folder builds the same state from the catalog (what
happened on every change before), timed the same way; both answers are compared.
It changes the library's vectors slightly: run it on a bench library
(bench/scale_bench.py --keep DIR), not on one you use.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import prepare_process  # noqa: E402

prepare_process()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("library", type=Path)
    parser.add_argument("--space", default="aisfx")
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()

    from engine.catalog.vectors import VectorStore
    from engine.library import Library
    from engine.search.similar import SimilarIndex

    library = Library(args.library)
    library.adapt_on_demand = False
    began = time.perf_counter()
    library.warm()
    warm_s = time.perf_counter() - began
    store = VectorStore(library.catalog)
    space = store.space(args.space)
    if space is None:
        raise SystemExit(f"no {args.space} vectors in {args.library}")
    ids = store.embedded_ids(space["id"])
    rng = np.random.default_rng(0)
    picked = rng.choice(ids, size=min(args.changes, len(ids)), replace=False)
    _, vectors = store.file_vectors(space["id"], [int(f) for f in picked])
    noise = 0.05 * rng.standard_normal(vectors.shape).astype(np.float32)
    for file_id, vector in zip(picked, vectors + noise, strict=True):
        store.store(space["id"], int(file_id), vector)
    query = store.file_vector(space["id"], int(picked[0]))
    assert query is not None
    index = library._similar_index()
    began = time.perf_counter()
    updated = index.nearest(args.space, query, 200)
    update_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="sonarium-index-") as folder:
        fresh = SimilarIndex(library.catalog, Path(folder))
        began = time.perf_counter()
        rebuilt = fresh.nearest(args.space, query, 200)
        rebuild_s = time.perf_counter() - began
    ours, theirs = [f for f, _ in updated], [f for f, _ in rebuilt]
    print(json.dumps({
        "files": int(len(ids)), "changes": int(len(picked)), "warm_s": round(warm_s, 2),
        "update_query_s": round(update_s, 3), "rebuild_query_s": round(rebuild_s, 2),
        "top1_same": ours[:1] == theirs[:1],
        "overlap_at_200": round(len(set(ours) & set(theirs)) / max(len(theirs), 1), 3),
    }, indent=2))  # fmt: skip
    library.close()


if __name__ == "__main__":
    main()
