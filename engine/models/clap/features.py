"""CLAP preprocessing in torch: fixed 10-second windows and their log-mel spectrograms.

A clip (mono float32 at the model's rate, 48 kHz) is cut into windows of
:data:`WINDOW_SECONDS` every :data:`HOP_SECONDS`, covering the whole clip. The last (or
only) window is zero-padded to full length. Nothing here is random: transformers'
``ClapFeatureExtractor`` crops longer input at a random offset ("rand_trunc"), picks
random chunks ("fusion") and marks a random batch item as "longer"; it also repeats short
input ("repeatpad"), which made repeated short one-shots rank first for unrelated text
queries. Every window fed to the model is exactly 10 s, so none of those paths applies.

:func:`log_mel` computes, batched on any device, the same log-mel spectrogram that
``ClapFeatureExtractor`` computes for an exactly-10-s input: periodic Hann window, n_fft
1024, hop 480, centred frames with reflect padding, power spectrum, the extractor's mel
filterbank (slaney scale and norm for "rand_trunc" models such as
laion/clap-htsat-unfused, htk without norm for "fusion" models), floor 1e-10 and
``10 * log10``. Fusion models get the 4 identical channels the extractor gives short input.

Threads: the functions hold no state and may be called from any thread. A
:class:`ClapFeatures` instance only caches constant tensors and may be shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

WINDOW_SECONDS = 10.0
# Hop = window: every sample is embedded exactly once. Overlap would double the CPU cost of
# an already slow model for little gain on mostly short sound-effect files.
HOP_SECONDS = 10.0

# Stored with every vector (via the space's identity): bump it whenever windows, log_mel or
# the file-vector pooling change their output.
PREPROCESSING_VERSION = "clap-w10h10-zeropad-logmel-durmean:v1"

# The extractor clips power at 1e-10 before dB (mel_floor and power_to_db's min_value).
_FLOOR = 1e-10


@dataclass(frozen=True)
class MelSettings:
    """The extractor settings that shape the model input (defaults: laion/clap-htsat-unfused)."""

    sample_rate: int = 48_000
    n_fft: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14_000.0
    # "slaney" (slaney mel scale and area norm) for "rand_trunc"; "htk" (no norm) for "fusion".
    mel_scale: str = "slaney"
    # Input channels the model expects: 1, or 4 for fusion models (global + 3 local mels).
    channels: int = 1
    window_seconds: float = WINDOW_SECONDS

    @classmethod
    def from_extractor(cls, extractor: Any) -> MelSettings:
        """Settings of a transformers ``ClapFeatureExtractor`` (any thread)."""
        fusion = getattr(extractor, "truncation", "fusion") == "fusion"
        samples = int(getattr(extractor, "nb_max_samples", 0)) or int(
            extractor.max_length_s * extractor.sampling_rate
        )
        return cls(
            sample_rate=int(extractor.sampling_rate),
            n_fft=int(extractor.fft_window_size),
            hop_length=int(extractor.hop_length),
            n_mels=int(extractor.feature_size),
            f_min=float(extractor.frequency_min),
            f_max=float(extractor.frequency_max),
            mel_scale="htk" if fusion else "slaney",
            channels=4 if fusion else 1,
            window_seconds=samples / int(extractor.sampling_rate),
        )

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames per window (1001 for 10 s at hop 480, centred)."""
        return 1 + self.window_samples // self.hop_length


UNFUSED = MelSettings()


# --- windows ------------------------------------------------------------------------------


def _window_geometry(
    rate: int, window_seconds: float, hop_seconds: float
) -> tuple[int, int]:  # fmt: skip
    size = int(round(window_seconds * rate))
    hop = int(round(hop_seconds * rate))
    if size <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive (got {size} and {hop} samples)")
    return size, hop


def n_windows(
    n_samples: int, rate: int, window_seconds: float = WINDOW_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> int:  # fmt: skip
    """How many windows cover ``n_samples``: 1 up to one window's length, then one per hop
    begun (an empty clip still gets one all-zero window)."""
    size, hop = _window_geometry(rate, window_seconds, hop_seconds)
    if n_samples <= size:
        return 1
    return 1 + -(-(n_samples - size) // hop)  # ceil division in integers


def window_times(
    n_samples: int, rate: int, window_seconds: float = WINDOW_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> list[tuple[float, float]]:  # fmt: skip
    """(start, end) seconds of each window; the last ends where the audio ends, not where
    its zero padding does."""
    size, hop = _window_geometry(rate, window_seconds, hop_seconds)
    count = n_windows(n_samples, rate, window_seconds, hop_seconds)
    return [(i * hop / rate, min(i * hop + size, n_samples) / rate) for i in range(count)]


def windows(
    clip: torch.Tensor | np.ndarray, rate: int, window_seconds: float = WINDOW_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> tuple[torch.Tensor, list[tuple[float, float]]]:  # fmt: skip
    """Cut a mono clip into (n, window samples) float32 windows and their (start, end) times.

    The last window is zero-padded past the end of the clip; nothing is repeated or cropped.
    When no padding is needed the result is a view of ``clip`` (no copy): don't write to it.
    """
    # ascontiguousarray: torch can't wrap numpy views with negative strides.
    x = torch.as_tensor(np.ascontiguousarray(clip) if isinstance(clip, np.ndarray) else clip)
    if x.ndim != 1:
        raise ValueError(f"expected a mono clip (1-D), got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    size, hop = _window_geometry(rate, window_seconds, hop_seconds)
    n = x.shape[0]
    count = n_windows(n, rate, window_seconds, hop_seconds)
    full = 1 + (n - size) // hop if n >= size else 0
    parts = [x.unfold(0, size, hop)[:full]] if full else []
    if count > full:  # at most one window runs past the end (see n_windows)
        start = full * hop
        tail = x.new_zeros((1, size))
        tail[0, : n - start] = x[start:]
        parts.append(tail)
    out = parts[0] if len(parts) == 1 else torch.cat(parts)
    return out, window_times(n, rate, window_seconds, hop_seconds)


# --- mel filterbank and log-mel -----------------------------------------------------------


def _hz_to_mel(freq: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 700.0 * (np.power(10, mels / 2595.0) - 1.0)
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


def mel_filterbank(settings: MelSettings = UNFUSED) -> np.ndarray:
    """The extractor's triangular mel filterbank, (n_fft // 2 + 1, n_mels) float64.

    Same arithmetic as transformers' ``audio_utils.mel_filter_bank`` (which follows
    librosa for "slaney" and torchaudio for "htk"), so the result is bit-identical.
    """
    if settings.mel_scale not in ("slaney", "htk"):
        raise ValueError(f"unknown mel scale {settings.mel_scale!r}")
    n_freqs = settings.n_fft // 2 + 1
    edges = np.array([settings.f_min, settings.f_max], dtype=np.float64)
    mel_min, mel_max = _hz_to_mel(edges, settings.mel_scale)
    centers = _mel_to_hz(
        np.linspace(mel_min, mel_max, settings.n_mels + 2), settings.mel_scale
    )  # fmt: skip
    fft_freqs = np.linspace(0, settings.sample_rate // 2, n_freqs)
    widths = np.diff(centers)
    slopes = centers[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(np.zeros(1), np.minimum(down, up))
    if settings.mel_scale == "slaney":
        bank *= (2.0 / (centers[2:] - centers[:-2]))[None, :]
    return bank


class ClapFeatures:
    """Batched log-mel for one model's settings on one device (constants cached there).

    ``dtype`` defaults to float32. Against the extractor's float64 numpy path
    (tests/test_clap.py): float64 within 1e-5 dB everywhere; float32 within 1e-3 dB in
    every band less than 80 dB below its frame's loudest band, and up to ~2 dB off only in
    bands more than 120 dB below it (float32 FFT rounding noise, under the model's own
    -100 dB floor region). float32 is less than half float64's cost per window, which
    mattered next to the bf16 model (docs/measurements.md, CLAP log-mel).
    """

    def __init__(
        self, settings: MelSettings = UNFUSED, device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self._window = torch.hann_window(
            settings.n_fft, periodic=True, dtype=torch.float64
        ).to(self.device, self.dtype)  # fmt: skip
        # Only the FFT bins some mel band covers (50 Hz-14 kHz: bins 2-298 of 513 for the
        # unfused model) are kept: the others would be multiplied by zeros.
        bank = mel_filterbank(settings)  # (freqs, mels)
        used = np.flatnonzero(np.abs(bank).sum(axis=1) > 0)
        first, last = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, len(bank))
        self._bins = slice(first, last)
        self._bank = torch.from_numpy(bank[first:last].copy()).to(self.device, self.dtype)

    def __call__(
        self, windows: torch.Tensor | list[torch.Tensor], lengths: list[int] | None = None
    ) -> torch.Tensor:  # fmt: skip
        """Windows -> (n, channels, frames, n_mels) log-mel in dB, on the device, in
        ``self.dtype``.

        ``windows`` is an (n, window samples) tensor, or a list of 1-D pieces of at most
        one window each, read as zero-padded to a full window (the last window of a clip,
        without materialising its zeros). ``lengths`` (optional, for the tensor form)
        gives each window's samples of real audio; the rest must be zeros. Frames that
        only see zeros are exactly the floor (-100 dB), so they are filled instead of
        transformed: a 1-s one-shot costs a tenth of a full window, with the same output
        (tests/test_clap.py). Feed ``model.get_audio_features(input_features=...,
        is_longer=...)`` (cast to the model's dtype); for fusion models pass ``is_longer``
        all False (see module doc).
        """
        s = self.settings
        size = s.window_samples
        if isinstance(windows, list | tuple):
            pieces = [w.reshape(-1) for w in windows]
            if any(len(p) > size for p in pieces):
                raise ValueError(f"a window piece is longer than {size} samples")
        elif windows.ndim != 2:
            raise ValueError(f"expected (n, samples) windows, got shape {tuple(windows.shape)}")
        elif windows.shape[1] != size or lengths is None or len(lengths) != len(windows):
            return self._log_mel(windows.to(self.device, self.dtype))
        else:
            pieces = [w[: max(0, min(size, int(n)))] for w, n in zip(windows, lengths, strict=True)]
        # A frame centred at t*hop spans t*hop +- n_fft/2. Cutting a window n_fft past its
        # audio keeps every frame that sees audio (and the reflect padding at the cut
        # mirrors zeros, as the full window's would), so those frames come out identical.
        # Cuts are rounded up to 1/8 window so FFT batch shapes (and their plans) repeat.
        step = max(s.hop_length, size // 8)
        cuts = [min(size, -(-(len(p) + s.n_fft) // step) * step) for p in pieces]
        out = torch.full(
            (len(pieces), 1, s.frames, s.n_mels), 10.0 * math.log10(_FLOOR),
            device=self.device, dtype=self.dtype,
        )  # fmt: skip
        by_cut: dict[int, list[int]] = {}
        for i, cut in enumerate(cuts):
            by_cut.setdefault(cut, []).append(i)
        for cut, rows in by_cut.items():
            batch = torch.zeros((len(rows), cut), device=self.device, dtype=self.dtype)
            for row, i in enumerate(rows):
                batch[row, : len(pieces[i])] = pieces[i]
            mel = self._log_mel(batch)
            out[rows, :, : mel.shape[2]] = mel[:, :1]
        if s.channels > 1:
            out = out.expand(-1, s.channels, -1, -1)
        return out.contiguous()

    def _log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """(n, samples) -> (n, channels, frames, n_mels) dB: torch.stft's arithmetic
        (centred frames, reflect padding, periodic Hann), done as frames -> rfft so every
        step works on contiguous (frames, bins) rows, faster than ``torch.stft`` and its
        (bins, frames) layout (docs/measurements.md); same dB within 3e-6."""
        s = self.settings
        half = s.n_fft // 2
        padded = torch.nn.functional.pad(x[:, None], (half, half), mode="reflect")[:, 0]
        frames = padded.unfold(-1, s.n_fft, s.hop_length) * self._window  # (n, frames, n_fft)
        spec = torch.view_as_real(torch.fft.rfft(frames)[..., self._bins])
        power = spec[..., 0].square() + spec[..., 1].square()  # (n, frames, bins)
        mel = torch.matmul(power, self._bank).clamp_min(_FLOOR)  # (n, frames, mels)
        db = (10.0 * torch.log10(mel)).unsqueeze(1)
        if s.channels > 1:
            db = db.expand(-1, s.channels, -1, -1)
        return db.contiguous()


def log_mel(
    windows: torch.Tensor, settings: MelSettings = UNFUSED, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Log-mel of (n, samples) windows on their own device: (n, channels, frames, n_mels).

    Convenience over :class:`ClapFeatures` (which keeps its constants between calls).
    """
    return ClapFeatures(settings, windows.device, dtype)(windows)


def pooled_vector(vectors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """File vector: the L2-normalised weighted mean of the L2-normalised window vectors.

    Weights are the seconds of real audio in each window, so a zero-padded tail holding a
    fraction of a second counts for that fraction, not as much as a full window. All-zero
    weights (an empty clip) fall back to the plain mean. Returns float32.
    """
    vecs = np.asarray(vectors, dtype=np.float64)
    if len(vecs) == 0:
        return np.zeros(vecs.shape[1] if vecs.ndim == 2 else 0, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / np.where(norms > 0, norms, 1.0)
    w = np.ones(len(vecs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not math.isfinite(float(w.sum())) or w.sum() <= 0:
        w = np.ones(len(vecs))
    mean = (vecs * w[:, None]).sum(axis=0) / w.sum()
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)
