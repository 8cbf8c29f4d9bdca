"""Scan benchmark: files/s, MB/s and peak RSS for a full scan of a library.

    python bench/scan_bench.py [--files 2400] [--repeats 3] [--keep DIR | --folder DIR]
                               [--jobs N]

Prints one JSON object. `--folder` scans an existing folder (the dev corpus) instead of
a generated one. Each repeat, into fresh catalogs: the scan with N worker processes
(the product's default for a large scan), the same N workers as threads, and one thread
(the single-process scan); baselines in the same run: soundfile.read of every file whole
in one thread, and in N worker processes (the floor for decoding alone, pool start
included as the scan's is). Medians over --repeats; the unchanged rescan too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.catalog.db import Catalog  # noqa: E402
from engine.config import AUDIO_SUFFIXES, scan_jobs  # noqa: E402
from engine.scan.scanner import Scanner  # noqa: E402

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


def read_whole(path: str) -> int:
    try:
        return len(sf.read(path, dtype="float32")[0])
    except Exception:  # an unreadable file costs its attempt, as in the scan
        return 0


def naive_decode(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        read_whole(str(path))
    return time.perf_counter() - start


def parallel_decode(files: list[Path], jobs: int) -> float:
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        list(pool.map(read_whole, [str(p) for p in files], chunksize=8))
    return time.perf_counter() - start


def timed_scan(folder: Path, root: Path, **kwargs) -> tuple[float, float, int]:
    """(scan seconds, unchanged rescan seconds, files added) into a fresh catalog."""
    catalog = Catalog(folder / "catalog.sqlite")
    catalog.add_root(str(root))
    start = time.perf_counter()
    report = Scanner(catalog, **kwargs).scan()
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = Scanner(catalog, **kwargs).scan()
    rescan = time.perf_counter() - start
    assert again.touched == 0, again
    catalog.close()
    shutil.rmtree(folder)
    return seconds, rescan, report.added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="reuse/keep the generated library in this folder")
    parser.add_argument("--folder", help="scan this existing folder instead")
    parser.add_argument("--jobs", type=int, default=scan_jobs())
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sonarium-bench-"))
    if args.folder:
        root = Path(args.folder)
    else:
        root = Path(args.keep) if args.keep else work / "library"
        if not root.exists() or not any(root.rglob("*.wav")):
            generate(root, args.files)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    total_bytes = sum(p.stat().st_size for p in files)

    times: dict[str, list[float]] = {
        k: [] for k in ("processes", "threads", "single", "decode", "decode_parallel", "rescan")
    }
    added = set()
    for i in range(args.repeats):
        times["decode"].append(naive_decode(files))
        times["decode_parallel"].append(parallel_decode(files, args.jobs))
        for name, kwargs in (
            ("processes", {"workers": args.jobs, "processes": True}),
            ("threads", {"workers": args.jobs, "processes": False}),
            ("single", {"workers": 1, "processes": False}),
        ):
            seconds, rescan, count = timed_scan(work / f"{name}{i}", root, **kwargs)
            times[name].append(seconds)
            added.add(count)
            if name == "processes":
                times["rescan"].append(rescan)

    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(files)
    result = {
        "benchmark": "scan",
        "folder": str(root) if args.folder else "generated",
        "files": n,
        "files_added": sorted(added),
        "megabytes": round(total_bytes / 1e6, 1),
        "jobs": args.jobs,
        "repeats": args.repeats,
        "scan_seconds_median": round(med["processes"], 3),
        "scan_files_per_second": round(n / med["processes"], 1),
        "scan_megabytes_per_second": round(total_bytes / 1e6 / med["processes"], 1),
        "threads_files_per_second": round(n / med["threads"], 1),
        "single_files_per_second": round(n / med["single"], 1),
        "speedup_vs_single": round(med["single"] / med["processes"], 2),
        "speedup_vs_threads": round(med["threads"] / med["processes"], 2),
        "rescan_seconds_median": round(med["rescan"], 3),
        "rescan_files_per_second": round(n / med["rescan"], 1),
        "baseline": "soundfile.read of every file whole: one thread, and --jobs processes",
        "baseline_files_per_second": round(n / med["decode"], 1),
        "parallel_decode_files_per_second": round(n / med["decode_parallel"], 1),
        "scan_vs_parallel_decode": round(med["processes"] / med["decode_parallel"], 2),
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_worker_rss_megabytes": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
