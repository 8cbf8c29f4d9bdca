"""AIFF/AIFC files with new metadata: the NAME, AUTH and ANNO text chunks rebuilt from the
fields (the (c) chunk and every other chunk copied byte for byte, in order); the rest of
the fields go into the file's ID3 chunk afterwards (engine/curate/tags.py). Any thread.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import BinaryIO

from engine.curate.riff import NotWritable, copy_range

_MAX_CHUNKS = 4096
_U32_MAX = 0xFFFFFFFF
# Text chunks Sonarium fills, from which field.
_TEXT = {b"NAME": "fx_name", b"AUTH": "designer", b"ANNO": "description"}


def read_chunks(f: BinaryIO, file_size: int) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    """(form type, [(id, body offset, size)]) of an AIFF file; NotWritable when damaged."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
        raise NotWritable("not an AIFF file (no FORM AIFF header)")
    chunks: list[tuple[bytes, int, int]] = []
    pos = 12
    while pos + 8 <= file_size:
        if len(chunks) >= _MAX_CHUNKS:
            raise NotWritable(f"more than {_MAX_CHUNKS} chunks: a damaged file")
        f.seek(pos)
        header = f.read(8)
        cid, size = header[:4], struct.unpack(">I", header[4:])[0]
        if pos + 8 + size > file_size:
            raise NotWritable(f"chunk {cid.decode('latin-1')!r} runs past the end of the file")
        chunks.append((cid, pos + 8, size))
        pos += 8 + size + (size & 1)
    if not any(c[0] == b"COMM" for c in chunks) or not any(c[0] == b"SSND" for c in chunks):
        raise NotWritable("no COMM or SSND chunk")
    return head[8:12], chunks


def rewrite(src: BinaryIO, dst: BinaryIO, file_size: int, values: Mapping[str, str | None]) -> None:
    """Write to ``dst`` the AIFF file ``src`` with ``values`` in its text chunks (new ones
    go before SSND). NotWritable when it cannot be rewritten safely."""
    form, chunks = read_chunks(src, file_size)
    wanted: dict[bytes, str | None] = {cid: values.get(name) for cid, name in _TEXT.items()}
    pieces: list[tuple[bytes, int, int, bytes | None]] = []  # (id, offset, size, new body)
    replaced = {cid for cid, text in wanted.items() if text is not None}
    done: set[bytes] = set()
    for cid, offset, size in chunks:
        if cid in replaced:  # every old copy goes; the new text takes the first's place
            text = wanted[cid]
            if text and cid not in done:
                pieces.append((cid, 0, 0, text.encode("utf-8")))
            done.add(cid)
            continue
        if cid == b"SSND":
            for new_id in sorted(replaced - done):
                text = wanted[new_id]
                if text:
                    pieces.append((new_id, 0, 0, text.encode("utf-8")))
                done.add(new_id)
        pieces.append((cid, offset, size, None))
    total = 4 + sum(8 + (len(b) if b is not None else s) + ((len(b) if b is not None else s) & 1)
                    for _, _, s, b in pieces)  # fmt: skip
    if total > _U32_MAX:
        raise NotWritable("the file would pass AIFF's 4 GiB limit")
    dst.write(b"FORM" + struct.pack(">I", total) + form)
    for cid, offset, size, body in pieces:
        if body is not None:
            dst.write(cid + struct.pack(">I", len(body)) + body + b"\x00" * (len(body) & 1))
            continue
        dst.write(cid + struct.pack(">I", size))
        copy_range(src, dst, offset, size)
        if size & 1:
            dst.write(b"\x00")


def data_range(f: BinaryIO, file_size: int) -> tuple[int, int]:
    """(offset, length) of the SSND chunk's body (the audio, compared byte for byte)."""
    _, chunks = read_chunks(f, file_size)
    _, offset, size = next(c for c in chunks if c[0] == b"SSND")
    return offset, size
