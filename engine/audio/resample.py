"""Band-limited resampling for the models (torchaudio's sinc kernel as one GEMM). Any thread."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

from engine.audio.rates import working_rate


class _SincResampler:
    """torchaudio's band-limited sinc resampler, applied as one matrix product.

    ``torchaudio.transforms.Resample`` convolves the input with its kernel at a stride of
    one input period; oneDNN runs that strided single-channel ``conv1d`` slowly. Cutting
    the padded input into its (overlapping) periods and multiplying them by the same
    kernel is the same arithmetic as one GEMM, about 3x faster (docs/measurements.md),
    output within 1e-6 of torchaudio's (tests/test_similar.py).
    Immutable after construction; any thread.
    """

    def __init__(self, rate: int, target: int) -> None:
        # A rate whose exact kernel would be huge (a film pull-down rate) is treated as the
        # nearest rate with a small one (engine.audio.rates).
        rate = working_rate(rate, target)
        reference = torchaudio.transforms.Resample(rate, target, dtype=torch.float32)
        # With few output phases (96 -> 48 kHz has one) the product is a slow strided
        # matrix-vector one, and torchaudio's convolution is faster: keep that.
        self.reference = reference if target // reference.gcd < 8 else None
        self.orig = rate // reference.gcd
        self.new = target // reference.gcd
        self.width = reference.width
        self.kernel_t = reference.kernel.detach()[:, 0].T.contiguous()  # (taps, new)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            return self.reference(audio)
        length = audio.shape[-1]
        padded = torch.nn.functional.pad(audio, (self.width, self.width + self.orig))
        periods = padded.unfold(0, self.kernel_t.shape[0], self.orig)  # (outputs, taps) view
        # The product copies its view: in chunks, that copy stays ~4 MB (not 250 MB for
        # ten minutes of 96 kHz audio).
        rows = max(1, (1 << 20) // self.kernel_t.shape[0])
        out = torch.cat([
            (periods[i : i + rows] @ self.kernel_t).reshape(-1)  # phase-interleaved
            for i in range(0, periods.shape[0], rows)
        ])  # fmt: skip
        return out[: -(-self.new * length // self.orig)]


@functools.lru_cache(maxsize=16)
def _resampler(rate: int, target: int) -> _SincResampler:
    """One resampler per rate pair: its kernel is computed once, not on every call."""
    return _SincResampler(rate, target)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling with torchaudio's sinc kernel (deterministic). Any thread:
    the cached resamplers only read their kernels."""
    if working_rate(rate, target) == target or len(audio) == 0:
        return audio  # the same rate, or within 1 % of it where the exact kernel is huge
    with torch.inference_mode():
        out = _resampler(rate, target)(torch.from_numpy(np.ascontiguousarray(audio)))
    return out.numpy()
