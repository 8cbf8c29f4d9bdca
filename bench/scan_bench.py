"""Scan benchmark: files/s, MB/s and peak RSS for a full scan of a generated library.

    python bench/scan_bench.py [--files 2400] [--repeats 3] [--keep DIR]

Prints one JSON object. Baseline measured in the same run: a bare loop that reads every
file whole with soundfile.read on one thread (decode cost alone, no catalog, peaks or
metadata). Reported numbers are medians over --repeats full scans into fresh catalogs;
the incremental rescan of an unchanged library is reported too.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.library import Library  # noqa: E402

FORMATS = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"),
           ("aiff", "PCM_16"), ("ogg", "VORBIS")]  # fmt: skip


def generate(root: Path, count: int) -> None:
    rng = np.random.default_rng(1)
    for i in range(count):
        ext, subtype = FORMATS[i % len(FORMATS)]
        rate = (44100, 48000, 96000)[i % 3]
        channels = 1 + (i % 2)
        seconds = float(rng.uniform(0.2, 4.0))
        n = int(seconds * rate)
        t = np.arange(n) / rate
        data = 0.3 * np.sin(2 * np.pi * rng.uniform(50, 5000) * t) * np.exp(-t * rng.uniform(0, 3))
        data = data + 0.05 * rng.standard_normal(n)
        frames = np.repeat(data[:, None], channels, axis=1).astype(np.float32)
        folder = root / f"pack{i % 20:02d}" / ("kicks", "doors", "ambience", "whoosh")[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"sound_{i:05d}.{ext}"), frames, rate, subtype=subtype)


def naive_decode(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        sf.read(str(path), dtype="float32")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="reuse/keep the generated library in this folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sonarium-bench-"))
    root = Path(args.keep) if args.keep else work / "library"
    if not root.exists() or not any(root.rglob("*.wav")):
        generate(root, args.files)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    total_bytes = sum(p.stat().st_size for p in files)

    baseline_times, scan_times, rescan_times = [], [], []
    for i in range(args.repeats):
        baseline_times.append(naive_decode(files))
        lib_dir = work / f"catalog{i}"
        with Library(lib_dir) as lib:
            lib.add_folders([root])
            start = time.perf_counter()
            report = lib.scan()
            scan_times.append(time.perf_counter() - start)
            assert report.added == len(files), report
            start = time.perf_counter()
            again = lib.scan()
            rescan_times.append(time.perf_counter() - start)
            assert again.touched == 0
        shutil.rmtree(lib_dir)

    scan = statistics.median(scan_times)
    base = statistics.median(baseline_times)
    rescan = statistics.median(rescan_times)
    result = {
        "benchmark": "scan",
        "files": len(files),
        "megabytes": round(total_bytes / 1e6, 1),
        "repeats": args.repeats,
        "scan_seconds_median": round(scan, 3),
        "scan_files_per_second": round(len(files) / scan, 1),
        "scan_megabytes_per_second": round(total_bytes / 1e6 / scan, 1),
        "rescan_seconds_median": round(rescan, 3),
        "rescan_files_per_second": round(len(files) / rescan, 1),
        "baseline": "soundfile.read of every file, one thread, no catalog",
        "baseline_files_per_second": round(len(files) / base, 1),
        "scan_vs_baseline": round(base / scan, 2),
        "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
