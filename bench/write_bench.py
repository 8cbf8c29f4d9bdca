"""Writing metadata into files: how long a verified write takes against copying the file.

    python bench/write_bench.py [--files 200] [--seconds 10] [--dir DIR]

Makes ``--files`` stereo 48 kHz 24-bit BWF files of ``--seconds`` each (noise), puts them
in a library, sets a description and keywords on all of them, and writes them
(`Library.write_metadata`: temporary copy, verification, fsync, rename). The same run
copies the same files with fsync (shutil.copyfile + fsync + rename: the floor for a
write that keeps the original until the new file is whole). Repeated ``--runs`` times,
alternating; prints medians as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_files(folder: Path, count: int, seconds: float) -> list[Path]:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    data = (0.2 * rng.standard_normal((int(48000 * seconds), 2))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"take_{i:04d}.wav"
        sf.write(str(path), data, 48000, subtype="PCM_24")
        paths.append(path)
    return paths


def copy_all(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        temp = path.with_name("." + path.name + ".copy")
        shutil.copyfile(path, temp)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()

    from engine.library import Library

    work = Path(args.dir or tempfile.mkdtemp(prefix="sonarium-write-"))
    paths = make_files(work / "sounds", args.files, args.seconds)
    writes, copies = [], []
    with Library(work / "library") as library:
        library.add_folders([work / "sounds"])
        library.scan()
        for run in range(args.runs):
            library.edit(paths, {"description": f"take, run {run}", "keywords": f"run{run}"})
            started = time.perf_counter()
            report = library.write_metadata()
            writes.append(time.perf_counter() - started)
            assert len(report["written"]) == len(paths), report["failed"][:3]
            copies.append(copy_all(paths))
    size = sum(p.stat().st_size for p in paths)
    write_s, copy_s = statistics.median(writes), statistics.median(copies)
    print(json.dumps({
        "files": len(paths), "megabytes": round(size / 1e6, 1), "runs": args.runs,
        "write_s": round(write_s, 3), "copy_s": round(copy_s, 3),
        "write_files_per_s": round(len(paths) / write_s, 1),
        "write_vs_copy": round(write_s / copy_s, 2),
        "write_runs_s": [round(w, 3) for w in writes],
        "copy_runs_s": [round(c, 3) for c in copies],
    }, indent=2))  # fmt: skip
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
