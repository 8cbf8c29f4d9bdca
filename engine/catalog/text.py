"""Catalog text shown to people: names, paths and metadata escaped so that they cannot
move a terminal's cursor or reorder a line. Any thread; the CLI and the GUI both call it,
and the catalog keeps the original."""

from __future__ import annotations

import re

from engine.catalog.paths import shown

# Control characters (C0, DEL, C1) and bidirectional overrides/isolates: in a name or a
# metadata field they would move the cursor, recolour or reorder the terminal, or split a
# result over two lines. The catalog keeps the original; only what is printed is escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """``value`` as text safe to print on a terminal: unsafe characters escaped (\\n,
    \\x1b, \\u202e...), a name that is not valid UTF-8 shown with \\xNN for its bytes."""
    text = shown(str(value))  # a catalog path's undecodable bytes as \\xNN
    try:  # a name the OS gave as bytes that are not UTF-8: show those bytes as \\xNN
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")

    def escape(m: re.Match[str]) -> str:
        return m.group().encode("unicode_escape").decode("ascii")

    return _UNSAFE.sub(escape, text)
