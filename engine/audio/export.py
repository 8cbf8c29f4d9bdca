"""Rendering a selected region of a file for dragging into a DAW.

The clip keeps the source's sample rate, channel count and bit depth (PCM 16/24/32 or
float; compressed sources become 24-bit PCM). Clips live in a cache folder for the rest
of the session, since DAWs may reference them in place; clips older than a week are
removed on the next export. Any thread may call these; nothing touches the catalog.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import platformdirs
import soundfile as sf

from engine.audio.decode import open_sound
from engine.catalog.sidefiles import written

MAX_AGE_SECONDS = 7 * 24 * 3600
_WAV_SUBTYPES = {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}


def clip_dir() -> Path:
    path = Path(platformdirs.user_cache_dir("Sonarium", appauthor=False)) / "clips"
    path.mkdir(parents=True, exist_ok=True)
    return path


def clip_name(source: Path, start: float, end: float) -> str:
    """`<source stem>_<start>-<end>s.wav`, e.g. `door_slam_1.250-2.000s.wav`."""
    stem = re.sub(r"[^\w\- .()]+", "_", source.stem).strip() or "clip"
    return f"{stem}_{start:.3f}-{end:.3f}s.wav"


def export_region(source: str | Path, start: float, end: float, folder: Path | None = None) -> Path:
    """Write [start, end) seconds of `source` (a catalog path) to a WAV; returns its path.

    Frames are cut at round(seconds × rate), so the clip holds exactly the source's
    samples for that span (tests compare them sample for sample).
    """
    source = Path(source)
    folder = folder or clip_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cleanup(folder)
    with open_sound(str(source)) as f:
        rate = f.samplerate
        first = max(0, int(round(start * rate)))
        last = min(f.frames, int(round(end * rate)))
        if last <= first:
            raise ValueError(f"empty region {start:.3f}-{end:.3f}s in {source.name}")
        subtype = f.subtype if f.subtype in _WAV_SUBTYPES else "PCM_24"
        # Read as the source's own integer/float type so PCM samples are copied exactly.
        dtype = "float64" if subtype in ("FLOAT", "DOUBLE") else "int32"
        target = folder / clip_name(source, first / rate, last / rate)
        f.seek(first)
        with (
            written(target) as tmp,
            sf.SoundFile(
                str(tmp), "w", samplerate=rate, channels=f.channels, subtype=subtype,
                format="WAV",
            ) as out,
        ):  # fmt: skip
            remaining = last - first
            while remaining > 0:
                block = f.read(min(remaining, 1 << 16), dtype=dtype, always_2d=True)
                if not len(block):
                    break
                out.write(block)
                remaining -= len(block)
    return target


def render_clip(
    source: str | Path, start: float, end: float, fields: Mapping[str, str | None] | None = None
) -> list[Path]:
    """The region as the transfer settings deliver it (engine.config transfer_*), in the
    clip folder: an exact copy (export_region) when they ask for nothing but the source,
    else rendered by engine.audio.transfer (several files when it splits channels) with
    `fields` carried (see transfer.render)."""
    from engine.audio.transfer import Transfer, output_name, render

    t = Transfer.from_settings()
    if t.as_source:
        return [export_region(source, start, end)]
    folder = clip_dir()
    cleanup(folder)
    name = output_name(Path(source), start, end, t, tagged=True)
    return render(source, folder, t, start, end, name, replace_existing=True, fields=fields).paths


def render_file(
    source: str | Path, fields: Mapping[str, str | None] | None = None
) -> list[Path] | None:
    """The whole file as the transfer settings deliver it, in the clip folder, for a drag
    from the results; None when they ask for the source as it is (drag the file)."""
    from engine.audio.transfer import Transfer, output_name, render

    t = Transfer.from_settings()
    if t.as_source:
        return None
    folder = clip_dir()
    cleanup(folder)
    name = output_name(Path(source), None, None, t, tagged=True)
    return render(source, folder, t, name=name, replace_existing=True, fields=fields).paths


def cleanup(folder: Path, max_age: float = MAX_AGE_SECONDS) -> int:
    """Delete clips older than `max_age` seconds; returns how many were removed."""
    cutoff = time.time() - max_age
    removed = 0
    for path in folder.iterdir():
        if path.suffix.lower() not in (".wav", ".aif", ".flac"):
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
