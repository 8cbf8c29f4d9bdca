"""The fields written as tags through mutagen: Vorbis comments (FLAC, Ogg Vorbis, Opus),
ID3v2.4 (MP3, and AIFF's ID3 chunk). Each field goes under its tag name (DESCRIPTION,
KEYWORDS, CATID, FXNAME...: engine/catalog/fields.py), as TXXX frames in ID3, so other
tools and Sonarium's scanner read them back. Any thread; mutagen edits the file it is
given in place, so engine/curate/write.py gives it the temporary copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mutagen
import mutagen.aiff
import mutagen.easyid3
import mutagen.flac
import mutagen.id3
import mutagen.oggopus
import mutagen.oggvorbis

import engine.scan.metadata  # noqa: F401  (registers the fields' TXXX keys with EasyID3)
from engine.catalog.fields import FIELDS
from engine.curate.riff import NotWritable

VORBIS = (mutagen.flac.FLAC, mutagen.oggvorbis.OggVorbis, mutagen.oggopus.OggOpus)


def write_vorbis(path: str, values: Mapping[str, str | None]) -> None:
    """Vorbis comments of a FLAC/Ogg file at ``path`` (an OS path), in place."""
    audio = mutagen.File(path)
    if not isinstance(audio, VORBIS):
        raise NotWritable("not a FLAC, Ogg Vorbis or Opus file")
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    _set(audio.tags, values, upper=True)
    audio.save()


def write_id3(path: str, values: Mapping[str, str | None], *, aiff: bool = False) -> None:
    """ID3v2.4 tags of an MP3 (or the ID3 chunk of an AIFF) at ``path``, in place."""
    if aiff:
        audio = mutagen.aiff.AIFF(path)
        if audio.tags is None:
            audio.add_tags()
        frames = audio.tags
        assert frames is not None
        for name, value in values.items():
            if value is None:
                continue
            key = FIELDS[name].tag
            frames.delall(f"TXXX:{key}")
            if value:
                frames.add(mutagen.id3.TXXX(encoding=3, desc=key, text=[value]))
        audio.save()
        return
    try:
        tags = mutagen.easyid3.EasyID3(path)
    except mutagen.id3.ID3NoHeaderError:
        tags = mutagen.easyid3.EasyID3()
    _set(tags, values, upper=False)
    tags.save(path, v2_version=4)


def _set(tags: Any, values: Mapping[str, str | None], *, upper: bool) -> None:
    """Each field under its tag name (upper case for Vorbis comments, lower case for the
    TXXX keys registered with EasyID3): "" removes it, None leaves it."""
    for name, value in values.items():
        if value is None:
            continue
        key = FIELDS[name].tag if upper else FIELDS[name].tag.lower()
        if value:
            tags[key] = [value]
        elif key in tags:
            del tags[key]
