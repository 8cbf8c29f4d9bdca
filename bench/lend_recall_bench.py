"""Recall of the lent-captions table against exact neighbours, on a library's adapter.

    python bench/lend_recall_bench.py LIBRARY_DIR [--sample 2000]

Above LEND_EXACT_ROWS described files the adapter finds each file's nearest described
files through an inverted-file index (engine/adapt/training.py lend_table). For a seeded
sample of the library's files this compares the table's rows with the exact nearest rows
(every described file compared), and prints JSON: recall@k (the share of the exact k
found) and the share of files whose nearest row is the exact nearest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.catalog.vectors import VectorStore, normalise  # noqa: E402
from engine.library import Library  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    with Library(args.library) as library:
        adapter = library.saved_adapter()
        if adapter is None or adapter.lend is None:
            raise SystemExit("the library's adapter has no lent captions: run sonarium adapt")
        lend_ids, rows, _ = adapter.lend
        pick = np.sort(np.random.default_rng(0).choice(len(lend_ids), args.sample, False))
        store = VectorStore(library.catalog)
        space = store.space(adapter.audio_space)
        ids, raw = store.file_vectors(space["id"], [int(f) for f in lend_ids[pick]])
    audio = adapter.audio_vectors.astype(np.float32)
    query = normalise((raw - adapter.mean) / adapter.std)
    k = rows.shape[1]
    exact = np.argsort(-(query @ audio.T), axis=1)[:, :k]
    at = np.searchsorted(lend_ids, ids)
    found = rows[at]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)])
    first = np.mean(exact[:, 0] == found[:, 0])
    print(json.dumps({"files": int(len(lend_ids)), "described_rows": int(len(audio)),
                      "sample": int(len(ids)), "k": int(k),
                      f"recall_at_{k}": round(float(recall), 4),
                      "nearest_found": round(float(first), 4)}))  # fmt: skip


if __name__ == "__main__":
    main()
