"""Unchanged rescan of a large tree: the stat-only pass a user waits for at every start.

    python bench/rescan_bench.py [--files 200000] [--repeats 3] [--keep DIR]

Writes a tree of FILES small files (tiny WAV headers, 500 per folder, 20 libraries of
folders) and a catalog that already holds a row for each with its size and mtime, as a
finished scan leaves it (rows inserted directly: analysing 200,000 files first would
take an hour and measure something else). Then times `Scanner.scan()` on the unchanged
tree, which must list and stat everything and read nothing. Prints one JSON object with
the median. Target (issue 16): 200,000 files in 20 s or less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.catalog.db import Catalog  # noqa: E402
from engine.scan.scanner import Scanner  # noqa: E402
from tests.audio_factory import wav_bytes  # noqa: E402

PER_FOLDER = 500


def build_tree(root: Path, files: int) -> list[Path]:
    blob = wav_bytes(rate=8000)[:256]
    paths = []
    for i in range(files):
        folder = root / f"Library{i % 20:02d}" / f"Pack{i // (20 * PER_FOLDER):03d}"
        if i % (20 * PER_FOLDER) < 20:  # the first file of each folder makes it
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"SFX_{i:07d}.wav"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def build_catalog(folder: Path, root: Path, paths: list[Path]) -> Catalog:
    catalog = Catalog(folder / "catalog.sqlite")
    root_id = catalog.add_root(str(root))
    now = time.time()
    with catalog.transaction() as c:
        for i, path in enumerate(paths, start=1):
            st = os.stat(path)
            c.execute(
                "INSERT INTO files (id, root_id, path, folder, name, size, mtime_ns, status, "
                "scanned_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'ok', ?)",
                (i, root_id, str(path), str(path.parent), path.name, st.st_size,
                 st.st_mtime_ns, now),
            )  # fmt: skip
    return catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="build the tree here and keep it")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sonarium-rescan-"))
    root = Path(args.keep) if args.keep else work / "tree"
    started = time.perf_counter()
    paths = build_tree(root, args.files)
    build_s = time.perf_counter() - started
    catalog = build_catalog(work / "lib", root, paths)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = Scanner(catalog).scan()
        times.append(time.perf_counter() - start)
        assert report.touched == 0 and report.unchanged == args.files, report
    result = {
        "benchmark": "rescan",
        "files": args.files,
        "repeats": args.repeats,
        "rescan_seconds_median": round(statistics.median(times), 3),
        "rescan_seconds": [round(t, 3) for t in times],
        "rescan_files_per_second": round(args.files / statistics.median(times)),
        "target_seconds": 20,
        "tree_build_seconds": round(build_s, 1),
        "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    catalog.close()
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
