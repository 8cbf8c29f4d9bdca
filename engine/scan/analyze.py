"""Reading one audio file: stream info, loudness, peaks, metadata, fingerprint.

Called from scanner worker threads; it touches no database. Blocks are read one at a
time, so memory stays bounded for files of any length.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engine.audio.decode import block_frames, header_problem, length_known, open_sound
from engine.audio.loudness import LoudnessMeter
from engine.catalog.paths import open_binary, os_path
from engine.scan.metadata import read_metadata
from engine.scan.peaks import PeakAccumulator
from engine.scan.ucs import UcsTable, parse_ucs

FINGERPRINT_SPAN = 64 * 1024

_BIT_DEPTH = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32,
    "FLOAT": 32, "DOUBLE": 64, "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32,
}  # fmt: skip

# Magic numbers of containers libsndfile reads, to tell "corrupt" from "not audio".
_MAGIC = (b"RIFF", b"RF64", b"BW64", b"FORM", b"fLaC", b"OggS", b"ID3", b"riff", b".snd", b"caff")


class FileVanished(Exception):
    """The file disappeared between listing and reading it."""


class FileChanged(Exception):
    """The file was rewritten while it was being read."""


@dataclass
class Analysis:
    """What the scanner stores for one file: catalog columns and, for readable files, peaks."""

    record: dict[str, Any]
    peaks: tuple[bytes, bytes] | None = None
    errors: list[str] = field(default_factory=list)


def fingerprint(path: str | Path, size: int) -> str:
    """Content fingerprint for rename detection: size plus the first and last 64 KiB.
    ``path`` is a catalog path (engine.catalog.paths)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open_binary(str(path)) as f:
        h.update(f.read(FINGERPRINT_SPAN))
        if size > FINGERPRINT_SPAN:
            f.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN))
            h.update(f.read(FINGERPRINT_SPAN))
    return h.hexdigest()


def _stat(path: str | Path) -> os.stat_result:
    try:
        return os.stat(os_path(str(path)))
    except FileNotFoundError as exc:
        raise FileVanished(str(path)) from exc


def _check_unchanged(path: str | Path, before: os.stat_result) -> None:
    """Raise FileVanished/FileChanged if `path` is gone or differs from `before`."""
    after = _stat(path)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged(str(path))


def _open_error(path: Path, exc: Exception) -> str:
    try:
        with open_binary(str(path)) as f:
            head = f.read(12)
    except OSError as os_exc:
        return f"cannot open: {os_exc.strerror or os_exc}"
    detail = str(exc).split(":", 1)[-1].strip() or exc.__class__.__name__
    if "does not exist" in detail.lower():
        # libsndfile's MP3 probe says this about files it cannot parse; we just read it.
        detail = "format not recognised"
    if any(k in detail.lower() for k in ("unimplemented", "not recognised", "unknown format")):
        return f"unsupported format: {detail}"
    if head[:4] in _MAGIC or head[:3] in _MAGIC or head[4:8] == b"ftyp" or head[:2] == b"\xff\xfb":
        return f"corrupt or truncated audio file: {detail}"
    return f"unsupported format (not an audio file soundfile can read): {detail}"


def analyze(path: str | Path, root_id: int, ucs_table: UcsTable | None = None) -> Analysis:
    """Read `path` (a catalog path: engine.catalog.paths) whole, in blocks. Raises
    FileVanished or FileChanged; never other errors."""
    before = _stat(path)
    p = Path(path)
    base: dict[str, Any] = {
        "root_id": root_id,
        "path": str(p),
        "folder": str(p.parent),
        "name": p.name,
        "size": before.st_size,
        "mtime_ns": before.st_mtime_ns,
        "scanned_at": time.time(),
    }
    ucs = parse_ucs(p.stem, ucs_table)
    if ucs:
        base.update(ucs)

    def error(message: str) -> Analysis:
        # A failure caused by the file being deleted or rewritten while we read it is not
        # the file's fault: let the scanner drop the file or read it again.
        _check_unchanged(p, before)
        return Analysis({**base, "status": "error", "error": message})

    if not stat.S_ISREG(before.st_mode):
        return error("not a regular file (a pipe, socket, device or folder)")
    if before.st_size == 0:
        return error("empty file (0 bytes)")
    try:
        base["fingerprint"] = fingerprint(p, before.st_size)
    except FileNotFoundError as exc:
        raise FileVanished(str(p)) from exc
    except OSError as exc:
        return error(f"cannot open: {exc.strerror or exc}")

    try:
        snd = open_sound(p)
    except FileNotFoundError as exc:
        raise FileVanished(str(p)) from exc
    except PermissionError as exc:
        return error(f"cannot open: {exc.strerror or 'permission denied'}")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        return error(_open_error(p, exc))

    with snd:
        base.update(
            format=snd.format,
            subtype=snd.subtype,
            sample_rate=snd.samplerate,
            channels=snd.channels,
            bit_depth=_BIT_DEPTH.get(snd.subtype),
        )
        problem = header_problem(snd)
        if problem:
            return error(problem)
        declared = snd.frames if length_known(snd) else 0
        peaks = PeakAccumulator(declared)
        meter = LoudnessMeter(snd.samplerate, snd.channels, quick=True)
        peak = 0.0
        sum_sq = 0.0
        frames = 0
        step = block_frames(snd)
        is_float = snd.subtype in ("FLOAT", "DOUBLE")
        try:
            while True:
                block = snd.read(step, dtype="float32", always_2d=True)
                if not len(block):
                    break
                if is_float:
                    # Float files can hold NaN/inf; they would poison peaks and RMS.
                    np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
                frames += len(block)
                peaks.add(block)
                meter.feed(block)
                peak = max(peak, float(np.abs(block).max()))
                sum_sq += float(np.square(block, dtype=np.float64).sum())
        except FileNotFoundError as exc:
            raise FileVanished(str(p)) from exc
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            if frames == 0:
                return error(f"corrupt or truncated audio data: {exc}")
            base["error"] = f"audio data ends early after {frames} frames: {exc}"

    if frames == 0:
        return error("no audio frames (header only)")
    _check_unchanged(p, before)

    rms = math.sqrt(sum_sq / (frames * base["channels"]))
    base.update(
        status="ok",
        frames=frames,
        duration=frames / base["sample_rate"],
        peak_db=_db(peak),
        rms_db=_db(rms),
    )
    loudness = meter.result()
    base.update(
        loudness_lufs=rounded_level(loudness.integrated_lufs),
        true_peak_db=rounded_level(loudness.true_peak_dbtp),
    )
    meta = read_metadata(p)
    tags = meta.pop("embedded_tags", {})
    for key, value in meta.items():
        # A UCS file name's fields come first; the file's metadata fills the rest.
        if not (key.startswith("ucs_") and base.get(key)):
            base[key] = value
    base["embedded_tags"] = _json(tags) if tags else None
    return Analysis(base, peaks.finish())


def rounded_level(level: float) -> float | None:
    """A level in dB rounded to 0.01; None for silence (no finite level)."""
    return round(level, 2) if math.isfinite(level) else None


def _db(value: float) -> float | None:
    """dBFS rounded to 0.01 dB; None for digital silence (no finite level)."""
    return round(20 * math.log10(value), 2) if value > 0 else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
