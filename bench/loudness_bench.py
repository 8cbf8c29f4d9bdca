"""Sonarium's loudness readout against the reference library, on real files.

    python bench/loudness_bench.py FOLDER [--files 12] [--seed 1]

Picks --files audio files under FOLDER (seeded; up to 5 channels, at least 0.4 s, any
format), and for each prints Sonarium's block-by-block measurement
(engine.audio.loudness.measure, as the detail pane and `loudness` read it, and the
scanner's quick true peak) beside pyloudnorm's integrated loudness of the whole decoded
file, with the largest difference and the time each took. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.audio.loudness import measure  # noqa: E402
from engine.config import AUDIO_SUFFIXES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    random.Random(args.seed).shuffle(files)
    rows = []
    for path in files:
        if len(rows) >= args.files:
            break
        try:
            info = sf.info(str(path))
            if info.channels > 5 or info.duration < 0.4:
                continue
            data, rate = sf.read(str(path), dtype="float64", always_2d=True)
        except Exception:
            continue
        began = time.perf_counter()
        reference = pyloudnorm.Meter(rate).integrated_loudness(data)
        ref_s = time.perf_counter() - began
        began = time.perf_counter()
        ours = measure(path)
        ours_s = time.perf_counter() - began
        quick = measure(path, quick=True)
        if not np.isfinite(reference):
            continue
        rows.append({
            "file": str(path.relative_to(args.folder)), "format": info.format,
            "rate": rate, "channels": info.channels, "seconds": round(info.duration, 2),
            "pyloudnorm_lufs": round(float(reference), 3),
            "sonarium_lufs": round(ours.integrated_lufs, 3),
            "true_peak_dbtp": round(ours.true_peak_dbtp, 2),
            "quick_true_peak_dbtp": round(quick.true_peak_dbtp, 2),
            "sample_peak_dbfs": round(ours.sample_peak_dbfs, 2),
            "pyloudnorm_s": round(ref_s, 3), "sonarium_s": round(ours_s, 3),
        })  # fmt: skip
    diffs = [abs(r["pyloudnorm_lufs"] - r["sonarium_lufs"]) for r in rows]
    peaks = [abs(r["true_peak_dbtp"] - r["quick_true_peak_dbtp"]) for r in rows]
    print(json.dumps({
        "files": rows, "max_lufs_difference": max(diffs) if diffs else None,
        "max_quick_true_peak_difference_db": max(peaks) if peaks else None,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
