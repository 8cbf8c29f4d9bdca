"""Splitting file names and folders into searchable words. Pure functions, any thread."""

from __future__ import annotations

import re

# Lower→Upper ("exploBig"), Upper→Upper+lower ("HTTPServer"), letter↔digit ("BD01").
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_DIGITS = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_SEPARATORS = re.compile(r"[\W_]+", re.UNICODE)


def split_words(text: str) -> list[str]:
    """Words of a name: split on `_`, `-`, spaces and punctuation, camelCase and digits.

    >>> split_words("exploBig_02-final take.wav")
    ['explo', 'Big', '02', 'final', 'take', 'wav']
    """
    words: list[str] = []
    for part in _SEPARATORS.split(text):
        if not part:
            continue
        for piece in _CAMEL.split(part):
            words.extend(w for w in _DIGITS.split(piece) if w)
    return words


def name_words(file_name: str) -> str:
    """Searchable text for a file name: its split words plus the unsplit stem.

    The stem is kept so a query for the literal name ("exploBig") still matches.
    """
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    words = split_words(stem)
    compact = _SEPARATORS.sub(" ", stem).split()
    extra = [w for w in compact if w not in words]
    return " ".join(words + extra)
