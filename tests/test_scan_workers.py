"""Scanning in worker processes: the same rows as one thread, whatever dies on the way."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from engine.catalog.db import Catalog
from engine.scan import scanner as scanner_module
from engine.scan.scanner import CRASHED, Scanner
from tests.audio_factory import noise, tone, write

# Columns that differ between two scans of the same files by design.
VOLATILE = {"id", "root_id", "scanned_at"}


def _folder(root, files=10):
    for i in range(files):
        data = tone(0.3 + 0.1 * i, freq=200 + 50 * i) if i % 2 else noise(0.4, seed=i)
        write(root / f"sub{i % 3}" / f"take_{i:02d}.wav", data, 22050 + 11025 * (i % 2))
    write(root / "stereo.flac", tone(0.5, channels=2), 48000, format="FLAC")
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "empty.aiff").write_bytes(b"")
    return root


def _scan(tmp_path, name, root, **kwargs):
    catalog = Catalog(tmp_path / name / "catalog.sqlite")
    catalog.add_root(str(root))
    report = Scanner(catalog, **kwargs).scan()
    rows = {
        r["path"]: {k: v for k, v in r.items() if k not in VOLATILE}
        for r in catalog.query("SELECT * FROM files")
    }
    peaks = {
        r["path"]: (r["overview"], r["detail"])
        for r in catalog.query(
            "SELECT f.path, p.overview, p.detail FROM peaks p JOIN files f ON f.id = p.file_id"
        )
    }
    return report, rows, peaks, catalog


def test_worker_processes_store_what_one_thread_stores(tmp_path):
    root = _folder(tmp_path / "lib")
    one = _scan(tmp_path, "one", root, workers=1, processes=False)
    many = _scan(tmp_path, "many", root, workers=2, processes=True)
    assert many[1] == one[1] and len(one[1]) == 13
    assert many[2] == one[2] and len(one[2]) == 11
    assert (many[0].added, many[0].errors) == (one[0].added, one[0].errors) == (13, 2)


def test_a_file_that_kills_its_worker_becomes_an_error_row_and_the_scan_goes_on(
    tmp_path, monkeypatch
):
    """A decoder crash takes its whole worker process down: the file that does it gets an
    error row that says so, every other file (in flight with it or after) its own row."""
    root = _folder(tmp_path / "lib", files=8)
    write(root / "sub1" / "crash-me.wav", tone(0.2))
    # Worker processes start Python afresh: a sitecustomize on their path makes opening
    # any file named crash-me end the process at once, as a segfault in a decoder would.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys\n"
        "def _crash(event, args):\n"
        "    if event == 'open' and b'crash-me' in os.fsencode(args[0] if isinstance(args[0],"
        " (str, bytes)) else ''):\n"
        "        os._exit(70)\n"
        "sys.addaudithook(_crash)\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    report, rows, _, _ = _scan(tmp_path, "crash", root, workers=2, processes=True)
    crashed = [p for p, r in rows.items() if r["error"] == CRASHED]
    assert [os.path.basename(p) for p in crashed] == ["crash-me.wav"]
    assert len(rows) == 12 and report.errors == 3  # the crash, broken.wav, empty.aiff
    assert all(r["status"] == "ok" for p, r in rows.items() if "take_" in p or "stereo" in p)


def test_workers_killed_mid_scan_lose_no_file(tmp_path):
    """Worker processes killed from outside (the OOM killer, a user's kill) cost time, not
    files: what was in flight is read again."""
    root = _folder(tmp_path / "lib", files=12)
    killed = []

    def kill_workers(progress):
        if not killed:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    report, rows, _, _ = _scan(
        tmp_path, "killed", root, workers=2, processes=True, progress=kill_workers
    )
    assert killed
    assert len(rows) == 15 and report.errors == 2
    assert not [r for r in rows.values() if r["error"] == CRASHED]


@pytest.mark.parametrize(
    ("files", "workers", "expected"), [(10, 2, False), (64, 2, True), (64, 1, False)]
)
def test_small_scans_read_on_threads(tmp_path, monkeypatch, files, workers, expected):
    """Worker processes take a while to start: a handful of files is read on threads."""
    used = []
    real = Scanner._pool

    def spy(self, processes, count):
        used.append(processes)
        return real(self, processes, count)

    monkeypatch.setattr(Scanner, "_pool", spy)
    monkeypatch.setattr(scanner_module, "PROCESS_MIN_FILES", 64)
    root = tmp_path / "lib"
    for i in range(files):
        write(root / f"f{i}.wav", tone(0.05), 8000)
    _scan(tmp_path, "small", root, workers=workers)
    assert used == [expected]


def test_jobs_setting(monkeypatch):
    from engine import config

    monkeypatch.setenv("SONARIUM_JOBS", "3")
    assert config.scan_jobs() == 3
    for bad in ("0", "-2", "lots", "100", ""):
        monkeypatch.setenv("SONARIUM_JOBS", bad)
        assert config.scan_jobs() == max(1, min(config.MAX_AUTO_JOBS, os.cpu_count() or 1))
