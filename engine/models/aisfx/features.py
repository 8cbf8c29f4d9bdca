"""aisfx preprocessing in torch: audio -> normalised log-mel blocks -> block and file vectors.

Reproduces the spectrogram of aisfx 0.1.2's default (and ISMIR-paper) path,
``aisfx/spectrogram/spectrogram_essentia.py`` + ``aisfx/preprocessing.py``, without
essentia:

* framing = essentia ``streaming.FrameCutter(frameSize=2048, hopSize=1024)`` with its
  defaults (``startFromZero=False``, ``validFrameThresholdRatio=0``): the first frame
  starts at ``-(2048 + 1) // 2 = -1024`` (zero-padded on the left), frames advance by
  1024, and the last frame is the first whose centre is at or past the end of the
  signal (zero-padded on the right). So ``n_frames = ceil(n / 1024) + 1`` for n > 0,
  one more than librosa's ``1 + n // 1024`` whenever n is not a multiple of 1024;
* window = essentia ``Windowing(type='hann', normalized=False)``: the *symmetric* Hann
  ``0.5 - 0.5 cos(2 pi i / (N - 1))``; its default zero-phase rotation does not change
  the magnitude spectrum;
* ``Spectrum`` magnitude, squared by ``MelBands(type='power')``;
* ``MelBands(warpingFormula='htkMel', weighting='warping', normalize='unit_sum')``, which
  delegates to ``TriangularBands``: 98 edges equally spaced on the HTK mel scale
  (``2595 log10(1 + f / 700)``) from 0 to 22050 Hz; each band weights the FFT bins with
  ``ceil(f_i / df) <= j <= floor(f_{i+2} / df)`` by a triangle that is linear *in mel*
  (the 'warping' weighting), then divides the weights by their sum;
* ``log10(1 + 10000 * mel)`` (``shift_scale_log``), divided by the 'original' maximum
  9.457798957824707 (``preprocessing.spectrogram_normalize``);
* ``preprocessing.blocking`` with 100 frames, hop 50 and ``drop_partial_block=False``.

Deliberate differences from the package: the clip is peak-normalised first (as the
package's librosa path does; essentia's ``EasyLoader`` with ``replayGain=-6`` scales by
1), clips shorter than 50 frames give one block instead of tripping
``compute_hopSize``'s assert, and essentia's -100 dB noise on all-silent frames
(``silentFrames='noise'``) is left out: those frames stay exactly 0.

Threads: a :class:`AisfxFeatures` is read-only after construction and may be used from
any thread; the module-level functions hold no state and may be called from any thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from engine.models.aisfx.model import (
    BLOCK_FRAMES,
    BLOCK_HOP,
    EMBED_DIM,
    F_MAX,
    F_MIN,
    HOP,
    MEL_BINS,
    N_FFT,
    NORM,
    SAMPLE_RATE,
)

# essentia FrameCutter (startFromZero=False): the first frame starts (frameSize+1)/2
# samples before the signal (C++ integer division).
LEFT_PAD = (N_FFT + 1) // 2
# Frames per chunk when computing a long clip's spectrogram: bounds memory (~32 MB).
_CHUNK_FRAMES = 2048


def n_frames(n_samples: int) -> int:
    """Spectrogram frames essentia's FrameCutter gives for ``n_samples`` (0 for none).

    Any thread; no state.
    """
    if n_samples <= 0:
        return 0
    return -(-n_samples // HOP) + 1


def n_blocks(frames: int) -> int:
    """Blocks ``preprocessing.blocking`` gives with ``drop_partial_block=False`` (>= 1).

    Any thread; no state.
    """
    if frames <= BLOCK_FRAMES:
        return 1
    return 1 + -(-(frames - BLOCK_FRAMES) // BLOCK_HOP)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (essentia ``hz2mel10``)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse HTK mel scale (essentia ``mel102hz``)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int = N_FFT,
    sample_rate: float = SAMPLE_RATE,
    n_mels: int = MEL_BINS,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
) -> np.ndarray:
    """essentia ``MelBands(htkMel, weighting='warping', normalize='unit_sum')`` weights.

    Returns float64 (n_fft // 2 + 1, n_mels); each column sums to 1. Any thread.
    """
    n_bins = n_fft // 2 + 1
    lo, hi = hz_to_mel(f_min), hz_to_mel(f_max)
    edges = mel_to_hz(lo + (hi - lo) / (n_mels + 1) * np.arange(n_mels + 2))
    bin_hz = np.arange(n_bins) * ((sample_rate / 2.0) / (n_bins - 1))
    bin_mel = hz_to_mel(bin_hz)
    edge_mel = hz_to_mel(edges)
    left, centre, right = edge_mel[:-2, None], edge_mel[1:-1, None], edge_mel[2:, None]
    rising = (bin_mel[None, :] - left) / (centre - left)
    falling = (right - bin_mel[None, :]) / (right - centre)
    weights = np.where(bin_hz[None, :] < edges[1:-1, None], rising, falling)
    inside = (bin_hz[None, :] >= edges[:-2, None]) & (bin_hz[None, :] <= edges[2:, None])
    weights = np.where(inside, weights, 0.0)
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights.T.copy()


class AisfxFeatures(nn.Module):
    """aisfx's normalised log-mel spectrogram and its 100-frame blocks, in torch.

    Input: mono audio at 44.1 kHz (the caller resamples and downmixes), any float dtype.
    Computation runs in ``dtype`` (float64 by default) and is deterministic; results are
    float32. Read-only after construction: any thread may call it.
    """

    window: torch.Tensor
    mel_fb: torch.Tensor

    def __init__(self, peak_normalize: bool = True, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.peak_normalize = peak_normalize
        self.compute_dtype = dtype
        # Symmetric Hann, as essentia's Windowing::hann (denominator N - 1).
        window = torch.hann_window(N_FFT, periodic=False, dtype=torch.float64)
        self.register_buffer("window", window.to(dtype), persistent=False)
        fb = torch.from_numpy(mel_filterbank())
        self.register_buffer("mel_fb", fb.to(dtype), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`spectrogram`."""
        return self.spectrogram(audio)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel spectrogram: audio (..., n) -> float32 (..., n_frames, 96)."""
        x = torch.as_tensor(audio).to(device=self.window.device, dtype=self.compute_dtype)
        n = x.shape[-1]
        if self.peak_normalize and n > 0:
            peak = x.abs().amax(dim=-1, keepdim=True)
            x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
        frames = n_frames(n)
        if frames == 0:
            return torch.zeros(*x.shape[:-1], 0, MEL_BINS, dtype=torch.float32)
        right = (frames - 1) * HOP + N_FFT - LEFT_PAD - n
        padded = torch.nn.functional.pad(x, (LEFT_PAD, right))
        framed = padded.unfold(-1, N_FFT, HOP)  # (..., frames, N_FFT), a view
        out = []
        for start in range(0, frames, _CHUNK_FRAMES):
            chunk = framed[..., start : start + _CHUNK_FRAMES, :] * self.window
            power = torch.fft.rfft(chunk, dim=-1).abs().square()
            mel = power @ self.mel_fb
            out.append(torch.log10(1.0 + 10000.0 * mel) / NORM)
        return torch.cat(out, dim=-2).to(torch.float32)

    def blocks(self, audio: torch.Tensor) -> torch.Tensor:
        """Blocks of one clip: mono audio (n,) -> float32 (n_blocks, 100, 96).

        100-frame blocks with hop 50; the last one is zero-padded, not dropped; a clip
        shorter than 100 frames (or empty) gives one zero-padded block.
        """
        audio = torch.as_tensor(audio)
        if audio.dim() != 1:
            raise ValueError(f"blocks() takes mono audio (n,), got shape {tuple(audio.shape)}")
        spec = self.spectrogram(audio)
        count = n_blocks(spec.shape[0])
        total = (count - 1) * BLOCK_HOP + BLOCK_FRAMES
        spec = torch.nn.functional.pad(spec, (0, 0, 0, total - spec.shape[0]))
        return spec.unfold(0, BLOCK_FRAMES, BLOCK_HOP).transpose(1, 2).contiguous()

    @staticmethod
    def block_times(n_blocks: int, duration: float | None = None) -> list[tuple[float, float]]:
        """(start, end) seconds of each block in the original audio.

        start = b * 50 * 1024 / 44100; end = start + 100 * 1024 / 44100, clipped to
        ``duration`` when given.
        """
        span = BLOCK_FRAMES * HOP / SAMPLE_RATE
        times = []
        for b in range(n_blocks):
            start = b * BLOCK_HOP * HOP / SAMPLE_RATE
            end = start + span
            if duration is not None:
                end = max(start, min(end, float(duration)))
            times.append((start, end))
        return times


def embed_blocks(
    net: nn.Module, blocks: torch.Tensor, batch_size: int = 64, bfloat16: bool = False
) -> torch.Tensor:
    """Run ``net`` (in eval mode) over blocks (n, 100, 96): returns float32 (n, 512) on CPU.

    No gradients (inference mode). The input is cast to the net's own dtype, so a net
    from :func:`engine.models.aisfx.model.inference_net` runs in bfloat16 throughout. With
    ``bfloat16`` a float32 net runs under bf16 autocast instead (slower: weights are
    converted on every call). Vectors of either stay within cosine 0.9999 of float32
    (tests/test_aisfx.py). Any thread: the net is only read (lanes run it side by side).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    try:
        first = next(net.parameters())
        device, dtype = first.device, first.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    if blocks.shape[0] == 0:
        return torch.zeros(0, EMBED_DIM, dtype=torch.float32)
    out = []
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=bfloat16 and dtype == torch.float32
    )
    with torch.inference_mode(), autocast:
        for start in range(0, blocks.shape[0], batch_size):
            batch = blocks[start : start + batch_size].to(device=device, dtype=dtype)
            out.append(net(batch).to(device="cpu", dtype=torch.float32))
    return torch.cat(out)


def _pool_blocks(block_vectors: torch.Tensor | np.ndarray, how: str) -> np.ndarray:
    """L2-normalised `how` ("max" or "mean") over L2-normalised block vectors, float32.

    All-zero blocks stay zero; no blocks gives a zero vector. Any thread; no state.
    """
    if isinstance(block_vectors, torch.Tensor):
        block_vectors = block_vectors.detach().cpu().numpy()
    vecs = np.asarray(block_vectors, dtype=np.float64)
    if vecs.ndim != 2:
        raise ValueError(f"pooling takes (n, dim) block vectors, got shape {vecs.shape}")
    if vecs.shape[0] == 0:
        return np.zeros(vecs.shape[1], dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
    pooled = vecs.max(axis=0) if how == "max" else vecs.mean(axis=0)
    norm = float(np.linalg.norm(pooled))
    if norm > 0 and math.isfinite(norm):
        pooled = pooled / norm
    return pooled.astype(np.float32)


def max_pooled_vector(block_vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    """Element-wise max over the L2-normalised block vectors, L2-normalised, float32.

    Chosen over the mean by measurement (docs/measurements.md, file vector pooling;
    bench/pooling_bench.py).
    """
    return _pool_blocks(block_vectors, "max")


def file_vector(block_vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    """L2-normalised mean of the L2-normalised block vectors, float32 (dim,)."""
    return _pool_blocks(block_vectors, "mean")
