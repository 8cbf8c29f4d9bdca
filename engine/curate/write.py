"""Writing metadata into an audio file so that nothing can be lost: the new file is
written beside the original under a unique temporary name, checked (it decodes, its audio
is the original's sample for sample, its metadata reads back), fsynced and renamed over
the original. A kill at any moment leaves the old file or the new one, never a broken
one (a left-over temporary file is hidden: its name starts with a dot). Any thread;
called by engine/library.py for one file at a time.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from engine.catalog.fields import FIELDS, shown
from engine.catalog.paths import os_path
from engine.catalog.paths import shown as shown_path
from engine.catalog.sidefiles import written
from engine.config import WRITABLE_SUFFIXES
from engine.curate import aiff, riff, tags
from engine.errors import CannotWrite, FileNotWritable
from engine.scan.analyze import fingerprint
from engine.scan.metadata import read_metadata

# Formats by their first bytes; the rest cannot take metadata from Sonarium.
WRITABLE = "WAV/BWF/RF64, AIFF, FLAC, Ogg Vorbis, Opus and MP3"
_COMPARE_BLOCK = 1 << 20
_DECODE_FRAMES = 1 << 16


@dataclass(frozen=True)
class Written:
    """A file after a verified write: what the catalog row takes over."""

    path: str
    size: int
    mtime_ns: int
    fingerprint: str
    kind: str


def kind_of(head: bytes, suffix: str) -> str | None:
    """ "wav", "aiff", "vorbis" (FLAC/Ogg) or "mp3" from a file's first 12 bytes."""
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] in (b"fLaC", b"OggS"):
        return "vorbis"
    if head[:3] == b"ID3" or (suffix == ".mp3" and head[:1] == b"\xff"):
        return "mp3"
    return None


def write_fields(
    path: str, values: Mapping[str, str | None], *, keep_mtime: bool = True
) -> Written:
    """Write ``values`` (field name -> text; "" clears; None keeps what the file has) into
    the file at ``path`` (a catalog path). FileNotWritable, with the file untouched, when
    it is missing, read-only, of another format, damaged, or changed meanwhile;
    CannotWrite when its folder is full or read-only."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    target = os_path(path)
    name = shown_path(path)
    try:
        before = os.stat(target)
    except FileNotFoundError:
        raise FileNotWritable(f"{name} is not there (offline or moved): not written") from None
    except OSError as exc:
        raise FileNotWritable(f"{name} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise FileNotWritable(f"{name} is not a regular file: not written")
    folder = os.path.dirname(target) or "."
    # The mode bits too: a file marked read-only stays so even for root.
    if (
        not before.st_mode & 0o222
        or not os.access(target, os.W_OK)
        or not os.access(folder, os.W_OK)
    ):
        raise FileNotWritable(f"{name} is read-only here (the file or its folder): not written")
    with open(target, "rb") as f:
        head = f.read(12)
    kind = kind_of(head, Path(target).suffix.lower())
    if kind is None and Path(target).suffix.lower() in WRITABLE_SUFFIXES:
        raise FileNotWritable(
            f"{name} does not start like a {Path(target).suffix.lower()} file (damaged or "
            "misnamed): not written"
        )
    if kind is None:
        raise FileNotWritable(
            f"Sonarium cannot write metadata into {Path(target).suffix or 'these'} files "
            f"({name}); it writes {WRITABLE}"
        )
    try:
        with written(target) as temp:
            _build(kind, target, str(temp), before.st_size, values)
            os.chmod(temp, stat.S_IMODE(before.st_mode))
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(temp, before.st_uid, before.st_gid)
            verify(kind, target, str(temp), values)
            now = os.stat(target)
            # The inode too: a write keeps the mtime it found, so another writer's finished
            # rename shows only as a new inode.
            if _identity(now) != _identity(before):
                raise FileNotWritable(f"{name} changed while it was being written: not written")
            if keep_mtime:  # some DAWs and sync tools go by the modification time
                os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
    except riff.NotWritable as exc:
        raise FileNotWritable(f"{name}: {exc}; not written") from None
    except (UnicodeEncodeError, struct.error) as exc:  # a name or header beyond reading
        raise FileNotWritable(f"{name} cannot be rewritten ({exc}); not written") from None
    except CannotWrite:
        raise
    except OSError as exc:  # a name too long for a temporary beside it, an I/O error
        raise FileNotWritable(f"{name}: {exc.strerror or exc}; not written") from None
    after = os.stat(target)
    return Written(path, after.st_size, after.st_mtime_ns, fingerprint(path, after.st_size), kind)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _build(kind: str, source: str, temp: str, size: int, values: Mapping[str, str | None]) -> None:
    with open(source, "rb") as src, open(temp, "r+b") as dst:
        if kind == "wav":
            riff.rewrite(src, dst, size, values)
        elif kind == "aiff":
            aiff.rewrite(src, dst, size, values)
        else:
            riff.copy_range(src, dst, 0, size)  # mutagen edits the copy in place
        dst.truncate(dst.tell())  # a trailing hole (skipped zeros) becomes the file's end
    try:
        if kind == "aiff":
            tags.write_id3(temp, values, aiff=True)
        elif kind == "vorbis":
            tags.write_vorbis(temp, values)
        elif kind == "mp3":
            tags.write_id3(temp, values)
    except riff.NotWritable:
        raise
    except Exception as exc:  # mutagen raises many kinds on files it cannot parse
        raise riff.NotWritable(f"its tags cannot be written ({exc})") from exc


def verify(kind: str, original: str, new: str, values: Mapping[str, str | None]) -> None:
    """NotWritable unless ``new`` decodes to ``original``'s audio exactly and its
    metadata reads back as ``values``."""
    try:
        a, b = sf.info(original), sf.info(new)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise riff.NotWritable(f"the new file does not decode ({exc})") from exc
    if (a.frames, a.samplerate, a.channels) != (b.frames, b.samplerate, b.channels):
        raise riff.NotWritable("the new file's audio differs in length, rate or channels")
    if kind in ("wav", "aiff"):
        layout = riff if kind == "wav" else aiff
        with open(original, "rb") as fa, open(new, "rb") as fb:
            range_a = layout.data_range(fa, os.fstat(fa.fileno()).st_size)
            range_b = layout.data_range(fb, os.fstat(fb.fileno()).st_size)
            if range_a[1] != range_b[1] or not _same_bytes(fa, fb, range_a, range_b):
                raise riff.NotWritable("the new file's audio bytes differ from the original's")
    else:
        try:
            _same_samples(original, new)
        except (sf.LibsndfileError, RuntimeError) as exc:
            # A damaged stream (a FLAC that loses sync): its audio cannot be vouched for.
            raise riff.NotWritable(f"its audio does not decode cleanly ({exc})") from exc
    got = read_metadata(Path(new))
    for name, value in values.items():
        if value is None:
            continue
        f = FIELDS[name]
        if shown(got.get(f.column)) != value:
            raise riff.NotWritable(
                f"{name} did not read back from the new file ({shown(got.get(f.column))!r} "
                f"instead of {value!r})"
            )


def _same_bytes(fa: BinaryIO, fb: BinaryIO, ra: tuple[int, int], rb: tuple[int, int]) -> bool:
    fa.seek(ra[0])
    fb.seek(rb[0])
    left = ra[1]
    while left > 0:
        n = min(_COMPARE_BLOCK, left)
        if fa.read(n) != fb.read(n):
            return False
        left -= n
    return True


def _same_samples(original: str, new: str) -> None:
    """Both files decoded block by block (integers, so the comparison is exact)."""
    with sf.SoundFile(original) as a, sf.SoundFile(new) as b:
        while True:
            x = a.read(_DECODE_FRAMES, dtype="int32", always_2d=True)
            y = b.read(_DECODE_FRAMES, dtype="int32", always_2d=True)
            if not np.array_equal(x, y):
                raise riff.NotWritable("the new file's audio differs from the original's")
            if not len(x):
                return
