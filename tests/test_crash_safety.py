"""SIGKILL the scanning CLI mid-scan, again and again; the catalog must stay whole.

Each kill is timed by watching the catalog (read-only, polled) grow past a fraction of the
files, so it lands mid-scan without relying on sleeps. After the kills, one more run
finishes the scan; it must resume (not redo) the work, and the catalog must then hold
every file exactly once with its stream info, peaks and search text.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.audio_factory import tone, write
from tests.conftest import ROOT

N_FILES = 300
SECONDS = 0.2
RATE = 44100
FRAMES = round(SECONDS * RATE)
KILL_AT = (0.25, 0.5, 0.75)
POLL_S = 0.005
DEADLINE_S = 60.0


def _make_files(root: Path) -> dict[str, int]:
    """N_FILES small wav/flac files in a few folders; returns path -> channels."""
    expected = {}
    for i in range(N_FILES):
        channels = 1 + i % 2
        ext = "wav" if i % 3 else "flac"
        path = write(
            root / f"folder{i % 6}" / f"clip_{i:03d}.{ext}",
            tone(SECONDS, RATE, channels, freq=100.0 + 7 * i),
            RATE,
        )
        expected[str(path)] = channels
    return expected


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), *args]


def _count(db: Path) -> int | None:
    """Rows in `files`, read through a read-only connection; None while not readable yet."""
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True, timeout=1.0)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return None  # no schema yet, or momentarily locked


def _count_after_kill(db: Path) -> int | None:
    # Nothing writes now; a None can only be a transient open failure, so retry briefly.
    deadline = time.monotonic() + 5.0
    while (n := _count(db)) is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return n


def _start_scan(sounds: Path, library: Path) -> subprocess.Popen:
    return subprocess.Popen(
        _cli("add", str(sounds), "--library", str(library), "-q"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, ready) -> bool:
    """Wait until `ready()` or the process exits; SIGKILL it. True if the kill landed."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready() and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("the scan made no progress before the deadline")
        time.sleep(POLL_S)
    landed = proc.poll() is None
    if landed:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    if landed:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0, err.decode(errors="replace")
    return landed


@pytest.mark.slow
def test_repeated_sigkill_mid_scan_leaves_a_whole_catalog(tmp_path):
    sounds = tmp_path / "sounds"
    expected = _make_files(sounds)
    library = tmp_path / "library"
    db = library / "catalog.sqlite"

    # First kill: as soon as the catalog exists (during startup, migrations or the first
    # files). Whatever it interrupted must not stop the next runs.
    _kill_when(_start_scan(sounds, library), lambda: db.exists())

    history = []  # (target, rows after the kill, whether the process was still running)
    previous = _count(db) or 0
    for fraction in KILL_AT:
        target = max(int(N_FILES * fraction), previous + 1)
        if target >= N_FILES:
            break
        landed = _kill_when(_start_scan(sounds, library), lambda t=target: (_count(db) or 0) >= t)
        after = _count_after_kill(db)
        assert after is not None and after >= previous, "a kill lost committed rows"
        history.append((target, after, landed))
        previous = after

    print("kills (target, rows after, landed):", history)
    mid_scan = [h for h in history if h[2] and h[1] < N_FILES]
    assert len(mid_scan) >= 2, f"too few kills landed mid-scan: {history}"
    # Each kill that landed came after the catalog had grown since the previous one.
    rows = [h[1] for h in history]
    assert rows == sorted(rows) and len(set(rows)) == len(rows), history

    # Finish the scan. It resumes: rows committed before the kills are not read again.
    done = subprocess.run(
        _cli("add", str(sounds), "--library", str(library), "-q"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = re.search(
        r"(\d+) files seen, (\d+) added, (\d+) updated, (\d+) moved, (\d+) removed, "
        r"(\d+) unchanged, (\d+) unreadable",
        done.stdout,
    )
    assert summary, done.stdout
    seen, added, updated, moved, removed, unchanged, unreadable = map(int, summary.groups())
    assert seen == N_FILES
    assert (added, unchanged) == (N_FILES - previous, previous)
    assert updated == moved == removed == unreadable == 0

    conn = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True)
    try:
        q = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
        assert q("PRAGMA integrity_check") == [("ok",)]
        assert q("PRAGMA foreign_key_check") == []
        assert q("SELECT COUNT(*) FROM roots") == [(1,)]

        files = q(
            "SELECT id, path, status, sample_rate, channels, frames, duration, error FROM files"
        )
        paths = [f[1] for f in files]
        assert len(paths) == len(set(paths)) == N_FILES, "duplicate or missing rows"
        assert set(paths) == set(expected)
        for _id, path, status, rate, channels, frames, duration, error in files:
            assert status == "ok", (path, error)
            assert None not in (rate, channels, frames, duration), path
            assert (rate, channels, frames) == (RATE, expected[path], FRAMES), path
            assert duration == pytest.approx(SECONDS)

        ok_ids = {f[0] for f in files}
        peak_ids = {r[0] for r in q("SELECT file_id FROM peaks WHERE length(overview) > 0 "
                                    "AND length(detail) > 0")}  # fmt: skip
        fts_ids = [r[0] for r in q("SELECT rowid FROM files_fts")]
        assert peak_ids == ok_ids, "ok rows without peaks (or peaks without rows)"
        assert q("SELECT COUNT(*) FROM files_fts") == [(N_FILES,)]
        assert len(fts_ids) == len(set(fts_ids)) and set(fts_ids) == ok_ids
    finally:
        conn.close()

    # And a further scan has nothing left to do.
    again = subprocess.run(
        _cli("scan", "--library", str(library), "-q"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout, again.stdout


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_scan_workers_exit_when_the_scanning_process_is_killed(tmp_path):
    """SIGKILL of a scan leaves no worker process behind (they would hold the files and
    the terminal's pipes)."""
    sounds = tmp_path / "sounds"
    _make_files(sounds)
    library = tmp_path / "library"
    db = library / "catalog.sqlite"
    proc = _start_scan(sounds, library)
    children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers: list[int] = []

    def scanning_in_workers() -> bool:
        nonlocal workers
        try:
            workers = [int(p) for p in children_file.read_text().split()]
        except OSError:
            return False
        return len(workers) >= 2 and (_count(db) or 0) > 0

    assert _kill_when(proc, scanning_in_workers), "the scan ended before it could be killed"
    deadline = time.monotonic() + 20
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            stat = Path(f"/proc/{pid}/stat")
            # Gone, or a zombie waiting for init to reap it: either way no longer running.
            if not stat.exists() or stat.read_text().split(") ")[-1].startswith("Z"):
                alive.discard(pid)
        time.sleep(POLL_S)
    assert not alive, f"scan workers outlived the scan: {sorted(alive)}"
