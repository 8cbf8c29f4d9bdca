"""Find similar sounds: to a catalog file, a region of it, or an audio file from outside.

Runs on the thread that owns the Library's catalog. The FAISS index of a space is built
from the catalog's vectors on first use and rebuilt when the space's generation changes.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.decode import decode_mono
from engine.audio.resample import resample
from engine.catalog.db import ID_SET, Catalog, id_set
from engine.catalog.sidefiles import written
from engine.catalog.vectors import VectorStore, normalise
from engine.errors import FileUnreadable, NotIndexed
from engine.models.embedding import EmbeddingSpace
from engine.models.spaces import STANDARDIZED
from engine.search.keyword import SearchResult
from engine.search.vector_index import SavedIndex, build_index, search

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    generation: int
    index: Any  # a faiss index
    mean: np.ndarray | None
    std: np.ndarray | None


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
        standardized = space_name in STANDARDIZED
        count = self.store.embedded_count(space["id"])
        stamp = {
            "generation": generation, "identity": space["identity"], "count": int(count),
            "dim": int(space["dim"]), "standardized": standardized,
        }  # fmt: skip
        saved = SavedIndex(self.index_dir / f"{space_name}.files.faiss")
        stats_path = self.index_dir / f"{space_name}.files.stats.npz"
        index = saved.load(stamp)
        mean = std = None
        if index is not None and standardized:
            stats = _load_stats(stats_path, stamp, int(space["dim"]))
            if stats is None:
                index = None
            else:
                mean, std = stats
        if index is None:
            ids, vectors = self.store.all_file_vectors(space["id"])
            if len(ids) and standardized:
                # Standardise each dimension over the library (see engine.models.spaces).
                mean, std = vectors.mean(axis=0), vectors.std(axis=0) + 1e-6
            data = vectors if mean is None else normalise((vectors - mean) / std)
            index = build_index(ids, data) if len(ids) else build_index(ids, np.zeros((0, 1)))
            if len(ids):
                try:
                    if mean is not None and std is not None:
                        # Statistics first: the index's stamp, written last, vouches for both.
                        with written(stats_path) as tmp:
                            np.savez(tmp, mean=mean, std=std, stamp=np.array(json.dumps(stamp)))
                    saved.save(index, stamp)
                except OSError as exc:  # read-only library or full disk: a cache, not needed
                    log.warning("the search index stays in memory only: %s", exc)
        loaded = _Loaded(generation, index, mean, std)
        self._loaded[space_name] = loaded
        return space["id"], loaded

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
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i not in exclude][
            :limit
        ]

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
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def space_id(self, space_name: str) -> int:
        return self._get(space_name)[0]


def _load_stats(path: Path, stamp: dict, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Saved standardisation statistics when they belong to `stamp` and are `dim` finite
    numbers each (std positive), else None."""
    try:
        if path.stat().st_size > 64 * dim + 65_536:  # two float32 vectors and a stamp
            return None
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(str(saved["stamp"])) != stamp:
                return None
            mean, std = saved["mean"], saved["std"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if mean.shape != (dim,) or std.shape != (dim,):
        return None
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        return None
    return mean, std


def embed_clip(space: EmbeddingSpace, path: str | Path, start=None, end=None) -> np.ndarray:
    """The file vector of a file or a region of it, computed now (not stored)."""
    audio, rate = decode_mono(path, start, end)
    if len(audio) == 0:
        raise FileUnreadable(f"no audio in {path} between {start or 0}s and {end or 'the end'}")
    clip = resample(audio, rate, space.sample_rate)
    return space.embed([clip])[0].vector


def best_moment(
    store: VectorStore, space_id: int, file_id: int, vector: np.ndarray
) -> tuple[float | None, float | None]:
    """(start, end) of the file's window that agrees best with `vector`."""
    windows = store.windows(space_id, file_id)
    if len(windows.starts) == 0:
        return None, None
    scores = windows.vectors @ normalise(vector.reshape(1, -1))[0]
    best = int(np.argmax(scores))
    return float(windows.starts[best]), float(windows.ends[best])


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
    rows = {
        r["id"]: r
        for r in catalog.query(
            f"SELECT * FROM files WHERE id IN ({ID_SET})", [id_set(fid for fid, _ in hits)]
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
                id=row["id"], path=row["path"], name=row["name"], folder=row["folder"],
                score=round(score, 4), duration=row["duration"], sample_rate=row["sample_rate"],
                channels=row["channels"], format=row["format"], subtype=row["subtype"],
                bit_depth=row["bit_depth"], size=row["size"], start=start, end=end,
                offline=bool(row["offline"]),
            )
        )  # fmt: skip
    return results
