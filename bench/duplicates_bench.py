"""Duplicate finding on planted copies: precision and recall per kind of copy.

    python bench/duplicates_bench.py --library LIB [--planted 100] [--seed 1]
        [--fit | --threshold T] [--work DIR]

Copies LIB's catalog (never changed) into a work folder, picks --planted originals among
its readable files (0.5 to 20 s), writes six copies of each into a new library folder:
  exact-flac  the same samples as FLAC (when the original is 16/24-bit PCM)
  exact-tags  the same WAV with other metadata (a new bext description)
  ogg         re-encoded as Ogg Vorbis (quality 0.4)
  gain        6 dB quieter
  trim        10% cut from the start and the end
  resample    48 kHz <-> 44.1 kHz (soxr)
then scans and embeds them (aisfx) and runs the product's duplicate finder. A pair is
right when both files come from the same original; recall is per planted copy (is it in
its original's group), precision is over the pairs of planted files and originals inside
groups (pairs of a copy with some other corpus file are counted apart: the corpus has
real duplicates and variants of its own that no one has judged).
--fit sweeps the vector and envelope thresholds and prints the best recall with precision
at least 0.97 (run it on the training corpus only); --threshold measures one threshold
(default: the product's). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = ("exact-flac", "exact-tags", "ogg", "gain", "trim", "resample")


def plant(library, folder: Path, count: int, seed: int) -> dict[str, tuple[int, str]]:
    """Write the copies; returns copy path -> (original id, kind)."""
    from engine.curate.write import write_fields

    rows = library.catalog.query(
        "SELECT id, path, format, subtype, sample_rate FROM files WHERE status = 'ok' "
        "AND offline = 0 AND duration BETWEEN 0.5 AND 20 AND channels <= 2 ORDER BY id"
    )
    rng = random.Random(seed)
    picked = rng.sample(rows, min(count, len(rows)))
    planted: dict[str, tuple[int, str]] = {}
    folder.mkdir(parents=True)
    for n, row in enumerate(picked):
        try:
            data, rate = sf.read(row["path"], dtype="float32", always_2d=True)
        except Exception:
            continue
        base = folder / f"planted_{n:04d}"
        pcm = row["format"] in ("WAV", "AIFF", "FLAC") and row["subtype"] in ("PCM_16", "PCM_24")
        if pcm:
            ints, _ = sf.read(row["path"], dtype="int32", always_2d=True)
            out = base.with_name(base.name + "_exact.flac")
            sf.write(str(out), ints, rate, subtype=row["subtype"], format="FLAC")
            planted[str(out)] = (row["id"], "exact-flac")
            out = base.with_name(base.name + "_tags.wav")
            sf.write(str(out), ints, rate, subtype=row["subtype"], format="WAV")
            write_fields(str(out), {"description": f"copy {n} with other metadata"})
            planted[str(out)] = (row["id"], "exact-tags")
        out = base.with_name(base.name + "_enc.ogg")
        sf.write(str(out), data, rate, format="OGG", subtype="VORBIS")
        planted[str(out)] = (row["id"], "ogg")
        out = base.with_name(base.name + "_gain.wav")
        sf.write(str(out), data * 10 ** (-6 / 20), rate, subtype="PCM_24")
        planted[str(out)] = (row["id"], "gain")
        cut = len(data) // 10
        out = base.with_name(base.name + "_trim.wav")
        sf.write(str(out), data[cut : len(data) - cut], rate, subtype="PCM_24")
        planted[str(out)] = (row["id"], "trim")
        target = 44100 if rate == 48000 else 48000
        out = base.with_name(base.name + "_rs.wav")
        sf.write(
            str(out), soxr.resample(data, rate, target, quality="VHQ"), target, subtype="PCM_24"
        )
        planted[str(out)] = (row["id"], "resample")
    return planted


def groups_at(exact: list[list[int]], near: list[tuple[int, int, float]], t: float) -> list[set]:
    """The product's grouping (duplicates.linked) of the near pairs at or above `t`."""
    import engine.curate.duplicates as dup

    return [set(g) for g in dup.linked(exact, [p for p in near if p[2] >= t])]


def score(groups: list[set], family: dict[int, int], kinds: dict[int, str]) -> dict:
    """family: file id -> original id (originals map to themselves) for planted sets."""
    group_of = {i: n for n, g in enumerate(groups) for i in g}
    found = {k: [0, 0] for k in KINDS}
    for copy, kind in kinds.items():
        found[kind][1] += 1
        original = family[copy]
        if copy in group_of and group_of.get(original) == group_of[copy]:
            found[kind][0] += 1
    right = wrong = unjudged = 0
    for g in groups:
        if not any(i in kinds for i in g):
            continue
        for a, b in combinations(sorted(g), 2):
            if a not in family or b not in family:
                # A planted copy beside a corpus file that is not its original: the
                # corpus holds its own duplicates and variants (the same sound in two
                # packages, a scale of one sample), which no one has judged.
                unjudged += a in family or b in family
                continue
            if family[a] == family[b]:
                right += 1
            else:
                wrong += 1
    hits = sum(v[0] for v in found.values())
    total = sum(v[1] for v in found.values())
    return {
        "recall": round(hits / total, 4) if total else None,
        "precision": round(right / (right + wrong), 4) if right + wrong else None,
        "pairs_right": right, "pairs_wrong": wrong, "pairs_with_unjudged_corpus_files": unjudged,
        "recall_by_kind": {k: round(v[0] / v[1], 4) if v[1] else None for k, v in found.items()},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--library", required=True, type=Path)
    ap.add_argument("--planted", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="the work folder's planted library")
    args = ap.parse_args()

    import engine.curate.duplicates as dup
    from engine.library import Library

    work = args.work or Path(tempfile.mkdtemp(prefix="sonarium-dups-"))
    lib_dir = work / "library"
    folder = work / "planted"
    saved = work / "planted.json"
    index_s = 0.0
    if args.reuse and saved.exists():
        planted = {k: tuple(v) for k, v in json.loads(saved.read_text()).items()}
        library = Library(lib_dir)
    else:
        if lib_dir.exists():
            shutil.rmtree(lib_dir)
        shutil.copytree(args.library, lib_dir)
        library = Library(lib_dir)
        if folder.exists():
            shutil.rmtree(folder)
        planted = plant(library, folder, args.planted, args.seed)
        began = time.perf_counter()
        library.add_folders([folder])
        library.scan()
        library.embed(("aisfx",))
        index_s = time.perf_counter() - began
        saved.write_text(json.dumps(planted))
    ids = {r["path"]: r["id"] for r in library.catalog.query("SELECT id, path FROM files")}
    family = {ids[p]: orig for p, (orig, _) in planted.items() if p in ids}
    family.update({orig: orig for orig in family.values()})
    kinds = {ids[p]: kind for p, (_, kind) in planted.items() if p in ids}

    began = time.perf_counter()
    exact = [g for g in dup._hashes(library.catalog, None, None).values() if len(g) > 1]
    hash_s = time.perf_counter() - began
    index = library._similar_index()
    product = (dup.NEAR_SIMILARITY, dup.NEAR_ENVELOPE)
    strict = (dup.NEAR_SIMILARITY_STRICT, dup.NEAR_ENVELOPE_STRICT)
    dup.NEAR_SIMILARITY_STRICT = 0.70  # collect every plausible pair once, then sweep
    began = time.perf_counter()
    candidates = dup.near_candidates(library.catalog, index, "aisfx")
    matches = dup.envelope_matches(library.catalog, candidates)
    near_s = time.perf_counter() - began
    scored = [
        (a, b, s, m if m is not None else -1.0)
        for (a, b, s), m in zip(candidates, matches, strict=True)
    ]

    def at(t: float, e: float, t2: float = 2.0, e2: float = 2.0) -> dict:
        # Two tiers, as the product: similar vectors and agreeing envelopes, or less
        # similar vectors and envelopes that agree almost exactly (a trimmed copy).
        near = [(a, b, s) for a, b, s, m in scored
                if (s >= t and m >= e) or (s >= t2 and m >= e2)]  # fmt: skip
        found = score(groups_at(exact, near, 0.0), family, kinds)
        found["pairs_between_corpus_files"] = sum(
            1 for a, b, _ in near if a not in family and b not in family
        )
        return found

    out: dict = {"library": str(args.library), "planted": len(kinds), "originals": args.planted,
                 "seed": args.seed, "index_new_files_s": round(index_s, 1),
                 "hash_s": round(hash_s, 2), "near_s": round(near_s, 2),
                 "candidate_pairs": len(candidates),
                 "exact_only": score(groups_at(exact, [], 2.0), family, kinds),
                 "vectors_only_at_product": at(product[0], -2.0)}  # fmt: skip
    if args.fit:
        sweep = {}
        for t in np.round(np.arange(0.80, 1.0001, 0.02), 2):
            for e in np.round(np.arange(0.70, 1.0001, 0.05), 2):
                sweep[(float(t), float(e))] = at(float(t), float(e))
        out["sweep"] = {f"{t}/{e}": {k: v[k] for k in ("precision", "recall")}
                        for (t, e), v in sweep.items()}  # fmt: skip
        ok = [(v["recall"] or 0, k) for k, v in sweep.items() if (v["precision"] or 0) >= 0.97]
        best = max(ok)[1] if ok else max(sweep, key=lambda k: sweep[k]["precision"] or 0)
        out["fitted"] = {"similarity": best[0], "envelope": best[1]}
        out["at_fitted"] = sweep[best]
        # The strict tier on top of the fitted first one.
        tiers = {}
        for t2 in np.round(np.arange(0.70, best[0], 0.02), 2):
            for e2 in (0.95, 0.97, 0.98, 0.99, 0.995):
                tiers[(float(t2), e2)] = at(best[0], best[1], float(t2), e2)
        out["strict_sweep"] = {
            f"{t}/{e}": {k: v[k] for k in ("precision", "recall", "pairs_between_corpus_files")}
            | {"trim": v["recall_by_kind"]["trim"]}
            for (t, e), v in tiers.items()
        }
    t = args.threshold if args.threshold is not None else product[0]
    out["product"] = {"similarity": t, "envelope": product[1],
                      "strict_similarity": strict[0], "strict_envelope": strict[1]}  # fmt: skip
    out["at_product"] = at(t, product[1], *strict)
    out["at_product_one_tier"] = at(t, product[1])
    library.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
