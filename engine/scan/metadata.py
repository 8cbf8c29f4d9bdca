"""Embedded metadata: tags through mutagen, BWF/iXML/RIFF INFO through a small chunk parser.

Any thread may call these. Every reader is defensive: a malformed chunk or tag yields
fewer fields, never an exception, because metadata must not make a playable file an error.
"""

from __future__ import annotations

import logging
import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import mutagen
import mutagen.easyid3

from engine.catalog.fields import BY_TAG, tag_values
from engine.catalog.paths import open_binary, os_path

log = logging.getLogger(__name__)

# Metadata chunks are small; a larger declared size means a corrupt header.
_MAX_CHUNK = 4 * 1024 * 1024
_MAX_CHUNKS = 256

_INFO_FIELDS = {
    b"INAM": "title", b"IART": "artist", b"ICMT": "comment", b"IGNR": "genre",
    b"ICOP": "copyright", b"ICRD": "date", b"IKEY": "keywords", b"ISBJ": "subject",
    b"ISFT": "software", b"IPRD": "product", b"ISRC": "source",
}  # fmt: skip


def _text(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0]
    for encoding in ("utf-8", "latin-1"):
        try:
            return raw.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    return ""


def read_riff_chunks(path: Path) -> dict[str, Any]:
    """BWF `bext`, `iXML` and LIST/INFO fields of a RIFF/RF64/BW64 WAV file."""
    out: dict[str, Any] = {}
    try:
        with open_binary(str(path)) as f:
            head = f.read(12)
            if (
                len(head) < 12
                or head[:4] not in (b"RIFF", b"RF64", b"BW64")
                or head[8:12] != b"WAVE"
            ):
                return out
            size = os.fstat(f.fileno()).st_size
            pos = 12
            for _ in range(_MAX_CHUNKS):
                if pos + 8 > size:
                    break
                f.seek(pos)
                header = f.read(8)
                if len(header) < 8:
                    break
                cid, length = header[:4], struct.unpack("<I", header[4:])[0]
                if cid in (b"bext", b"iXML", b"LIST") and length <= _MAX_CHUNK:
                    body = f.read(length)
                    if cid == b"bext":
                        _parse_bext(body, out)
                    elif cid == b"iXML":
                        _parse_ixml(body, out)
                    elif body[:4] == b"INFO":
                        _parse_info(body[4:], out)
                if cid == b"data" and length == 0xFFFFFFFF:
                    break  # RF64 data size lives in ds64; metadata chunks come before it
                pos += 8 + length + (length & 1)
    except OSError as exc:
        log.debug("metadata: %s: %s", path, exc)
    return out


def _parse_bext(body: bytes, out: dict[str, Any]) -> None:
    if len(body) < 256 + 32 + 32 + 10 + 8:
        return
    out["description"] = _text(body[0:256]) or None
    out["originator"] = _text(body[256:288]) or None
    out["originator_reference"] = _text(body[288:320]) or None
    date, clock = _text(body[320:330]), _text(body[330:338])
    out["origination_date"] = (date + (" " + clock if clock else "")) or None


def _parse_ixml(body: bytes, out: dict[str, Any]) -> None:
    try:
        root = ET.fromstring(body.rstrip(b"\x00").strip())
    except ET.ParseError:
        return
    for tag, key in (("NOTE", "ixml_note"), ("PROJECT", "ixml_project"),
                     ("SCENE", "ixml_scene"), ("TAKE", "ixml_take")):  # fmt: skip
        node = root.find(tag)
        if node is not None and node.text and node.text.strip():
            out[key] = node.text.strip()
    user = root.find("USER")
    if user is not None:
        _named_fields({child.tag: child.text or "" for child in user}, out)


# The fields another tool (or Sonarium) wrote under their tag names (engine/catalog/
# fields.py), as iXML USER elements, Vorbis comments or ID3 TXXX frames.
_BY_TAG = BY_TAG


# Easy ID3 shows only the keys it knows: the fields are TXXX frames named by their tags
# (as other tools write them), read and written through the same easy interface.
for _tag in BY_TAG:
    if _tag.lower() not in mutagen.easyid3.EasyID3.valid_keys:
        mutagen.easyid3.EasyID3.RegisterTXXXKey(_tag.lower(), _tag)


def _named_fields(values: dict[str, str], out: dict[str, Any]) -> None:
    """Catalog columns from tag-named values; a value the field refuses is left out, and
    what the file's own chunks said (bext's description) stays first."""
    for f, value in tag_values(values):
        have = out.get(f.column)
        if not have or (isinstance(value, str) and len(value) > len(str(have))
                        and value.startswith(str(have))):  # fmt: skip
            # bext's fixed fields cut long values: the whole one, written beside, wins.
            out[f.column] = value


def _parse_info(body: bytes, out: dict[str, Any]) -> None:
    tags = out.setdefault("info", {})
    pos = 0
    while pos + 8 <= len(body):
        cid = body[pos : pos + 4]
        length = struct.unpack("<I", body[pos + 4 : pos + 8])[0]
        value = body[pos + 8 : pos + 8 + length]
        if cid in _INFO_FIELDS:
            text = _text(value)
            if text:
                tags[_INFO_FIELDS[cid]] = text
        pos += 8 + length + (length & 1)


def read_tags(path: Path) -> dict[str, str]:
    """Tags through mutagen (ID3, Vorbis comments, FLAC, MP4, AIFF), as plain strings."""
    try:
        audio = mutagen.File(os_path(str(path)), easy=True)
    except Exception as exc:  # mutagen raises many types on malformed input
        log.debug("tags: %s: %s", path, exc)
        return {}
    if audio is None or not audio.tags:
        return {}
    tags: dict[str, str] = {}
    try:
        for key, value in audio.tags.items():
            if isinstance(value, list):
                text = "; ".join(str(v) for v in value if str(v).strip())
            else:
                text = str(value)
            if text and len(text) < 4096:
                tags[str(key).lower()] = text
    except Exception as exc:
        log.debug("tags: %s: %s", path, exc)
    return tags


def read_metadata(path: Path) -> dict[str, Any]:
    """Catalog columns from embedded metadata (description, iXML fields, embedded_tags)
    of a catalog path (engine.catalog.paths)."""
    fields = (
        read_riff_chunks(path) if path.suffix.lower() in (".wav", ".wave", ".bwf", ".rf64") else {}
    )
    tags = read_tags(path)
    info = fields.pop("info", {})
    tags.update(info)
    _named_fields(tags, fields)
    if info.get("keywords") and not fields.get("keywords"):
        fields["keywords"] = info["keywords"]  # RIFF INFO IKEY
    fields["embedded_tags"] = tags  # all of them, as the file has them
    return fields
