"""Pooling benchmark: which file vector a space's block vectors should make, by
query-by-example mAP@10 on a library already embedded (no re-embedding).

    python bench/pooling_bench.py QUERIES.json [--library DIR] [--space aisfx]

Reads each file's stored window vectors (L2-normalised blocks), pools them by max (what
the aisfx space ships) and by mean, standardises each over the library as the find-
similar index does, and scores every pooling with the product's own eval code
(engine/eval/metrics.py). The shipped vectors stored in the catalog are scored too, as
the same-run reference. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.catalog.vectors import VectorStore, from_blob, normalise  # noqa: E402
from engine.eval.metrics import evaluate_by_example, load_queries, relative_ids  # noqa: E402
from engine.library import Library  # noqa: E402


def pooled(library: Library, space_id: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rows = library.catalog.conn.execute(
        "SELECT file_id, vector FROM window_vectors WHERE space_id = ? ORDER BY file_id, start",
        (space_id,),
    ).fetchall()
    by_file: dict[int, list[np.ndarray]] = {}
    for file_id, blob in rows:
        by_file.setdefault(int(file_id), []).append(from_blob(blob))
    ids = np.array(sorted(by_file), dtype=np.int64)
    blocks = [np.stack(by_file[i]) for i in ids]
    return {
        "max": (ids, normalise(np.stack([b.max(axis=0) for b in blocks]))),
        "mean": (ids, normalise(np.stack([b.mean(axis=0) for b in blocks]))),
    }


def scorer(ids: np.ndarray, vectors: np.ndarray):
    """Exact cosine after per-dimension standardisation over the library."""
    z = normalise((vectors - vectors.mean(axis=0)) / (vectors.std(axis=0) + 1e-6))
    row = {int(f): i for i, f in enumerate(ids)}

    def rank(file_id: int) -> list[int] | None:
        if file_id not in row:
            return None
        scores = z @ z[row[file_id]]
        top = np.argsort(-scores, kind="stable")[:11]
        return [int(ids[i]) for i in top if int(ids[i]) != file_id][:10]

    return rank


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queries")
    parser.add_argument("--library")
    parser.add_argument("--space", default="aisfx")
    args = parser.parse_args()
    queries = load_queries(args.queries)
    with Library(args.library) as library:
        store = VectorStore(library.catalog)
        space = store.space(args.space)
        if space is None:
            sys.exit(f"no '{args.space}' vectors in {library.dir}")
        ids_by_path = relative_ids(library.catalog)
        out: dict[str, object] = {"library": str(library.dir), "space": args.space}
        stored_ids, stored = store.all_file_vectors(space["id"])
        candidates = {"stored": (stored_ids, stored), **pooled(library, space["id"])}
        for name, (ids, vectors) in candidates.items():
            result = evaluate_by_example(queries, ids_by_path, scorer(ids, vectors))
            out[name] = result["overall"]
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
