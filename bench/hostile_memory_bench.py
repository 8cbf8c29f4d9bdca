"""Memory per hostile file: peak resident memory added by scanning one file's header and
audio (engine.scan.analyze) and by decoding and resampling it for the models, one file
per fresh process, after a warm-up (libraries loaded, thread pools started).

    python bench/hostile_memory_bench.py [--repeats 3]

Linux only (reads VmHWM after resetting it through /proc/self/clear_refs). Prints one
JSON object: per case the median added peak in MB for analyze and for decode+resample
(to 44.1, 48 and 22.05 kHz), and the seconds each took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.audio_factory import tone, write  # noqa: E402

CASES = {
    "44.1k_stereo_20s": (44_100, 2, 20.0),
    "pulldown_44056_20s": (44_056, 1, 20.0),
    "pulldown_47952_stereo_20s": (47_952, 2, 20.0),
    "odd_44099_20s": (44_099, 1, 20.0),
    "256ch_48k_4s": (48_000, 256, 4.0),
    "768k_50s": (768_000, 1, 50.0),
}

_PROBE = """
import json, sys, time
import numpy as np
from engine.audio.decode import decode_mono
from engine.audio.resample import resample
from engine.scan.analyze import analyze

warm = sys.argv[1]
analyze(warm, 0); resample(decode_mono(warm)[0], 48000, 44100)

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

out = {}
reset(); base = hwm(); t = time.perf_counter()
row = analyze(sys.argv[2], 0).record
out["analyze_s"] = time.perf_counter() - t
out["analyze_mb"] = hwm() - base
assert row["status"] == "ok", row
reset(); base = hwm(); t = time.perf_counter()
audio, rate = decode_mono(sys.argv[2])
for target in (44100, 48000, 22050):
    resample(audio, rate, target)
out["embed_input_s"] = time.perf_counter() - t
out["embed_input_mb"] = hwm() - base
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = str(write(Path(tmp) / "warm.wav", tone(0.5, 48_000), 48_000))
        for name, (rate, channels, seconds) in CASES.items():
            path = str(write(Path(tmp) / f"{name}.wav", tone(seconds, rate, channels), rate))
            runs = []
            for _ in range(args.repeats):
                proc = subprocess.run(
                    [sys.executable, "-c", _PROBE, warm, path],
                    capture_output=True, text=True, cwd=root, check=True,
                )  # fmt: skip
                runs.append(json.loads(proc.stdout))
            results[name] = {
                "file_mb": round(Path(path).stat().st_size / 2**20, 1),
                **{k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
            }
    print(json.dumps({"repeats": args.repeats, "cases": results}, indent=2))


if __name__ == "__main__":
    main()
