"""Category suggestions: the likeliest UCS CatIDs of a file, with a confidence, from how
it sounds (the category knowledge shipped as base knowledge: a classifier over the audio
space learned from the training corpus's names) and from whatever words the file has
(its name, description and keywords read against each category's names, explanation and
synonyms). Also the name matcher that says which CatID a file's name means, when it
means exactly one (used to measure the suggestions: bench/suggest_bench.py). Call on the
thread that owns the catalog and the text space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from engine.adapt.captions import useful_words
from engine.catalog.db import ID_SET, Catalog, id_set
from engine.scan.ucs import UcsTable

# How much the file's words count against its sound (a product of the two distributions,
# the words' raised to this power). Words are trusted as much as the sound.
WORDS_WEIGHT = 1.0
# The words' distribution is floored so one word cannot veto what the sound says.
WORDS_FLOOR = 1e-3
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


def suggest(
    catalog: Catalog,
    space: Any,
    ucs: UcsTable | None,
    file_ids: Iterable[int],
    *,
    use_words: bool = True,
    top: int = TOP,
    encoder: Any = None,
) -> dict[int, list[dict[str, Any]]]:
    """file id -> its ``top`` CatIDs [{"catid", "category", "subcategory",
    "confidence"}], best first. Files without a vector in the space get none."""
    ids, log_p = space.category_log_probs(list(file_ids))
    if len(ids) == 0:
        return {}
    knowledge = space.categories
    catids: list[str] = list(knowledge.catids)
    scores = log_p.astype(np.float64)
    if use_words:
        rows = {
            r["id"]: r
            for r in catalog.query(
                f"SELECT id, name, description, keywords FROM files WHERE id IN ({ID_SET})",
                (id_set(int(i) for i in ids),),
            )
        }
        texts = [file_text(rows[int(i)]) if int(i) in rows else "" for i in ids]
        worded = [k for k, t in enumerate(texts) if t]
        if worded:
            if encoder is None:
                from engine.models.text_encoder import shared_encoder

                encoder = shared_encoder()
            vectors = encoder.encode([texts[k] for k in worded])
            for k, vector in zip(worded, vectors, strict=True):
                p_words = knowledge.query_distribution(vector)
                scores[k] += WORDS_WEIGHT * np.log(p_words + WORDS_FLOOR)
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


def _terms(text: str) -> list[str]:
    return [_singular(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1]


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# Subcategory names that say nothing without their category.
_GENERIC = {"misc", "general", "other", "large", "small", "medium", "big", "short", "long",
            "single", "multiple", "various", "high", "low", "light", "heavy"}  # fmt: skip


class NameMatcher:
    """Says which CatID a file name means when exactly one fits best: a category whose
    own name and subcategory name (or one of its synonyms) are both among the name's
    words ("glass_break_03" is GLASBrk; "door_wood_creak" is DOORWood). Immutable; any
    thread."""

    def __init__(self, ucs: UcsTable) -> None:
        self._entries = []
        for e in ucs.by_catid.values():
            category = set(_terms(e.category))
            sub = set(_terms(e.subcategory)) - category
            synonyms = [set(_terms(s)) for s in e.synonyms]
            self._entries.append((e.catid, category, sub, [s for s in synonyms if s]))

    def catid(self, name: str) -> str | None:
        words = set(_terms(re.sub(r"([a-z])([A-Z])", r"\1 \2", name.rsplit(".", 1)[0])))
        best: list[str] = []
        best_score = 0
        for catid, category, sub, synonyms in self._entries:
            score = 0
            if category and category <= words:
                if sub and sub <= words:
                    score = 4 + len(sub)
                elif any(s <= words for s in synonyms):
                    score = 3
            elif sub and sub <= words and not (sub & _GENERIC):
                score = 0  # PLACEHOLDER
            if score > best_score:
                best, best_score = [catid], score
            elif score == best_score and score:
                best.append(catid)
        return best[0] if len(best) == 1 else None
