import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog.db import Catalog
from engine.catalog.migrations import MIGRATIONS
from engine.scan.peaks import DETAIL_BUCKETS, OVERVIEW_BUCKETS, PeakAccumulator, decode_peaks
from tests.audio_factory import tone, write


def test_migrations_recorded_once_and_wal(tmp_path):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()
    cat = Catalog(path)  # reopening applies nothing again
    names = [r["name"] for r in cat.query("SELECT name FROM migrations")]
    assert names == [name for name, _ in MIGRATIONS]
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.integrity_ok()
    cat.close()


def test_failed_transaction_leaves_nothing(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    try:
        with cat.transaction() as c:
            c.execute("INSERT INTO roots (path, added_at) VALUES ('/x', 0)")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert cat.roots() == []


def test_tags_favorites_collections_follow_file_rows(tmp_path, library):
    root = tmp_path / "s"
    write(root / "a.wav")
    write(root / "b.wav")
    library.add_folders([root])
    library.scan(workers=1)
    a, b = (library.catalog.file_by_path(str(root / n))["id"] for n in ("a.wav", "b.wav"))
    cat = library.catalog
    cat.add_tags(a, ["impact", "hero"])
    cat.remove_tags(a, ["hero"])
    assert cat.tags_of(a) == ["impact"]
    cat.set_favorite(b, True)
    assert cat.is_favorite(b) and not cat.is_favorite(a)
    coll = cat.create_collection("Reel 3")
    assert cat.create_collection("Reel 3") == coll
    cat.add_to_collection(coll, [b, a])
    assert cat.collection_files(coll) == [b, a]
    library.remove_folder(root)
    assert cat.query("SELECT COUNT(*) AS n FROM user_tags")[0]["n"] == 0
    assert cat.query("SELECT COUNT(*) AS n FROM collection_items")[0]["n"] == 0
    assert cat.query("SELECT COUNT(*) AS n FROM files_fts")[0]["n"] == 0


def test_adding_a_parent_folder_absorbs_nested_roots(tmp_path, library):
    write(tmp_path / "lib" / "sub" / "a.wav")
    library.add_folders([tmp_path / "lib" / "sub"])
    library.scan(workers=1)
    library.add_folders([tmp_path / "lib"])
    assert [r["path"] for r in library.folders()] == [str(tmp_path / "lib")]
    report = library.scan(workers=1)
    assert report.unchanged == 1 and report.added == 0


def test_settings_round_trip(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.set_setting("k", "v")
    assert cat.get_setting("k") == "v"
    cat.set_setting("k", None)
    assert cat.get_setting("k", "d") == "d"


def brute_force_peaks(data: np.ndarray, buckets: int):
    mono_min, mono_max = data.min(axis=1), data.max(axis=1)
    edges = np.linspace(0, len(data), buckets + 1).astype(int)
    return (
        np.array([mono_min[s:e].min() for s, e in zip(edges[:-1], edges[1:], strict=True)]),
        np.array([mono_max[s:e].max() for s, e in zip(edges[:-1], edges[1:], strict=True)]),
    )


@settings(max_examples=30, deadline=None)
@given(
    frames=st.integers(1, 40000),
    block=st.integers(1, 5000),
    declared_offset=st.integers(-500, 500),
)
def test_peaks_bounded_and_cover_the_signal(frames, block, declared_offset):
    rng = np.random.default_rng(frames)
    data = rng.uniform(-1, 1, (frames, 2)).astype(np.float32)
    acc = PeakAccumulator(max(1, frames + declared_offset))  # declared length may be wrong
    for start in range(0, frames, block):
        acc.add(data[start : start + block])
    overview, detail = acc.finish()
    for blob, limit in ((overview, OVERVIEW_BUCKETS), (detail, DETAIL_BUCKETS)):
        mins, maxs = decode_peaks(blob)
        assert 1 <= len(mins) <= limit
        # The envelope covers the whole signal: extreme values appear (within int8 rounding).
        assert mins.min() <= data.min() + 1 / 127 and maxs.max() >= data.max() - 1 / 127
        assert np.all(mins <= maxs)


def test_peaks_match_brute_force_for_exact_lengths():
    data = tone(2.0, rate=8000, channels=2)
    data[:, 1] *= -0.5
    acc = PeakAccumulator(len(data))
    for start in range(0, len(data), 777):
        acc.add(data[start : start + 777])
    mins, maxs = decode_peaks(acc.finish()[0])
    want_min, want_max = brute_force_peaks(data, OVERVIEW_BUCKETS)
    assert len(mins) == OVERVIEW_BUCKETS
    assert np.allclose(mins, want_min, atol=1 / 127 + 1e-6)
    assert np.allclose(maxs, want_max, atol=1 / 127 + 1e-6)


def test_catalog_readable_by_plain_sqlite(tmp_path, library):
    write(tmp_path / "s" / "x.wav")
    library.add_folders([tmp_path / "s"])
    library.scan(workers=1)
    conn = sqlite3.connect(library.catalog.path)
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 1


def test_a_huge_metadata_field_is_kept_whole_but_indexed_in_part(tmp_path, library):
    from engine.catalog.db import MAX_FTS_DESCRIPTION_CHARS

    root = tmp_path / "s"
    write(root / "take.wav")
    library.add_folders([root])
    library.scan(workers=1)
    row = library.catalog.file_by_path(str(root / "take.wav"))
    note = "thunder " + "x" * 2_000_000
    with library.catalog.transaction() as c:
        c.execute("UPDATE files SET description = ? WHERE id = ?", (note, row["id"]))
        library.catalog._refresh_fts(row["id"])
    assert library.catalog.file_by_id(row["id"])["description"] == note  # kept whole
    (indexed,) = library.catalog.conn.execute(
        "SELECT LENGTH(description) FROM files_fts WHERE rowid = ?", (row["id"],)
    ).fetchone()
    assert indexed <= MAX_FTS_DESCRIPTION_CHARS
    assert [r.name for r in library.search("thunder", mode="keyword")] == ["take.wav"]


def test_a_catalog_from_a_newer_sonarium_is_refused_and_never_written(tmp_path, library):
    import hashlib

    from engine.errors import CatalogUnusable
    from engine.library import Library

    with library.catalog.transaction() as c:
        c.execute("INSERT INTO migrations (name, applied_at) VALUES ('m999_from_the_future', 0)")
    library.catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    library.close()
    path = library.dir / "catalog.sqlite"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(CatalogUnusable, match="newer version of Sonarium.*m999_from_the_future"):
        Library(library.dir)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_damaged_catalog_says_how_to_recover(tmp_path):
    from engine.errors import CatalogUnusable
    from engine.library import Library

    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogUnusable, match="damaged.*move it away and rescan"):
        Library(folder)


def test_a_copy_is_kept_before_an_upgrade_changes_the_catalog(tmp_path, library, monkeypatch):
    import sqlite3

    import engine.catalog.migrations as migrations
    from engine.library import Library

    root = tmp_path / "s"
    write(root / "a.wav")
    library.add_folders([root])
    library.scan(workers=1)
    library.close()

    def m900_test_upgrade(conn):
        conn.execute("CREATE TABLE upgraded (x INTEGER)")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("m900_test_upgrade", m900_test_upgrade)]
    )
    with Library(library.dir) as upgraded:
        assert upgraded.catalog.query(
            "SELECT name FROM migrations WHERE name = 'm900_test_upgrade'"
        )
    copy = library.dir / "catalog.sqlite.before-migration"
    conn = sqlite3.connect(copy)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    files = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    conn.close()
    assert "upgraded" not in tables and files == 1
    assert not [p for p in library.dir.iterdir() if p.name.startswith(".")]  # no temporaries


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
@pytest.mark.parametrize("frames", [1, 700, 44_100, 400_000])
def test_peaks_by_looping_over_short_axes_equal_numpys_axis_reductions(
    monkeypatch, channels, frames
):
    """The fast path (element-wise over a few channels or a short unit) gives exactly what
    NumPy's reductions along those axes give, in blocks of any size."""
    from engine.scan import peaks

    data = np.random.default_rng(frames + channels).uniform(-1, 1, (frames, channels))
    data = data.astype(np.float32)

    def run():
        acc = PeakAccumulator(frames)
        for start in range(0, frames, 4093):
            acc.add(data[start : start + 4093])
        return acc.finish()

    fast = run()
    monkeypatch.setattr(peaks, "_SHORT_AXIS", 0)  # every reduction along its axis
    assert run() == fast


def test_embedded_counts_and_ids_follow_writes_from_any_connection(tmp_path, library):
    """The count is kept per generation of the space: another connection's insert or a
    cascading delete changes the generation, so the count is never stale."""
    from engine.catalog.vectors import VectorStore

    write(tmp_path / "sfx" / "a.wav", tone(0.2), 8000)
    write(tmp_path / "sfx" / "b.wav", tone(0.2), 8000)
    library.add_folders([tmp_path / "sfx"])
    library.scan(workers=1)
    ids = [r[0] for r in library.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
    store = VectorStore(library.catalog)
    space = store.ensure_space("fake", "fake:v1", 4)
    assert store.embedded_count(space) == 0
    other = Catalog(library.catalog.path)
    try:
        VectorStore(other).store(space, ids[0], np.ones(4, dtype=np.float32))
        assert store.embedded_count(space) == 1
        assert store.embedded_ids(space).tolist() == [ids[0]]
        VectorStore(other).store(space, ids[1], np.ones(4, dtype=np.float32))
        VectorStore(other).store(space, ids[1], np.ones(4, dtype=np.float32))  # replaced
        assert store.embedded_count(space) == 2
        assert store.embedded_ids(space).tolist() == ids
        other.delete_files([ids[0]])  # its vectors go by cascade
        assert store.embedded_count(space) == 1
        assert store.embedded_ids(space).tolist() == [ids[1]]
    finally:
        other.close()


def test_word_prefix_upgrade_keeps_every_file_findable(tmp_path, library, monkeypatch):
    """A catalog made before m005 (prefix index of 2-3 characters only) is upgraded to
    the longer prefixes, and every search finds what it found before."""
    import engine.catalog.migrations as migrations
    from engine.library import Library

    root = tmp_path / "s"
    for name in ("metal door slam.wav", "doorbell ring.wav", "heavy footsteps gravel.wav",
                 "Heavy Rain Roof.wav", "slammed car door.wav"):  # fmt: skip
        write(root / name)
    before = [(n, f) for n, f in migrations.MIGRATIONS if n < "m005"]
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    library.add_folders([root])
    library.scan(workers=1)
    queries = ["door", "doo", "slam door", "heav", "heavy rain", "ring", "gravel foot"]
    found = {q: [r.name for r in library.search(q, mode="keyword")] for q in queries}
    library.close()
    monkeypatch.undo()

    with Library(library.dir) as upgraded:
        sql = upgraded.catalog.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'files_fts'"
        ).fetchone()[0]
        assert "'2 3 4 5 6 7 8'" in sql
        assert {q: [r.name for r in upgraded.search(q, mode="keyword")] for q in queries} == found
        assert found["doo"] and found["heav"]  # prefixes found something to compare
        # The index still follows the catalog after the upgrade: a new file is found.
        write(root / "door creak.wav")
        upgraded.scan(workers=1)
        assert "door creak.wav" in [r.name for r in upgraded.search("creak", mode="keyword")]
        assert upgraded.catalog.integrity_ok()


def test_readers_see_what_is_committed_and_are_lent_again(tmp_path):
    """Catalog.readers: read-only connections for helper threads, kept for the next call;
    none inside an open transaction, whose writes only the owning connection sees."""
    import threading

    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.conn.execute("CREATE TABLE t (x)")
    catalog.conn.execute("INSERT INTO t VALUES (1)")
    with catalog.readers(2) as readers:
        assert len(readers) == 2
        seen: list[int] = []
        thread = threading.Thread(
            target=lambda: seen.extend(r.execute("SELECT COUNT(*) FROM t").fetchone()[0]
                                       for r in readers)
        )  # fmt: skip
        thread.start()
        thread.join()
        assert seen == [1, 1]
        with pytest.raises(sqlite3.OperationalError):
            readers[0].execute("INSERT INTO t VALUES (2)")  # read-only
        first = set(map(id, readers))
    with catalog.readers(2) as again:
        assert set(map(id, again)) == first
    with catalog.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        with catalog.readers(2) as inside:
            assert inside == []
    catalog.close()
