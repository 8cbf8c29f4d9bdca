"""Schema migrations: named functions applied once each, in order, recorded in `migrations`.

Add a migration by appending a function decorated with @migration; never edit one
that has shipped, because catalogs in the wild have already recorded it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from engine.errors import CatalogUnusable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    _run_statements(
        conn,
        """
        CREATE TABLE roots (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            added_at REAL NOT NULL,
            last_scan_at REAL
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
            path TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            fingerprint TEXT,
            format TEXT,
            subtype TEXT,
            sample_rate INTEGER,
            channels INTEGER,
            frames INTEGER,
            duration REAL,
            bit_depth INTEGER,
            peak_db REAL,
            rms_db REAL,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
            error TEXT,
            scanned_at REAL NOT NULL,
            description TEXT,
            originator TEXT,
            origination_date TEXT,
            ixml_note TEXT,
            ixml_project TEXT,
            ixml_scene TEXT,
            ixml_take TEXT,
            embedded_tags TEXT,
            ucs_catid TEXT,
            ucs_category TEXT,
            ucs_subcategory TEXT,
            ucs_fx_name TEXT,
            ucs_creator TEXT,
            ucs_source TEXT
        );
        CREATE INDEX files_root ON files(root_id);
        CREATE INDEX files_fingerprint ON files(fingerprint);
        CREATE INDEX files_status ON files(status);
        CREATE TABLE peaks (
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            overview BLOB NOT NULL,
            detail BLOB NOT NULL
        );
        CREATE VIRTUAL TABLE files_fts USING fts5(
            name, folder, description, tags, ucs,
            tokenize = 'porter unicode61 remove_diacritics 2',
            prefix = '2 3'
        );
        CREATE TABLE user_tags (
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (file_id, tag)
        );
        CREATE INDEX user_tags_tag ON user_tags(tag);
        CREATE TABLE favorites (
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            added_at REAL NOT NULL
        );
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        );
        CREATE TABLE collection_items (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            PRIMARY KEY (collection_id, file_id)
        );
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        """,
    )


@migration
def m002_embeddings(conn: sqlite3.Connection) -> None:
    # One row per embedding space; `identity` (model, revision, preprocessing version)
    # changing means every vector of that space is stale and must be recomputed.
    _run_statements(
        conn,
        """
        CREATE TABLE spaces (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            identity TEXT NOT NULL,
            dim INTEGER NOT NULL,
            created_at REAL NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE file_vectors (
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
            vector BLOB NOT NULL,
            PRIMARY KEY (space_id, file_id)
        );
        CREATE INDEX file_vectors_file ON file_vectors(file_id);
        CREATE TABLE window_vectors (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
            start REAL NOT NULL,
            end REAL NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX window_vectors_file ON window_vectors(space_id, file_id);
        CREATE TABLE embed_errors (
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
            error TEXT NOT NULL,
            PRIMARY KEY (space_id, file_id)
        );
        """,
    )
    # A space's generation changes with every vector added or removed (cascades too),
    # so a saved FAISS index knows when it is stale. Triggers hold ';' inside, so they
    # are executed whole rather than through _run_statements.
    for event, ref in (("INSERT", "NEW"), ("DELETE", "OLD")):
        conn.execute(
            f"CREATE TRIGGER file_vectors_{event.lower()} AFTER {event} ON file_vectors BEGIN "
            f"UPDATE spaces SET generation = generation + 1 WHERE id = {ref}.space_id; END"
        )


@migration
def m003_offline(conn: sqlite3.Connection) -> None:
    # 1 while the file's folder cannot be read (an unplugged drive, a network share's
    # hiccup): the row, its tags and vectors are kept, and results leave it out unless
    # asked; the next scan that reads the folder sets it back to 0.
    conn.execute("ALTER TABLE files ADD COLUMN offline INTEGER NOT NULL DEFAULT 0")


@migration
def m004_name_order(conn: sqlite3.Connection) -> None:
    # A query of filters only lists files by name: read in this order, a page of a
    # million-file library stops after its rows instead of sorting every match.
    conn.execute("CREATE INDEX files_name_order ON files(name COLLATE NOCASE, path)")


@migration
def m005_word_prefixes(conn: sqlite3.Connection) -> None:
    # Every query word matches as a prefix ("door" finds "doorbell" while typing). Without
    # a prefix index of the word's length, FTS5 merges the doclists of every term that
    # starts with it, once to match and again for BM25's document counts; at a million
    # files that was most of a keyword query's time. Stems of 2-8 characters cover the
    # words people type; longer ones are rare, so merging them is cheap. The index is
    # rebuilt from the old table's own copy of the text.
    _run_statements(
        conn,
        """
        CREATE VIRTUAL TABLE files_fts_next USING fts5(
            name, folder, description, tags, ucs,
            tokenize = 'porter unicode61 remove_diacritics 2',
            prefix = '2 3 4 5 6 7 8'
        );
        INSERT INTO files_fts_next (rowid, name, folder, description, tags, ucs)
            SELECT rowid, name, folder, description, tags, ucs FROM files_fts;
        DROP TABLE files_fts;
        ALTER TABLE files_fts_next RENAME TO files_fts
        """,
    )


@migration
def m006_vector_versions(conn: sqlite3.Connection) -> None:
    # The space's generation at which each file vector was stored: a search index brought
    # up to date in memory (engine/search/similar.py) tells a vector stored again from the
    # one it holds by it. A rowid cannot: SQLite gives the newest deleted row's rowid (and
    # file id) to the next row. Vectors from before are version 0.
    conn.execute("ALTER TABLE file_vectors ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
    # Read for every vector of a space at once: from this index, not the rows with their
    # blobs (a gigabyte at a million files).
    conn.execute("CREATE INDEX file_vectors_versions ON file_vectors(space_id, file_id, version)")
    conn.execute("DROP TRIGGER file_vectors_insert")
    conn.execute(
        "CREATE TRIGGER file_vectors_insert AFTER INSERT ON file_vectors BEGIN "
        "UPDATE spaces SET generation = generation + 1 WHERE id = NEW.space_id; "
        "UPDATE file_vectors SET version = "
        "(SELECT generation FROM spaces WHERE id = NEW.space_id) WHERE rowid = NEW.rowid; END"
    )


@migration
def m007_metadata_edits(conn: sqlite3.Connection) -> None:
    # The fields a user edits that no column held yet (engine/catalog/fields.py), read
    # from the files' own metadata too, so what Sonarium writes into a file reads back.
    for column, kind in (
        ("keywords", "TEXT"), ("designer", "TEXT"), ("library", "TEXT"), ("rating", "INTEGER"),
        ("ucs_user_category", "TEXT"), ("ucs_vendor_category", "TEXT"),
        ("originator_reference", "TEXT"),
    ):  # fmt: skip
        conn.execute(f"ALTER TABLE files ADD COLUMN {column} {kind}")
    # Browsing by UCS category counts the files of each CatID: from this index, not rows.
    conn.execute("CREATE INDEX files_ucs_catid ON files(ucs_catid)")
    _fields_from_tags(conn)
    # metadata_edits: what the user set, per file and field ("" = cleared on purpose); a
    # rescan re-applies it over what the file says. written_at: when it last went into
    # the file (NULL or older than edited_at: a write is pending; that is the resumable
    # journal of a batch write). edit_journal: every change, in batches, for undo/redo;
    # rename_journal: every file renamed (UCS renaming), in batches, for undo.
    _run_statements(
        conn,
        """
        CREATE TABLE metadata_edits (
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            field TEXT NOT NULL,
            value TEXT NOT NULL,
            edited_at REAL NOT NULL,
            editor TEXT NOT NULL,
            written_at REAL,
            PRIMARY KEY (file_id, field)
        );
        CREATE INDEX metadata_edits_pending ON metadata_edits(written_at);
        CREATE TABLE edit_journal (
            id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            field TEXT NOT NULL,
            old_edit TEXT,
            old_shown TEXT,
            new_value TEXT NOT NULL,
            at REAL NOT NULL,
            editor TEXT NOT NULL,
            undone INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX edit_journal_batch ON edit_journal(batch);
        CREATE TABLE rename_journal (
            id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL,
            file_id INTEGER REFERENCES files(id) ON DELETE SET NULL,
            old_path TEXT NOT NULL,
            new_path TEXT NOT NULL,
            at REAL NOT NULL,
            undone INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX rename_journal_batch ON rename_journal(batch)
        """,
    )


@migration
def m008_loudness(conn: sqlite3.Connection) -> None:
    # Integrated loudness (LUFS, BS.1770) and true peak (dBTP) from the scan, for the
    # loudness-matched audition; NULL for silence and for rows scanned before this (the
    # app measures those when they are first auditioned, engine/library.py).
    conn.execute("ALTER TABLE files ADD COLUMN loudness_lufs REAL")
    conn.execute("ALTER TABLE files ADD COLUMN true_peak_db REAL")


@migration
def m009_duplicates(conn: sqlite3.Connection) -> None:
    # content_hashes: a hash of each decoded file's samples for finding exact duplicates,
    # kept while the file's fingerprint stays (engine/curate/duplicates.py). excluded_files:
    # files the user removed from the library (as duplicates) that scans leave out.
    _run_statements(
        conn,
        """
        CREATE TABLE content_hashes (
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE excluded_files (
            path TEXT PRIMARY KEY,
            excluded_at REAL NOT NULL,
            reason TEXT NOT NULL
        )
        """,
    )


def _fields_from_tags(conn: sqlite3.Connection) -> None:
    """Fill the new field columns of rows scanned before them from the tags they kept
    (a Vorbis KEYWORDS, RIFF INFO's IKEY...), as a scan now reads them: the keyword index
    takes those tags through the columns from now on."""
    import json

    from engine.catalog.fields import tag_values

    rows = conn.execute(
        "SELECT id, embedded_tags FROM files WHERE embedded_tags IS NOT NULL"
    ).fetchall()
    for file_id, raw in rows:
        try:
            tags = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(tags, dict):
            continue
        for f, value in tag_values(tags):
            conn.execute(
                f"UPDATE files SET {f.column} = ? WHERE id = ? AND {f.column} IS NULL",
                (value, file_id),
            )


def _run_statements(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit our open transaction; run statements one by one instead.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def check_known(conn: sqlite3.Connection) -> set[str]:
    """The migrations this catalog has; CatalogUnusable when it has some this build does
    not know (a newer Sonarium wrote it: writing to it could break that version's data).
    Reads only."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if not has_table:
        return set()
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:
        raise CatalogUnusable(
            "this library was written by a newer version of Sonarium (its catalog has "
            f"{len(unknown)} change(s) this version does not know: {', '.join(unknown[:3])}); "
            "open it with that version, or choose another library. Nothing was changed."
        )
    return done


def pending_migrations(conn: sqlite3.Connection) -> list[str]:
    """The migrations this catalog still needs (reads only)."""
    done = check_known(conn)
    return [name for name, _ in MIGRATIONS if name not in done]


def apply_migrations(
    conn: sqlite3.Connection, backup: Callable[[str], None] | None = None
) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied.

    Refuses a catalog from a newer build before writing anything (check_known). When a
    catalog that already holds data is about to change, ``backup(name)`` is called first.
    """
    done = check_known(conn)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        if backup is not None and done and not applied:
            backup(name)  # once, before the first change: the catalog as the user left it
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
