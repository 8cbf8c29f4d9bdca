"""Schema migrations: named functions applied once each, in order, recorded in `migrations`.

Add a migration by appending a function decorated with @migration; never edit one
that has shipped, because catalogs in the wild have already recorded it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

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


def _run_statements(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit our open transaction; run statements one by one instead.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
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
