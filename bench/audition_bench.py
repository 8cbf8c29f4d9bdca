"""Audition start-latency benchmark: from `play()` returning to the first audible sample.

    python bench/audition_bench.py [--repeats 10] [--keep DIR]

The output stream is a fake whose callback a thread runs at the real block period
(block_frames / rate), so a latency includes the feeder's open + decode + resample and
the wait for the next device block, as with a real device. Five generated files (short
WAV, 10 min FLAC, 96 kHz WAV that needs resampling, 6-channel WAV, Ogg Vorbis) are played
--repeats times each, interleaved, after one warm-up play each.

Baseline measured in the same run, on the same clocked stream: a naive player that reads
the whole file with soundfile, downmixes and resamples it whole (torchaudio), then serves
the first block. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.audio.player import Player, channel_matrix  # noqa: E402

RATE = 48000
BLOCK = 512
TARGET_MEDIAN_MS = 30.0

# name, rate, channels, seconds, subtype, format
FILES = [
    ("short.wav", 48000, 2, 1.0, "PCM_16", "WAV"),
    ("long_10min.flac", 48000, 2, 600.0, "PCM_16", "FLAC"),
    ("hires_96k.wav", 96000, 2, 20.0, "PCM_24", "WAV"),
    ("surround_6ch.wav", 48000, 6, 20.0, "PCM_24", "WAV"),
    ("clip.ogg", 44100, 2, 20.0, "VORBIS", "OGG"),
]


def generate(root: Path) -> list[Path]:
    """Noise plus a tone, audible from the first sample; written in 10 s blocks."""
    rng = np.random.default_rng(1)
    paths = []
    for name, rate, channels, seconds, subtype, fmt in FILES:
        path = root / name
        paths.append(path)
        total = int(seconds * rate)
        with sf.SoundFile(str(path), "w", rate, channels, subtype=subtype, format=fmt) as f:
            for start in range(0, total, 10 * rate):
                n = min(10 * rate, total - start)
                t = (start + np.arange(n)) / rate
                tone = 0.2 * np.sin(2 * np.pi * 440.0 * t)
                data = tone[:, None] + 0.1 * rng.uniform(-1, 1, (n, channels))
                data[0] = 0.25  # a non-zero first frame even after lossy coding
                f.write(data.astype(np.float32))
    return paths


class ClockedStream:
    """Fake output stream: a thread calls the callback every block period, like a device,
    and timestamps the first non-silent block after `arm()`."""

    def __init__(self, samplerate, channels, callback, finished_callback) -> None:
        self.samplerate = samplerate
        self.channels = channels
        self.callback = callback
        self.active = False
        self.heard = threading.Event()
        self.heard_at = 0.0
        self.silent_blocks = 0
        self._armed = False
        self._quit = False
        self._thread = threading.Thread(target=self._clock, daemon=True)

    def start(self) -> None:
        self.active = True
        self._thread.start()

    def stop(self) -> None:
        self._quit = True
        self.active = False

    def close(self) -> None:
        self.stop()

    def arm(self) -> None:
        self.heard.clear()
        self._armed = True

    def wait_silent(self, blocks: int = 3, timeout: float = 5.0) -> None:
        deadline = time.perf_counter() + timeout
        self.silent_blocks = 0
        while self.silent_blocks < blocks and time.perf_counter() < deadline:
            time.sleep(0.002)

    def _clock(self) -> None:
        period = BLOCK / self.samplerate
        out = np.zeros((BLOCK, self.channels), dtype=np.float32)
        due = time.perf_counter()
        while not self._quit:
            self.callback(out, BLOCK, None, None)
            if out.any():
                self.silent_blocks = 0
                if self._armed:
                    self.heard_at = time.perf_counter()
                    self._armed = False
                    self.heard.set()
            else:
                self.silent_blocks += 1
            due += period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                due = time.perf_counter()  # fell behind: like an xrun, restart the clock


class NaivePlayer:
    """Baseline: decode and resample the whole file, then play it from memory."""

    def __init__(self) -> None:
        self.stream = ClockedStream(RATE, 2, self._callback, lambda: None)
        self._audio: np.ndarray | None = None
        self._pos = 0
        self._jobs: list[Path] = []
        self._wake = threading.Event()
        threading.Thread(target=self._worker, daemon=True).start()
        self.stream.start()

    def play(self, path: Path) -> None:
        self._jobs.append(path)
        self._wake.set()

    def stop(self) -> None:
        self._audio = None

    def _worker(self) -> None:
        import torch
        import torchaudio

        while True:
            self._wake.wait()
            self._wake.clear()
            while self._jobs:
                path = self._jobs.pop(0)
                data, rate = sf.read(str(path), dtype="float32", always_2d=True)
                m = channel_matrix(data.shape[1], 2)
                if m is not None:
                    data = data @ m
                if rate != RATE:
                    t = torchaudio.functional.resample(torch.from_numpy(data.T.copy()), rate, RATE)
                    data = t.numpy().T
                self._pos = 0
                self._audio = np.ascontiguousarray(data, dtype=np.float32)

    def _callback(self, out, frames, time_info, status) -> None:
        audio = self._audio
        if audio is None:
            out.fill(0)
            return
        n = max(0, min(frames, len(audio) - self._pos))
        out[:n] = audio[self._pos : self._pos + n]
        out[n:] = 0
        self._pos += n


def measure(play, stop, stream_of, paths: list[Path], repeats: int) -> dict:
    per_file: dict[str, list[float]] = {p.name: [] for p in paths}
    rng = np.random.default_rng(2)
    for rep in range(repeats + 1):
        for path in paths:
            stop()
            stream = stream_of()
            stream.wait_silent()
            # Clicks land anywhere in a device period, not just after a block.
            time.sleep(rng.uniform(0, BLOCK / RATE))
            stream.arm()
            play(path)
            t0 = time.perf_counter()
            if not stream.heard.wait(30):
                raise RuntimeError(f"{path.name}: no sound within 30 s")
            if rep:  # the first round warms caches and imports
                per_file[path.name].append((stream.heard_at - t0) * 1000)
    stop()
    return summarize(per_file)


def summarize(per_file: dict[str, list[float]]) -> dict:
    every = [x for xs in per_file.values() for x in xs]
    return {
        "plays": len(every),
        "median_ms": round(statistics.median(every), 2),
        "p95_ms": round(float(np.percentile(every, 95)), 2),
        "max_ms": round(max(every), 2),
        "per_file_median_ms": {k: round(statistics.median(v), 2) for k, v in per_file.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10, help="measured plays per file")
    parser.add_argument("--keep", type=Path, help="generate files here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sonarium-audition-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        paths = generate(root)
        streams: list[ClockedStream] = []

        def factory(samplerate, channels, callback, finished_callback):
            streams.append(ClockedStream(samplerate, channels, callback, finished_callback))
            return streams[-1]

        player = Player(stream_factory=factory, block_frames=BLOCK, samplerate=RATE)
        player.play(paths[0])  # opens the stream
        player.wait_for_state("playing", 10)
        ours = measure(player.play, player.stop, lambda: streams[-1], paths, args.repeats)
        player.close()

        naive = NaivePlayer()
        base = measure(naive.play, naive.stop, lambda: naive.stream, paths, args.repeats)
        naive.stream.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "device_rate": RATE,
        "block_frames": BLOCK,
        "block_period_ms": round(1000 * BLOCK / RATE, 2),
        "files": [f"{n} ({r} Hz, {c} ch, {s:g} s)" for n, r, c, s, _, _ in FILES],
        "player": ours,
        "naive_baseline": base,
        "target_median_ms": TARGET_MEDIAN_MS,
        "meets_target": ours["median_ms"] <= TARGET_MEDIAN_MS,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
