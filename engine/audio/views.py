"""What the detail pane draws of a stretch of a sound when the stored peaks are too coarse:
min/max per pixel column (per channel for lanes), and a log-frequency spectrogram. Any
thread (the app computes them on its curating thread); nothing touches the catalog.

Both read only the stretch asked for, block by block, so their cost and memory follow
what is on screen, not the file's length: peaks decode the stretch once; the spectrogram
reads the stretch once when it is short, else one FFT window per column (seeking).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.audio.decode import header_problem, length_known, open_sound

MAX_COLUMNS = 8192
MAX_ROWS = 2048
FFT_SIZE = 2048
FLOOR_DB = -110.0  # the spectrogram's darkest level (dBFS)
_READ_WHOLE_FRAMES = 4 << 20  # a stretch up to this long is read once for the spectrogram
_BLOCK = 1 << 16


def _stretch(snd, start: float, end: float) -> tuple[int, int]:
    rate = snd.samplerate
    first = max(0, int(math.floor(start * rate)))
    last = int(math.ceil(end * rate))
    if length_known(snd):
        last = min(last, snd.frames)
    return first, max(first, last)


def _opened(path: str | Path):
    snd = open_sound(str(path))
    problem = header_problem(snd)
    if problem:
        snd.close()
        raise ValueError(problem)
    return snd


def range_peaks(
    path: str | Path, start: float, end: float, columns: int, per_channel: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(mins, maxs) of [start, end) seconds in `columns` columns: shape (columns,) over
    all channels, or (channels, columns) with `per_channel`. A column narrower than a
    frame (zoomed in past the samples) shows the frame it falls on; columns past the end
    of the file hold 0."""
    columns = max(1, min(MAX_COLUMNS, int(columns)))
    with _opened(path) as snd:
        first, last = _stretch(snd, start, end)
        asked = max(first + 1, int(math.ceil(end * snd.samplerate)))  # columns follow this
        channels = snd.channels
        lanes = channels if per_channel else 1
        mins = np.zeros((lanes, columns), dtype=np.float32)
        maxs = np.zeros((lanes, columns), dtype=np.float32)
        seen = np.zeros(columns, dtype=bool)
        span = asked - first
        # Column c covers frames [edges[c], edges[c + 1]) of the stretch.
        edges = first + (np.arange(columns + 1, dtype=np.int64) * span) // columns
        snd.seek(first)
        pos = first
        while pos < last:
            block = snd.read(min(_BLOCK, last - pos), dtype="float32", always_2d=True)
            if not len(block):
                break
            np.nan_to_num(block, copy=False)
            # Per channel, or each frame's extremes over its channels.
            low = block.T if per_channel else block.min(axis=1)[None]
            high = block.T if per_channel else block.max(axis=1)[None]
            # Columns this block touches, and where each starts within the block.
            c0 = int(np.searchsorted(edges, pos, side="left"))
            if c0 > 0 and (c0 > columns or edges[c0] > pos):
                c0 -= 1  # the block starts inside column c0 - 1
            c1 = int(np.searchsorted(edges, pos + len(block), side="left"))
            cols = np.arange(c0, min(columns, c1))
            starts = np.maximum(edges[cols], pos) - pos
            keep = starts < len(block)
            cols, starts = cols[keep], starts[keep]
            if len(cols):
                lo = np.minimum.reduceat(low, starts, axis=1)
                hi = np.maximum.reduceat(high, starts, axis=1)
                fresh = ~seen[cols]
                mins[:, cols] = np.where(fresh, lo, np.minimum(mins[:, cols], lo))
                maxs[:, cols] = np.where(fresh, hi, np.maximum(maxs[:, cols], hi))
                seen[cols] = True
            pos += len(block)
    if per_channel:
        return mins, maxs
    return mins[0], maxs[0]


def frequency_span(rate: int) -> tuple[float, float]:
    """The spectrogram's lowest and highest frequency (Hz) for a file at `rate`: its
    rows are log-spaced between them, the highest at the top. Any thread."""
    return max(20.0, rate / FFT_SIZE), rate / 2.0


def _frequencies(rows: int, rate: int) -> np.ndarray:
    """Row edges in Hz, low to high, log-spaced from 20 Hz (or one FFT bin) to Nyquist."""
    low, high = frequency_span(rate)
    return low * (high / low) ** (np.arange(rows + 1) / rows)


def spectrogram(path: str | Path, start: float, end: float, columns: int, rows: int) -> np.ndarray:
    """(rows, columns) uint8 levels of [start, end): row 0 the highest frequency (log
    scale), 0 = FLOOR_DB or less, 255 = full scale; channels mixed to mono."""
    columns = max(1, min(MAX_COLUMNS, int(columns)))
    rows = max(1, min(MAX_ROWS, int(rows)))
    with _opened(path) as snd:
        rate = snd.samplerate
        first, last = _stretch(snd, start, end)
        span = max(1, last - first)
        centres = first + ((np.arange(columns) + 0.5) * span / columns).astype(np.int64)
        half = FFT_SIZE // 2
        window = np.hanning(FFT_SIZE).astype(np.float32)
        frames = np.zeros((columns, FFT_SIZE), dtype=np.float32)
        if span + FFT_SIZE <= _READ_WHOLE_FRAMES:
            lo = max(0, first - half)
            snd.seek(lo)
            audio = snd.read(last + half - lo, dtype="float32", always_2d=True).mean(axis=1)
            np.nan_to_num(audio, copy=False)
            padded = np.concatenate(
                [np.zeros(half, np.float32), audio, np.zeros(FFT_SIZE, np.float32)]
            )
            for c, centre in enumerate(centres):
                at = int(centre - lo)  # index in audio of the centre; padded is shifted by half
                frames[c] = padded[at : at + FFT_SIZE]
        else:
            for c, centre in enumerate(centres):
                begin = max(0, int(centre) - half)
                snd.seek(begin)
                chunk = snd.read(FFT_SIZE, dtype="float32", always_2d=True).mean(axis=1)
                np.nan_to_num(chunk, copy=False)
                offset = begin - (int(centre) - half)
                frames[c, offset : offset + len(chunk)] = chunk[: FFT_SIZE - offset]
    spectrum = np.abs(np.fft.rfft(frames * window, axis=1)) / (window.sum() / 2.0)
    edges = _frequencies(rows, rate) / (rate / FFT_SIZE)  # in bins
    starts = np.clip(np.floor(edges[:-1]).astype(np.int64), 0, spectrum.shape[1] - 1)
    # reduceat needs increasing starts; equal ones (several rows in one bin) repeat it.
    banded = np.maximum.reduceat(spectrum, np.maximum.accumulate(starts), axis=1)
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(banded, 1e-12))
    levels = np.clip((db - FLOOR_DB) / -FLOOR_DB, 0.0, 1.0) * 255.0
    return np.ascontiguousarray(levels.T[::-1].astype(np.uint8))
