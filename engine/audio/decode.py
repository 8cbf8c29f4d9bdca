"""Decoding audio files to mono float32 for the models, block by block. Any thread.

soundfile and numpy only (no torch): find-similar's clips and the embedding pipeline's
decode workers both read through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine.catalog.paths import os_bytes

# Longer files are embedded from their first MAX_SECONDS only, which bounds memory
# (10 min of 48 kHz mono float32 is 115 MB).
MAX_SECONDS = 600.0


# soundfile subtypes read as integers (numpy dtype, scale to [-1, 1)); others as float32.
_READ_AS = {
    "PCM_16": ("int16", 2.0**-15),
    "PCM_24": ("int32", 2.0**-31),
    "PCM_32": ("int32", 2.0**-31),
}


def decode_mono(
    path: str | Path, start: float | None = None, end: float | None = None,
    max_seconds: float = MAX_SECONDS,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Mono float32 samples (channel mean) of [start, end) seconds, and the sample rate.

    ``path`` is a catalog path (engine.catalog.paths). Reads block by block, so only the
    mono result is ever held whole. Any thread.
    """
    with sf.SoundFile(os_bytes(str(path))) as f:
        rate = f.samplerate
        first = int(round((start or 0.0) * rate))
        last = f.frames if end is None else min(f.frames, int(round(end * rate)))
        last = min(last, first + int(max_seconds * rate))
        if first > 0:
            f.seek(min(first, f.frames))
        remaining = max(0, last - first)
        # Integer PCM is read as integers and scaled here: libsndfile's own conversion to
        # float is much slower (docs/measurements.md, decoding) and gives the same floats
        # (it also multiplies by 2^-15 or 2^-31, exactly).
        dtype, scale = _READ_AS.get(f.subtype, ("float32", 1.0))
        # Downmix as a matrix-vector product: numpy's mean(axis=1) over interleaved
        # channels is far slower (docs/measurements.md, decoding).
        gains = np.full(f.channels, scale / f.channels, dtype=np.float32)
        parts = []
        while remaining > 0:
            block = f.read(min(remaining, 1 << 18), dtype=dtype, always_2d=True)
            if not len(block):
                break
            if block.shape[1] > 1:
                parts.append(block.astype(np.float32, copy=False) @ gains)
            elif scale != 1.0:
                parts.append(block[:, 0].astype(np.float32) * np.float32(scale))
            else:
                parts.append(block[:, 0].copy())
            remaining -= len(block)
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if not np.isfinite(audio).all():  # only float files can hold NaN/inf; one cheap pass
        np.nan_to_num(audio, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return audio.astype(np.float32, copy=False), rate
