"""Adaptation (learning text search from names) and adapted text queries at library scale.

    python bench/adapt_bench.py [--files 100000] [--queries 50] [--steps 300]

Prints one JSON object. Builds a real catalog of --files synthetic files in a temporary
folder (SQL inserts of file rows named like a real library: 60% descriptive names made
of SFX words, 40% codes like `BL_0421`, in nested folders) with random clustered 512-d
vectors in an "aisfx" space, then times the product's engine.adapt.training.train_adapter end to
end (captions, the real all-MiniLM-L6-v2 encoding every caption, the contrastive heads)
and a retrain after 1% of the files were renamed (caption vectors reused), and the
latency of AdaptedTextSpace.rank (k=100) for uncached and cached queries.

Baseline in the same run: the bare sentence encoder over the same captions (the part no
implementation can skip), so the ratio says how much the adapter adds around it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapt.adapter import AdaptOptions  # noqa: E402
from engine.adapt.captions import build_captions, catalog_file_texts  # noqa: E402
from engine.adapt.text_space import AdaptedTextSpace  # noqa: E402
from engine.adapt.training import train_adapter  # noqa: E402
from engine.catalog.db import Catalog  # noqa: E402
from engine.catalog.vectors import VectorStore, normalise, to_blob  # noqa: E402
from engine.models.text_encoder import shared_encoder  # noqa: E402
from engine.search.similar import SimilarIndex  # noqa: E402

SOUNDS = ["door", "footsteps", "rain", "thunder", "glass", "engine", "dog", "crowd", "wind",
          "whoosh", "explosion", "bird", "water", "metal", "fire", "keyboard", "car",
          "gunshot", "heartbeat", "bell", "snare", "kick", "cymbal", "scream", "laugh"]  # fmt: skip
QUALITIES = ["slam", "creak", "distant", "heavy", "soft", "close", "loud", "muffled",
             "interior", "exterior", "short", "long", "wooden", "large", "small"]  # fmt: skip


def build_catalog(folder: Path, files: int, seed: int = 0) -> Catalog:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    catalog = Catalog(folder / "catalog.sqlite")
    root_id = catalog.add_root(str(folder / "sounds"))
    store = VectorStore(catalog)
    space_id = store.ensure_space("aisfx", "bench:v1", 512)
    centres = normalise(nprng.standard_normal((len(SOUNDS), 512)))
    now = time.time()
    with catalog.transaction() as c:
        for i in range(files):
            sound = rng.randrange(len(SOUNDS))
            sub = f"{folder}/sounds/{SOUNDS[sound].title()}/{rng.choice(QUALITIES).title()}"
            if rng.random() < 0.6:
                name = f"{SOUNDS[sound]}_{rng.choice(QUALITIES)}_{rng.choice(QUALITIES)}_{i}.wav"
            else:
                name = f"BL_{i:05d}.wav"
                sub = f"{folder}/sounds/Misc{i % 50}"
            path = f"{sub}/{name}"
            c.execute(
                "INSERT INTO files (id, root_id, path, folder, name, size, mtime_ns, status, "
                "scanned_at) VALUES (?, ?, ?, ?, ?, 1, 0, 'ok', ?)",
                (i + 1, root_id, path, sub, name, now),
            )
            vector = centres[sound] + 0.6 * nprng.standard_normal(512) / np.sqrt(512)
            c.execute(
                "INSERT INTO file_vectors (file_id, space_id, vector) VALUES (?, ?, ?)",
                (i + 1, space_id, to_blob(normalise(vector.reshape(1, -1))[0])),
            )
    return catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--steps", type=int, default=AdaptOptions().steps)
    args = parser.parse_args()
    options = AdaptOptions(steps=args.steps)
    tmp = Path(tempfile.mkdtemp(prefix="adapt-bench-"))
    try:
        began = time.perf_counter()
        catalog = build_catalog(tmp, args.files)
        build_s = time.perf_counter() - began
        encoder = shared_encoder()

        # Baseline: the bare encoder over the same captions.
        captions = sorted(set(build_captions(catalog_file_texts(catalog)).values()))
        began = time.perf_counter()
        for start in range(0, len(captions), 256):
            encoder.encode(captions[start : start + 256])
        encode_s = time.perf_counter() - began

        began = time.perf_counter()
        adapter = train_adapter(catalog, "aisfx", options, encoder=encoder)
        train_s = time.perf_counter() - began

        # Rename 1% of the described files, then retrain reusing caption vectors.
        with catalog.transaction() as c:
            c.execute(
                "UPDATE files SET name = 'renamed_' || name WHERE id % 100 = 0 "
                "AND name NOT LIKE 'BL_%'"
            )
        began = time.perf_counter()
        again = train_adapter(catalog, "aisfx", options, previous=adapter, encoder=encoder)
        retrain_s = time.perf_counter() - began

        index = SimilarIndex(catalog, tmp)
        space = AdaptedTextSpace(catalog, index, again, encoder=encoder)
        space.rank("warm up", 100)
        rng = random.Random(1)
        texts = [f"{rng.choice(QUALITIES)} {rng.choice(SOUNDS)} sound" for _ in range(args.queries)]
        texts = list(dict.fromkeys(texts))
        uncached, cached = [], []
        for text in texts:
            t0 = time.perf_counter()
            space.rank(text, 100)
            uncached.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            space.rank(text, 100)
            cached.append(time.perf_counter() - t0)
        catalog.close()
        result = {
            "files": args.files,
            "described_pairs": adapter.stats["pairs"],
            "distinct_captions": len(captions),
            "catalog_build_s": round(build_s, 1),
            "train_s": round(train_s, 1),
            "baseline_encode_only_s": round(encode_s, 1),
            "train_vs_encode_only": round(train_s / encode_s, 2) if encode_s else None,
            "retrain_after_1pct_renamed_s": round(retrain_s, 1),
            "retrain_encoded_captions": again.stats["encoded"],
            "rank_k100_uncached_ms_p50": round(1000 * statistics.median(uncached), 1),
            "rank_k100_cached_ms_p50": round(1000 * statistics.median(cached), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "steps": options.steps,
            "batch": options.batch,
        }
        path = tmp / "bench.adapter.npz"
        again.save(path)
        result["adapter_mb"] = round(path.stat().st_size / 1e6, 1)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
