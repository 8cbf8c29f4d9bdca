"""Sound-design words that mean the same in a search: the abbreviations libraries use in
file names (AMB, ATMOS, BG, WSH, IMP, FTSTP...) and their spelled-out forms. Pure data
and functions, any thread.

A query word expands to every member of its class, so "ambience" finds `AMB_City.wav`
and "whoosh" finds `WSH_fast_03.wav`; plurals and verb forms are the FTS index's
stemmer's job (porter), not this table's. Classes are kept tight: a word that means
several things in sound design (e.g. "int" also counts) is not here.
"""

from __future__ import annotations

# Each tuple is one class of words a search treats as one. Lower case, whole words.
CLASSES: tuple[tuple[str, ...], ...] = (
    ("amb", "ambience", "ambiance", "ambient", "atmos", "atmosphere", "roomtone", "bg"),
    ("sfx", "fx", "effect"),
    ("ext", "exterior", "outdoor", "outside"),
    ("interior", "indoor", "inside"),
    ("lp", "loop", "looped"),
    ("vox", "voice", "vocal"),
    ("bd", "kick", "bassdrum"),
    ("sn", "snare"),
    ("hh", "hihat", "hat"),
    ("perc", "percussion"),
    ("fol", "foley"),
    ("wsh", "whoosh", "swoosh", "swish"),
    ("imp", "impact", "hit"),
    ("expl", "explosion", "explode", "blast"),
    ("ftstp", "fstp", "footstep", "footsteps", "steps"),
    ("mech", "mechanical", "mechanism"),
    ("elec", "electric", "electrical"),
    ("vehic", "vehicle"),
    ("wpn", "weapon"),
    ("gun", "gunshot", "firearm"),
    ("dsgn", "designed"),
    ("ui", "interface", "menu"),
    ("notif", "notification", "alert"),
    ("crwd", "crowd"),
    ("wthr", "weather"),
    ("wtr", "water"),
    ("rmbl", "rumble"),
    ("scrn", "scream"),
    ("bird", "birds", "birdsong", "chirp", "tweet"),
    ("thunder", "thunderclap"),
)

_BY_WORD = {word: cls for cls in CLASSES for word in cls}


def alike(word: str) -> tuple[str, ...]:
    """The other words a search for ``word`` also matches (empty when none)."""
    cls = _BY_WORD.get(word.lower())
    return tuple(w for w in cls if w != word.lower()) if cls else ()
