"""A library on a read-only disk, and a disk that fills up: search, find-similar and
audition keep working from what is there; every write fails with one clear message
(CannotWrite), and nothing is left half written or lying about.

Real read-only mounts and a real full tmpfs are used where the tests may mount (root on
Linux, as in CI); the same paths are also driven by fault injection everywhere (SQLite's
own page limit for a full catalog, failing system calls for side files)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.catalog.db import Catalog
from engine.embed.pipeline import Embedder
from engine.errors import CannotWrite
from engine.library import Library
from tests.audio_factory import tone, write
from tests.fakes import FakeSpace, dc
from tests.test_cli import run_cli


def _library(tmp_path: Path, library_dir: Path) -> Path:
    root = tmp_path / "sounds"
    for i in range(4):
        write(root / f"door_slam_{i}.wav", dc(1, 0.1 * (i + 1)), 8000)
    write(root / "rain.wav", tone(1.0, 8000), 8000)
    with Library(library_dir) as lib:
        lib.add_folders([root])
        lib.scan(workers=1)
        Embedder(lib.catalog, [FakeSpace()]).run()
        one = lib.catalog.file_by_path(str(root / "rain.wav"))
        lib.catalog.add_tags(one["id"], ["weather"])
        lib.set_favorite(one["id"], True)
    return root


@contextlib.contextmanager
def _read_only_mount(folder: Path):
    """``folder`` bind-mounted read-only at a new path; skips where mounting is refused."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("read-only bind mounts need root on Linux")
    target = folder.parent / (folder.name + "_ro")
    target.mkdir(exist_ok=True)
    run = lambda *a: subprocess.run(a, capture_output=True, text=True)  # noqa: E731
    if run("mount", "--bind", str(folder), str(target)).returncode != 0:
        pytest.skip("this machine refuses bind mounts")
    try:
        if run("mount", "-o", "remount,ro,bind", str(target)).returncode != 0:
            pytest.skip("this machine refuses read-only remounts")
        yield target
    finally:
        run("umount", str(target))


def _check_reads_work_and_writes_say_why(lib: Library, root: Path) -> None:
    assert lib.catalog.read_only
    names = [r.name for r in lib.search("door", mode="keyword")]
    assert sorted(names) == [f"door_slam_{i}.wav" for i in range(4)]
    assert [r.name for r in lib.search("weather fav", mode="keyword")] == ["rain.wav"]
    similar = lib.similar(root / "door_slam_0.wav", space="fake")
    assert similar and all(r.name != "door_slam_0.wav" for r in similar)
    assert lib.info(root / "rain.wav")["tags"] == ["weather"]
    rain = lib.catalog.file_by_path(str(root / "rain.wav"))["id"]
    for write_something in (
        lambda: lib.scan(workers=1),
        lambda: lib.add_tags(rain, ["x"]),
        lambda: lib.set_favorite(rain, False),
        lambda: lib.add_to_collection("reel", [rain]),
    ):
        with pytest.raises(CannotWrite, match="read-only"):
            write_something()


def test_a_read_only_mount_is_searched_and_never_written(tmp_path, library_dir):
    root = _library(tmp_path, library_dir)
    before = sorted(os.listdir(library_dir))
    with _read_only_mount(library_dir) as ro, Library(ro) as lib:
        _check_reads_work_and_writes_say_why(lib, root)
    assert sorted(os.listdir(library_dir)) == before  # not even a -wal or -shm
    # The CLI says it in one line, with no traceback.
    with _read_only_mount(library_dir) as ro:
        out = run_cli("search", "door", "--keyword-only", library_dir=ro)
        assert out.stdout.count(".wav") == 4
        failed = run_cli("scan", library_dir=ro, check=False)
        assert failed.returncode == 2 and "read-only" in failed.stderr
        assert "Traceback" not in failed.stderr


def test_a_read_only_catalog_by_permission_is_opened_for_reading(
    tmp_path, library_dir, monkeypatch
):
    """The same through the permission check itself (any user, any platform)."""
    root = _library(tmp_path, library_dir)
    import engine.catalog.db as db_mod

    monkeypatch.setattr(db_mod, "_read_only", lambda path: True)
    with Library(library_dir) as lib:
        _check_reads_work_and_writes_say_why(lib, root)


def test_side_files_that_cannot_be_written_leave_search_working(tmp_path, library_dir, monkeypatch):
    root = _library(tmp_path, library_dir)
    for index_file in library_dir.glob("fake.files.*"):
        index_file.unlink()
    import engine.catalog.sidefiles as sidefiles_mod

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sidefiles_mod.tempfile, "mkstemp", no_room)
    with Library(library_dir) as lib:
        assert lib.similar(root / "door_slam_0.wav", space="fake")  # index kept in memory
    assert not list(library_dir.glob("fake.files.*"))
    assert not [p for p in library_dir.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_full_catalog_refuses_the_change_whole_and_keeps_everything(tmp_path, library_dir):
    """SQLite's page limit makes the catalog 'full' exactly as a full disk does."""
    root = _library(tmp_path, library_dir)
    more = tmp_path / "more"
    for i in range(40):
        write(more / f"long_name_for_a_new_sound_{i:03d}.wav", dc(1, 0.01 * i), 8000)
    with Library(library_dir) as lib:
        pages = lib.catalog.conn.execute("PRAGMA page_count").fetchone()[0]
        lib.catalog.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        lib.add_folders([more])
        with pytest.raises(CannotWrite, match="full"):
            lib.scan(workers=1)
        assert lib.catalog.integrity_ok()
        rain = lib.catalog.file_by_path(str(root / "rain.wav"))
        assert lib.catalog.tags_of(rain["id"]) == ["weather"] and lib.catalog.is_favorite(
            rain["id"]
        )
        assert [r.name for r in lib.search("weather", mode="keyword")] == ["rain.wav"]
        lib.catalog.conn.execute("PRAGMA max_page_count = 1073741823")
        report = lib.scan(workers=1)  # room again: the scan resumes
        assert report.errors == 0
        assert lib.counts()["indexed"] == 5 + 40


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs")
def test_a_really_full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]).returncode:
        pytest.skip("this machine refuses tmpfs mounts")
    try:
        root = tmp_path / "sounds"
        for i in range(3):
            write(root / f"s{i}.wav", dc(1, 0.1 * (i + 1)), 8000)
        with Library(disk / "library") as lib:
            lib.add_folders([root])
            lib.scan(workers=1)
            Embedder(lib.catalog, [FakeSpace()]).run()
            filler = disk / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(bytes(65_536))
                    f.flush()
            more = tmp_path / "more"
            for i in range(200):
                write(
                    more / f"m{i:03d}_a_name_long_enough_to_take_room.wav", dc(1, 0.001 * i), 8000
                )
            with pytest.raises(CannotWrite, match="full"):
                lib.add_folders([more])
                lib.scan(workers=1)
            assert lib.catalog.integrity_ok()
            assert len(lib.similar(root / "s0.wav", space="fake")) == 2
            assert not [p for p in (disk / "library").iterdir() if p.name.startswith(".")]
        assert filler.exists()
    finally:
        subprocess.run(["umount", str(disk)])


def test_catalog_read_only_flag_on_a_fresh_folder(tmp_path):
    with Catalog(tmp_path / "new" / "catalog.sqlite") as catalog:
        assert not catalog.read_only
