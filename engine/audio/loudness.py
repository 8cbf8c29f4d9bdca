"""Loudness and peaks of a sound, ITU-R BS.1770-4: integrated loudness (LUFS, gated),
true peak (dBTP, 4x oversampled) and sample peak (dBFS). Any thread; nothing touches
the catalog.

The meter is fed block by block, so a sound of any length is measured in bounded memory:
the K-weighted signal is kept only as sums of squares per channel and 100 ms (the gating
blocks are 400 ms with 75% overlap, i.e. four of those). The K-weighting filters are
pyloudnorm's (`pyloudnorm.iirfilter.IIRfilter`, BS.1770's two stages), run with state
across blocks; the gating is BS.1770's, as pyloudnorm's `Meter.integrated_loudness`
computes it over a whole array (tests compare the two). True peak oversamples with soxr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from pyloudnorm.iirfilter import IIRfilter
from scipy.signal import sosfilt

from engine.audio.decode import block_frames, header_problem, length_known, open_sound

# BS.1770 channel weights by position (L, R, C, Ls, Rs); further channels count as 1.0.
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
_ABSOLUTE_GATE = -70.0  # LUFS
_RELATIVE_GATE = -10.0  # LU below the ungated mean of the blocks above the absolute gate
SILENT = -math.inf
# What a loudness-matched sound's true peak is kept under (dBTP): matching never clips.
PEAK_CEILING_DBTP = -1.0
_QUICK_CONTEXT = 64  # frames of context either side of a piece oversampled alone
_QUICK_PIECE = 4096  # frames
_QUICK_RISE = 1.42  # how far (3 dB) a peak between samples may rise over them


@dataclass(frozen=True)
class Loudness:
    """What a meter read: -inf for silence. A sound shorter than one 400 ms gating block
    gets the K-weighted loudness of its whole length as its integrated loudness."""

    integrated_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    seconds: float

    def to_json(self) -> dict[str, float | None]:
        def finite(x: float) -> float | None:
            return round(x, 2) if math.isfinite(x) else None

        return {
            "integrated_lufs": finite(self.integrated_lufs),
            "true_peak_dbtp": finite(self.true_peak_dbtp),
            "sample_peak_dbfs": finite(self.sample_peak_dbfs),
            "seconds": round(self.seconds, 3),
        }


def matching_gain(lufs: float | None, true_peak: float | None, target: float) -> float:
    """Gain (dB) that plays a sound measured at `lufs` at the `target` loudness, held
    back so its true peak stays under PEAK_CEILING_DBTP; 0 for a silent or unmeasured
    sound. Any thread."""
    if lufs is None or not math.isfinite(lufs):
        return 0.0
    gain = target - lufs
    if true_peak is not None and math.isfinite(true_peak):
        gain = min(gain, PEAK_CEILING_DBTP - true_peak)
    return gain


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else SILENT


class LoudnessMeter:
    """Feed (frames, channels) float blocks in order, then read `result()`.

    `quick` (the scanner's): the true peak oversamples only the blocks whose samples come
    within 6 dB of the peak found so far, since the peaks between samples of real audio
    stay within a few dB of the samples; the integrated loudness is the same."""

    def __init__(self, rate: int, channels: int, quick: bool = False) -> None:
        self.rate = rate
        self.channels = channels
        stages = [
            IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
            IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"),
        ]
        # Both stages as second-order sections (one sosfilt pass, 4x faster than lfilter
        # twice); each stage's passband gain is 1.0 for K-weighting.
        self._sos = np.array([np.r_[s.b, s.a] for s in stages], dtype=np.float32)
        self._gain = float(np.prod([s.passband_gain for s in stages]))
        # sosfilt's zi for axis 0, float32 like the blocks (the filter runs in their type).
        self._state = np.zeros((len(stages), 2, channels), dtype=np.float32)
        self._segment = rate / 10.0  # 100 ms, in frames (fractional: cut as pyloudnorm does)
        self._sums: list[np.ndarray] = []  # per finished 100 ms: (channels,) sums of squares
        self._open = np.zeros(channels)  # the 100 ms segment being filled
        self._frames = 0
        self._sample_peak = 0.0
        # True peak: 4x below 96 kHz, 2x below 192 kHz, as is above (BS.1770 Annex 2).
        self._factor = 4 if rate < 96_000 else 2 if rate < 192_000 else 1
        self._quick = quick
        self._oversample = (
            soxr.ResampleStream(rate, rate * self._factor, channels, dtype="float32",
                                quality="HQ")
            if self._factor > 1 and not quick else None
        )  # fmt: skip
        self._context = np.zeros((0, channels), dtype=np.float32)  # quick: the last frames
        self._true_peak = 0.0

    def feed(self, block: np.ndarray) -> None:
        # float32 throughout (the decoders' own type): the K-weighted sums are taken in
        # float64, which keeps the loudness within 0.001 LU of a float64 meter.
        block = np.asarray(block, dtype=np.float32).reshape(-1, self.channels)
        if not len(block):
            return
        block_peak = float(np.abs(block).max())
        self._sample_peak = max(self._sample_peak, block_peak)
        if self._oversample is not None:
            up = self._oversample.resample_chunk(block)
            if len(up):
                self._true_peak = max(self._true_peak, float(np.abs(up).max()))
        elif self._quick and self._factor > 1:
            self._quick_peak(block, block_peak)
        weighted, self._state = sosfilt(self._sos, block, axis=0, zi=self._state)
        if self._gain != 1.0:
            weighted *= self._gain
        self._accumulate(weighted)

    def _quick_peak(self, block: np.ndarray, block_peak: float) -> None:
        # Piece by piece, each oversampled with _QUICK_CONTEXT frames either side (outputs
        # of the context itself are left out), only where its samples come within 3 dB
        # of the peak found so far: a peak between samples of real audio rises at most
        # about 3 dB over its neighbours (a sine at a quarter of the rate, sampled 45
        # degrees off its crest).
        samples = np.concatenate([self._context, block.astype(np.float32)])
        start = len(self._context)
        end = len(samples) - _QUICK_CONTEXT  # the last frames wait for their right context
        self._context = samples[max(0, end - _QUICK_CONTEXT) :]
        if block_peak * _QUICK_RISE <= self._true_peak or end <= start:
            return
        # Every piece's sample peak in one pass, then the loudest pieces first: the true
        # peak found in them rules out the quieter pieces before they cost a resample.
        starts = np.arange(start, end, _QUICK_PIECE)
        magnitudes = np.abs(samples[start:end])
        piece_peaks = np.maximum.reduceat(magnitudes, starts - start, axis=0).max(axis=1)
        for i in np.argsort(-piece_peaks, kind="stable"):
            piece_peak = float(piece_peaks[i])
            if piece_peak * _QUICK_RISE <= self._true_peak:
                break  # the rest are quieter still
            a = int(starts[i])
            b = min(end, a + _QUICK_PIECE)
            lo, hi = max(0, a - _QUICK_CONTEXT), min(len(samples), b + _QUICK_CONTEXT)
            up = soxr.resample(samples[lo:hi], self.rate, self.rate * self._factor, quality="HQ")
            inner = up[(a - lo) * self._factor : (b - lo) * self._factor]
            if len(inner):
                self._true_peak = max(self._true_peak, float(np.abs(inner).max()))

    def _accumulate(self, weighted: np.ndarray) -> None:
        # Segment k spans [int(k * seg), int((k + 1) * seg)) frames of the whole sound;
        # the block's frames are summed per segment in one reduceat.
        start, end = self._frames, self._frames + len(weighted)
        self._frames = end
        k0 = len(self._sums)
        bounds = [int((k + 1) * self._segment) for k in range(k0, int(end / self._segment) + 1)]
        cuts = [b - start for b in bounds if start < b <= end]
        squares = np.square(weighted, dtype=np.float64)
        starts = np.array([0, *cuts[:-1]] if cuts else [0], dtype=np.int64)
        if cuts:
            sums = np.add.reduceat(squares[: cuts[-1]], starts, axis=0) if cuts[-1] else None
            if sums is not None:
                sums[0] += self._open
                self._sums.extend(sums)
            self._open = squares[cuts[-1] :].sum(axis=0)
        else:
            self._open = self._open + squares.sum(axis=0)

    def result(self) -> Loudness:
        if self._oversample is not None:
            tail = self._oversample.resample_chunk(
                np.zeros((0, self.channels), dtype=np.float32), last=True
            )
            if len(tail):
                self._true_peak = max(self._true_peak, float(np.abs(tail).max()))
            self._oversample = None
        seconds = self._frames / self.rate
        true_peak = max(self._true_peak, self._sample_peak)
        return Loudness(self._integrated(seconds), _db(true_peak), _db(self._sample_peak), seconds)

    def _integrated(self, seconds: float) -> float:
        weights = np.array([_CHANNEL_WEIGHTS[c] if c < 5 else 1.0 for c in range(self.channels)])
        sums = np.array(self._sums + [self._open])  # (segments, channels)
        if seconds < 0.4:
            # Shorter than one gating block (a click, a short one-shot): BS.1770 gives no
            # integrated loudness; the K-weighted mean square over its own length does.
            if self._frames == 0:
                return SILENT
            mean = sums.sum(axis=0) / self._frames
            with np.errstate(divide="ignore"):
                level = -0.691 + 10.0 * np.log10(mean @ weights)
            return float(level) if level >= _ABSOLUTE_GATE else SILENT
        blocks = int(np.round((seconds - 0.4) / 0.1)) + 1
        padded = np.zeros((blocks + 3, self.channels))
        padded[: min(len(sums), blocks + 3)] = sums[: blocks + 3]
        # Block j: segments j..j+3 (400 ms), mean square over 400 ms of frames.
        z = (padded[:blocks] + padded[1 : blocks + 1] + padded[2 : blocks + 2] + padded[3:]) / (
            0.4 * self.rate
        )
        with np.errstate(divide="ignore"):
            levels = -0.691 + 10.0 * np.log10(z @ weights)
        kept = levels >= _ABSOLUTE_GATE
        if not kept.any():
            return SILENT
        relative = -0.691 + 10.0 * np.log10(z[kept].mean(axis=0) @ weights) + _RELATIVE_GATE
        kept &= levels > relative
        if not kept.any():
            return SILENT
        return float(-0.691 + 10.0 * np.log10(z[kept].mean(axis=0) @ weights))


def measure(
    path: str | Path, start: float | None = None, end: float | None = None, quick: bool = False
) -> Loudness:
    """Loudness of a file, or of [start, end) seconds of it, read block by block (`quick`:
    see LoudnessMeter). ValueError for a header whose rate or channels cannot be used."""
    with open_sound(str(path)) as snd:
        problem = header_problem(snd)
        if problem:
            raise ValueError(problem)
        rate = snd.samplerate
        first = max(0, int(round((start or 0.0) * rate)))
        last = None if end is None else int(round(end * rate))
        if last is not None and length_known(snd):
            last = min(snd.frames, last)
        meter = LoudnessMeter(rate, snd.channels, quick)
        snd.seek(first)
        remaining = None if last is None else max(0, last - first)
        step = block_frames(snd)
        while remaining is None or remaining > 0:
            want = step if remaining is None else min(step, remaining)
            block = snd.read(want, dtype="float64", always_2d=True)
            if not len(block):
                break
            meter.feed(block)
            if remaining is not None:
                remaining -= len(block)
        return meter.result()
