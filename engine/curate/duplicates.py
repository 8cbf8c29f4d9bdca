"""Duplicates: the same sound more than once in a library.

- Exact duplicates have the same audio, whatever their container and metadata: the same
  rate, channels and frames, and the same decoded samples (a BLAKE2 hash of them read as
  32-bit integers, so a FLAC of a WAV, a copy with other tags or a 24-bit copy of a
  16-bit file all match). Only files that share rate, channels and length are decoded;
  each hash is kept in the catalog (`content_hashes`) until the file changes.
- Near duplicates are the same sound re-encoded, re-levelled, trimmed or resampled: their
  file vectors in the find-similar space are nearly the same (NEAR_SIMILARITY, fitted on
  planted copies in the training corpus: bench/duplicates_bench.py) and their lengths
  within NEAR_LENGTH_RATIO of each other, and their audio envelopes agree (NEAR_ENVELOPE);
  or, for a trimmed copy, whose pooled vector moves further, less similar vectors
  (NEAR_SIMILARITY_STRICT) with envelopes that agree almost exactly
  (NEAR_ENVELOPE_STRICT).

Groups list every copy; the suggested one to keep is the best source (lossless first,
then the higher rate and bit depth, the longer, the larger). Removing a copy from the
library forgets its row and keeps later scans from adding it again (`excluded_files`);
moving it to the trash uses the desktop's trash (send2trash), never a silent delete.
Runs on the thread that owns the catalog.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.audio.decode import BLOCK_SAMPLES, open_sound
from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.paths import os_path, shown
from engine.catalog.vectors import VectorStore

log = logging.getLogger(__name__)

# Cosine between two files' vectors in the find-similar space's index at and above which
# they are near duplicates, and how much shorter one may be. Chosen on planted copies in
# the training corpus (docs/measurements.md, duplicates; never on the dev corpus): the
# precision there falls from 1.0 to 0.85 between 0.88 and 0.86, so 0.90 keeps a margin.
NEAR_SIMILARITY = 0.90
NEAR_LENGTH_RATIO = 0.7
NEAR_NEIGHBOURS = 8  # nearest files looked at per file
# A pair the vectors call near is checked against the audio: the band-energy envelopes
# (ENVELOPE_BANDS log bands, 50 ms frames every 25 ms, of the first ENVELOPE_SECONDS) must
# correlate at least NEAR_ENVELOPE at their best alignment (a trimmed copy lines up with
# part of its original; a level change only shifts log energies). Fitted with the above.
NEAR_ENVELOPE = 0.9
# The second tier: a copy with 10% cut at both ends has a file vector at cosine ~0.87
# (median) to its original's, but an envelope that lines up with part of it at ~0.99.
# Fitted with the above on the training corpus's planted copies.
NEAR_SIMILARITY_STRICT = 0.80
NEAR_ENVELOPE_STRICT = 0.99
# Pairs for the second tier come from each file's first few neighbours only (a trimmed
# copy's original is among its 4 nearest in 9 of 10 planted copies): reading envelopes
# for every pair down to NEAR_SIMILARITY_STRICT among 8 neighbours tripled the time.
NEAR_STRICT_NEIGHBOURS = 4
ENVELOPE_BANDS = 16
ENVELOPE_SECONDS = 60.0
_MIN_OVERLAP = 0.6  # of the shorter envelope
_LOSSLESS = {"WAV", "WAVEX", "AIFF", "FLAC", "RF64", "W64", "CAF", "WVE"}
_COLUMNS = (
    "id, path, name, folder, format, subtype, sample_rate, channels, bit_depth, frames, "
    "duration, size, loudness_lufs, fingerprint"
)


@dataclass
class Group:
    """Copies of one sound: `kind` "exact" (same samples) or "near"; `keep` is the id
    suggested to keep; each file is a catalog row (the _COLUMNS) plus its `similarity`
    to the kept one (1.0 for exact copies)."""

    kind: str
    files: list[dict[str, Any]]
    keep: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "keep": self.keep, "files": self.files}


@dataclass
class Progress:
    stage: str  # "hashing" or "comparing"
    done: int
    total: int


def content_hash(path: str) -> str:
    """BLAKE2 of a file's rate, channels and decoded samples (as int32), block by block."""
    digest = hashlib.blake2b(digest_size=16)
    with open_sound(path) as snd:
        digest.update(f"{snd.samplerate}:{snd.channels}:".encode())
        step = max(1024, BLOCK_SAMPLES // max(1, snd.channels))
        while True:
            block = snd.read(step, dtype="int32", always_2d=True)
            if not len(block):
                break
            digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def envelope(path: str) -> np.ndarray:
    """(frames, ENVELOPE_BANDS) log band energies of a file's first ENVELOPE_SECONDS, mono,
    in bands fixed in Hz (100 Hz to 8 kHz, or the file's Nyquist), so copies at other rates
    line up."""
    with open_sound(path) as snd:
        rate = snd.samplerate
        audio = snd.read(int(ENVELOPE_SECONDS * rate), dtype="float32", always_2d=True)
    mono = np.nan_to_num(audio.mean(axis=1))
    size = max(16, int(round(0.05 * rate)))
    hop = max(8, int(round(0.025 * rate)))
    if len(mono) < size:
        mono = np.pad(mono, (0, size - len(mono)))
    count = 1 + (len(mono) - size) // hop
    frames = np.lib.stride_tricks.as_strided(
        mono, shape=(count, size), strides=(mono.strides[0] * hop, mono.strides[0])
    )
    power = np.abs(np.fft.rfft(frames * np.hanning(size).astype(np.float32), axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    top = min(8000.0, rate / 2.0)
    edges = 100.0 * (top / 100.0) ** (np.arange(ENVELOPE_BANDS + 1) / ENVELOPE_BANDS)
    bands = np.stack(
        [
            power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ],
        axis=1,
    )
    return np.log10(bands + 1e-10).astype(np.float32)


def envelope_match(a: np.ndarray, b: np.ndarray) -> float:
    """The best Pearson correlation of two envelopes over alignments where they overlap
    by at least _MIN_OVERLAP of the shorter (1 = the same shape at some offset); -1 when
    no alignment varies at all.

    Each band's own mean over the overlap is taken out: what is compared is how the energy
    moves in time, band by band, not the spectral balance most sounds share. Every offset
    at once: the products from one FFT cross-correlation per band, the sums and squares
    over each overlap from running sums."""
    if len(a) < len(b):
        a, b = b, a
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = len(a), len(b)
    if not n or not m:
        return -1.0
    need = max(1, int(np.ceil(_MIN_OVERLAP * m)))
    # Offsets of b's start within a, from b hanging off the start to hanging off the end.
    k = np.arange(need - m, n - need + 1)
    lo, hi = np.maximum(0, k), np.minimum(n, k + m)
    length = (hi - lo)[:, None].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(n + m)))
    cross = np.fft.irfft(
        np.fft.rfft(a, size, axis=0) * np.conj(np.fft.rfft(b, size, axis=0)), size, axis=0
    )[k % size]  # (offsets, bands): sum over j of a[j + k] * b[j]
    run_a = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
    run_aa = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(a * a, axis=0)])
    run_b = np.vstack([np.zeros((1, b.shape[1])), np.cumsum(b, axis=0)])
    run_bb = np.vstack([np.zeros((1, b.shape[1])), np.cumsum(b * b, axis=0)])
    sum_a, sum_aa = run_a[hi] - run_a[lo], run_aa[hi] - run_aa[lo]
    sum_b, sum_bb = run_b[hi - k] - run_b[lo - k], run_bb[hi - k] - run_bb[lo - k]
    numerator = (cross - sum_a * sum_b / length).sum(axis=1)
    var_a = np.maximum(sum_aa - sum_a * sum_a / length, 0.0).sum(axis=1)
    var_b = np.maximum(sum_bb - sum_b * sum_b / length, 0.0).sum(axis=1)
    # An overlap that does not vary (silence) has no shape to compare; the running sums
    # leave it rounding noise, not zero.
    flat = 1e-6 * length[:, 0]
    usable = (var_a > flat) & (var_b > flat)
    if not usable.any():
        return -1.0
    r = numerator[usable] / np.sqrt(var_a[usable] * var_b[usable])
    return float(min(1.0, r.max()))


def _rows(catalog: Catalog, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = catalog.query(f"SELECT {_COLUMNS} FROM files WHERE id IN ({ID_SET})", [id_set(ids)])
    return {int(r["id"]): r for r in rows}


def _hashes(
    catalog: Catalog,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
) -> dict[str, list[int]]:
    """Content hash -> ids, over the files that share rate, channels and length."""
    candidates = [
        r[0]
        for r in catalog.conn.execute(
            "SELECT f.id FROM files f JOIN (SELECT sample_rate, channels, frames FROM files "
            "WHERE status = 'ok' AND offline = 0 AND frames > 0 "
            "GROUP BY sample_rate, channels, frames HAVING COUNT(*) > 1) g "
            "ON f.sample_rate = g.sample_rate AND f.channels = g.channels "
            "AND f.frames = g.frames WHERE f.status = 'ok' AND f.offline = 0"
        )
    ]
    known = {
        r[0]: (r[1], r[2])
        for r in catalog.conn.execute(
            f"SELECT file_id, fingerprint, hash FROM content_hashes WHERE file_id IN ({ID_SET})",
            [id_set(candidates)],
        )
    }
    rows = _rows(catalog, candidates)
    by_hash: dict[str, list[int]] = {}
    for done, file_id in enumerate(candidates, start=1):
        if cancel is not None and cancel.is_set():
            break
        row = rows.get(file_id)
        if row is None:
            continue
        cached = known.get(file_id)
        if cached is not None and cached[0] == row["fingerprint"]:
            value = cached[1]
        else:
            try:
                value = content_hash(row["path"])
            except Exception as exc:  # unreadable now (gone, damaged): not a duplicate
                log.warning("cannot hash %s: %s", shown(row["path"]), exc)
                continue
            with catalog.transaction() as c:
                c.execute(
                    "INSERT OR REPLACE INTO content_hashes (file_id, fingerprint, hash) "
                    "VALUES (?, ?, ?)",
                    (file_id, row["fingerprint"], value),
                )
        by_hash.setdefault(value, []).append(file_id)
        if progress is not None:
            progress(Progress("hashing", done, len(candidates)))
    return by_hash


def near_candidates(
    catalog: Catalog,
    index: Any,
    space: str,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[tuple[int, int, float]]:
    """(a, b, similarity) with a < b for the files whose vectors (at least the lower of
    the two tiers' similarities) and lengths (NEAR_LENGTH_RATIO) say near copy; not yet
    checked against the audio."""
    store = VectorStore(catalog)
    found = store.space(space)
    if found is None:
        return []
    ids, vectors = store.all_file_vectors(int(found["id"]))
    if not len(ids):
        return []
    durations = dict(
        catalog.conn.execute(
            "SELECT id, duration FROM files WHERE status = 'ok' AND offline = 0"
        ).fetchall()
    )
    pairs: dict[tuple[int, int], float] = {}
    lowest = min(NEAR_SIMILARITY, NEAR_SIMILARITY_STRICT)
    batch = 1024
    for start in range(0, len(ids), batch):
        if cancel is not None and cancel.is_set():
            break
        hits = index.query_many(space, vectors[start : start + batch], NEAR_NEIGHBOURS + 1)
        for own, neighbours in zip(ids[start : start + batch], hits, strict=True):
            a = int(own)
            place = 0
            for other, score in neighbours:
                b = int(other)
                if b == a:
                    continue
                place += 1
                if score < lowest or (score < NEAR_SIMILARITY and place > NEAR_STRICT_NEIGHBOURS):
                    continue
                da, db = durations.get(a), durations.get(b)
                if not da or not db or min(da, db) / max(da, db) < NEAR_LENGTH_RATIO:
                    continue
                key = (min(a, b), max(a, b))
                pairs[key] = max(pairs.get(key, 0.0), float(score))
        if progress is not None:
            progress(Progress("comparing", min(len(ids), start + batch), len(ids)))
    return [(a, b, s) for (a, b), s in pairs.items()]


def envelope_matches(
    catalog: Catalog,
    pairs: list[tuple[int, int, float]],
    cancel: threading.Event | None = None,
) -> list[float | None]:
    """envelope_match of each pair's files (None when one cannot be read now); each
    file's envelope is read once."""
    ids = {i for a, b, _ in pairs for i in (a, b)}
    paths = dict(
        catalog.conn.execute(f"SELECT id, path FROM files WHERE id IN ({ID_SET})", [id_set(ids)])
    )
    envelopes: dict[int, np.ndarray | None] = {}

    def shape(i: int) -> np.ndarray | None:
        if i not in envelopes:
            try:
                envelopes[i] = envelope(paths[i])
            except Exception as exc:  # unreadable now (gone, damaged): not confirmed
                log.warning("cannot read %s: %s", shown(paths.get(i, "?")), exc)
                envelopes[i] = None
        return envelopes[i]

    out: list[float | None] = []
    for a, b, _ in pairs:
        if cancel is not None and cancel.is_set():
            out.append(None)
            continue
        ea, eb = shape(a), shape(b)
        out.append(None if ea is None or eb is None else envelope_match(ea, eb))
    return out


def _near_pairs(
    catalog: Catalog,
    index: Any,
    space: str,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
) -> list[tuple[int, int, float]]:
    """The near candidates whose audio envelopes agree: NEAR_ENVELOPE at NEAR_SIMILARITY,
    NEAR_ENVELOPE_STRICT at NEAR_SIMILARITY_STRICT."""
    pairs = near_candidates(catalog, index, space, progress, cancel)
    matches = envelope_matches(catalog, pairs, cancel)
    return [p for p, m in zip(pairs, matches, strict=True) if m is not None and is_near(p[2], m)]


def is_near(similarity: float, envelope_agreement: float) -> bool:
    """Whether a pair with these vector and envelope scores is a near copy (either tier)."""
    return (similarity >= NEAR_SIMILARITY and envelope_agreement >= NEAR_ENVELOPE) or (
        similarity >= NEAR_SIMILARITY_STRICT and envelope_agreement >= NEAR_ENVELOPE_STRICT
    )


def _closest(
    i: int, twins: set[int], ids: list[int], similarity: dict[tuple[int, int], float]
) -> float | None:
    """How near `i` is to the kept copy: its best pair with the kept one or its exact
    twins, else with anything in the group."""

    def pair(j: int) -> float | None:
        return similarity.get((min(i, j), max(i, j)))

    for pool in (twins, ids):
        scores = [s for j in pool if j != i and (s := pair(j)) is not None]
        if scores:
            return max(scores)
    return None


def _rank(row: dict[str, Any]) -> tuple:
    """Higher is a better copy to keep."""
    return (
        (row["format"] or "").upper() in _LOSSLESS,
        row["sample_rate"] or 0,
        row["bit_depth"] or 0,
        row["duration"] or 0.0,
        row["size"] or 0,
        -int(row["id"]),
    )


def linked(exact: list[list[int]], pairs: Iterable[tuple[int, int, float]]) -> list[list[int]]:
    """The groups (of two or more ids) that exact groups and near pairs join into
    (union-find: a near pair joins the whole groups its two files are in)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in exact:
        for i in ids:
            parent[root(i)] = root(ids[0])
    for a, b, _ in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for i in parent:
        members.setdefault(root(i), []).append(i)
    return [ids for ids in members.values() if len(ids) > 1]


def find_duplicates(
    catalog: Catalog,
    index: Any = None,
    space: str = "aisfx",
    near: bool = False,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Group]:
    """Exact duplicate groups, and with `near` (needs the find-similar `index`, a
    SimilarIndex) near-duplicate groups too; largest groups first."""
    exact = [ids for ids in _hashes(catalog, progress, cancel).values() if len(ids) > 1]
    near_pairs = (
        _near_pairs(catalog, index, space, progress, cancel) if near and index is not None else []
    )
    exact_of = {i: ids[0] for ids in exact for i in ids}
    similarity = {(a, b): score for a, b, score in near_pairs}
    members = linked(exact, near_pairs)
    rows = _rows(catalog, [i for ids in members for i in ids])
    groups: list[Group] = []
    for ids in members:
        present = [rows[i] for i in ids if i in rows]
        if len(present) < 2:
            continue
        best = max(present, key=_rank)
        all_exact = all(exact_of.get(int(r["id"])) == exact_of.get(int(best["id"])) is not None
                    for r in present)  # fmt: skip
        keep_id = int(best["id"])
        twins = {i for i in ids if i == keep_id or (
            exact_of.get(i) is not None and exact_of.get(i) == exact_of.get(keep_id))}  # fmt: skip
        files = []
        for r in sorted(present, key=_rank, reverse=True):
            i = int(r["id"])
            score: float | None = 1.0 if i in twins else _closest(i, twins, ids, similarity)
            files.append({k: r[k] for k in r if k != "fingerprint"}
                         | {"similarity": None if score is None else round(score, 4),
                            "exact": i in twins})  # fmt: skip
        groups.append(Group("exact" if all_exact else "near", files, keep_id))
    groups.sort(key=lambda g: (-len(g.files), g.kind != "exact", g.files[0]["path"]))
    return groups


def exclude_files(catalog: Catalog, file_ids: list[int], reason: str) -> list[str]:
    """Forget the files' rows and keep scans from adding them again; their paths."""
    rows = _rows(catalog, file_ids)
    paths = [rows[i]["path"] for i in file_ids if i in rows]
    with catalog.transaction() as c:
        for path in paths:
            c.execute(
                "INSERT OR REPLACE INTO excluded_files (path, excluded_at, reason) "
                "VALUES (?, ?, ?)",
                (path, time.time(), reason),
            )
        catalog.delete_files([i for i in file_ids if i in rows])
    return paths


def trash_files(catalog: Catalog, file_ids: list[int]) -> dict[str, Any]:
    """Move the files to the desktop's trash (send2trash) and forget their rows;
    {"trashed": [paths], "failed": [{"path", "error"}]}. A file that cannot be trashed
    (a share without a trash, permissions) stays, and stays in the library."""
    from send2trash import send2trash
    from send2trash.exceptions import TrashPermissionError

    rows = _rows(catalog, file_ids)
    report: dict[str, Any] = {"trashed": [], "failed": []}
    for file_id in file_ids:
        row = rows.get(file_id)
        if row is None:
            continue
        try:
            send2trash(os_path(row["path"]))
        except (OSError, TrashPermissionError) as exc:
            report["failed"].append({"path": row["path"], "error": str(exc)})
            continue
        catalog.delete_files([file_id])
        report["trashed"].append(row["path"])
    return report
