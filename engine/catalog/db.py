"""The catalog: one SQLite database that is the truth about a library.

Locking rule: each thread opens its own :class:`Catalog` (SQLite connections must not be
shared between threads). Exactly one of them writes at a time — the scanner's writer, or
the CLI/engine thread for user edits — and every write is one short ``BEGIN IMMEDIATE``
transaction, so a reader never sees a half-written file and a kill loses at most the
transaction in flight. WAL mode lets readers (search) run while the writer works.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.catalog.fields import FIELDS, is_field_tag, stored
from engine.catalog.migrations import apply_migrations, check_known, pending_migrations
from engine.catalog.paths import words_text
from engine.catalog.sidefiles import written
from engine.catalog.sqlite_utils_import import sqlite_utils
from engine.errors import CannotWrite, CatalogUnusable
from engine.search.words import name_words, split_words

# "x IN (ID_SET)" with id_set(ids) as its one parameter: a list of ids of any length in a
# statement of fixed size (one "?" per id fails past SQLite's variable limit).
ID_SET = "SELECT value FROM json_each(?)"


def id_set(ids: Iterable[int]) -> str:
    """The parameter for ID_SET."""
    return json.dumps([int(i) for i in ids])


_READ_ONLY = (
    "the library in {folder} is read-only here: searching and listening work, but changes "
    "(scans, tags, favorites, collections) need write access to that folder"
)
_FULL = (
    "the disk holding the library in {folder} is full: the change was not made (nothing "
    "was half written); free some space and try again"
)


def _read_only(path: Path) -> bool:
    """Whether the catalog at ``path`` can only be read: its folder (or the file) exists
    and refuses writes (a read-only mount answers so even for root)."""
    folder = path.parent
    if not folder.exists():
        return False  # created on open
    if not os.access(folder, os.W_OK):
        return True
    return path.exists() and not os.access(path, os.W_OK)


# How much of a file's descriptions and metadata the keyword index takes (see _refresh_fts).
MAX_FTS_DESCRIPTION_CHARS = 8192

FILE_COLUMNS = (
    "root_id", "path", "folder", "name", "size", "mtime_ns", "fingerprint", "format",
    "subtype", "sample_rate", "channels", "frames", "duration", "bit_depth", "peak_db",
    "rms_db", "status", "error", "scanned_at", "description", "originator",
    "origination_date", "ixml_note", "ixml_project", "ixml_scene", "ixml_take",
    "embedded_tags", "ucs_catid", "ucs_category", "ucs_subcategory", "ucs_fx_name",
    "ucs_creator", "ucs_source", "keywords", "designer", "library", "rating",
    "ucs_user_category", "ucs_vendor_category", "originator_reference", "loudness_lufs",
    "true_peak_db",
)  # fmt: skip


class Catalog:
    """A connection to one library's catalog. Use from the thread that created it (its
    `readers` are the one exception: lent to helper threads for the length of a call)."""

    def __init__(self, path: Path | str, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        # A library on a read-only disk or share (an archive drive, a write-protected
        # NAS export) opens for reading: search and audition work, writes say why not.
        self.read_only = _read_only(self.path)
        self._timeout = timeout
        self._readers: list[sqlite3.Connection] = []  # see readers()
        self._readers_lock = threading.Lock()
        self._closed = False
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
        conn = self._connect(timeout)
        try:
            check_known(conn)  # a newer build's catalog is refused before any write
            if self.read_only:
                if pending_migrations(conn):
                    raise CatalogUnusable(
                        f"the library's catalog {self.path} was made by an older Sonarium and "
                        "must be upgraded, which needs write access to its folder"
                    )
            else:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.db = sqlite_utils.Database(conn)
            self.conn = conn
            if not self.read_only:
                apply_migrations(conn, backup=self._backup)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CatalogUnusable(self._damaged(exc)) from exc
        except BaseException:
            conn.close()
            raise

    def _connect(self, timeout: float, *, reader: bool = False) -> sqlite3.Connection:
        if not self.read_only and not reader:
            return sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        if not self.path.exists():
            raise CatalogUnusable(f"there is no library at {self.path.parent} (read-only folder)")
        uri = "file:" + urllib.parse.quote(str(self.path)) + "?mode=ro"
        # A reader is lent to one helper thread at a time (see readers()).
        conn = sqlite3.connect(
            uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=not reader
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if not self.read_only:
                raise
            # WAL readers need the -shm file, which a read-only folder cannot hold: read
            # the database file as it is (nobody can be writing it there).
            return sqlite3.connect(
                uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None,
                check_same_thread=not reader,
            )  # fmt: skip

    def _backup(self, migration: str) -> None:
        """A copy of the catalog as it is, before ``migration`` changes it (the newest
        copy per library is kept beside it, written whole)."""
        target = self.path.with_name(self.path.name + ".before-migration")
        with written(target) as tmp:
            copy = sqlite3.connect(str(tmp))
            try:
                self.conn.backup(copy)
            finally:
                copy.close()

    def _damaged(self, exc: sqlite3.DatabaseError) -> str:
        backup = self.path.with_name(self.path.name + ".before-migration")
        restore = (
            f"restore the copy made before the last upgrade ({backup}), or "
            if backup.exists()
            else ""
        )
        return (
            f"the library's catalog {self.path} is damaged ({exc}); {restore}move it away "
            "and rescan the folders (your tags, favorites and collections are stored in it; "
            "sqlite3's .recover can often save them)"
        )

    def close(self) -> None:
        with self._readers_lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self.conn.close()

    @contextmanager
    def readers(self, count: int) -> Iterator[list[sqlite3.Connection]]:
        """Up to `count` read-only connections to this catalog for helper threads, each
        used by one thread at a time until the block ends (kept open for the next call).
        Call on the owning thread. None inside an open transaction: its writes are not
        visible to other connections, so the caller then reads through `conn` alone."""
        if self.conn.in_transaction or count <= 0:
            yield []
            return
        with self._readers_lock:
            lent = [self._readers.pop() for _ in range(min(count, len(self._readers)))]
        try:
            with contextlib.suppress(sqlite3.Error, CatalogUnusable):
                # Fewer readers (or none) only makes the caller do more of the work itself.
                while len(lent) < count:
                    lent.append(self._connect(self._timeout, reader=True))
            yield lent
        finally:
            with self._readers_lock:
                if self._closed:  # closed meanwhile: nothing to lend them to again
                    for reader in lent:
                        reader.close()
                else:
                    self._readers.extend(lent)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write. Nested use joins the outer transaction. CannotWrite when the
        library is read-only or the disk is full (nothing of the write is kept)."""
        if self.conn.in_transaction:
            yield self.conn
            return
        if self.read_only:
            raise CannotWrite(_READ_ONLY.format(folder=self.path.parent))
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if code == sqlite3.SQLITE_FULL:
                raise CannotWrite(_FULL.format(folder=self.path.parent)) from exc
            if code == sqlite3.SQLITE_READONLY:
                raise CannotWrite(_READ_ONLY.format(folder=self.path.parent)) from exc
            raise

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """What SQLite's integrity and foreign-key checks find wrong (empty when sound);
        reads the whole database, so it takes a while on a large library."""
        rows = [r[0] for r in self.conn.execute(f"PRAGMA integrity_check({int(limit)})")]
        problems = [] if rows == ["ok"] else rows
        for table, rowid, parent, _ in self.conn.execute("PRAGMA foreign_key_check"):
            if len(problems) >= limit:
                break
            problems.append(f"{table} row {rowid} refers to a missing {parent} row")
        return problems

    # -- roots -------------------------------------------------------------------------

    def add_root(self, path: str) -> int:
        with self.transaction() as c:
            row = c.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
            if row:
                return int(row[0])
            cur = c.execute("INSERT INTO roots (path, added_at) VALUES (?, ?)", (path, time.time()))
            return int(cur.lastrowid or 0)

    def remove_root(self, path: str) -> int:
        """Forget a root folder and its files; returns how many files were removed."""
        with self.transaction() as c:
            row = c.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
            if not row:
                return 0
            ids = [r[0] for r in c.execute("SELECT id FROM files WHERE root_id = ?", (row[0],))]
            for file_id in ids:
                c.execute("DELETE FROM files_fts WHERE rowid = ?", (file_id,))
            c.execute("DELETE FROM files WHERE root_id = ?", (row[0],))
            c.execute("DELETE FROM roots WHERE id = ?", (row[0],))
            return len(ids)

    def subfolders(self, folder: str) -> list[tuple[str, int]]:
        """The folders directly inside `folder` that hold readable files (at any depth),
        with how many, by name."""
        sep = "\\" if "\\" in folder and "/" not in folder else "/"
        inside = folder.rstrip(sep) + sep
        escaped = inside.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.conn.execute(
            "SELECT folder, COUNT(*) FROM files WHERE status = 'ok' AND folder LIKE ? "
            "ESCAPE '\\' GROUP BY folder",
            (escaped + "%",),
        )
        counts: dict[str, int] = {}
        for path, count in rows:
            child = inside + str(path)[len(inside) :].split(sep, 1)[0]
            counts[child] = counts.get(child, 0) + int(count)
        return sorted(counts.items(), key=lambda kv: kv[0].lower())

    def favorites_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM favorites").fetchone()[0])

    def roots(self) -> list[dict[str, Any]]:
        return self.query(
            """SELECT r.id, r.path, r.added_at, r.last_scan_at,
                      COUNT(f.id) AS files,
                      COALESCE(SUM(f.status = 'ok'), 0) AS indexed,
                      COALESCE(SUM(f.status = 'error'), 0) AS errors,
                      COALESCE(SUM(f.offline), 0) AS offline,
                      COALESCE(SUM(f.duration), 0) AS duration
               FROM roots r LEFT JOIN files f ON f.root_id = r.id
               GROUP BY r.id ORDER BY r.path"""
        )

    def excluded_paths(self) -> set[str]:
        """Paths the user removed from the library (as duplicates): scans leave them out."""
        return {r[0] for r in self.conn.execute("SELECT path FROM excluded_files")}

    def unmeasured_files(self) -> set[str]:
        """Paths of readable, non-silent files whose loudness was never measured (scanned
        before migration m008): the scanner measures them without reading them again
        otherwise."""
        rows = self.conn.execute(
            "SELECT path FROM files WHERE status = 'ok' AND true_peak_db IS NULL "
            "AND peak_db IS NOT NULL"
        )
        return {r[0] for r in rows}

    def set_loudness(self, path: str, lufs: float | None, true_peak: float | None) -> None:
        """Store a file's measured loudness (LUFS) and true peak (dBTP); None: silent."""
        with self.transaction() as c:
            c.execute(
                "UPDATE files SET loudness_lufs = ?, true_peak_db = ? WHERE path = ?",
                (lufs, true_peak, path),
            )

    def set_offline(self, root_id: int, offline_ids: Iterable[int] | None = None) -> None:
        """Mark which files of a root are offline: all of them when ``offline_ids`` is
        None (the root folder itself is missing), else exactly those (the rest of the
        root was read, so it is online)."""
        with self.transaction() as c:
            if offline_ids is None:
                c.execute("UPDATE files SET offline = 1 WHERE root_id = ?", (root_id,))
            else:
                c.execute(
                    f"UPDATE files SET offline = (id IN ({ID_SET})) WHERE root_id = ?",
                    (id_set(offline_ids), root_id),
                )

    def mark_root_scanned(self, root_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE roots SET last_scan_at = ? WHERE id = ?", (time.time(), root_id))

    # -- files -------------------------------------------------------------------------

    def known_files(self, root_id: int) -> dict[str, tuple[int, int, int, str | None]]:
        """path -> (id, size, mtime_ns, fingerprint) for every file under a root."""
        rows = self.conn.execute(
            "SELECT path, id, size, mtime_ns, fingerprint FROM files WHERE root_id = ?",
            (root_id,),
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def file_by_path(self, path: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM files WHERE path = ?", (path,))
        return rows[0] if rows else None

    def file_by_id(self, file_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM files WHERE id = ?", (file_id,))
        return rows[0] if rows else None

    def write_file(
        self, record: Mapping[str, Any], peaks: tuple[bytes, bytes] | None = None
    ) -> int | None:
        """Insert or replace the row for record['path'], its peaks and its search text.

        An existing row keeps its id, so user tags and favorites survive a file being
        changed and rescanned. Returns None, writing nothing, when the file's root folder
        was removed from the library meanwhile (another connection may remove it while a
        scan runs).
        """
        values = {k: record.get(k) for k in FILE_COLUMNS}
        with self.transaction() as c:
            if not c.execute("SELECT 1 FROM roots WHERE id = ?", (values["root_id"],)).fetchone():
                return None
            row = c.execute("SELECT id FROM files WHERE path = ?", (values["path"],)).fetchone()
            cols = ", ".join(FILE_COLUMNS)
            marks = ", ".join("?" for _ in FILE_COLUMNS)
            params = [values[k] for k in FILE_COLUMNS]
            if row:
                file_id = int(row[0])
                sets = ", ".join(f"{k} = ?" for k in FILE_COLUMNS)
                c.execute(f"UPDATE files SET {sets} WHERE id = ?", [*params, file_id])
                # New content: its vectors in every space are stale.
                for table in ("file_vectors", "window_vectors", "embed_errors"):
                    c.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))
            else:
                cur = c.execute(f"INSERT INTO files ({cols}) VALUES ({marks})", params)
                file_id = int(cur.lastrowid or 0)
            self._apply_edits(file_id)
            if peaks is None:
                c.execute("DELETE FROM peaks WHERE file_id = ?", (file_id,))
            else:
                c.execute(
                    "INSERT OR REPLACE INTO peaks (file_id, overview, detail) VALUES (?, ?, ?)",
                    (file_id, peaks[0], peaks[1]),
                )
            self._refresh_fts(file_id)
            return file_id

    def _apply_edits(self, file_id: int) -> None:
        """Put the user's metadata edits back over a freshly scanned row (inside the
        caller's transaction): what the user set outlives what the file says."""
        c = self.conn
        for name, value in c.execute(
            "SELECT field, value FROM metadata_edits WHERE file_id = ?", (file_id,)
        ).fetchall():
            f = FIELDS.get(name)
            if f is not None:  # a field a newer build knew: kept, not shown
                c.execute(
                    f"UPDATE files SET {f.column} = ? WHERE id = ?", (stored(f, value), file_id)
                )

    def move_file(self, file_id: int, path: str, root_id: int, size: int, mtime_ns: int) -> None:
        """Point a row at its renamed/moved file without re-decoding it (nothing when the
        row or the root folder was removed meanwhile)."""
        p = Path(path)
        with self.transaction() as c:
            if not c.execute("SELECT 1 FROM roots WHERE id = ?", (root_id,)).fetchone():
                return
            c.execute(
                """UPDATE files SET path = ?, folder = ?, name = ?, root_id = ?, size = ?,
                   mtime_ns = ? WHERE id = ?""",
                (path, str(p.parent), p.name, root_id, size, mtime_ns, file_id),
            )
            self._refresh_fts(file_id)

    def delete_files(self, file_ids: list[int]) -> None:
        with self.transaction() as c:
            for file_id in file_ids:
                c.execute("DELETE FROM files_fts WHERE rowid = ?", (file_id,))
                c.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def clear_embed_errors(self) -> int:
        """Forget every file's embedding error, so the next embedding run tries them
        again; returns how many there were."""
        with self.transaction() as c:
            return c.execute("DELETE FROM embed_errors").rowcount

    def peaks(self, file_id: int) -> tuple[bytes, bytes] | None:
        row = self.conn.execute(
            "SELECT overview, detail FROM peaks WHERE file_id = ?", (file_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def errors(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT id, path, format, size, error, scanned_at FROM files "
            "WHERE status = 'error' ORDER BY path"
        )

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'error'), 0),"
            " COALESCE(SUM(offline), 0) FROM files"
        ).fetchone()
        return {"files": row[0], "indexed": row[1], "errors": row[2], "offline": row[3]}

    def _refresh_fts(self, file_id: int) -> None:
        c = self.conn
        c.execute("DELETE FROM files_fts WHERE rowid = ?", (file_id,))
        row = self.file_by_id(file_id)
        if row is None or row["status"] != "ok":
            return
        root = c.execute("SELECT path FROM roots WHERE id = ?", (row["root_id"],)).fetchone()
        folder = words_text(row["folder"])
        if root and row["folder"].startswith(root[0]):
            # Words of the folders inside the library root, plus the root's own name.
            folder = words_text(Path(root[0]).name + "/" + row["folder"][len(root[0]) :])
        user_tags = [
            r[0] for r in c.execute("SELECT tag FROM user_tags WHERE file_id = ?", (file_id,))
        ]
        embedded = json.loads(row["embedded_tags"] or "{}")
        description = " ".join(
            str(v)
            for v in (
                row["description"], row["keywords"], row["ixml_note"], row["ixml_project"],
                row["ixml_scene"], row["originator"], row["designer"], row["library"],
                *(v for k, v in embedded.items() if not is_field_tag(k)),
            )
            if v
        )  # fmt: skip
        ucs = " ".join(
            str(v)
            for v in (
                row["ucs_catid"],
                row["ucs_category"],
                row["ucs_subcategory"],
                row["ucs_fx_name"],
                row["ucs_user_category"],
                row["ucs_vendor_category"],
            )
            if v
        )
        # The field stays whole in its column; the index gets a sane length of it.
        description = description[:MAX_FTS_DESCRIPTION_CHARS]
        c.execute(
            "INSERT INTO files_fts (rowid, name, folder, description, tags, ucs) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                file_id,
                name_words(words_text(row["name"])),
                " ".join(split_words(folder)),
                description,
                " ".join(" ".join([t, *split_words(t)]) for t in user_tags),
                ucs + " " + " ".join(split_words(ucs)),
            ),
        )

    def ucs_categories(self) -> list[dict[str, Any]]:
        """Every CatID the library's files have, with its category names and number of
        files: [{"catid", "category", "subcategory", "files"}], by category."""
        return self.query(
            "SELECT ucs_catid AS catid, MAX(COALESCE(ucs_category, '')) AS category, "
            "MAX(COALESCE(ucs_subcategory, '')) AS subcategory, COUNT(*) AS files "
            "FROM files WHERE ucs_catid IS NOT NULL AND ucs_catid != '' AND status = 'ok' "
            "GROUP BY ucs_catid ORDER BY category, subcategory, catid"
        )

    # -- user tags, favorites, collections ---------------------------------------------

    def add_tags(self, file_id: int, tags: list[str]) -> None:
        with self.transaction() as c:
            for tag in tags:
                c.execute("INSERT OR IGNORE INTO user_tags VALUES (?, ?)", (file_id, tag.strip()))
            self._refresh_fts(file_id)

    def remove_tags(self, file_id: int, tags: list[str]) -> None:
        with self.transaction() as c:
            for tag in tags:
                c.execute("DELETE FROM user_tags WHERE file_id = ? AND tag = ?", (file_id, tag))
            self._refresh_fts(file_id)

    def tags_of(self, file_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT tag FROM user_tags WHERE file_id = ? ORDER BY tag", (file_id,)
        )
        return [r[0] for r in rows]

    def set_favorite(self, file_id: int, favorite: bool) -> None:
        with self.transaction() as c:
            if favorite:
                c.execute("INSERT OR IGNORE INTO favorites VALUES (?, ?)", (file_id, time.time()))
            else:
                c.execute("DELETE FROM favorites WHERE file_id = ?", (file_id,))

    def is_favorite(self, file_id: int) -> bool:
        q = "SELECT 1 FROM favorites WHERE file_id = ?"
        return self.conn.execute(q, (file_id,)).fetchone() is not None

    def create_collection(self, name: str) -> int:
        """The id of the collection named ``name``, created when there is none."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT id FROM collections WHERE name = ? COLLATE NOCASE", (name,)
            ).fetchone()
            if row:
                return int(row[0])
            cur = c.execute(
                "INSERT INTO collections (name, created_at) VALUES (?, ?)", (name, time.time())
            )
            return int(cur.lastrowid or 0)

    def add_to_collection(self, collection_id: int, file_ids: list[int]) -> None:
        with self.transaction() as c:
            start = c.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM collection_items "
                "WHERE collection_id = ?",
                (collection_id,),
            ).fetchone()[0]
            for offset, file_id in enumerate(file_ids):
                c.execute(
                    "INSERT OR IGNORE INTO collection_items VALUES (?, ?, ?)",
                    (collection_id, file_id, start + offset),
                )

    def collection_files(self, collection_id: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT file_id FROM collection_items WHERE collection_id = ? ORDER BY position",
            (collection_id,),
        )
        return [r[0] for r in rows]

    def collection_id(self, name: str) -> int | None:
        """The id of the collection named ``name`` (case-insensitive), or None."""
        row = self.conn.execute(
            "SELECT id FROM collections WHERE name = ? COLLATE NOCASE", (name,)
        ).fetchone()
        return int(row[0]) if row else None

    def collections(self) -> list[dict[str, Any]]:
        """Every collection with its number of files, by name."""
        return self.query(
            "SELECT c.id, c.name, COUNT(i.file_id) AS files FROM collections c "
            "LEFT JOIN collection_items i ON i.collection_id = c.id "
            "GROUP BY c.id ORDER BY c.name COLLATE NOCASE"
        )

    def collections_of(self, file_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT c.name FROM collections c JOIN collection_items i ON i.collection_id = c.id "
            "WHERE i.file_id = ? ORDER BY c.name COLLATE NOCASE",
            (file_id,),
        )
        return [r[0] for r in rows]

    def remove_from_collection(self, collection_id: int, file_ids: list[int]) -> int:
        """Take files out of a collection (the files stay in the library); returns how many."""
        with self.transaction() as c:
            return sum(
                c.execute(
                    "DELETE FROM collection_items WHERE collection_id = ? AND file_id = ?",
                    (collection_id, file_id),
                ).rowcount
                for file_id in file_ids
            )

    def rename_collection(self, collection_id: int, name: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE collections SET name = ? WHERE id = ?", (name, collection_id))

    def delete_collection(self, collection_id: int) -> None:
        """Forget a collection (its files stay in the library)."""
        with self.transaction() as c:
            c.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

    # -- settings ----------------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str | None) -> None:
        with self.transaction() as c:
            if value is None:
                c.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                c.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))
