"""Waveform peaks computed while streaming a file, stored at two resolutions.

A file's peaks are min/max pairs of the sample values over all channels, quantised to
int8 and interleaved (min0, max0, min1, max1, ...). The overview (for a result row) has
at most OVERVIEW_BUCKETS pairs, the detail (for the large waveform) at most
DETAIL_BUCKETS; both are tiny, so any file can be drawn without decoding it.
"""

from __future__ import annotations

import math

import numpy as np

OVERVIEW_BUCKETS = 128
DETAIL_BUCKETS = 2048
# The accumulator keeps this many units per detail bucket, so the final reduction to
# DETAIL_BUCKETS stays accurate even when the declared length was wrong.
_UNITS = DETAIL_BUCKETS * 4


class PeakAccumulator:
    """Collects min/max per fixed-size unit of frames from consecutive blocks.

    Memory stays bounded by the number of units (under 2 x 8k), whatever the file's
    length and whatever its header claimed: when a file runs longer than declared (or
    declared nothing, like a FLAC of unknown length), neighbouring units are merged and
    the unit doubles.
    """

    def __init__(self, expected_frames: int) -> None:
        self.unit = max(1, math.ceil(max(expected_frames, 1) / _UNITS))
        self._mins: list[np.ndarray] = []
        self._maxs: list[np.ndarray] = []
        self._carry_min = math.inf
        self._carry_max = -math.inf
        self._carry_len = 0
        self._units = 0

    def add(self, block: np.ndarray) -> None:
        """Add a (frames, channels) float block."""
        if block.size == 0:
            return
        lo, hi = _across_channels(block)
        pos = 0
        n = len(lo)
        if self._carry_len:
            take = min(self.unit - self._carry_len, n)
            self._carry_min = min(self._carry_min, float(lo[:take].min()))
            self._carry_max = max(self._carry_max, float(hi[:take].max()))
            self._carry_len += take
            pos = take
            if self._carry_len == self.unit:
                self._flush_carry()
        whole = (n - pos) // self.unit
        if whole:
            end = pos + whole * self.unit
            self._mins.append(_per_unit(np.minimum, lo[pos:end], whole, self.unit))
            self._maxs.append(_per_unit(np.maximum, hi[pos:end], whole, self.unit))
            self._units += whole
            pos = end
        if pos < n:
            self._carry_min = float(lo[pos:].min())
            self._carry_max = float(hi[pos:].max())
            self._carry_len = n - pos
        while self._units >= 2 * _UNITS:
            self._merge()

    def _flush_carry(self) -> None:
        self._mins.append(np.array([self._carry_min], dtype=np.float32))
        self._maxs.append(np.array([self._carry_max], dtype=np.float32))
        self._units += 1
        self._carry_min, self._carry_max, self._carry_len = math.inf, -math.inf, 0

    def _merge(self) -> None:
        """Halve the units kept: pairs merged, the unit doubled; an odd last unit joins
        the partial one that follows it."""
        mins, maxs = np.concatenate(self._mins), np.concatenate(self._maxs)
        even = len(mins) // 2 * 2
        if even < len(mins):
            self._carry_min = min(self._carry_min, float(mins[-1]))
            self._carry_max = max(self._carry_max, float(maxs[-1]))
            self._carry_len += self.unit
        self._mins = [mins[:even].reshape(-1, 2).min(axis=1)]
        self._maxs = [maxs[:even].reshape(-1, 2).max(axis=1)]
        self._units = even // 2
        self.unit *= 2

    def finish(self) -> tuple[bytes, bytes]:
        """(overview, detail) blobs."""
        if self._carry_len:
            self._flush_carry()
        if not self._mins:
            empty = encode_peaks(np.zeros(0), np.zeros(0))
            return empty, empty
        mins = np.concatenate(self._mins).astype(np.float32)
        maxs = np.concatenate(self._maxs).astype(np.float32)
        return (
            encode_peaks(*_reduce(mins, maxs, OVERVIEW_BUCKETS)),
            encode_peaks(*_reduce(mins, maxs, DETAIL_BUCKETS)),
        )


# Below this many values per reduction, NumPy's reduction along a short axis costs far
# more than looping over that axis with element-wise minimum/maximum (measured: it was
# two thirds of a scan's time, docs/measurements.md).
_SHORT_AXIS = 64


def _across_channels(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) over the channels of each frame of a (frames, channels) block."""
    if block.ndim == 1:
        return block, block
    channels = block.shape[1]
    if channels > _SHORT_AXIS:
        return block.min(axis=1), block.max(axis=1)
    lo, hi = block[:, 0].copy(), block[:, 0].copy()
    for c in range(1, channels):
        np.minimum(lo, block[:, c], out=lo)
        np.maximum(hi, block[:, c], out=hi)
    return lo, hi


def _per_unit(op: np.ufunc, values: np.ndarray, whole: int, unit: int) -> np.ndarray:
    """`op` (np.minimum or np.maximum) over each of `whole` consecutive runs of `unit`."""
    runs = values.reshape(whole, unit)
    if unit > _SHORT_AXIS:
        return op.reduce(runs, axis=1)
    out = runs[:, 0].copy()
    for j in range(1, unit):
        op(out, runs[:, j], out=out)
    return out


def _reduce(mins: np.ndarray, maxs: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    if len(mins) <= buckets:
        return mins, maxs
    edges = np.linspace(0, len(mins), buckets + 1).astype(np.int64)
    return np.minimum.reduceat(mins, edges[:-1]), np.maximum.reduceat(maxs, edges[:-1])


def encode_peaks(mins: np.ndarray, maxs: np.ndarray) -> bytes:
    """Interleave and quantise to int8 (full scale = ±127)."""
    out = np.empty(len(mins) * 2, dtype=np.int8)
    out[0::2] = np.clip(np.floor(np.asarray(mins) * 127.0), -127, 127)
    out[1::2] = np.clip(np.ceil(np.asarray(maxs) * 127.0), -127, 127)
    return out.tobytes()


def decode_peaks(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(mins, maxs) as floats in [-1, 1]. A blob that is not what encode_peaks writes
    (odd or longer than DETAIL_BUCKETS pairs) is cut to what it can be, never trusted to
    size a drawing."""
    usable = min(len(blob) // 2, DETAIL_BUCKETS) * 2
    data = np.frombuffer(blob[:usable], dtype=np.int8).astype(np.float32) / 127.0
    return data[0::2], data[1::2]
