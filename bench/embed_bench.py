"""aisfx embedding throughput: the pipeline against a naive one-file-at-a-time loop.

    python bench/embed_bench.py [--files 240] [--repeats 3] [--library DIR]

Prints one JSON object. Both sides do the same work per file (decode, mono, resample to
44.1 kHz, features, network, file vector) on the same files in the same run: the
pipeline (engine.embed.pipeline.Embedder: decode workers, cross-file batches of blocks, one
writer) and a plain loop that embeds each file on its own. Files come from --library
(a folder of audio, e.g. the shared corpus) or are generated: mostly short one-shots,
some longer ambiences, mixed sample rates. Medians over --repeats runs.
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.audio.decode import decode_mono  # noqa: E402
from engine.audio.resample import resample  # noqa: E402
from engine.embed.pipeline import Embedder  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.models.aisfx.features import AisfxFeatures, embed_blocks, max_pooled_vector  # noqa: E402
from engine.models.aisfx.model import SAMPLE_RATE, load_aisfx  # noqa: E402
from engine.models.aisfx.space import AisfxSpace  # noqa: E402


def generate(root: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(2)
    paths = []
    for i in range(count):
        rate = (44100, 48000, 22050, 96000)[i % 4]
        seconds = float(rng.uniform(8, 30) if i % 5 == 0 else rng.uniform(0.2, 2.0))
        n = int(seconds * rate)
        t = np.arange(n) / rate
        data = np.sin(2 * np.pi * rng.uniform(60, 4000) * t) * np.exp(-t * rng.uniform(0.2, 4))
        data = (0.4 * data + 0.05 * rng.standard_normal(n)).astype(np.float32)
        path = root / f"s{i:04d}.wav"
        sf.write(str(path), data, rate)
        paths.append(path)
    return paths


def naive(paths: list[Path], net, features: AisfxFeatures) -> float:
    start = time.perf_counter()
    for path in paths:
        audio, rate = decode_mono(path)
        clip = resample(audio, rate, SAMPLE_RATE)
        blocks = features.blocks(torch.from_numpy(clip))
        max_pooled_vector(embed_blocks(net, blocks))
    return time.perf_counter() - start


def pipeline(paths_root: Path, work: Path, i: int) -> tuple[float, dict]:
    lib_dir = work / f"lib{i}"
    with Library(lib_dir) as lib:
        lib.add_folders([paths_root])
        lib.scan()
        start = time.perf_counter()
        report = Embedder(lib.catalog, [AisfxSpace(device="cpu")]).run()
        elapsed = time.perf_counter() - start
    shutil.rmtree(lib_dir)
    return elapsed, report.stage_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--library", help="embed this folder's audio instead of generated files")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sonarium-embed-bench-"))
    if args.library:
        root = Path(args.library)
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    else:
        root = work / "audio"
        root.mkdir()
        paths = generate(root, args.files)
    seconds = sum(sf.info(str(p)).duration for p in paths)
    net = load_aisfx(device="cpu")
    features = AisfxFeatures()
    naive(paths[:5], net, features)  # warm-up: first calls allocate and tune kernels

    naive_times, pipe_times, stages = [], [], []
    for i in range(args.repeats):
        naive_times.append(naive(paths, net, features))
        elapsed, stage = pipeline(root, work, i)
        pipe_times.append(elapsed)
        stages.append(stage)
    pipe, base = statistics.median(pipe_times), statistics.median(naive_times)
    print(
        json.dumps(
            {
                "benchmark": "aisfx_embedding",
                "files": len(paths),
                "audio_seconds": round(seconds, 1),
                "torch_threads": torch.get_num_threads(),
                "repeats": args.repeats,
                "pipeline_seconds_median": round(pipe, 2),
                "pipeline_files_per_second": round(len(paths) / pipe, 2),
                "pipeline_audio_seconds_per_second": round(seconds / pipe, 1),
                "naive_seconds_median": round(base, 2),
                "naive_files_per_second": round(len(paths) / base, 2),
                "speedup_vs_naive": round(base / pipe, 2),
                "pipeline_stage_seconds_last_run": {k: round(v, 2) for k, v in stages[-1].items()},
                "peak_rss_megabytes": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
