"""Find similar sounds: to a catalog file, a region of it, or an audio file from outside.

Runs on the thread that owns the Library's catalog. The FAISS index of a space is built
from the catalog's vectors on first use and rebuilt when the space's generation changes.

Find-similar in a standardised space ranks in two steps: the index's nearest files by
standardised cosine, then those re-scored in the library's whitened coordinates (each
principal direction of the library's vectors scaled down by a root of its variance, so
the few directions every sound shares stop drowning the ones that tell sounds apart)
with the query expanded by its best match (query expansion). Both were chosen on the
training corpus's judged queries (docs/measurements.md); text search's candidates keep
the plain standardised cosine.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.sidefiles import written
from engine.catalog.vectors import VectorStore, normalise
from engine.errors import FileUnreadable, NotIndexed
from engine.models.blas import numpy_blas
from engine.models.embedding import EmbeddingSpace
from engine.models.spaces import STANDARDIZED
from engine.search.keyword import SearchResult
from engine.search.vector_index import IVF_KIND, IVF_THRESHOLD, SavedIndex, build_index, search

log = logging.getLogger(__name__)


# Whitening: learned from the library's own vectors when it has at least this many
# (fewer cannot estimate a covariance over hundreds of dimensions), shrunk towards the
# largest variance by WHITEN_SHRINK, and applied to the power WHITEN_POWER (0.5: halfway
# between standardised cosine and full whitening).
MIN_WHITEN_FILES = 1_000
WHITEN_SHRINK = 1e-3
WHITEN_POWER = 0.5
# How many nearest files are re-scored; the best match's weight in the expanded query is
# its cosine to this power.
RERANK_POOL = 100
EXPANSION_POWER = 3.0


# An index brought up to date in memory (vectors added, changed or removed since it was
# built) instead of rebuilt, while the changes since its last full build are at most this
# share of what it holds; above it, rebuilt from the catalog (new statistics, new IVF
# lists). A full build of a million files takes minutes (docs/scale.md).
UPDATE_SHARE = 0.25
# While the library changes (an indexing run stores a file every few milliseconds), an
# update that took longer than UPDATE_QUIET seconds is not repeated for UPDATE_PACE times
# as long: the index then lags the catalog by at most that, and typing does not pay an
# update per keystroke (0.3 s each at a million files, docs/scale.md). Quick updates
# (small libraries) happen on every change.
UPDATE_QUIET = 0.05
UPDATE_PACE = 10.0


@dataclass
class _Loaded:
    generation: int
    index: Any  # a faiss index
    mean: np.ndarray | None
    std: np.ndarray | None
    whiten: np.ndarray | None = None  # (dim, dim): standardised -> whitened coordinates
    # What the index holds: file ids ascending and the versions of their vectors
    # (VectorStore.vector_versions), so a vector stored again is seen as changed.
    rows: tuple[np.ndarray, np.ndarray] | None = None
    stamp: dict[str, Any] | None = None  # what it was built as (see _get)
    changed: int = 0  # vectors added, changed or removed since the last full build
    resting_until: float = 0.0  # time.monotonic() before which a change is not applied


class SimilarIndex:
    """Per-space FAISS indexes over file vectors, cached and saved beside the catalog."""

    def __init__(self, catalog: Catalog, index_dir: Path) -> None:
        self.catalog = catalog
        self.store = VectorStore(catalog)
        self.index_dir = index_dir
        self._loaded: dict[str, _Loaded] = {}

    def _get(self, space_name: str) -> tuple[int, _Loaded]:
        space = self.store.space(space_name)
        if space is None:
            raise NotIndexed(
                f"no sounds are embedded in the '{space_name}' space yet: scan the library first"
            )
        generation = self.store.generation(space["id"])
        cached = self._loaded.get(space_name)
        if cached and cached.generation == generation:
            return space["id"], cached
        if (
            cached is not None
            and time.monotonic() < cached.resting_until
            and cached.stamp is not None
            and (cached.stamp["identity"], cached.stamp["dim"]) == (space["identity"], space["dim"])
        ):
            return space["id"], cached  # resting: see UPDATE_PACE
        standardized = space_name in STANDARDIZED
        count = self.store.embedded_count(space["id"])
        whitened = standardized and count >= MIN_WHITEN_FILES
        stamp = {
            "generation": generation, "identity": space["identity"], "count": int(count),
            "dim": int(space["dim"]), "standardized": standardized,
            "whitened": [WHITEN_SHRINK, WHITEN_POWER] if whitened else None,
            "index": IVF_KIND if count >= IVF_THRESHOLD else "flat",
        }  # fmt: skip
        saved = self._saved(space_name)
        stats_path = self._stats_path(space_name)
        if cached is not None and cached.rows is not None and saved.stamp() != stamp:
            began = time.monotonic()
            now = self.store.vector_versions(space["id"])
            updated = self._updated(space["id"], cached, now, stamp)
            if updated is not None:
                took = time.monotonic() - began
                if took > UPDATE_QUIET:
                    updated.resting_until = time.monotonic() + UPDATE_PACE * took
                self._loaded[space_name] = updated
                return space["id"], updated
        index = saved.load(stamp)
        mean = std = whiten = None
        if index is not None and standardized:
            stats = _load_stats(stats_path, stamp, int(space["dim"]))
            if stats is None:
                index = None
            else:
                mean, std, whiten = stats
        # What the index holds: known for a build; for a loaded one, read by track()
        # (0.25 s at a million files), or here when it replaces a tracked index (another
        # process saved a newer one), which would otherwise rebuild on the next change.
        rows: tuple[np.ndarray, np.ndarray] | None = None
        built = index is None
        if index is None:
            rows = self.store.vector_versions(space["id"])  # first: what the build then holds
            ids, vectors = self.store.all_file_vectors(space["id"])
            if len(ids) and standardized:
                # Standardise each dimension over the library (see engine.models.spaces).
                mean, std = vectors.mean(axis=0), vectors.std(axis=0) + 1e-6
            data = vectors if mean is None else normalise((vectors - mean) / std)
            if whitened and mean is not None:
                whiten = whitening(data)
            index = build_index(ids, data) if len(ids) else build_index(ids, np.zeros((0, 1)))
        elif cached is not None and cached.rows is not None:
            rows = self.store.vector_versions(space["id"])
            if self.store.generation(space["id"]) != generation:
                rows = None
        loaded = _Loaded(generation, index, mean, std, whiten, rows, stamp)
        if built and index.ntotal:
            self._save(space_name, loaded)
        self._loaded[space_name] = loaded
        return space["id"], loaded

    def _saved(self, space_name: str) -> SavedIndex:
        return SavedIndex(self.index_dir / f"{space_name}.files.faiss")

    def _stats_path(self, space_name: str) -> Path:
        return self.index_dir / f"{space_name}.files.stats.npz"

    def _save(self, space_name: str, loaded: _Loaded) -> None:
        """Write the index and its statistics beside the catalog under its stamp."""
        assert loaded.stamp is not None
        stamp = loaded.stamp
        try:
            if loaded.mean is not None and loaded.std is not None:
                # Statistics first: the index's stamp, written last, vouches for both.
                parts: dict[str, Any] = {
                    "mean": loaded.mean, "std": loaded.std, "stamp": np.array(json.dumps(stamp)),
                }  # fmt: skip
                if loaded.whiten is not None:
                    parts["whiten"] = loaded.whiten
                with written(self._stats_path(space_name)) as tmp:
                    np.savez(tmp, **parts)
            self._saved(space_name).save(loaded.index, stamp)
        except OSError as exc:  # read-only library or full disk: a cache, not needed
            log.warning("the search index stays in memory only: %s", exc)

    def save(self, space_name: str) -> None:
        """Make the saved index the catalog's as it is now, built whole: an index brought
        up to date in memory keeps the statistics and lists of its last full build, so it
        is never saved (a later process would keep updating it and drift). Owning thread;
        the indexing process calls it when done, so the app's next start loads it."""
        _, loaded = self._get(space_name)
        if self._saved(space_name).stamp() == loaded.stamp:
            return
        if loaded.changed:
            self._loaded.pop(space_name, None)
            self._get(space_name)  # built from the catalog and saved
        elif loaded.index.ntotal:
            self._save(space_name, loaded)

    def track(self, space_name: str) -> None:
        """Remember what the loaded index holds, so that later changes to the space are
        applied to it in memory instead of rebuilding it (a loaded saved index does not
        know; built ones do). Call on the owning thread when idle: Library.warm."""
        space_id, loaded = self._get(space_name)
        if loaded.rows is None:
            rows = self.store.vector_versions(space_id)
            if self.store.generation(space_id) == loaded.generation:
                loaded.rows = rows

    def _updated(
        self,
        space_id: int,
        loaded: _Loaded,
        rows: tuple[np.ndarray, np.ndarray],
        stamp: dict[str, Any],
    ) -> _Loaded | None:
        """`loaded` brought up to `rows` (the catalog's file ids and versions now) in memory,
        or None when it should be rebuilt instead: too much changed, or the index's kind
        or whitening would differ. Standardised with the statistics it was built with."""

        def kind(of: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in of.items() if k not in ("generation", "count")}

        # Same model, dimensions, standardisation, whitening and index type, or rebuilt.
        if loaded.rows is None or loaded.stamp is None or kind(loaded.stamp) != kind(stamp):
            return None
        old_ids, old_versions = loaded.rows
        ids, versions = rows
        # Vectors that are gone or were stored again (a new version), and new ones.
        at = np.searchsorted(ids, old_ids)
        inside = at < len(ids)
        kept = np.zeros(len(old_ids), dtype=bool)
        kept[inside] = (ids[at[inside]] == old_ids[inside]) & (
            versions[at[inside]] == old_versions[inside]
        )
        removed = old_ids[~kept]
        added = np.setdiff1d(ids, old_ids[kept], assume_unique=True)
        changed = loaded.changed + len(removed) + len(added)
        if changed > UPDATE_SHARE * max(len(old_ids), 1):
            return None
        index = loaded.index
        # Added ones too: a vector stored while the index was being built may be in it
        # already, and an id held twice would be found twice.
        index.remove_ids(np.ascontiguousarray(np.union1d(removed, added), dtype=np.int64))
        if len(added):
            found, vectors = self.store.file_vectors(space_id, added.tolist())
            if len(found):
                data = vectors
                if loaded.mean is not None and loaded.std is not None:
                    data = normalise((vectors - loaded.mean) / loaded.std)
                index.add_with_ids(
                    np.ascontiguousarray(data, dtype=np.float32),
                    np.ascontiguousarray(found, dtype=np.int64),
                )
        generation = int(stamp["generation"])
        return _Loaded(generation, index, loaded.mean, loaded.std, loaded.whiten,
                       rows, stamp, changed)  # fmt: skip

    def query(
        self,
        space_name: str,
        vector: np.ndarray,
        limit: int,
        exclude: set[int] | None = None,
        standardized: bool = False,
    ) -> list[tuple[int, float]]:
        """(file id, cosine) of the nearest files, best first. `standardized`: the vector
        is already in the space's standardised coordinates (a projected text query)."""
        _, loaded = self._get(space_name)
        q = vector.astype(np.float32)
        if loaded.mean is not None and not standardized:
            q = (q - loaded.mean) / loaded.std
        q = normalise(q.reshape(1, -1))[0]
        exclude = exclude or set()
        ids, scores = search(loaded.index, q, limit + len(exclude))
        hits = zip(ids.tolist(), scores.tolist(), strict=True)
        return [(i, s) for i, s in hits if i not in exclude][:limit]

    def query_many(
        self, space_name: str, vectors: np.ndarray, limit: int, standardized: bool = False
    ) -> list[list[tuple[int, float]]]:
        """`query` for several vectors in one FAISS call (one pass over the index)."""
        _, loaded = self._get(space_name)
        q = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        if loaded.mean is not None and not standardized:
            q = (q - loaded.mean) / loaded.std
        q = np.ascontiguousarray(normalise(q))
        if loaded.index.ntotal == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        scores, ids = loaded.index.search(q, min(limit, loaded.index.ntotal))
        # Filtered and converted per row in numpy: thousands of hits on every keystroke.
        rows = []
        for row_ids, row_scores in zip(ids, scores, strict=True):
            keep = row_ids >= 0
            rows.append(list(zip(row_ids[keep].tolist(), row_scores[keep].tolist(), strict=True)))
        return rows

    def nearest(
        self, space_name: str, vector: np.ndarray, limit: int, exclude: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """Find-similar: (file id, score) of the files that sound most like `vector` (a
        file vector of the space, not standardised), best first. Where the space is
        whitened, the index's nearest RERANK_POOL files are re-scored there with the
        query expanded by its best match; elsewhere this is `query`."""
        space_id, loaded = self._get(space_name)
        pool = self.query(space_name, vector, max(limit, RERANK_POOL), exclude)
        if loaded.whiten is None or loaded.mean is None or loaded.std is None or not pool:
            return pool[:limit]
        ids, vectors = self.store.file_vectors(space_id, [fid for fid, _ in pool])
        if not len(ids):
            return pool[:limit]
        mean, std, whiten = loaded.mean, loaded.std, loaded.whiten
        # One BLAS thread: right after a FAISS search its OpenMP threads still spin, and
        # two BLAS threads fighting them made this 8x slower on two cores (measured).
        with numpy_blas().limit(limits=1):
            candidates = normalise(((vectors - mean) / std) @ whiten)
            query = normalise((((vector.astype(np.float32) - mean) / std) @ whiten)[None])[0]
        scores = candidates @ query
        best = int(np.argmax(scores))
        expanded = query + max(float(scores[best]), 0.0) ** EXPANSION_POWER * candidates[best]
        scores = candidates @ (expanded / np.linalg.norm(expanded))
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def space_id(self, space_name: str) -> int:
        return self._get(space_name)[0]

    def statistics(self, space_name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and spread per dimension of all the space's file vectors, as its index
        standardises them (None for a space that is not standardised)."""
        _, loaded = self._get(space_name)
        if loaded.mean is None or loaded.std is None:
            return None
        return loaded.mean, loaded.std


def whitening(data: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """The (dim, dim) map from standardised to whitened coordinates for `data` (rows of
    standardised vectors, centred): the covariance's eigenvectors, each divided by its
    shrunk eigenvalue to the power WHITEN_POWER / 2. Accumulated in float64 by chunks,
    so a million rows need no second copy of them."""
    dim = data.shape[1]
    gram = np.zeros((dim, dim), dtype=np.float64)
    for begin in range(0, len(data), chunk):
        block = data[begin : begin + chunk].astype(np.float64)
        gram += block.T @ block
    values, vectors = np.linalg.eigh(gram / max(len(data) - 1, 1))
    values = np.clip(values, 0.0, None)
    scale = (values + WHITEN_SHRINK * max(float(values.max()), 1e-12)) ** (-WHITEN_POWER / 2)
    return (vectors * scale).astype(np.float32)


def _load_stats(
    path: Path, stamp: dict, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Saved (mean, std, whitening map or None) when they belong to `stamp` and are finite
    numbers of the right shapes (std positive), else None."""
    try:
        # Two vectors and a (dim, dim) map of float64 at most, and a stamp.
        if path.stat().st_size > 16 * dim + 8 * dim * dim + 65_536:
            return None
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(str(saved["stamp"])) != stamp:
                return None
            mean, std = saved["mean"], saved["std"]
            whiten = saved["whiten"] if stamp.get("whitened") else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if mean.shape != (dim,) or std.shape != (dim,):
        return None
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        return None
    if whiten is not None and (whiten.shape != (dim, dim) or not np.isfinite(whiten).all()):
        return None
    return mean, std, whiten


def embed_clip(space: EmbeddingSpace, path: str | Path, start=None, end=None) -> np.ndarray:
    """The file vector of a file or a region of it, computed now (not stored). On the
    model thread (engine/models/model_thread.py): decoding and resampling import torch,
    which a text query never needs."""
    from engine.audio.decode import decode_mono
    from engine.audio.resample import resample

    audio, rate = decode_mono(path, start, end)
    if len(audio) == 0:
        raise FileUnreadable(f"no audio in {path} between {start or 0}s and {end or 'the end'}")
    clip = resample(audio, rate, space.sample_rate)
    return space.embed([clip])[0].vector


def best_moments(
    store: VectorStore, space_id: int, file_ids: list[int], vector: np.ndarray
) -> dict[int, tuple[float | None, float | None]]:
    """(start, end) of each file's window that agrees best with `vector` ((None, None)
    for a file without windows), read in one query."""
    query = normalise(vector.reshape(1, -1))[0]
    found = store.windows_of(space_id, file_ids)
    moments: dict[int, tuple[float | None, float | None]] = {}
    for file_id in file_ids:
        windows = found.get(file_id)
        if windows is None or len(windows.starts) == 0:
            moments[file_id] = (None, None)
            continue
        best = int(np.argmax(windows.vectors @ query))
        moments[file_id] = (float(windows.starts[best]), float(windows.ends[best]))
    return moments


def online_hits(
    catalog: Catalog,
    query: Callable[[int], list[tuple[int, float]]],
    limit: int,
) -> list[tuple[int, float]]:
    """The first ``limit`` of ``query(k)``'s hits whose files are online, widening k
    until there are enough or the index is exhausted."""
    k = limit
    while True:
        hits = query(k)
        ids = [fid for fid, _ in hits]
        online = {
            row[0]
            for row in catalog.conn.execute(
                f"SELECT id FROM files WHERE offline = 0 AND id IN ({ID_SET})", (id_set(ids),)
            )
        }
        kept = [hit for hit in hits if hit[0] in online]
        if len(kept) >= limit or len(hits) < k:
            return kept[:limit]
        k *= 2


def to_results(
    catalog: Catalog, hits: list[tuple[int, float]], moments: dict[int, tuple]
) -> list[SearchResult]:
    """Results for (file id, score) hits in that order, with their moments; one query
    for all rows (a GUI page holds thousands)."""
    columns = (
        "id, path, name, folder, duration, sample_rate, channels, format, subtype, "
        "bit_depth, size, offline, loudness_lufs, true_peak_db"
    )
    # Plain tuples, not dicts: a page of thousands of rows on every keystroke.
    rows = {
        r[0]: r
        for r in catalog.conn.execute(
            f"SELECT {columns} FROM files WHERE id IN ({ID_SET})", [id_set(fid for fid, _ in hits)]
        )
    }
    results = []
    for file_id, score in hits:
        row = rows.get(file_id)
        if row is None:
            continue
        start, end = moments.get(file_id, (None, None))
        results.append(
            SearchResult(
                id=row[0], path=row[1], name=row[2], folder=row[3], score=round(score, 4),
                duration=row[4], sample_rate=row[5], channels=row[6], format=row[7],
                subtype=row[8], bit_depth=row[9], size=row[10], start=start, end=end,
                offline=bool(row[11]), loudness_lufs=row[12], true_peak_db=row[13],
            )
        )  # fmt: skip
    return results
