"""The second torture set: what a real studio's disks hold besides audio and what changes
under a scan. FIFOs, sockets and devices (listed, or swapped in for a file mid-scan),
links to devices and loops, permission flips and folders vanishing mid-scan, metadata
bombs. Each case ends as the exact row, error row or absence it should, in bounded time,
and every other file of the library is indexed."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

import engine.scan.scanner as scanner_mod
from engine.catalog.paths import NotAFile, open_binary
from tests.audio_factory import tone, wav_bytes, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")

# No case may take longer than this (a hang is the failure being tested for).
DEADLINE_S = 60


def _scan_within_deadline(library):
    """A scan of the library on a thread of its own (with its own connection, as the
    app's indexing has); fails, instead of hanging the suite, past DEADLINE_S."""
    from engine.library import Library

    out: dict = {}

    def run():
        try:
            with Library(library.dir) as own:
                out["report"] = own.scan(workers=1)
        except BaseException as exc:  # surfaced below
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "the scan hung"
    if "error" in out:
        raise out["error"]
    return out["report"]


def _good(root: Path, n: int = 3) -> set[str]:
    return {str(write(root / f"good_{i}.wav", tone(0.2, 8000), 8000)) for i in range(n)}


def test_special_files_are_never_read(tmp_path, library):
    root = tmp_path / "lib"
    good = _good(root)
    os.mkfifo(root / "pipe.wav")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.wav"))
    (root / "zero.wav").symlink_to("/dev/zero")  # endless data behind an audio name
    (root / "loop").symlink_to(root)  # a loop back to the root
    (root / "dangling.wav").symlink_to(root / "nothing_here.wav")
    library.add_folders([root])
    try:
        report = _scan_within_deadline(library)
    finally:
        sock.close()
    rows = {r["path"]: r for r in library.catalog.query("SELECT path, status FROM files")}
    assert set(rows) == good and {r["status"] for r in rows.values()} == {"ok"}
    assert report.errors == 0 and report.added == len(good)


def test_a_file_swapped_for_a_fifo_mid_scan_becomes_an_error_row_not_a_hang(
    tmp_path, library, monkeypatch
):
    root = tmp_path / "lib"
    good = _good(root)
    victim = write(root / "victim.wav", tone(0.2, 8000), 8000)
    import engine.scan.analyze as analyze_mod

    real = analyze_mod._stat

    def stat_then_swap(path):
        st = real(path)
        if str(path) == str(victim) and stat.S_ISREG(st.st_mode):
            victim.unlink()  # a regular file when listed and checked, a FIFO when opened
            os.mkfifo(victim)
        return st

    monkeypatch.setattr(analyze_mod, "_stat", stat_then_swap)
    library.add_folders([root])
    report = _scan_within_deadline(library)
    row = library.catalog.file_by_path(str(victim))
    assert row["status"] == "error" and "not a regular file" in row["error"]
    assert report.errors == 1
    ok = {r["path"] for r in library.catalog.query("SELECT path FROM files WHERE status = 'ok'")}
    assert ok == good
    # Put back as audio, the next scan reads it.
    victim.unlink()
    write(victim, tone(0.2, 8000), 8000)
    monkeypatch.setattr(analyze_mod, "_stat", real)
    _scan_within_deadline(library)
    assert library.catalog.file_by_path(str(victim))["status"] == "ok"


def test_open_binary_refuses_what_is_not_a_file(tmp_path):
    os.mkfifo(tmp_path / "p")
    for path in (tmp_path / "p", tmp_path, Path("/dev/null")):
        with pytest.raises(NotAFile):
            open_binary(str(path))
    (tmp_path / "f").write_bytes(b"x")
    with open_binary(str(tmp_path / "f")) as f:
        assert f.read() == b"x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_a_file_made_unreadable_mid_scan_is_an_error_row_and_comes_back(
    tmp_path, library, monkeypatch
):
    root = tmp_path / "lib"
    good = _good(root)
    victim = write(root / "locked.wav", tone(0.2, 8000), 8000)
    real = scanner_mod.analyze

    def lock_then_analyze(path, *args, **kw):
        if str(path) == str(victim):
            victim.chmod(0)
        return real(path, *args, **kw)

    monkeypatch.setattr(scanner_mod, "analyze", lock_then_analyze)
    library.add_folders([root])
    _scan_within_deadline(library)
    row = library.catalog.file_by_path(str(victim))
    assert row["status"] == "error" and "ermission" in row["error"]
    assert _ok_paths(library) == good
    victim.chmod(stat.S_IRUSR | stat.S_IWUSR)
    monkeypatch.setattr(scanner_mod, "analyze", real)
    library.scan(workers=1, retry_errors=True)
    assert library.catalog.file_by_path(str(victim))["status"] == "ok"


def test_a_permission_error_while_reading_is_an_error_row(tmp_path, library, monkeypatch):
    """The same as above where the tests run as root (CI): the open itself is refused."""
    root = tmp_path / "lib"
    good = _good(root)
    victim = write(root / "locked.wav", tone(0.2, 8000), 8000)
    import engine.scan.analyze as analyze_mod

    real_open = analyze_mod.open_binary

    def refusing(path):
        if str(path) == str(victim):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(analyze_mod, "open_binary", refusing)
    library.add_folders([root])
    _scan_within_deadline(library)
    row = library.catalog.file_by_path(str(victim))
    assert row["status"] == "error" and "Permission denied" in row["error"]
    assert _ok_paths(library) == good
    # Fixed: an ordinary rescan leaves the unchanged file alone; --retry-errors reads it.
    monkeypatch.setattr(analyze_mod, "open_binary", real_open)
    assert library.scan(workers=1).unchanged == len(good) + 1
    assert library.catalog.file_by_path(str(victim))["status"] == "error"
    report = library.scan(workers=1, retry_errors=True)
    assert (report.updated, report.errors) == (1, 0)
    assert library.catalog.file_by_path(str(victim))["status"] == "ok"


def _ok_paths(library) -> set[str]:
    rows = library.catalog.query("SELECT path FROM files WHERE status = 'ok'")
    return {r["path"] for r in rows}


def test_a_folder_vanishing_mid_scan_loses_only_what_is_really_gone(tmp_path, library, monkeypatch):
    root = tmp_path / "lib"
    good = _good(root)
    doomed = {str(write(root / "doomed" / f"d{i}.wav", tone(0.2, 8000), 8000)) for i in range(3)}
    real = scanner_mod.analyze
    gone = threading.Event()

    def vanish_then_analyze(path, *args, **kw):
        if str(path) in doomed and not gone.is_set():
            gone.set()
            for p in doomed:
                os.unlink(p)
            os.rmdir(root / "doomed")
        return real(path, *args, **kw)

    monkeypatch.setattr(scanner_mod, "analyze", vanish_then_analyze)
    library.add_folders([root])
    report = _scan_within_deadline(library)
    rows = {r["path"] for r in library.catalog.query("SELECT path FROM files")}
    assert rows == good and report.vanished == len(doomed)


def test_a_metadata_bomb_is_stored_whole_but_indexed_and_captioned_in_part(tmp_path, library):
    from engine.adapt.captions import MAX_CAPTION_CHARS, build_captions, catalog_file_texts
    from engine.catalog.db import MAX_FTS_DESCRIPTION_CHARS

    root = tmp_path / "lib"
    good = _good(root)
    note = ("rain on a tin roof " * 90_000)[:1_600_000]  # a 1.6 MB iXML note
    ixml = f"<BWFXML><NOTE>{note}</NOTE></BWFXML>".encode()
    data = bytearray(wav_bytes(tone(0.2, 8000), 8000))
    chunk = b"iXML" + len(ixml).to_bytes(4, "little") + ixml + (b"\0" if len(ixml) % 2 else b"")
    data += chunk
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    (root / "bomb.wav").write_bytes(bytes(data))
    library.add_folders([root])
    _scan_within_deadline(library)
    row = library.catalog.file_by_path(str(root / "bomb.wav"))
    assert row["status"] == "ok" and row["ixml_note"] == note.strip()  # stored whole
    fts = library.catalog.conn.execute(
        "SELECT description FROM files_fts WHERE rowid = ?", (row["id"],)
    ).fetchone()[0]
    assert len(fts) <= MAX_FTS_DESCRIPTION_CHARS
    captions = build_captions(catalog_file_texts(library.catalog))
    assert len(captions[row["id"]]) <= MAX_CAPTION_CHARS
    assert [r.name for r in library.search("tin roof", mode="keyword")] == ["bomb.wav"]
    assert len(good) + 1 == library.counts()["indexed"]


def test_scan_retry_errors_from_the_cli_retries_reading_and_embedding(tmp_path, library_dir):
    """`sonarium scan --retry-errors`: an error row whose file is unchanged is read again,
    and embedding errors are forgotten so those files are embedded again."""
    from engine.library import Library
    from tests.test_cli import run_cli

    root = tmp_path / "lib"
    _good(root, 2)
    write(root / "late.wav", tone(0.2, 8000), 8000)
    run_cli("add", str(root), "--no-embed", "-q", library_dir=library_dir)
    with Library(library_dir) as lib:  # as if both had failed: an error row, an embed error
        late = lib.catalog.file_by_path(str(root / "late.wav"))
        good = lib.catalog.file_by_path(str(root / "good_0.wav"))
        with lib.catalog.transaction() as c:
            c.execute("UPDATE files SET status = 'error', error = 'x' WHERE id = ?", (late["id"],))
            c.execute("INSERT INTO spaces VALUES (1, 'aisfx', 'old', 4, 0, 0)")
            c.execute("INSERT INTO embed_errors VALUES (?, 1, 'boom')", (good["id"],))

    def state():
        with Library(library_dir) as lib:
            status = lib.catalog.file_by_path(str(root / "late.wav"))["status"]
            return status, lib.catalog.query("SELECT COUNT(*) AS n FROM embed_errors")[0]["n"]

    out = run_cli("scan", "--no-embed", "-q", library_dir=library_dir).stdout
    assert "3 unchanged" in out and state() == ("error", 1)  # unchanged: not tried again
    out = run_cli("scan", "--retry-errors", "--no-embed", "-q", library_dir=library_dir).stdout
    assert "1 updated" in out and "0 unreadable" in out
    assert state() == ("ok", 0)
