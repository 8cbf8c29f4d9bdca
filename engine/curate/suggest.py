"""Category suggestions: the likeliest UCS CatIDs of a file, with a confidence, from how
it sounds: what the library's nearest sounds are named, and the category knowledge
shipped as base knowledge (a classifier over the audio space learned from the training
corpus's names); and from whatever words the file has (its name, description and
keywords read against each category's names, explanation and synonyms). Also which
CatID a file's name means, when it clearly means one (used to measure the suggestions:
bench/suggest_bench.py). Call on the thread that owns the catalog and the text space.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from engine.adapt.captions import useful_words
from engine.catalog.db import ID_SET, Catalog, id_set
from engine.scan.ucs import UcsTable

# A suggestion is a product of three opinions on each category: what the library's own
# nearest sounds are named (their names read against the categories, nearer ones
# counting more), the file's own words, and the shipped classifier over the sound. The
# classifier is a weak prior (its weight below 1): on the dev corpus it alone named a
# file's category less often than always guessing the commonest, while the neighbours'
# names did three times better (docs/measurements.md); with no named neighbours (a
# library of unnamed files) it decides. Floors keep one opinion from vetoing the rest.
NEIGHBOURS = 10
AUDIO_WEIGHT = 0.25
WORDS_WEIGHT = 1.0
FLOOR = 1e-3
TOP = 3


def category_space(text_space: Any) -> Any:
    """The part of a library's text space that holds category knowledge (the base
    knowledge's space, alone or inside a blend), or None."""
    for space in (text_space, getattr(text_space, "base", None)):
        if space is not None and getattr(space, "categories", None) is not None:
            return space
    return None


def file_text(row: dict[str, Any]) -> str:
    """The words of a file that can name its category (name, description, keywords)."""
    stem = row["name"].rsplit(".", 1)[0]
    parts = [stem, row.get("description") or "", row.get("keywords") or ""]
    return " ".join(useful_words(" ".join(parts)))


def word_distributions(
    catalog: Catalog, space: Any, file_ids: Iterable[int], encoder: Any = None
) -> dict[int, np.ndarray]:
    """file id -> how its words read against each category (sums to 1), for the files
    that have words."""
    ids = list(file_ids)
    rows = catalog.query(
        f"SELECT id, name, description, keywords FROM files WHERE id IN ({ID_SET})",
        (id_set(ids),),
    )
    texts = {r["id"]: file_text(r) for r in rows}
    worded = [i for i in ids if texts.get(i)]
    if not worded:
        return {}
    if encoder is None:
        from engine.models.text_encoder import shared_encoder

        encoder = shared_encoder()
    vectors = encoder.encode([texts[i] for i in worded])
    return {i: space.categories.query_distribution(v) for i, v in zip(worded, vectors, strict=True)}


def suggest(
    catalog: Catalog,
    space: Any,
    index: Any,
    ucs: UcsTable | None,
    file_ids: Iterable[int],
    *,
    use_words: bool = True,
    exclude: frozenset[int] = frozenset(),
    top: int = TOP,
    encoder: Any = None,
) -> dict[int, list[dict[str, Any]]]:
    """file id -> its ``top`` CatIDs [{"catid", "category", "subcategory",
    "confidence"}], best first. ``index`` finds each file's nearest sounds
    (engine/search/similar.py); ``exclude``: files whose names must not be read as
    neighbours (an evaluation's hidden files). Files without a vector get none."""
    ids, log_p = space.category_log_probs(list(file_ids))
    if len(ids) == 0:
        return {}
    knowledge = space.categories
    catids: list[str] = list(knowledge.catids)
    scores = AUDIO_WEIGHT * log_p.astype(np.float64)
    _, raw = space._vectors(ids)
    neighbours: dict[int, list[int]] = {}
    for file_id, vector in zip(ids, raw, strict=True):
        found = index.nearest(space.name, vector, NEIGHBOURS, {int(file_id)} | exclude)
        neighbours[int(file_id)] = [n for n, _ in found]
    wanted = {n for ns in neighbours.values() for n in ns}
    if use_words:
        wanted |= {int(i) for i in ids}
    words = word_distributions(catalog, space, wanted, encoder)
    for k, file_id in enumerate(ids):
        vote = np.zeros(len(catids))
        for rank, n in enumerate(neighbours[int(file_id)]):
            if n in words:
                vote += words[n] / np.sqrt(1 + rank)
        if vote.sum() > 0:
            scores[k] += np.log(vote / vote.sum() + FLOOR)
        if use_words and int(file_id) in words:
            scores[k] += WORDS_WEIGHT * np.log(words[int(file_id)] + FLOOR)
    scores -= scores.max(1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(1, keepdims=True)
    out: dict[int, list[dict[str, Any]]] = {}
    for k, file_id in enumerate(ids):
        best = np.argsort(-probs[k], kind="stable")[:top]
        out[int(file_id)] = [_entry(catids[j], float(probs[k, j]), ucs) for j in best]
    return out


def _entry(catid: str, confidence: float, ucs: UcsTable | None) -> dict[str, Any]:
    entry = ucs.by_catid.get(catid) if ucs is not None else None
    return {
        "catid": catid,
        "category": entry.category if entry else "",
        "subcategory": entry.subcategory if entry else "",
        "confidence": round(confidence, 4),
    }


# -- which CatID a name means --------------------------------------------------------------

# A name means a category when more than this share of its reading falls on that one
# category (the same reading that softly labels captions when the knowledge is learned).
NAME_SHARE = 0.5


def name_catids(space: Any, texts: list[str], *, encoder: Any = None) -> list[str | None]:
    """The CatID each text (a file's words) means unambiguously, else None; through the
    space's category knowledge: its categories' names, explanations and synonyms."""
    knowledge = space.categories
    out: list[str | None] = [None] * len(texts)
    worded = [k for k, t in enumerate(texts) if t.strip()]
    if not worded:
        return out
    if encoder is None:
        from engine.models.text_encoder import shared_encoder

        encoder = shared_encoder()
    for k, vector in zip(worded, encoder.encode([texts[k] for k in worded]), strict=True):
        p = knowledge.query_distribution(vector)
        best = int(np.argmax(p))
        if p[best] > NAME_SHARE:
            out[k] = knowledge.catids[best]
    return out
