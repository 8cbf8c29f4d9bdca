"""Decoding audio files to mono float32 for the models, block by block. Any thread.

soundfile and numpy only (no torch): find-similar's clips and the embedding pipeline's
decode workers both read through here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.catalog.paths import open_fd
from engine.config import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

# Longer files are embedded from their first MAX_SECONDS only, and a file of a higher
# rate than 48 kHz from as many seconds as MAX_SAMPLES holds (96 kHz: 300 s), so the mono
# result is at most 115 MB whatever the file (10 min of 48 kHz float32).
MAX_SECONDS = 600.0
MAX_SAMPLES = int(MAX_SECONDS * 48_000)
# Samples (frames x channels) read per block: 4 MB of int32/float32, so a 256-channel
# file is read in blocks of 4,096 frames, not 256 x 262,144 samples at once.
BLOCK_SAMPLES = 1 << 20


# A frame count this large means the header did not say (libsndfile reports INT64_MAX).
UNKNOWN_FRAMES = 1 << 62


class _Sound(sf.SoundFile):
    """A SoundFile on a descriptor it owns (closed with it, or on a failed open)."""

    def __init__(self, fd: int) -> None:
        self._owned_fd: int | None = fd
        try:
            super().__init__(fd, closefd=False)
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _release(self) -> None:
        fd, self._owned_fd = self._owned_fd, None
        if fd is not None:
            os.close(fd)


def open_sound(path: str | Path) -> sf.SoundFile:
    """Open a catalog path (engine.catalog.paths) for reading, exact to the byte; only a
    regular file (a FIFO swapped in would block the reader for ever: NotAFile).

    A file whose header does not give its length (a FLAC written while streaming, with
    STREAMINFO's total 0) reads to its real end; its ``frames`` is meaningless, see
    length_known. Raises what soundfile raises. Any thread.
    """
    snd = _Sound(open_fd(str(path)))
    if not length_known(snd):
        # soundfile seeks to the new position after every read, and libsndfile cannot
        # seek to the end of a stream of unknown length: read it as a stream instead
        # (explicit seeks still work). soundfile has no public switch for this.
        snd._info.seekable = 0
    return snd


def length_known(snd: sf.SoundFile) -> bool:
    return 0 <= snd.frames < UNKNOWN_FRAMES


def block_frames(snd: sf.SoundFile) -> int:
    """Frames per read block of an open file: BLOCK_SAMPLES samples over its channels."""
    return max(1024, BLOCK_SAMPLES // max(1, snd.channels))


def header_problem(snd: sf.SoundFile) -> str | None:
    """Why an open file's rate or channel count must not be used to size anything (the
    reason, for an error row or message), or None when both are plausible."""
    if snd.samplerate <= 0 or snd.channels <= 0:
        return f"invalid header: {snd.samplerate} Hz, {snd.channels} channels"
    if not MIN_SAMPLE_RATE <= snd.samplerate <= MAX_SAMPLE_RATE:
        return (
            f"implausible header: a sample rate of {snd.samplerate} Hz (files from "
            f"{MIN_SAMPLE_RATE // 1000} kHz to {MAX_SAMPLE_RATE // 1000} kHz are read)"
        )
    if snd.channels > MAX_CHANNELS:
        return f"implausible header: {snd.channels} channels (at most {MAX_CHANNELS} are read)"
    return None


def count_frames(snd: sf.SoundFile) -> int:
    """The real length of an open file, read through once in bounded blocks, then back at
    the start (for files whose header does not say)."""
    block = block_frames(snd)
    total = 0
    while True:
        n = len(snd.read(block, dtype="float32", always_2d=True))
        if not n:
            break
        total += n
    snd.seek(0)
    return total


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
    with open_sound(path) as f:
        rate = f.samplerate
        frames = f.frames if length_known(f) else UNKNOWN_FRAMES
        first = int(round((start or 0.0) * rate))
        last = frames if end is None else min(frames, int(round(end * rate)))
        last = min(last, first + min(int(max_seconds * rate), MAX_SAMPLES))
        step = block_frames(f)
        if first > 0:
            f.seek(min(first, frames))
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
            block = f.read(min(remaining, step), dtype=dtype, always_2d=True)
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
