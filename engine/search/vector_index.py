"""FAISS indexes over a space's file vectors, keyed by catalog file ids.

The catalog is the truth: an index file saved beside it carries the space's generation
and identity and is rebuilt whenever they differ (or the file is missing or unreadable).
Exact inner-product search (IndexFlatIP) below IVF_THRESHOLD vectors; from there an IVF
index over 8-bit scalar-quantised vectors (a quarter of the memory of float32, and a
quarter of what each probe reads), whose recall@10 against exact search is checked by a
test and measured on real-shaped data by bench/scale_bench.py. Every caller re-scores
what it keeps from the catalog's own vectors, so quantisation only picks candidates.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from engine.catalog.sidefiles import written

log = logging.getLogger(__name__)

IVF_THRESHOLD = 100_000
# What build_index makes at or above IVF_THRESHOLD (saved indexes carry it in their stamp,
# so an index of an older kind is rebuilt); lists probed per query: NPROBE_SHARE of them,
# at least MIN_NPROBE (docs/measurements.md, index choice).
IVF_KIND = "ivf-sq8-ids"
MIN_NPROBE = 32
NPROBE_SHARE = 1 / 128
# FAISS scans a flat index once per query below this many queries in a batch, and once
# per batch (BLAS) above it. A few queries together (a text query's centroid and
# neighbours) are memory-bound: one scan is much cheaper than several.
faiss.cvar.distance_compute_blas_threshold = 4


def build_index(ids: np.ndarray, vectors: np.ndarray, ivf_threshold: int = IVF_THRESHOLD):
    """An index over `vectors` (rows L2-normalised by the caller) answering with `ids`:
    exact search in an IndexIDMap2, or an IVF that keeps the ids in its own lists (so
    that removing ids keeps the rest right: an ID map over an IVF does not)."""
    n, dim = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n >= ivf_threshold:
        nlist = int(4 * math.sqrt(n))
        quantizer = faiss.IndexFlatIP(dim)
        base: Any = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
        base.train(sample)
        index = base
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if n:
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    return tuned(index)


def tuned(index):
    """`index` with today's search parameters (an IVF's lists probed per query), also for
    an index read from disk: they are not part of what the index holds."""
    base = faiss.downcast_index(index.index if hasattr(index, "index") else index)
    if isinstance(base, faiss.IndexIVF):
        base.nprobe = min(base.nlist, max(MIN_NPROBE, int(base.nlist * NPROBE_SHARE)))
    return index


def search(index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of the k nearest rows to `query` (1-D), best first; -1 ids dropped."""
    if index.ntotal == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    scores, ids = index.search(q, min(k, index.ntotal))
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


class SavedIndex:
    """An index file plus a JSON stamp saying which catalog state it was built from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp_path = path.with_suffix(".json")

    def stamp(self) -> dict | None:
        """The saved index's stamp (None when there is none, or it is unreadable)."""
        try:
            if self.stamp_path.stat().st_size > 65_536:
                return None
            found = json.loads(self.stamp_path.read_text())
            return found if isinstance(found, dict) else None
        except (OSError, ValueError):
            return None

    def load(self, stamp: dict):
        """The saved index when its stamp equals `stamp` and the file holds what the stamp
        says (checked on its size before reading, then on its contents), else None. A
        stamp with "count" and "dim" bounds what reading may allocate."""
        if self.stamp() != stamp:
            return None  # none yet, unreadable, or of another catalog state
        try:
            count, dim = stamp.get("count"), stamp.get("dim")
            if count is not None and dim is not None:
                # Vectors and ids, IVF lists and centroids: never near twice this.
                limit = 2 * count * (4 * dim + 8) + 8 * (4 * math.isqrt(count) + 1) * dim + 2**20
                if self.path.stat().st_size > limit:
                    log.warning("index %s is larger than it can be: rebuilt", self.path)
                    return None
            index = tuned(faiss.read_index(str(self.path)))
            if (count is not None and index.ntotal != count) or (
                dim is not None and index.d != dim
            ):
                log.warning("index %s does not hold what its stamp says: rebuilt", self.path)
                return None
            return index
        except FileNotFoundError:
            return None  # not built yet
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            log.warning("index %s not usable, rebuilt: %s", self.path, exc)
            return None

    def save(self, index, stamp: dict) -> None:
        """The index, then its stamp (a stamp never vouches for an index not yet there);
        each written whole under a unique temporary name."""
        with written(self.path) as tmp:
            faiss.write_index(index, str(tmp))
        with written(self.stamp_path) as tmp:
            tmp.write_text(json.dumps(stamp))
