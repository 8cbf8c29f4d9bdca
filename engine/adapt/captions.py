"""Captions of files from what the catalog knows, and UCS knowledge for captions and queries.

A file's caption is the words a person used to describe it: its name and folder words,
BWF/iXML descriptions, tags and UCS category. Names are split (separators, camelCase,
digits); numbers, take counters, codes without vowels (`pcv637`, `BL_01`), hashes,
extensions and words that occur in a large share of the library say nothing about a
sound and are dropped. A file whose name, description and tags carry nothing gets no
caption (folder words alone describe a whole folder, not the file). Pure functions:
any thread.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.scan.ucs import UcsTable
from engine.search.words import split_words

# Words that say nothing about a sound (formats, packaging, numbering, takes).
_STOP = """wav wave ogg oga flac aif aiff mp3 opus sound sounds snd sfx fx data sample samples
audio the and of an in on to for with new old final take takes mix mono stereo left right
version ver alt edit copy file files track usr share"""
STOPWORDS = frozenset(_STOP.split())
# A word in more than this share of the described files describes the library, not a file.
COMMON_SHARE = 0.5
# ...but only once the library is big enough for shares to mean anything.
COMMON_MIN_FILES = 20
# How many folder levels (nearest first) can describe a file.
FOLDER_LEVELS = 3
# Query words listed as synonyms by more CatIDs than this are too broad to expand.
MAX_SYNONYM_CATEGORIES = 2
# One file's text must not dominate: a 1.6 MB iXML note once made a 257 MB adapter for 40
# files (captions are stored padded to the longest). The encoder reads 256 tokens at most.
MAX_DESCRIPTION_CHARS = 4096
MAX_CAPTION_CHARS = 512
_HEX = re.compile(r"^[0-9a-f]{8,}$")


@dataclass(frozen=True)
class FileText:
    """What the catalog knows about one file, as text (hidden files have only `id`)."""

    id: int
    name: str = ""
    folder_parts: tuple[str, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    ucs_catid: str = ""


def useful_words(text: str) -> list[str]:
    """Lower-case words of `text` that can describe a sound.

    >>> useful_words("BL_03 Door-WoodCreak_slow take2 pcv637.wav")
    ['door', 'wood', 'creak', 'slow']
    """
    # Word by whitespace-separated token, remembered: split_words splits on whitespace
    # first, and a large library's captions repeat their tokens (a million files').
    return [w for token in text.split() for w in _useful_token(token)]


@functools.lru_cache(maxsize=65_536)
def _useful_token(token: str) -> tuple[str, ...]:
    out = []
    for raw in split_words(token):
        w = raw.lower()
        if (
            len(w) >= 3 and w.isalpha() and w not in STOPWORDS
            and any(v in w for v in "aeiouy") and not _HEX.match(w)
        ):  # fmt: skip
            out.append(w)
    return tuple(out)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _dedupe(words: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)


def file_words(f: FileText, ucs: UcsTable | None) -> tuple[list[str], list[str]]:
    """(own words, folder words) of a file before common words are dropped."""
    own = useful_words(_stem(f.name))
    own += useful_words(f.description[:MAX_DESCRIPTION_CHARS])
    for tag in f.tags:
        own += useful_words(tag)
    entry = ucs.by_catid.get(f.ucs_catid) if ucs and f.ucs_catid else None
    if entry is not None:
        own += useful_words(f"{entry.category} {entry.subcategory}")
    folder = [w for part in f.folder_parts[-FOLDER_LEVELS:][::-1] for w in useful_words(part)]
    return _dedupe(own), _dedupe(folder)


def common_words(words: list[tuple[list[str], list[str]]]) -> set[str]:
    """Words found in more than COMMON_SHARE of the files that have own words."""
    described = [set(own) | set(folder) for own, folder in words if own]
    if len(described) < COMMON_MIN_FILES:
        return set()
    counts = Counter(w for ws in described for w in ws)
    limit = COMMON_SHARE * len(described)
    return {w for w, c in counts.items() if c > limit}


def build_captions(
    files: list[FileText], ucs: UcsTable | None = None, knowledge: bool = True
) -> dict[int, str]:
    """file id -> caption, for the files whose own words say something ('' files omitted).

    With `knowledge`, a UCS-named file's caption gains its category's explanation.
    """
    words = [file_words(f, ucs) for f in files]
    common = common_words(words)
    captions: dict[int, str] = {}
    for f, (own, folder) in zip(files, words, strict=True):
        own = [w for w in own if w not in common]
        if not own:
            continue
        text = " ".join(own + [w for w in folder if w not in common and w not in own])
        entry = ucs.by_catid.get(f.ucs_catid) if ucs and f.ucs_catid else None
        if knowledge and entry is not None and entry.explanation:
            text += ". " + entry.explanation
        if len(text) > MAX_CAPTION_CHARS:
            text = text[:MAX_CAPTION_CHARS].rsplit(" ", 1)[0]
        captions[f.id] = text
    return captions


def knowledge_words(
    text: str,
    ucs: UcsTable | None,
    vocabulary: set[str],
    encoder_knows: Callable[[str], bool] | None = None,
) -> str:
    """UCS category words for the query's words that nothing else understands ('' if none).

    "kerboom" is in no file name and the sentence encoder only sees word pieces of it,
    but UCS lists it as a synonym of AIR BURST; those words let the query reach captions
    that use them. Left alone: a query with any word the library's captions use (direct
    evidence), words the encoder knows whole (`encoder_knows`; expanding those measured
    worse: "laughter" was pulled towards crowds), and synonyms of many categories
    ("snap": ceramics, chains, wood...), which say little.
    """
    words = useful_words(text)
    if ucs is None or not words or any(w in vocabulary for w in words):
        return ""
    extra: list[str] = []
    for word in words:
        if encoder_knows is not None and encoder_knows(word):
            continue
        entries = ucs.by_synonym.get(word, [])
        if len(entries) <= MAX_SYNONYM_CATEGORIES:
            for entry in entries:
                extra += useful_words(f"{entry.category} {entry.subcategory}")
    return " ".join(w for w in _dedupe(extra) if w not in words)


def catalog_file_texts(catalog, hidden: set[int] | None = None) -> list[FileText]:
    """FileText for every readable file of a catalog (call on the catalog's thread).

    Files in `hidden` keep only their id (the eval's --hide-names protocol).
    """
    hidden = hidden or set()
    tags: dict[int, list[str]] = {}
    for row in catalog.conn.execute("SELECT file_id, tag FROM user_tags"):
        tags.setdefault(row[0], []).append(row[1])
    out = []
    for row in catalog.query(
        "SELECT f.id, f.name, f.folder, r.path AS root, f.description, f.ixml_note, "
        "f.embedded_tags, f.ucs_catid, f.keywords FROM files f JOIN roots r ON r.id = f.root_id "
        "WHERE f.status = 'ok' ORDER BY f.id"
    ):
        if row["id"] in hidden:
            out.append(FileText(row["id"]))
            continue
        rel = os.path.relpath(row["folder"], row["root"]) if row["folder"] else "."
        parts = tuple(p for p in rel.split(os.sep) if p not in ("", "."))
        embedded = json.loads(row["embedded_tags"]) if row["embedded_tags"] else {}
        file_tags = list(tags.get(row["id"], []))
        # Embedded tags that describe the sound (title, comment, genre), not who made it.
        # (Description and keywords have their columns, which user edits change.)
        for key in ("title", "comment", "genre", "subject"):
            value = embedded.get(key) if isinstance(embedded, dict) else None
            if isinstance(value, str):
                file_tags.append(value)
        if row["keywords"]:
            file_tags.append(row["keywords"])
        desc = " ".join(x for x in (row["description"], row["ixml_note"]) if x)
        out.append(
            FileText(row["id"], row["name"], parts, desc, tuple(file_tags), row["ucs_catid"] or "")
        )
    return out
