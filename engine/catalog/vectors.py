"""Embedding vectors in the catalog: per space, a file vector and per-window vectors.

Vectors are stored as float16 (half the size, well within ranking tolerance) and are
L2-normalised before storing. Uses the Catalog of the calling thread; writes are single
transactions like every other catalog write.
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.catalog.db import ID_SET, Catalog, id_set


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def nearest_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest `scores`, best first, ties in index order: exactly
    np.argsort(-scores, kind="stable")[:k], without sorting every score."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")[:k]
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    chosen = np.flatnonzero(scores >= kth)  # every tie at the k-th score, in index order
    return chosen[np.argsort(-scores[chosen], kind="stable")][:k]


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def from_blobs(blobs: list[bytes]) -> np.ndarray:
    """(len(blobs), dim) float32 from stored vectors of one space, converted in one step
    (a search reads thousands); ValueError when they are not all the same length."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    size = len(blobs[0])
    if size == 0 or size % 2 or any(len(b) != size for b in blobs):
        raise ValueError("stored vectors of one space differ in length")
    joined = np.frombuffer(b"".join(blobs), dtype=np.float16)
    return joined.reshape(len(blobs), size // 2).astype(np.float32)


def _file_exists(c: sqlite3.Connection, file_id: int) -> bool:
    return c.execute("SELECT 1 FROM files WHERE id = ?", (file_id,)).fetchone() is not None


# Catalog -> (what, space id) -> (generation, value): VectorStore._per_generation.
_BY_GENERATION: weakref.WeakKeyDictionary[Catalog, dict[tuple[str, int], tuple[int, Any]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class Windows:
    """One file's window vectors with their times in seconds."""

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray


def _ascending(listed: tuple[str | None, ...]) -> list[np.ndarray]:
    """Comma-separated integer columns from group_concat (the first one file ids) as
    read-only int64 arrays, ordered by the first: one string parsed by numpy, where a
    Python int per row took 0.3 s at a million files on the way to the first query."""
    if not listed[0]:
        columns = [np.zeros(0, dtype=np.int64) for _ in listed]
    else:
        columns = [np.fromstring(text or "", dtype=np.int64, sep=",") for text in listed]
        if np.any(np.diff(columns[0]) <= 0):  # SQLite does not promise group_concat's order
            order = np.argsort(columns[0], kind="stable")
            columns = [column[order] for column in columns]
    for column in columns:
        column.flags.writeable = False
    return columns


class VectorStore:
    """Reads and writes vectors through one Catalog (so: on that catalog's thread)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def ensure_space(self, name: str, identity: str, dim: int) -> int:
        """The space's id; when its identity changed, its old vectors are dropped."""
        with self.catalog.transaction() as c:
            q = "SELECT id, identity, dim FROM spaces WHERE name = ?"
            row = c.execute(q, (name,)).fetchone()
            if row is None:
                cur = c.execute(
                    "INSERT INTO spaces (name, identity, dim, created_at) VALUES (?, ?, ?, ?)",
                    (name, identity, dim, time.time()),
                )
                return int(cur.lastrowid or 0)
            space_id = int(row[0])
            if (row[1], row[2]) != (identity, dim):
                # Vectors of two models never mix: everything is re-embedded.
                for table in ("file_vectors", "window_vectors", "embed_errors"):
                    c.execute(f"DELETE FROM {table} WHERE space_id = ?", (space_id,))
                c.execute(
                    "UPDATE spaces SET identity = ?, dim = ?, created_at = ? WHERE id = ?",
                    (identity, dim, time.time(), space_id),
                )
            return space_id

    def space(self, name: str) -> dict[str, Any] | None:
        rows = self.catalog.query("SELECT * FROM spaces WHERE name = ?", (name,))
        return rows[0] if rows else None

    def pending(self, space_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Readable files that have neither vectors nor an embedding error in this space."""
        sql = (
            "SELECT f.id, f.path, f.duration, f.sample_rate, f.channels, f.size FROM files f "
            "WHERE f.status = 'ok' AND f.offline = 0 "
            "AND NOT EXISTS (SELECT 1 FROM file_vectors v "
            "WHERE v.space_id = ? AND v.file_id = f.id) "
            "AND NOT EXISTS (SELECT 1 FROM embed_errors e "
            "WHERE e.space_id = ? AND e.file_id = f.id) "
            "ORDER BY f.id"
        )
        params: list[Any] = [space_id, space_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self.catalog.query(sql, params)

    def embedded_count(self, space_id: int) -> int:
        """How many files have vectors in the space (see _per_generation: counted once
        per generation; a count reads the whole index, tens of ms at a million files,
        and every text query asks)."""

        def count() -> int:
            sql = "SELECT COUNT(*) FROM file_vectors WHERE space_id = ?"
            return int(self.catalog.conn.execute(sql, (space_id,)).fetchone()[0])

        return self._per_generation("count", space_id, count)

    def embedded_ids(self, space_id: int) -> np.ndarray:
        """The ids of the files with vectors in the space, ascending (read-only array;
        read once per generation, see _per_generation)."""

        def ids() -> np.ndarray:
            listed = self.catalog.conn.execute(
                "SELECT group_concat(file_id, ',') FROM (SELECT file_id FROM file_vectors "
                "WHERE space_id = ? ORDER BY file_id)",
                (space_id,),
            ).fetchone()
            return _ascending(listed)[0]

        return self._per_generation("ids", space_id, ids)

    def vector_versions(self, space_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(file ids ascending, the version each one's vector was stored at: the space's
        generation then) for the space, so a search index can tell what changed since it
        was built (engine/search/similar.py). Read once per generation."""

        def rows() -> tuple[np.ndarray, np.ndarray]:
            listed = self.catalog.conn.execute(
                "SELECT group_concat(file_id, ','), group_concat(version, ',') FROM "
                "(SELECT file_id, version FROM file_vectors WHERE space_id = ? ORDER BY file_id)",
                (space_id,),
            ).fetchone()
            ids, versions = _ascending(listed)
            return ids, versions

        return self._per_generation("versions", space_id, rows)

    def _per_generation(self, what: str, space_id: int, read: Callable[[], Any]) -> Any:
        """`read()`, remembered for this catalog until the space's generation changes.
        The generation is read first, so a value that races a writer is kept under the
        older generation and read again next time, never served stale."""
        generation = self.generation(space_id)
        known = _BY_GENERATION.setdefault(self.catalog, {})
        cached = known.get((what, space_id))
        if cached is not None and cached[0] == generation:
            return cached[1]
        value = read()
        known[(what, space_id)] = (generation, value)
        return value

    def counts(self, space_id: int) -> dict[str, int]:
        c = self.catalog.conn
        return {
            "embedded": self.embedded_count(space_id),
            "failed": c.execute(
                "SELECT COUNT(*) FROM embed_errors WHERE space_id = ?", (space_id,)
            ).fetchone()[0],
            "pending": c.execute(
                "SELECT COUNT(*) FROM files f WHERE f.status = 'ok' AND f.offline = 0 "
                "AND NOT EXISTS (SELECT 1 FROM file_vectors v "
                "WHERE v.space_id = ? AND v.file_id = f.id) "
                "AND NOT EXISTS (SELECT 1 FROM embed_errors e WHERE e.space_id = ? "
                "AND e.file_id = f.id)",
                (space_id, space_id),
            ).fetchone()[0],
        }

    def store(
        self,
        space_id: int,
        file_id: int,
        file_vector: np.ndarray,
        windows: list[tuple[float, float, np.ndarray]] | None = None,
    ) -> bool:
        """Replace a file's vectors in one transaction (the file vector is normalised here).

        Returns False, storing nothing, when the file's row was removed meanwhile (its
        folder forgotten while it was being embedded)."""
        vec = normalise(file_vector.reshape(1, -1))[0]
        with self.catalog.transaction() as c:
            if not _file_exists(c, file_id):
                return False
            c.execute(
                "DELETE FROM window_vectors WHERE space_id = ? AND file_id = ?", (space_id, file_id)
            )
            c.execute(
                "DELETE FROM embed_errors WHERE space_id = ? AND file_id = ?", (space_id, file_id)
            )
            c.execute(
                "INSERT OR REPLACE INTO file_vectors (file_id, space_id, vector) VALUES (?, ?, ?)",
                (file_id, space_id, to_blob(vec)),
            )
            if windows:
                normed = normalise(np.stack([w[2] for w in windows]))
                c.executemany(
                    "INSERT INTO window_vectors (file_id, space_id, start, end, vector) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (file_id, space_id, float(s), float(e), to_blob(v))
                        for (s, e, _), v in zip(windows, normed, strict=True)
                    ],
                )
        return True

    def store_error(self, space_id: int, file_id: int, error: str) -> None:
        """Record why a file could not be embedded in a space (nothing if the row is gone)."""
        with self.catalog.transaction() as c:
            if not _file_exists(c, file_id):
                return
            c.execute(
                "INSERT OR REPLACE INTO embed_errors (file_id, space_id, error) VALUES (?, ?, ?)",
                (file_id, space_id, error),
            )

    def all_file_vectors(self, space_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, vectors float32 (n, dim)) of every file embedded in the space."""
        rows = self.catalog.conn.execute(
            "SELECT file_id, vector FROM file_vectors WHERE space_id = ? ORDER BY file_id",
            (space_id,),
        ).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, from_blobs([r[1] for r in rows])

    def file_vectors(self, space_id: int, file_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those of `file_ids` that have a vector, in the order asked."""
        rows = self.catalog.conn.execute(
            "SELECT file_id, vector FROM file_vectors "
            f"WHERE space_id = ? AND file_id IN ({ID_SET})",
            [space_id, id_set(file_ids)],
        ).fetchall()
        found = {int(r[0]): r[1] for r in rows}
        ids = [f for f in file_ids if f in found]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.array(ids, dtype=np.int64), from_blobs([found[f] for f in ids])

    def file_vector(self, space_id: int, file_id: int) -> np.ndarray | None:
        row = self.catalog.conn.execute(
            "SELECT vector FROM file_vectors WHERE space_id = ? AND file_id = ?",
            (space_id, file_id),
        ).fetchone()
        return from_blob(row[0]) if row else None

    def windows(self, space_id: int, file_id: int) -> Windows:
        """One file's windows, in time order (none: empty arrays)."""
        found = self.windows_of(space_id, [file_id]).get(file_id)
        if found is None:
            empty = np.zeros(0, dtype=np.float32)
            return Windows(empty, empty, np.zeros((0, 0), dtype=np.float32))
        return found

    def windows_of(self, space_id: int, file_ids: list[int]) -> dict[int, Windows]:
        """Each file's windows in time order, read in one query; files without windows are
        left out."""
        rows = self.catalog.conn.execute(
            "SELECT file_id, start, end, vector FROM window_vectors "
            f"WHERE space_id = ? AND file_id IN ({ID_SET}) ORDER BY file_id, start",
            [space_id, id_set(file_ids)],
        ).fetchall()
        if not rows:
            return {}
        vectors = from_blobs([r[3] for r in rows])
        owners = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        starts = np.array([r[1] for r in rows], dtype=np.float32)
        ends = np.array([r[2] for r in rows], dtype=np.float32)
        # Rows come sorted by file: each file's windows are one slice.
        cuts = np.flatnonzero(np.diff(owners)) + 1
        bounds = zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True)
        return {int(owners[a]): Windows(starts[a:b], ends[a:b], vectors[a:b]) for a, b in bounds}

    def generation(self, space_id: int) -> int:
        row = self.catalog.conn.execute(
            "SELECT generation FROM spaces WHERE id = ?", (space_id,)
        ).fetchone()
        return int(row[0]) if row else -1
