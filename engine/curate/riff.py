"""WAV, BWF and RF64/BW64 files with new metadata: bext, iXML and LIST/INFO rebuilt from the
fields, every other chunk copied byte for byte and in its order. Any thread (it works on
the two files it is given; engine/curate/write.py makes that safe).

bext (EBU Tech 3285): its fixed-size fields are padded with NULs; the version, time
reference, UMID, loudness fields and coding history of an existing chunk are kept (a new
chunk is version 1). iXML: every element is kept but the ones Sonarium owns (NOTE, the
USER fields named in engine/catalog/fields.py, and BEXT's copies of the bext fields); an
iXML chunk that is not XML is left as it is. A file that grows past 4 GiB becomes RF64
(EBU Tech 3306), with its ds64 chunk first.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from engine.catalog.fields import FIELDS

_MAX_META_CHUNK = 16 * 1024 * 1024  # a larger bext/iXML/LIST is a damaged header
_MAX_CHUNKS = 4096
_U32_MAX = 0xFFFFFFFF
BEXT_FIXED = 602  # bytes before the coding history

# bext's fixed fields: offset, length.
_BEXT = {
    "description": (0, 256),
    "originator": (256, 32),
    "originator_reference": (288, 32),
    "date": (320, 10),
    "time": (330, 8),
}
# RIFF INFO items Sonarium fills, from which field.
_INFO = {b"INAM": "fx_name", b"ICMT": "description", b"IKEY": "keywords",
         b"IART": "designer", b"IGNR": "category"}  # fmt: skip


class NotWritable(ValueError):
    """The file's structure does not allow a safe rewrite (the message says why)."""


@dataclass
class Chunk:
    cid: bytes
    header: int  # offset of the chunk's 8-byte header
    size: int  # body length (from ds64 for RF64's big chunks)
    list_type: bytes = b""  # for LIST chunks: INFO, adtl...

    @property
    def body(self) -> int:
        return self.header + 8

    @property
    def end(self) -> int:  # the next chunk's header (bodies are padded to even length)
        return self.body + self.size + (self.size & 1)


@dataclass
class Layout:
    form: bytes  # RIFF, RF64 or BW64
    chunks: list[Chunk]
    file_size: int
    sample_count: int | None  # from ds64 (RF64), else None
    ds64_table: list[tuple[bytes, int]]


def read_layout(f: BinaryIO, file_size: int) -> Layout:
    """The chunks of a WAV file, validated: NotWritable when they do not fit the file."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        raise NotWritable("not a WAV file (no RIFF/RF64 WAVE header)")
    form = head[:4]
    chunks: list[Chunk] = []
    big: dict[bytes, int] = {}
    sample_count = None
    table: list[tuple[bytes, int]] = []
    pos = 12
    while pos + 8 <= file_size:
        if len(chunks) >= _MAX_CHUNKS:
            raise NotWritable(f"more than {_MAX_CHUNKS} chunks: a damaged file")
        f.seek(pos)
        header = f.read(8)
        cid, size = header[:4], struct.unpack("<I", header[4:])[0]
        if form != b"RIFF" and not chunks:
            if cid != b"ds64" or size < 28:
                raise NotWritable("an RF64 file without its ds64 chunk first")
            body = f.read(min(size, _MAX_META_CHUNK))
            if len(body) < 28:
                raise NotWritable("its ds64 chunk is cut short")
            _riff_size, data_size, sample_count, count = struct.unpack("<QQQI", body[:28])
            big[b"data"] = data_size
            for i in range(min(count, (len(body) - 28) // 12)):
                tid, tsize = struct.unpack("<4sQ", body[28 + 12 * i : 40 + 12 * i])
                big[tid] = tsize
                table.append((tid, tsize))
        if size == _U32_MAX and form != b"RIFF":
            if cid not in big:
                raise NotWritable(f"chunk {cid!r} has no size in ds64")
            size = big[cid]
        chunk = Chunk(cid, pos, size)
        if cid == b"LIST" and size >= 4:
            chunk.list_type = f.read(4)
        if chunk.body + size > file_size:
            if cid == b"data" and not any(c.cid == b"data" for c in chunks):
                # A data chunk cut short (a recorder stopped): rewriting would keep a lie.
                raise NotWritable("the audio data is shorter than its header says")
            raise NotWritable(f"chunk {cid.decode('latin-1')!r} runs past the end of the file")
        chunks.append(chunk)
        pos = chunk.end
    if not any(c.cid == b"fmt " for c in chunks) or not any(c.cid == b"data" for c in chunks):
        raise NotWritable("no fmt or data chunk")
    return Layout(form, chunks, file_size, sample_count, table)


def read_body(f: BinaryIO, chunk: Chunk) -> bytes:
    if chunk.size > _MAX_META_CHUNK:
        raise NotWritable(f"a {chunk.cid.decode('latin-1')} chunk of {chunk.size} bytes")
    f.seek(chunk.body)
    return f.read(chunk.size)


def _put(buf: bytearray, offset: int, length: int, text: str) -> None:
    raw = _fit(text, length)
    buf[offset : offset + length] = raw + b"\x00" * (length - len(raw))


def _fit(text: str, length: int) -> bytes:
    """UTF-8 cut to ``length`` bytes at a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= length:
        return raw
    return raw[:length].decode("utf-8", "ignore").encode("utf-8")


def bext_body(old: bytes | None, values: Mapping[str, str | None]) -> bytes | None:
    """The new bext body, or None when there is none and nothing to put in one."""
    wanted = {k: values.get(k) for k in ("description", "originator", "originator_reference")}
    date = values.get("origination_date")
    if old is None and not any(wanted.values()) and not date:
        return None
    buf = bytearray(old if old is not None and len(old) >= BEXT_FIXED else b"")
    if not buf:
        buf = bytearray(BEXT_FIXED)
        struct.pack_into("<H", buf, 346, 1)  # version 1 (UMID; no loudness values)
        if old:
            buf[: len(old)] = old  # a short (version 0) chunk's fields
    for key, value in wanted.items():
        if value is not None:
            _put(buf, *_BEXT[key], value)
    if date is not None:
        day, _, clock = date.partition(" ")
        _put(buf, *_BEXT["date"], day)
        _put(buf, *_BEXT["time"], clock)
    return bytes(buf)


def ixml_body(old: bytes | None, values: Mapping[str, str | None]) -> bytes | None:
    """The new iXML document, or None to leave the chunk as it is (it is not XML, or
    there is none and nothing to put in one)."""
    root: ET.Element | None
    if old is not None:
        try:
            root = ET.fromstring(old.rstrip(b"\x00 \r\n\t").strip() or b"<x/>")
        except ET.ParseError:
            return None  # never destroy what we cannot read
        if root.tag != "BWFXML":
            return None
    else:
        if not any(values.get(name) for name in FIELDS):
            return None
        root = ET.Element("BWFXML")
        ET.SubElement(root, "IXML_VERSION").text = "1.61"
    _set(root, "NOTE", values.get("notes"))
    user = root.find("USER")
    if user is None:
        user = ET.SubElement(root, "USER")
    for name, f in FIELDS.items():
        _set(user, f.tag, values.get(name))
    category, sub = values.get("category"), values.get("subcategory")
    if category is not None or sub is not None:
        full = "-".join(v for v in (category, sub) if v)
        _set(user, "CATEGORYFULL", full)
    bext = root.find("BEXT")
    if bext is not None:  # iXML's copy of the bext fields, as recorders write it
        _set(bext, "BWF_DESCRIPTION", values.get("description"))
        _set(bext, "BWF_ORIGINATOR", values.get("originator"))
        _set(bext, "BWF_ORIGINATOR_REFERENCE", values.get("originator_reference"))
        date = values.get("origination_date")
        if date is not None:
            day, _, clock = date.partition(" ")
            _set(bext, "BWF_ORIGINATION_DATE", day)
            _set(bext, "BWF_ORIGINATION_TIME", clock)
    if not len(user):
        root.remove(user)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _set(parent: ET.Element, tag: str, value: str | None) -> None:
    """None: leave it; "": remove it; text: set it (made when missing)."""
    if value is None:
        return
    node = parent.find(tag)
    if value == "":
        if node is not None:
            parent.remove(node)
        return
    if node is None:
        node = ET.SubElement(parent, tag)
    node.text = value


def info_body(old: bytes | None, values: Mapping[str, str | None]) -> bytes | None:
    """The new LIST/INFO body (starting with b"INFO"), or None when there is none and
    nothing to put in one. Items Sonarium does not fill are kept in their order."""
    items: list[tuple[bytes, bytes]] = []
    if old is not None:
        pos = 4
        while pos + 8 <= len(old):
            cid = old[pos : pos + 4]
            length = struct.unpack("<I", old[pos + 4 : pos + 8])[0]
            items.append((cid, old[pos + 8 : pos + 8 + length]))
            pos += 8 + length + (length & 1)
    wanted = {cid: values.get(name) for cid, name in _INFO.items()}
    if old is None and not any(wanted.values()):
        return None
    kept: dict[bytes, bytes | None] = {}
    for cid, value in wanted.items():
        if value is not None:
            kept[cid] = value.encode("utf-8") + b"\x00" if value else None
    out: list[tuple[bytes, bytes]] = []
    for cid, raw in items:
        if cid in kept:
            new = kept.pop(cid)
            if new is not None:
                out.append((cid, new))
        else:
            out.append((cid, raw))
    out += [(cid, raw) for cid, raw in kept.items() if raw is not None]
    if not any(cid == b"ISFT" for cid, _ in out):
        out.append((b"ISFT", b"Sonarium\x00"))
    body = bytearray(b"INFO")
    for cid, raw in out:
        body += cid + struct.pack("<I", len(raw)) + raw + (b"\x00" if len(raw) & 1 else b"")
    return bytes(body)


def rewrite(src: BinaryIO, dst: BinaryIO, file_size: int, values: Mapping[str, str | None]) -> None:
    """Write to ``dst`` the WAV file ``src`` with ``values`` (field name -> text; ""
    clears, None or absent keeps) in its bext, iXML and INFO. NotWritable when the file
    is not one this can rewrite safely."""
    layout = read_layout(src, file_size)
    chunks = layout.chunks
    first = {cid: next((c for c in chunks if c.cid == cid and not c.list_type), None)
             for cid in (b"bext", b"iXML")}  # fmt: skip
    info = next((c for c in chunks if c.cid == b"LIST" and c.list_type == b"INFO"), None)
    new_bodies: dict[int, bytes | None] = {}  # chunk index -> new body (None: leave)
    added: list[tuple[bytes, bytes]] = []
    for cid, build in ((b"bext", bext_body), (b"iXML", ixml_body)):
        chunk = first[cid]
        body = build(read_body(src, chunk) if chunk else None, values)
        if chunk is not None:
            new_bodies[chunks.index(chunk)] = body
        elif body is not None:
            added.append((cid, body))
    body = info_body(read_body(src, info) if info else None, values)
    if info is not None:
        new_bodies[chunks.index(info)] = body
    elif body is not None:
        added.append((b"LIST", body))

    # Bodies of even length: some readers (libsndfile's RF64 parser) ignore the pad byte
    # after an odd-sized chunk. A newline ends iXML's text, a NUL bext's coding history.
    for index, new_body in list(new_bodies.items()):
        if new_body is not None and len(new_body) & 1:
            new_bodies[index] = new_body + (b"\n" if chunks[index].cid == b"iXML" else b"\x00")
    added = [(cid, b + (b"\n" if cid == b"iXML" else b"\x00") if len(b) & 1 else b)
             for cid, b in added]  # fmt: skip

    # The pieces in order: ("copy", chunk) or ("new", id, body); new chunks before data.
    pieces: list[tuple[str, Chunk | None, bytes, bytes]] = []
    data_index = next(i for i, c in enumerate(chunks) if c.cid == b"data")
    for i, chunk in enumerate(chunks):
        if i == data_index:
            pieces += [("new", None, cid, b) for cid, b in added]
        new = new_bodies.get(i)
        if new is not None:
            pieces.append(("new", None, chunk.cid, new))
        elif chunk.cid != b"ds64":
            pieces.append(("copy", chunk, chunk.cid, b""))

    def piece_size(p: tuple[str, Chunk | None, bytes, bytes]) -> int:
        if p[0] == "new":
            return 8 + len(p[3]) + (len(p[3]) & 1)
        assert p[1] is not None
        return 8 + p[1].size + (p[1].size & 1)

    body_total = sum(piece_size(p) for p in pieces)
    ds64_size = 8 + 28 + 12 * len(layout.ds64_table)
    as_rf64 = layout.form != b"RIFF" or 4 + body_total > _U32_MAX
    # Tech 3306 reserves a leading JUNK chunk of ds64's size for the upgrade to RF64.
    junk = pieces[0][1] if pieces and pieces[0][2] == b"JUNK" else None
    if as_rf64 and layout.form == b"RIFF" and junk is not None and junk.size == 28:
        pieces.pop(0)
        body_total -= 36
    total = 12 + body_total + (ds64_size if as_rf64 else 0)
    data = chunks[data_index]
    if as_rf64:
        form = b"RF64" if layout.form == b"RIFF" else layout.form
        dst.write(form + struct.pack("<I", _U32_MAX) + b"WAVE")
        samples = layout.sample_count
        if samples is None:
            samples = data.size // max(1, _block_align(src, chunks))
        dst.write(b"ds64" + struct.pack("<I", ds64_size - 8))
        dst.write(struct.pack("<QQQI", total - 8, data.size, samples, len(layout.ds64_table)))
        for tid, tsize in layout.ds64_table:
            dst.write(struct.pack("<4sQ", tid, tsize))
    else:
        dst.write(b"RIFF" + struct.pack("<I", total - 8) + b"WAVE")
    for kind, chunk, cid, body in pieces:
        if kind == "new":
            pad = b"\x00" if len(body) & 1 else b""
            dst.write(cid + struct.pack("<I", len(body)) + body + pad)
            continue
        assert chunk is not None
        size_field = chunk.size
        if as_rf64 and chunk.size > _U32_MAX - 1 or (as_rf64 and cid == b"data"):
            size_field = _U32_MAX
        dst.write(cid + struct.pack("<I", size_field))
        copy_range(src, dst, chunk.body, chunk.size)
        if chunk.size & 1:
            dst.write(b"\x00")


def _block_align(src: BinaryIO, chunks: list[Chunk]) -> int:
    fmt = next(c for c in chunks if c.cid == b"fmt ")
    body = read_body(src, fmt)
    return struct.unpack("<H", body[12:14])[0] if len(body) >= 14 else 1


COPY_BLOCK = 1 << 20


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, length: int) -> None:
    """Copy ``length`` bytes from ``offset`` in blocks (memory stays at one block); a
    block of zeros is skipped over as a hole (the caller truncates the file to its size
    at the end), so sparse test files stay sparse and silence costs no writes."""
    src.seek(offset)
    zero = bytes(COPY_BLOCK)
    left = length
    while left > 0:
        block = src.read(min(COPY_BLOCK, left))
        if not block:
            raise NotWritable("the file got shorter while it was copied")
        if len(block) == COPY_BLOCK and block == zero:
            dst.seek(COPY_BLOCK, 1)
        else:
            dst.write(block)
        left -= len(block)


def data_range(f: BinaryIO, file_size: int) -> tuple[int, int]:
    """(offset, length) of the audio data chunk (for comparing audio byte for byte)."""
    layout = read_layout(f, file_size)
    data = next(c for c in layout.chunks if c.cid == b"data")
    return data.body, data.size
