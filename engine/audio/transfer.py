"""Transfer: a file or a region of it rendered the way the session wants it (sample rate,
bit depth, format, channel layout, fades, normalisation, handles around a region), for
dragging into a DAW and for Export. Any thread; nothing touches the catalog.

Everything streams in blocks, so memory stays bounded whatever the file's length:
resampling is soxr's very-high-quality stream (`soxr.ResampleStream`, quality "VHQ"),
the fade-out is applied to a held-back tail of its own length, and normalisation makes
a first pass through the same chain to measure (engine.audio.loudness), then renders
with the gain. Output that needs no processing (same rate, layout and samples) is copied
sample for sample, whatever the container. Reducing the word length of processed audio
(to 16 bits) adds TPDF dither; every sample is kept within full scale before it is
written. Each output is written under a temporary name, fsynced and then given its
name, never replacing a file that is there (numbered instead: engine.curate.copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine import config
from engine.audio.decode import header_problem, length_known, open_sound
from engine.audio.loudness import PEAK_CEILING_DBTP, LoudnessMeter
from engine.catalog.fields import COLUMNS, shown, tag_values
from engine.catalog.sidefiles import temp_file
from engine.curate.copy import link_free_name
from engine.curate.write import write_fields
from engine.errors import FileNotWritable, TransferError
from engine.scan.metadata import read_metadata

log = logging.getLogger(__name__)

FORMATS = ("wav", "aiff", "flac")
BITS = ("16", "24", "32", "float")
LAYOUTS = ("keep", "mono", "split")
_SF_FORMAT = {"wav": "WAV", "aiff": "AIFF", "flac": "FLAC"}
_SUBTYPE = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "float": "FLOAT"}
_BITS_OF = {"PCM_S8": "16", "PCM_U8": "16", "PCM_16": "16", "PCM_24": "24", "PCM_32": "32",
            "FLOAT": "float", "DOUBLE": "float"}  # fmt: skip
BLOCK = 1 << 16  # frames per read
MAX_FADE_SECONDS = 60.0  # the held-back fade-out tail stays bounded
_NORMALIZE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(dbtp|dbfs|lufs)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Transfer:
    """How a sound is delivered. None: as the source has it."""

    rate: int | None = None
    bits: str | None = None  # "16" | "24" | "32" | "float"
    format: str = "wav"
    layout: str = "keep"  # keep | mono (the channels' average) | split (a file each)
    fade_in: float = 0.0  # seconds
    fade_out: float = 0.0
    normalize: str | None = None  # "-1dBTP" (true peak), "-0.1dBFS" (sample peak), "-23LUFS"
    handles: float = 0.0  # seconds added before and after a region (within the file)

    def __post_init__(self) -> None:
        if self.rate is not None and not (
            config.MIN_SAMPLE_RATE <= self.rate <= config.MAX_SAMPLE_RATE
        ):
            raise TransferError(f"a sample rate of {self.rate} Hz is not offered")
        if self.bits is not None and self.bits not in BITS:
            raise TransferError(f"bit depth {self.bits}: choose one of {', '.join(BITS)}")
        if self.format not in FORMATS:
            raise TransferError(f"format {self.format}: choose one of {', '.join(FORMATS)}")
        if self.layout not in LAYOUTS:
            raise TransferError(f"channels {self.layout}: choose one of {', '.join(LAYOUTS)}")
        if self.format == "flac" and self.bits in ("32", "float"):
            raise TransferError("FLAC holds 16 or 24 bits")
        for name in ("fade_in", "fade_out", "handles"):
            seconds = getattr(self, name)
            if not (0.0 <= seconds <= MAX_FADE_SECONDS) or math.isnan(seconds):
                raise TransferError(f"{name.replace('_', ' ')} must be 0 to {MAX_FADE_SECONDS:g} s")
        if self.normalize is not None:
            target_of(self.normalize)

    @property
    def as_source(self) -> bool:
        """Whether a whole file is delivered as it is (dragging needs no render)."""
        return self == Transfer()

    @classmethod
    def from_settings(cls) -> Transfer:
        """The transfer settings of this process (engine.config, transfer_*)."""
        rate = config.value("transfer_rate")
        bits = config.value("transfer_bits")
        normalize = config.value("transfer_normalize")
        try:
            return cls(
                rate=None if rate == "source" else int(rate),
                bits=None if bits == "source" else bits,
                format=config.value("transfer_format"),
                layout=config.value("transfer_channels"),
                fade_in=float(config.value("transfer_fade_in")),
                fade_out=float(config.value("transfer_fade_out")),
                normalize=None if normalize in ("", "off") else normalize,
                handles=float(config.value("transfer_handles")),
            )
        except ValueError as exc:
            raise TransferError(f"the transfer settings cannot be used: {exc}") from exc


def target_of(normalize: str) -> tuple[float, str]:
    """(level, unit) of a normalisation target: unit dbtp, dbfs or lufs."""
    m = _NORMALIZE.match(normalize)
    if not m:
        raise TransferError(f"normalise to {normalize!r}: give e.g. -1dBTP, -0.1dBFS or -23LUFS")
    level, unit = float(m.group(1)), m.group(2).lower()
    if unit == "lufs" and not -70.0 <= level <= 0.0 or unit != "lufs" and not -60 <= level <= 0:
        raise TransferError(f"normalise to {normalize}: out of range")
    return level, unit


@dataclass
class Rendered:
    paths: list[Path]
    rate: int
    channels: int  # per file
    gain_db: float  # applied by normalisation (0 without)
    limited: bool  # a loudness target was held back by PEAK_CEILING_DBTP


def _fade(count: int, length: int, rising: bool) -> np.ndarray:
    """Raised-cosine gains for `count` frames from the start (rising) or towards the end
    of a fade `length` frames long."""
    x = np.arange(count, dtype=np.float64) / max(1, length)
    gains = 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))
    return gains if rising else gains[::-1]


class _Chain:
    """Source frames in, processed output frames out: layout, resampling, fades."""

    def __init__(self, rate: int, channels: int, t: Transfer, total_in: int | None) -> None:
        self.out_channels = 1 if t.layout == "mono" else channels
        self.out_rate = t.rate or rate
        self.mono = t.layout == "mono" and channels > 1
        self.stream = (
            soxr.ResampleStream(rate, self.out_rate, self.out_channels, dtype="float64",
                                quality="VHQ")
            if self.out_rate != rate else None
        )  # fmt: skip
        self.fade_in = int(round(t.fade_in * self.out_rate))
        self.fade_out = int(round(t.fade_out * self.out_rate))
        self.done = 0  # output frames given out
        self.tail = np.zeros((0, self.out_channels))

    def push(self, block: np.ndarray, last: bool) -> np.ndarray:
        if self.mono:
            block = block.mean(axis=1, keepdims=True)
        if self.stream is not None:
            block = self.stream.resample_chunk(np.ascontiguousarray(block), last=last)
        if self.fade_in and self.done < self.fade_in and len(block):
            count = min(len(block), self.fade_in - self.done)
            block = block.copy()
            ramp = _fade(self.fade_in, self.fade_in, rising=True)[self.done : self.done + count]
            block[:count] *= ramp[:, None]
        if self.fade_out:
            # Hold back the last fade_out frames until the end is known.
            held = np.concatenate([self.tail, block]) if len(self.tail) else block
            if last:
                held = held.copy()
                n = min(len(held), self.fade_out)
                held[len(held) - n :] *= _fade(n, self.fade_out, rising=False)[:, None][-n:]
                self.tail = np.zeros((0, self.out_channels))
                block = held
            else:
                cut = max(0, len(held) - self.fade_out)
                block, self.tail = held[:cut], held[cut:]
        self.done += len(block)
        return block


def _frames(snd: sf.SoundFile, first: int, last: int | None) -> Iterator[tuple[np.ndarray, bool]]:
    """(float64 block, is it the last) of frames [first, last) (None: to the end)."""
    snd.seek(first)
    remaining = None if last is None else last - first
    block = snd.read(BLOCK if remaining is None else min(BLOCK, remaining), dtype="float64",
                     always_2d=True)  # fmt: skip
    while len(block):
        if remaining is not None:
            remaining -= len(block)
        following = (
            snd.read(BLOCK if remaining is None else min(BLOCK, remaining), dtype="float64",
                     always_2d=True)
            if remaining is None or remaining > 0 else np.zeros((0, block.shape[1]))
        )  # fmt: skip
        yield block, not len(following)
        block = following


def output_name(
    source: Path, start: float | None, end: float | None, t: Transfer, tagged: bool = False
) -> str:
    """`<stem>.<ext>`, or `<stem>_<start>-<end>s.<ext>` for a region; `tagged` adds what
    the settings are (`_48k24_1a2b3c`: rate, bits and a digest of the rest), so a clip
    cache never gives one name to two different renders."""
    stem = re.sub(r"[^\w\- .()]+", "_", source.stem).strip() or "sound"
    if start is not None or end is not None:
        stem += f"_{start or 0.0:.3f}-{end if end is not None else 0.0:.3f}s"
    if tagged:
        rate = f"{t.rate / 1000:g}k" if t.rate else "src"
        digest = hashlib.sha1(repr(t).encode()).hexdigest()[:6]
        stem += f"_{rate}{t.bits or ''}_{digest}"
    return f"{stem}.{t.format if t.format != 'aiff' else 'aif'}"


PATTERN_FIELDS = ("name", "start", "end", "rate", "bits", "n")


def pattern_name(
    pattern: str, source: Path, start: float | None, end: float | None, t: Transfer,
    rate: int, n: int,
) -> str:  # fmt: skip
    """An Export name from a pattern: {name} (the source's name without its suffix),
    {start} and {end} (seconds of a region, empty without one), {rate} (Hz), {bits} and
    {n} (1, 2, ... in the order exported), e.g. "{name}_{rate}" or "SFX_{n}_{name}"; the
    format's suffix is added. TransferError for unknown fields or a name that is empty
    or holds a path separator."""
    values = {
        "name": source.stem,
        "start": "" if start is None else f"{start:.3f}",
        "end": "" if end is None else f"{end:.3f}",
        "rate": str(rate), "bits": t.bits or "", "n": str(n),
    }  # fmt: skip
    try:
        text = pattern.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise TransferError(
            f"name pattern {pattern!r}: use {', '.join('{' + f + '}' for f in PATTERN_FIELDS)}"
        ) from exc
    text = re.sub(r"[\x00-\x1f]+", "_", text).strip()
    if not text or "/" in text or "\\" in text or text in (".", ".."):
        raise TransferError(f"name pattern {pattern!r} gives no usable file name ({text!r})")
    return f"{text}.{t.format if t.format != 'aiff' else 'aif'}"


def render(
    source: str | Path,
    folder: Path,
    t: Transfer,
    start: float | None = None,
    end: float | None = None,
    name: str | None = None,
    replace_existing: bool = False,
    fields: Mapping[str, str | None] | None = None,
) -> Rendered:
    """Render `source` (a catalog path), or [start, end) seconds of it plus handles, into
    `folder` as `name` (default output_name); a split layout writes `<stem>.L`/`.R` (or
    `.1`, `.2`...). A name taken is numbered, or replaced with `replace_existing` (the
    clip cache, whose names say what they hold). The metadata fields (`fields`: field
    name -> text, e.g. the catalog's with the user's edits; None: what the source file
    holds) are carried into the rendered files (engine.curate.write: WAV, AIFF, FLAC);
    a render whose fields cannot be written is kept without them. Raises TransferError,
    ValueError for an empty region or unusable header, and what soundfile raises for an
    unreadable file."""
    source = Path(source)
    with open_sound(str(source)) as snd:
        problem = header_problem(snd)
        if problem:
            raise ValueError(problem)
        rate, channels = snd.samplerate, snd.channels
        known = length_known(snd)
        first = 0 if start is None else max(0, int(round((start - t.handles) * rate)))
        last = None if end is None else int(round((end + t.handles) * rate))
        if last is not None and known:
            last = min(snd.frames, last)
        if known and last is None:
            last = snd.frames
        if last is not None and last <= first:
            raise ValueError(f"nothing to render between {start} and {end} s in {source.name}")
        bits = t.bits or _BITS_OF.get(snd.subtype, "24")
        if t.format == "flac" and bits in ("32", "float"):
            bits = "24"  # FLAC holds at most 24 bits: as close to the source as it can
        gain_db, limited = 0.0, False
        if t.normalize:
            gain_db, limited = _normalising_gain(snd, first, last, t)
        out_rate = t.rate or rate
        exact = (
            out_rate == rate and t.layout != "mono" and not (t.fade_in or t.fade_out)
            and not t.normalize and _BITS_OF.get(snd.subtype) == bits and bits != "float"
        )  # fmt: skip
        files = 1 if t.layout != "split" or channels == 1 else channels
        base = name or output_name(source, start, end, t)
        names = [base] if files == 1 else [_split_name(base, i, files) for i in range(files)]
        folder.mkdir(parents=True, exist_ok=True)
        temps = [temp_file(folder, n) for n in names]
        try:
            writers = [
                sf.SoundFile(str(tmp), "w", samplerate=out_rate,
                             channels=channels if files == 1 and t.layout != "mono" else 1,
                             subtype=_SUBTYPE[bits], format=_SF_FORMAT[t.format])
                for tmp in temps
            ]  # fmt: skip
            with contextlib.ExitStack() as stack:
                for w in writers:
                    stack.enter_context(w)
                if exact:
                    _copy_exact(snd, first, last, writers, files)
                else:
                    _render(snd, first, last, t, writers, files, gain_db, bits, channels)
            carried = {
                k: v for k, v in (source_fields(source) if fields is None else fields).items() if v
            }
            for tmp in temps:
                if carried:
                    try:
                        write_fields(str(tmp), carried, keep_mtime=False)
                    except FileNotWritable as exc:
                        log.warning("rendered %s without its metadata: %s", source.name, exc)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            if replace_existing:
                paths = [folder / n for n in names]
                for tmp, target in zip(temps, paths, strict=True):
                    os.replace(tmp, target)
            else:
                paths = [
                    link_free_name(tmp, folder, n) for tmp, n in zip(temps, names, strict=True)
                ]
        finally:
            for tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    out_channels = 1 if files > 1 or t.layout == "mono" else channels
    return Rendered(paths, out_rate, out_channels, gain_db, limited)


def source_fields(source: str | Path) -> dict[str, str]:
    """The metadata fields (engine.catalog.fields) that a file holds itself."""
    try:
        meta = read_metadata(Path(source))
    except (OSError, ValueError) as exc:
        log.warning("cannot read the metadata of %s: %s", Path(source).name, exc)
        return {}
    tags = meta.pop("embedded_tags", {}) or {}
    values: dict[str, str] = {}
    for column, value in meta.items():
        f = COLUMNS.get(column)
        if f is not None and value not in (None, ""):
            values[f.name] = shown(value)
    for f, value in tag_values(tags):
        values.setdefault(f.name, shown(value))
    return values


def _split_name(base: str, i: int, files: int) -> str:
    stem, suffix = os.path.splitext(base)
    label = ("L", "R")[i] if files == 2 else str(i + 1)
    return f"{stem}.{label}{suffix}"


def _copy_exact(snd: sf.SoundFile, first: int, last: int | None, writers: list, files: int) -> None:
    """Samples as they are (integers read as int32: exact for PCM up to 32 bits)."""
    snd.seek(first)
    remaining = None if last is None else last - first
    while remaining is None or remaining > 0:
        block = snd.read(BLOCK if remaining is None else min(BLOCK, remaining), dtype="int32",
                         always_2d=True)  # fmt: skip
        if not len(block):
            break
        if files == 1:
            writers[0].write(block)
        else:
            for c, w in enumerate(writers):
                w.write(np.ascontiguousarray(block[:, c]))
        if remaining is not None:
            remaining -= len(block)


def _render(
    snd: sf.SoundFile, first: int, last: int | None, t: Transfer, writers: list, files: int,
    gain_db: float, bits: str, channels: int,
) -> None:  # fmt: skip
    chain = _Chain(snd.samplerate, channels, t, None)
    gain = 10.0 ** (gain_db / 20.0)
    rng = np.random.default_rng(0)  # seeded: the same render twice is the same file
    lsb = 2.0**-15 if bits == "16" else 0.0
    ceiling = 1.0 - (2.0**-23 if bits == "24" else 2.0**-15 if bits == "16" else 0.0)
    for block, is_last in _frames(snd, first, last):
        out = chain.push(block, is_last) * gain
        if lsb:
            # TPDF dither of one LSB: the word-length reduction leaves noise, not distortion.
            out = out + (rng.random(out.shape) - rng.random(out.shape)) * lsb
        if bits != "float":
            out = np.clip(out, -1.0, ceiling)
        if files == 1:
            writers[0].write(out)
        else:
            for c, w in enumerate(writers):
                w.write(np.ascontiguousarray(out[:, c]))


def _normalising_gain(
    snd: sf.SoundFile, first: int, last: int | None, t: Transfer
) -> tuple[float, bool]:
    """(gain in dB, held back by the peak ceiling) that brings the processed sound to the
    target, measured through the same chain (so fades and layout count)."""
    level, unit = target_of(t.normalize or "")
    plain = replace(t, normalize=None)
    chain = _Chain(snd.samplerate, snd.channels, plain, None)
    meter = LoudnessMeter(chain.out_rate, chain.out_channels)
    for block, is_last in _frames(snd, first, last):
        meter.feed(chain.push(block, is_last))
    measured = meter.result()
    now = {"dbtp": measured.true_peak_dbtp, "dbfs": measured.sample_peak_dbfs,
           "lufs": measured.integrated_lufs}[unit]  # fmt: skip
    if not math.isfinite(now):
        return 0.0, False  # silence (or too short to gate): nothing to scale
    gain = level - now
    if unit == "lufs" and math.isfinite(measured.true_peak_dbtp):
        room = PEAK_CEILING_DBTP - measured.true_peak_dbtp
        if gain > room:
            return room, True
    return gain, False
