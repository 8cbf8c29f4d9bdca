"""Sonarium at studio scale: a catalog of N files built through the product's code paths,
then queried the way the app queries it, in a fresh process.

    python bench/scale_bench.py [--files 100000] [--real LIBRARY_DIR ...] [--keep DIR]

Prints one JSON object. The build writes, through the product's own code:
- file rows with realistic names and folders (`Catalog.write_file`: the row, its peaks
  and its FTS entry), 60% named from sound-design words, 40% codes (`BL_0421.wav`), in
  vendor/category/subcategory folders, with durations, rates and channels;
- an aisfx file vector and 3 window vectors per file (`VectorStore.store`). With
  `--real` the vectors are real-shaped: each is a real library vector moved by a
  difference of two other real vectors (so the spread has the real covariance, not an
  isotropic one); without it, points around random unit centres;
- the learned adapter (`Library.adapt`: captions, the real sentence encoder, training);
- the FAISS index and whitening map (`SimilarIndex`, on the first query).

Then a fresh process (`--measure`) opens the library as the app does and times, each
with p50/p95 over --queries queries: a multi-word keyword query, a filter-only query
(`dur:<2 sr:48k`), a hybrid text query uncached and cached (the app's result limit),
find-similar on a library file, and a page of 50 results' waveforms; plus the time from
its start to its first answered text query and its peak RSS. `--keep DIR` builds into
DIR (or reuses the library there when it holds --files files), so measuring again does
not rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import PROCESS_ENVIRONMENT, RESULT_PAGE  # noqa: E402

SOUNDS = ["door", "footsteps", "rain", "thunder", "glass", "engine", "dog", "crowd", "wind",
          "whoosh", "explosion", "bird", "water", "metal", "fire", "keyboard", "car",
          "gunshot", "heartbeat", "bell", "snare", "kick", "cymbal", "scream", "laugh",
          "creature", "sword", "punch", "helicopter", "train", "ambience", "drone", "click",
          "beep", "alarm", "siren", "cloth", "paper", "wood", "stone"]  # fmt: skip
QUALITIES = ["slam", "creak", "distant", "heavy", "soft", "close", "loud", "muffled",
             "interior", "exterior", "short", "long", "wooden", "large", "small", "hit",
             "impact", "scrape", "roll", "drop", "squeak", "crash", "rattle", "hum"]  # fmt: skip
VENDORS = ["BoomLibrary", "SoundIdeas", "ProSoundEffects", "Hollywood Edge", "SoundMorph",
           "Field Recordings", "Foley Sessions", "Archive"]  # fmt: skip
RATES = [44_100, 48_000, 48_000, 96_000]
WINDOWS = 3
PAGE = 50


def file_names(count: int, seed: int):
    """(folder below the root, name, sound index) for `count` files, seeded."""
    rng = random.Random(seed)
    for i in range(count):
        sound = rng.randrange(len(SOUNDS))
        vendor = VENDORS[rng.randrange(len(VENDORS))]
        if rng.random() < 0.6:
            quality = rng.choice(QUALITIES)
            sub = f"{vendor}/{SOUNDS[sound].title()}/{quality.title()}"
            name = f"{SOUNDS[sound]}_{quality}_{rng.choice(QUALITIES)}_{i:07d}.wav"
        else:
            sub = f"{vendor}/Disc {i % 97:02d}"
            name = f"BL_{i:07d}.wav"
        yield sub, name, sound


class Shapes:
    """Where synthetic vectors come from: real library vectors or random centres."""

    def __init__(self, real: list[Path], dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.real = None
        if real:
            from engine.catalog.db import Catalog
            from engine.catalog.vectors import VectorStore

            parts = []
            for library in real:
                catalog = Catalog(library / "catalog.sqlite")
                store = VectorStore(catalog)
                space = store.space("aisfx")
                if space is not None:
                    parts.append(store.all_file_vectors(space["id"])[1])
                catalog.close()
            self.real = np.vstack([p for p in parts if len(p)]).astype(np.float32)
            if self.real.shape[1] != dim:
                raise SystemExit(f"--real vectors are {self.real.shape[1]}-d, not {dim}")
        else:
            centres = self.rng.standard_normal((len(SOUNDS) * 8, dim)).astype(np.float32)
            self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def sample(self, sounds: np.ndarray) -> np.ndarray:
        n = len(sounds)
        if self.real is not None:
            r = self.real
            a = self.rng.integers(len(r), size=n)
            b, c = self.rng.integers(len(r), size=(2, n))
            out = r[a] + 0.35 * (r[b] - r[c])
        else:
            which = sounds * 8 + self.rng.integers(8, size=n)
            noise = self.rng.standard_normal((n, self.centres.shape[1])).astype(np.float32)
            out = self.centres[which] + 0.05 * noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def build(folder: Path, files: int, real: list[Path], seed: int = 0) -> dict:
    """The library in `folder`, built through the product's code; build timings."""
    from engine.catalog.vectors import VectorStore
    from engine.library import Library
    from engine.models.spaces import make_space
    from engine.scan.peaks import DETAIL_BUCKETS, OVERVIEW_BUCKETS, encode_peaks

    timings: dict[str, float] = {}
    space = make_space("aisfx", "cpu")
    library = Library(folder)
    root = str(folder / "sounds")
    root_id = library.catalog.add_root(root)
    store = VectorStore(library.catalog)
    space_id = store.ensure_space("aisfx", space.identity(), space.dim)
    shapes = Shapes(real, space.dim, seed)
    rng = np.random.default_rng(seed + 1)
    wave = [
        (encode_peaks(-m[:OVERVIEW_BUCKETS], m[:OVERVIEW_BUCKETS]), encode_peaks(-m, m))
        for m in rng.uniform(0, 1, size=(64, DETAIL_BUCKETS)).astype(np.float32)
    ]
    now = time.time()
    began = time.perf_counter()
    chunk: list[tuple[str, str, int]] = []
    names = file_names(files, seed)
    done = 0
    while done < files:
        chunk = [next(names) for _ in range(min(5000, files - done))]
        vectors = shapes.sample(np.array([s for _, _, s in chunk]))
        noise = rng.standard_normal((len(chunk), WINDOWS, space.dim)).astype(np.float32)
        windows = vectors[:, None, :] + 0.03 * noise
        with library.catalog.transaction():
            for i, (sub, name, _) in enumerate(chunk):
                n = done + i
                duration = float(rng.choice([0.4, 1.2, 2.5, 6.0, 30.0, 120.0]))
                rate = RATES[n % len(RATES)]
                record = {
                    "root_id": root_id, "path": f"{root}/{sub}/{name}", "folder": f"{root}/{sub}",
                    "name": name, "size": int(duration * rate * 4), "mtime_ns": n,
                    "fingerprint": f"{n:016x}", "format": "WAV", "subtype": "PCM_24",
                    "sample_rate": rate, "channels": 1 + n % 2, "frames": int(duration * rate),
                    "duration": duration, "bit_depth": 24, "peak_db": -3.0, "rms_db": -20.0,
                    "status": "ok", "scanned_at": now,
                }  # fmt: skip
                file_id = library.catalog.write_file(record, wave[n % len(wave)])
                assert file_id is not None
                span = duration / WINDOWS
                store.store(
                    space_id, file_id, vectors[i],
                    [(w * span, (w + 1) * span, windows[i, w]) for w in range(WINDOWS)],
                )  # fmt: skip
        done += len(chunk)
        print(f"built {done}/{files}", file=sys.stderr, flush=True)
    library.catalog.mark_root_scanned(root_id)
    timings["catalog_build_s"] = time.perf_counter() - began
    began = time.perf_counter()
    library.adapt()
    timings["adapter_train_s"] = time.perf_counter() - began
    began = time.perf_counter()
    library.similar_ids(1, 10, "aisfx")  # builds and saves the index and whitening
    timings["index_build_s"] = time.perf_counter() - began
    library.close()
    return {k: round(v, 1) for k, v in timings.items()}


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return round(float(np.percentile(ms, 50)), 1), round(float(np.percentile(ms, 95)), 1)


def measure(folder: Path, queries: int, started: float, limit: int) -> dict:
    """Runs in a fresh process: open the library as the app does and time queries."""
    from engine.library import Library

    library = Library(folder)
    library.adapt_on_demand = False  # the app never learns on a query
    rng = random.Random(7)
    texts = list(
        dict.fromkeys(f"{rng.choice(QUALITIES)} {rng.choice(SOUNDS)}" for _ in range(4 * queries))
    )[:queries]
    first = library.search("heavy metal door slam", limit=limit)
    first_s = time.time() - started
    assert first, "the first text query found nothing"
    out: dict = {"first_query_s": round(first_s, 2), "first_query_results": len(first)}
    series: dict[str, list[float]] = {k: [] for k in ("keyword", "filter", "text", "cached",
                                                      "similar", "page")}  # fmt: skip
    ids = [r[0] for r in library.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
    paths = dict(library.catalog.conn.execute("SELECT id, path FROM files"))
    counts = {"keyword": [], "filter": [], "text": []}
    for text in texts:
        words = f"{text} {rng.choice(QUALITIES)}"
        t0 = time.perf_counter()
        found = library.search(words, limit=limit, mode="keyword")
        series["keyword"].append(time.perf_counter() - t0)
        counts["keyword"].append(len(found))
        t0 = time.perf_counter()
        found = library.search("dur:<2 sr:48k", limit=limit)
        series["filter"].append(time.perf_counter() - t0)
        counts["filter"].append(len(found))
        t0 = time.perf_counter()
        found = library.search(text, limit=limit)
        series["text"].append(time.perf_counter() - t0)
        counts["text"].append(len(found))
        t0 = time.perf_counter()
        library.search(text, limit=limit)
        series["cached"].append(time.perf_counter() - t0)
        file_id = ids[rng.randrange(len(ids))]
        t0 = time.perf_counter()
        library.similar(paths[file_id], limit=200)
        series["similar"].append(time.perf_counter() - t0)
        page = [r.id for r in found[:PAGE]]
        t0 = time.perf_counter()
        library.overview_peaks(page)
        series["page"].append(time.perf_counter() - t0)
    names = {"keyword": "keyword", "filter": "filter", "text": "text",
             "cached": "text_cached", "similar": "similar", "page": "page_waveforms"}  # fmt: skip
    for key, name in names.items():
        p50, p95 = percentiles(series[key])
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = p50, p95
    for key, values in counts.items():
        out[f"{key}_results_median"] = int(statistics.median(values))
    out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    library.close()
    return out


def sizes(folder: Path, files: int) -> dict:
    def mb(path: Path) -> float:
        return round(path.stat().st_size / 1e6, 1) if path.exists() else 0.0

    catalog = folder / "catalog.sqlite"
    side = {p.name: mb(p) for p in sorted(folder.iterdir()) if p.is_file()}
    adapter = sum(v for k, v in side.items() if "adapter" in k)
    return {"catalog_mb": mb(catalog), "adapter_mb": round(adapter, 1), "side_files_mb": side}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--real", type=Path, nargs="*", default=[])
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--limit", type=int, default=RESULT_PAGE, help="results asked per query")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.queries, args.started, args.limit)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="sonarium-scale-"))
    try:
        result: dict = {"limit": args.limit}
        stamp = folder / "scale-bench.json"
        built = json.loads(stamp.read_text()) if stamp.exists() else None
        if built is None or built.get("files") != args.files:
            if folder.exists() and args.keep:
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
            built = {"files": args.files, "real_shaped": [str(p) for p in args.real]}
            built.update(build(folder, args.files, args.real))
            stamp.write_text(json.dumps(built))
        result.update(built)
        started = time.time()
        # The query process starts as the app's does (engine.config.prepare_process).
        env = {**PROCESS_ENVIRONMENT, **os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(folder), "--started", str(started),
             "--queries", str(args.queries), "--limit", str(args.limit)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if child.returncode != 0:
            raise SystemExit(f"measuring failed:\n{child.stderr[-4000:]}")
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
        result.update(sizes(folder, args.files))
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
