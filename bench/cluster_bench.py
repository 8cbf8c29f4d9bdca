"""Embedding the same files locally and on a Ray cluster with 1 and 2 workers, one run.

    python bench/cluster_bench.py [--files 120] [--folder DIR] [--space aisfx] [--repeats 1]

Prints one JSON object. Each mode scans the files into a fresh library (not timed) and
then times the embedding alone: the local pipeline (engine.embed.pipeline.Embedder, the
machine's cores), and engine.embed.cluster.ClusterEmbedder on a local Ray (started once,
with as many CPUs as the machine has) with 1 and with 2 actors of one CPU each. The
ratios are each cluster mode's time over the local one in the same run. When CUDA is
available, the local pipeline and a one-GPU actor are timed on it as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_folder(root: Path, files: int) -> Path:
    """`files` sounds of 1-6 s (tones and noise bursts), 44.1 kHz."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        seconds = rng.uniform(1, 6)
        t = np.arange(int(44100 * seconds)) / 44100
        data = 0.3 * np.sin(2 * np.pi * rng.uniform(60, 4000) * t) * np.exp(-t * rng.uniform(0, 2))
        data += 0.05 * rng.standard_normal(len(t))
        sf.write(str(root / f"clip_{i:04d}.wav"), data.astype(np.float32), 44100)
    return root


def timed_embed(folder: Path, work: Path, space_name: str, mode: str, device: str) -> dict:
    from engine.embed.cluster import ClusterEmbedder
    from engine.embed.pipeline import Embedder
    from engine.library import Library
    from engine.models.spaces import make_space

    library = Library(work / f"lib-{mode}-{time.monotonic_ns()}")
    library.add_folders([folder])
    library.scan()
    space = make_space(space_name, device)
    began = time.perf_counter()
    if mode == "local":
        report = Embedder(library.catalog, [space]).run()
    else:
        workers = int(mode.split("-")[1])
        report = ClusterEmbedder(
            library.catalog, [space], device=device, workers=workers,
            gpus_per_worker=1.0 if device.startswith("cuda") else 0.0,
        ).run()  # fmt: skip
    seconds = time.perf_counter() - began
    library.close()
    return {"seconds": seconds, "files": report.files, "audio_seconds": report.audio_seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--space", default="aisfx")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import ray
    import torch

    work = Path(tempfile.mkdtemp(prefix="sonarium-cluster-bench-"))
    try:
        folder = args.folder or make_folder(work / "sounds", args.files)
        ray.init(num_cpus=os.cpu_count(), logging_level=logging.WARNING, log_to_driver=False)
        runs: dict[str, list[dict]] = {}
        modes = [("local", "cpu"), ("ray-1", "cpu"), ("ray-2", "cpu")]
        if torch.cuda.is_available():
            modes += [("local", "cuda"), ("ray-1", "cuda")]
        for _ in range(args.repeats):
            for mode, device in modes:
                key = f"{mode}-{device}"
                runs.setdefault(key, []).append(timed_embed(folder, work, args.space, mode, device))
        ray.shutdown()
        result: dict = {"space": args.space, "cpus": os.cpu_count(), "modes": {}}
        for key, values in runs.items():
            seconds = statistics.median(v["seconds"] for v in values)
            result["modes"][key] = {
                "seconds_median": round(seconds, 2),
                "files": values[0]["files"],
                "files_per_s": round(values[0]["files"] / seconds, 1),
                "audio_s_per_s": round(values[0]["audio_seconds"] / seconds, 1),
            }
        local = result["modes"]["local-cpu"]["seconds_median"]
        result["time_over_local"] = {
            key: round(m["seconds_median"] / local, 2)
            for key, m in result["modes"].items() if key != "local-cpu"
        }  # fmt: skip
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
