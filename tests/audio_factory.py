"""Small real audio files made by the tests themselves: tones, noise, clicks, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(
    seconds: float = 0.5,
    rate: int = 44100,
    channels: int = 1,
    freq: float = 440.0,
    amp: float = 0.5,
) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def noise(
    seconds: float = 0.5, rate: int = 44100, channels: int = 1, amp: float = 0.3, seed: int = 0
):
    rng = np.random.default_rng(seed)
    return (amp * rng.uniform(-1, 1, (int(round(seconds * rate)), channels))).astype(np.float32)


def write(
    path: Path,
    data: np.ndarray | None = None,
    rate: int = 44100,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write `data` (default: a 0.5 s tone) with soundfile; folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = tone(rate=rate)
    sf.write(str(path), data, rate, subtype=subtype, format=format)
    return path


def wav_bytes(data: np.ndarray | None = None, rate: int = 44100, subtype: str = "PCM_16") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, tone() if data is None else data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def riff_chunk_offset(data: bytes, chunk_id: bytes) -> int:
    """Offset of the header of the first RIFF chunk `chunk_id` in a WAV byte string."""
    pos = 12
    while pos + 8 <= len(data):
        if data[pos : pos + 4] == chunk_id:
            return pos
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
    raise ValueError(f"no {chunk_id!r} chunk")


def with_chunk_size(data: bytes, chunk_id: bytes, size: int) -> bytes:
    """`data` (a WAV file) with the size field of chunk `chunk_id` replaced by `size`."""
    pos = riff_chunk_offset(data, chunk_id)
    out = bytearray(data)
    out[pos + 4 : pos + 8] = size.to_bytes(4, "little")
    return bytes(out)


def chunk_size(data: bytes, chunk_id: bytes) -> int:
    pos = riff_chunk_offset(data, chunk_id)
    return int.from_bytes(data[pos + 4 : pos + 8], "little")
