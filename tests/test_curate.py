"""Metadata edits in the catalog and written into files: searchable at once, undoable,
kept through rescans and moves; written into WAV/BWF/RF64, AIFF, FLAC, Ogg, Opus and MP3
with every other byte of the file kept, checked by independent readers (exiftool,
mediainfo, mutagen, soundfile); read-only, offline, unknown and damaged files refused
untouched; a full disk, a kill mid-batch and files past 4 GiB."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.curate import riff
from engine.curate.write import write_fields
from engine.errors import CannotWrite, FileNotWritable, LibraryError
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.test_metadata import bwf, chunk

EXIFTOOL = shutil.which("exiftool")
MEDIAINFO = shutil.which("mediainfo")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None and not os.environ.get("CI"), reason="exiftool is not installed"
)
needs_mediainfo = pytest.mark.skipif(
    MEDIAINFO is None and not os.environ.get("CI"), reason="mediainfo is not installed"
)

FIELDS = {
    "description": "Metal door slam with a long tail, close perspective",
    "keywords": "door, slam, metal",
    "notes": "recorded at the old factory — ünïcode",
    "designer": "Ann Designer",
    "library": "Factory SFX",
    "rating": "4",
    "catid": "DOORMetl",
    "category": "DOORS",
    "subcategory": "METAL",
    "fx_name": "Slam Long Tail",
    "creator_id": "AD",
    "source_id": "FSFX",
    "originator": "Sonarium test",
    "originator_reference": "REF-0001",
    "origination_date": "2026-12-03 10:11:12",
}


def exiftool(path: Path) -> dict:
    out = subprocess.run(
        [EXIFTOOL or "exiftool", "-j", "-a", "-G1", "-charset", "riff=utf8", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)[0]


def chunks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    """(id, body) of every top-level chunk of a RIFF file's bytes."""
    out, pos = [], 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append((cid, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def rich_wav(path: Path) -> Path:
    """A BWF with bext, an iXML holding elements Sonarium does not own, INFO with ICOP,
    and chunks after the audio (cue, an odd-sized private chunk) to keep byte for byte."""
    data = bwf(
        "Old description", "Recorder X", "2020-01-02", "03:04:05",
        ixml="<BWFXML><IXML_VERSION>1.5</IXML_VERSION><PROJECT>Proj</PROJECT><SPEED>"
        "<NOTE>pulled down</NOTE></SPEED><USER><MYTOOL>keep me</MYTOOL></USER>"
        "</BWFXML>",
        info={b"ICOP": "(c) someone", b"INAM": "old name"},
    )  # fmt: skip
    data += chunk(b"cue ", b"\x01\x00\x00\x00" + bytes(range(24))) + chunk(b"zzzz", b"odd")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:4] + struct.pack("<I", len(data) - 8) + data[8:])
    return path


@pytest.fixture
def scanned(tmp_path, library):
    root = tmp_path / "sfx"
    rich_wav(root / "door.wav")
    write(root / "plain.wav", noise(0.3), 48000, subtype="PCM_24")
    write(root / "a.flac", noise(0.3, seed=1), 44100)
    write(root / "b.aiff", noise(0.3, channels=2, seed=2), 44100, subtype="PCM_24")
    write(root / "c.ogg", noise(1.0, seed=3), 44100)
    write(root / "d.opus", noise(1.0, seed=4), 48000, format="OGG", subtype="OPUS")
    write(root / "e.mp3", noise(1.0, seed=5), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    return root


def cli(library_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args, "--library", str(library_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


def samples(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0]


# -- edits in the catalog ------------------------------------------------------------------


def test_an_edit_is_searchable_at_once_undoable_and_survives_rescans_and_moves(scanned, library):
    door = scanned / "plain.wav"
    result = library.edit([door], {"description": "creaky hinge squeal", "rating": "3"})
    assert result == {"batch": 1, "files": 1, "changes": 2}
    assert [r.name for r in library.search("hinge squeal", mode="keyword")] == ["plain.wav"]
    meta = library.metadata(door)
    assert meta["fields"]["description"] == "creaky hinge squeal" and meta["pending_write"]
    assert meta["edits"]["rating"]["value"] == "3" and meta["edits"]["rating"]["editor"]

    os.utime(door, ns=(time.time_ns(), time.time_ns()))  # the scanner reads it again
    library.scan(workers=1)
    assert library.metadata(door)["fields"]["description"] == "creaky hinge squeal"
    moved = scanned / "moved" / "renamed.wav"
    moved.parent.mkdir()
    door.rename(moved)
    library.scan(workers=1)
    assert library.metadata(moved)["fields"]["rating"] == "3"
    assert [r.name for r in library.search("hinge", mode="keyword")] == ["renamed.wav"]

    assert library.undo_edit() == {"batch": 1, "files": 1, "changes": 2}
    assert library.search("hinge", mode="keyword") == []
    assert library.metadata(moved)["fields"]["description"] == ""
    assert library.undo_edit() is None
    assert library.redo_edit()["changes"] == 2
    assert [r.name for r in library.search("hinge", mode="keyword")] == ["renamed.wav"]
    assert library.redo_edit() is None


def test_many_files_at_once_append_and_a_new_edit_ends_redo(scanned, library):
    files = [scanned / "a.flac", scanned / "c.ogg"]
    library.edit(files, {"keywords": "rain, wet"})
    library.edit(files, {"keywords": "Wet, drops"}, append=True)
    for f in files:
        assert library.metadata(f)["fields"]["keywords"] == "rain, wet, drops"
    assert library.edit(files, {"keywords": "rain"}, append=True)["batch"] is None  # had it
    library.undo_edit()
    library.edit(files, {"library": "Weather"})
    assert library.redo_edit() is None  # the undone append cannot come back now
    history = library.edit_history()
    assert [h["batch"] for h in history] == [3, 1] and history[0]["files"] == 2


def test_bad_values_are_refused_and_nothing_changes(scanned, library):
    f = scanned / "a.flac"
    for changes in ({"rating": "7"}, {"origination_date": "2026-13-01"}, {"colour": "red"},
                    {"originator": "x" * 33}):  # fmt: skip
        with pytest.raises(LibraryError):
            library.edit([f], changes)
    assert library.edit_history() == []
    with pytest.raises(LibraryError, match="not a file of the library"):
        library.edit([scanned / "nope.wav"], {"rating": "1"})


def test_a_ucs_catid_fills_its_category_from_the_table(scanned, library, tmp_path):
    table = tmp_path / "ucs.csv"
    table.write_text("CatID,Category,SubCategory\nDOORMetl,DOORS,METAL\n", encoding="utf-8")
    library.set_ucs_table(str(table))
    library.edit([scanned / "a.flac"], {"catid": "DOORMetl"})
    fields = library.metadata(scanned / "a.flac")["fields"]
    assert (fields["category"], fields["subcategory"]) == ("DOORS", "METAL")
    with pytest.raises(LibraryError, match="not a CatID"):
        library.edit([scanned / "a.flac"], {"catid": "NOPEWhat"})


# -- writing into files --------------------------------------------------------------------


@needs_exiftool
def test_a_bwf_is_written_with_every_other_chunk_kept_and_exiftool_reads_it(scanned, library):
    door = scanned / "door.wav"
    before = door.read_bytes()
    stamp = os.stat(door).st_mtime_ns
    library.edit([door], FIELDS)
    report = library.write_metadata([door])
    assert report["written"] == [str(door)] and not report["failed"]
    after = door.read_bytes()
    old, new = chunks_of(before), chunks_of(after)
    own = {b"bext", b"iXML", b"LIST"}
    assert [c for c in old if c[0] not in own] == [c for c in new if c[0] not in own]
    assert [c[0] for c in new] == [c[0] for c in old]  # same chunks, same order
    assert np.array_equal(samples(door), sf.read(__import__("io").BytesIO(before),
                                                 dtype="int32", always_2d=True)[0])  # fmt: skip
    assert os.stat(door).st_mtime_ns == stamp  # kept (the default)
    assert not [p for p in scanned.iterdir() if p.name.startswith(".")]  # no temporaries

    tags = exiftool(door)
    assert tags["RIFF:Description"] == FIELDS["description"]
    assert tags["RIFF:Originator"] == FIELDS["originator"]
    assert tags["RIFF:OriginatorReference"] == FIELDS["originator_reference"]
    assert tags["RIFF:DateTimeOriginal"] == "2026:12:03 10:11:12"
    assert tags["RIFF:Comment"] == FIELDS["description"]
    assert tags["RIFF:Keywords"] == FIELDS["keywords"]
    assert tags["RIFF:Title"] == FIELDS["fx_name"]
    assert tags["RIFF:Artist"] == FIELDS["designer"]
    assert tags["RIFF:Genre"] == FIELDS["category"]
    assert tags["RIFF:Copyright"] == "(c) someone"  # INFO items Sonarium does not own stay
    assert tags["XML:BwfxmlNote"] == FIELDS["notes"]
    assert tags["XML:BwfxmlUserCatid"] == "DOORMetl"
    assert tags["XML:BwfxmlUserCategoryfull"] == "DOORS-METAL"
    assert tags["XML:BwfxmlUserFxname"] == FIELDS["fx_name"]
    assert tags["XML:BwfxmlUserMytool"] == "keep me"  # elements we do not own stay
    assert tags["XML:BwfxmlProject"] == "Proj"
    assert tags["XML:BwfxmlSpeedNote"] == "pulled down"

    library.scan(workers=1)  # nothing to re-read: the catalog took the new size and time
    assert library.metadata(door)["pending_write"] is False
    fresh = library.info(door)
    assert fresh["description"] == FIELDS["description"] and fresh["rating"] == 4


def test_what_is_written_reads_back_in_a_fresh_library(scanned, library, tmp_path):
    """Every format: the file alone carries the fields (a new library reads them all),
    its audio decodes to the very same samples, and mutagen reads the tags."""
    names = ["door.wav", "plain.wav", "a.flac", "b.aiff", "c.ogg", "d.opus", "e.mp3"]
    before = {n: samples(scanned / n) for n in names}
    library.edit([scanned / n for n in names], FIELDS)
    report = library.write_metadata()
    assert sorted(Path(p).name for p in report["written"]) == sorted(names)
    from engine.library import Library

    with Library(tmp_path / "second") as fresh:
        fresh.add_folders([scanned])
        fresh.scan(workers=1)
        for n in names:
            assert np.array_equal(samples(scanned / n), before[n]), n
            assert (
                fresh.metadata(scanned / n)["fields"] == library.metadata(scanned / n)["fields"]
            ), n
    assert mutagen.File(scanned / "a.flac")["DESCRIPTION"] == [FIELDS["description"]]
    assert mutagen.File(scanned / "c.ogg")["CATID"] == ["DOORMetl"]
    assert mutagen.File(scanned / "d.opus")["FXNAME"] == [FIELDS["fx_name"]]
    assert str(mutagen.File(scanned / "e.mp3").tags["TXXX:KEYWORDS"]) == FIELDS["keywords"]
    assert mutagen.File(scanned / "e.mp3").tags.version[:2] == (2, 4)
    assert str(mutagen.File(scanned / "b.aiff").tags["TXXX:DESIGNER"]) == FIELDS["designer"]


@needs_mediainfo
@needs_exiftool
def test_aiff_text_chunks_are_read_by_mediainfo_and_exiftool(scanned, library):
    aiff = scanned / "b.aiff"
    library.edit([aiff], {"description": "thunder roll", "designer": "Bo", "fx_name": "Roll"})
    assert library.write_metadata([aiff])["written"]
    tags = exiftool(aiff)
    assert tags["AIFF:Name"] == "Roll" and tags["AIFF:Author"] == "Bo"
    assert tags["AIFF:Annotation"] == "thunder roll"
    info = subprocess.run([MEDIAINFO or "mediainfo", "--Output=JSON", str(aiff)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "thunder roll" in info and "Bo" in info
    wav = scanned / "plain.wav"
    library.edit([wav], {"description": "wind gust", "keywords": "wind"})
    library.write_metadata([wav])
    info = subprocess.run([MEDIAINFO or "mediainfo", "--Output=JSON", str(wav)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "wind gust" in info


def test_clearing_a_field_removes_it_from_the_file(scanned, library):
    door = scanned / "door.wav"
    library.edit([door], {"keywords": "k1", "designer": "Zed"})
    library.write_metadata([door])
    library.edit([door], {"keywords": "", "description": ""})
    library.write_metadata([door])
    data = door.read_bytes()
    assert b"Zed" in data and b"k1" not in data and b"Old description" not in data


def test_an_ixml_that_is_not_xml_is_left_as_it_was(tmp_path):
    path = tmp_path / "bad_ixml.wav"
    data = bwf("d", ixml="<BWFXML><NOTE>unclosed")
    path.write_bytes(data)
    write_fields(str(path), {"description": "new", "keywords": "k"})
    assert dict(chunks_of(path.read_bytes()))[b"iXML"] == b"<BWFXML><NOTE>unclosed"


def test_files_that_cannot_be_written_are_reported_and_untouched(scanned, library, tmp_path):
    odd = scanned / "raw.w64"
    write(odd, tone(0.2), 44100, format="W64")
    truncated = scanned / "cut.wav"
    full = (scanned / "plain.wav").read_bytes()
    truncated.write_bytes(full[:-5000])
    locked = scanned / "a.flac"
    library.scan(workers=1)
    locked.chmod(0o444)
    targets = [odd, truncated, locked, scanned / "c.ogg"]
    before = {p: p.read_bytes() for p in targets}
    library.edit(targets, {"description": "x"})
    (scanned / "c.ogg").rename(tmp_path / "away.ogg")  # gone before the write (offline)
    report = library.write_metadata()
    errors = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert "cannot write metadata into .w64" in errors["raw.w64"]
    assert "shorter than its header" in errors["cut.wav"]
    assert "read-only" in errors["a.flac"]
    assert "not there" in errors["c.ogg"]
    for p in (odd, truncated, locked):
        assert p.read_bytes() == before[p]
    assert library.metadata(locked)["pending_write"]  # still due, once it can be written
    assert not [p for p in scanned.iterdir() if p.name.startswith(".")]


def test_a_full_disk_stops_the_batch_and_leaves_every_file_whole(tmp_path, library):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode:
        pytest.skip("this machine refuses tmpfs mounts")
    try:
        for i in range(3):
            write(disk / f"s{i}.wav", noise(1.0, seed=i), 44100)  # 88 KB each
        library.add_folders([disk])
        library.scan(workers=1)
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
            while True:
                f.write(bytes(4096))
                f.flush()
        before = {p: p.read_bytes() for p in disk.glob("s*.wav")}
        library.edit(list(before), {"description": "full"})
        with pytest.raises(CannotWrite, match="full"):
            library.write_metadata()
        assert {p: p.read_bytes() for p in before} == before
        assert not [p for p in disk.iterdir() if p.name.startswith(".")]
        (disk / "filler").unlink()
        assert len(library.write_metadata()["written"]) == 3  # room again: resumes
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_read_only_mount_is_reported_not_touched(tmp_path, library):
    from tests.test_readonly_and_full import _read_only_mount

    folder = tmp_path / "ro_src"
    write(folder / "x.wav", tone(0.2), 44100)
    with _read_only_mount(folder) as mounted:
        library.add_folders([mounted])
        library.scan(workers=1)
        library.edit([mounted / "x.wav"], {"description": "x"})
        report = library.write_metadata()
        assert "read-only" in report["failed"][0]["error"]


def _sparse_wav(path: Path, data_bytes: int, form: bytes = b"RIFF") -> None:
    """A 16-bit mono WAV whose data chunk is ``data_bytes`` of silence, as a sparse file
    (RF64 with ds64 when ``form`` says so; else a plain RIFF with a JUNK placeholder)."""
    fmt = chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, 48000, 96000, 2, 16))
    if form == b"RF64":
        head = chunk(b"ds64", struct.pack("<QQQI", 0, data_bytes, data_bytes // 2, 0))
        size_field = 0xFFFFFFFF
    else:
        head = chunk(b"JUNK", bytes(28))
        size_field = data_bytes
    body = head + fmt + b"data" + struct.pack("<I", size_field)
    total = 12 + len(body) + data_bytes
    riff_size = 0xFFFFFFFF if form == b"RF64" else total - 8
    header = form + struct.pack("<I", riff_size) + b"WAVE"
    if form == b"RF64":
        body = chunk(b"ds64", struct.pack("<QQQI", total - 8, data_bytes, data_bytes // 2, 0))
        body += fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(header + body)
        f.write(b"\x01\x02")  # a first sample that is not silence
        f.truncate(total)


def test_files_past_4_gib_are_rf64_and_a_riff_that_outgrows_4_gib_becomes_one(tmp_path):
    """Sparse files of 4 GiB of silence (the copy keeps the holes): a real RF64 takes new
    metadata; a RIFF a few bytes under the limit is upgraded to RF64 by it."""
    if shutil.disk_usage(tmp_path).free < 1 << 30:
        pytest.skip("under 1 GiB free for the sparse files' metadata")
    big = tmp_path / "big.wav"
    _sparse_wav(big, (1 << 32) + 4096, b"RF64")
    frames = sf.info(str(big)).frames
    write_fields(str(big), {"description": "a long drone", "keywords": "drone"})
    info = sf.info(str(big))
    assert info.frames == frames and info.format == "RF64"
    with open(big, "rb") as f:
        assert f.read(4) == b"RF64"
        got = riff.read_layout(f, os.path.getsize(big))
    assert [c.cid for c in got.chunks][:2] == [b"ds64", b"fmt "]
    data = next(c for c in got.chunks if c.cid == b"data")
    assert data.size == (1 << 32) + 4096

    near = tmp_path / "near.wav"
    _sparse_wav(near, 0xFFFFFFFF - 200)
    frames = sf.info(str(near)).frames
    write_fields(str(near), {"description": "x" * 4096})  # no longer fits a RIFF
    with open(near, "rb") as f:
        assert f.read(4) == b"RF64"
        got = riff.read_layout(f, os.path.getsize(near))
    assert got.chunks[0].cid == b"ds64" and b"JUNK" not in [c.cid for c in got.chunks]
    assert sf.info(str(near)).frames == frames
    from engine.scan.metadata import read_metadata

    assert read_metadata(near)["description"] == "x" * 4096


def test_a_batch_killed_mid_write_leaves_old_or_new_files_and_resumes(tmp_path, library_dir):
    """SIGKILL `meta write --all` while it writes (timed by the catalog marking files
    written); every file is then its old self or a complete new one, and the next run
    writes exactly the rest."""
    root = tmp_path / "batch"
    originals = {}
    for i in range(40):
        path = write(root / f"n{i:02d}.wav", noise(6.0, seed=i), 44100)  # 530 KB each
        originals[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cli(library_dir, "add", str(root), "--no-embed").returncode == 0
    assert (
        cli(
            library_dir, "meta", "set", *map(str, originals), "--field", "description=wind"
        ).returncode
        == 0
    )
    catalog = library_dir / "catalog.sqlite"
    env = {**os.environ, "SONARIUM_LIBRARY": str(library_dir)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "meta", "write", "--all"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with (
            contextlib.closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as c,
            contextlib.suppress(sqlite3.OperationalError),
        ):
            written = c.execute(
                "SELECT COUNT(*) FROM metadata_edits WHERE written_at IS NOT NULL"
            ).fetchone()[0]
        if written >= 5:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the batch finished before the kill could land")
    for path, digest in originals.items():
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:  # a new file: whole
            assert np.array_equal(samples(path), sf.read(str(path), dtype="int32",
                                                         always_2d=True)[0])  # fmt: skip
            assert b"wind" in path.read_bytes()[:4096]
    done = cli(library_dir, "meta", "write", "--all", "--json")
    assert done.returncode == 0, done.stderr
    rest = json.loads(done.stdout)["written"]
    assert 0 < len(rest) <= 40 - written
    for path in originals:
        assert sf.info(str(path)).frames == 6 * 44100
        assert b"wind" in path.read_bytes()[:4096]
    again = json.loads(cli(library_dir, "meta", "write", "--all", "--json").stdout)
    assert again["written"] == []


# -- the command line ----------------------------------------------------------------------


def test_the_meta_commands(scanned, library_dir):
    door = str(scanned / "door.wav")
    out = cli(library_dir, "meta", door)
    assert out.returncode == 0 and "Old description" in out.stdout
    bad = cli(library_dir, "meta", "set", door, "--field", "rating=9")
    assert bad.returncode == 2 and "rating must be" in bad.stderr
    ok = cli(library_dir, "meta", "set", door, str(scanned / "a.flac"), "--field", "keywords=k1",
                 "--field", "Description=from the cli")  # fmt: skip
    assert ok.returncode == 0 and "4 changes to 2 files" in ok.stdout
    shown = json.loads(cli(library_dir, "meta", "show", door, "--json").stdout)
    assert shown["fields"]["description"] == "from the cli" and shown["pending_write"]
    dry = cli(library_dir, "meta", "write", "--all", "--dry-run")
    assert "2 files would be written" in dry.stdout
    assert "2 files written" in cli(library_dir, "meta", "write", "--all").stdout
    assert b"from the cli" in Path(door).read_bytes()
    assert "batch 1" in cli(library_dir, "meta", "history").stdout
    assert "undid batch 1" in cli(library_dir, "meta", "undo").stdout
    assert json.loads(cli(library_dir, "meta", door, "--json").stdout)["fields"]["keywords"] == ""
    assert "redid batch 1" in cli(library_dir, "meta", "redo").stdout
    assert "nothing to redo" in cli(library_dir, "meta", "redo").stdout
    assert cli(library_dir, "meta", "write").returncode == 2  # neither files nor --all


def test_write_on_edit_writes_as_the_edit_is_made(scanned, library, monkeypatch):
    monkeypatch.setenv("SONARIUM_WRITE_ON_EDIT", "true")
    result = library.edit([scanned / "a.flac"], {"description": "at once"})
    assert result["write"]["written"] == [str(scanned / "a.flac")]
    assert mutagen.File(scanned / "a.flac")["DESCRIPTION"] == ["at once"]
    assert not library.metadata(scanned / "a.flac")["pending_write"]


# -- CSV round-trips -----------------------------------------------------------------------


def test_csv_export_has_the_columns_other_tools_use(scanned, library, tmp_path):
    library.edit([scanned / "a.flac"], {"description": 'rain, "heavy"\non a roof'})
    out = tmp_path / "all.csv"
    assert library.export_metadata(out) == 7
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets then read UTF-8
    import csv

    rows = list(csv.DictReader(out.open(encoding="utf-8-sig", newline="")))
    assert list(rows[0])[:18] == [
        "Filename", "Path", "Description", "Keywords", "Category", "SubCategory", "CatID",
        "FXName", "CreatorID", "SourceID", "Designer", "Library", "Notes", "Rating",
        "Duration", "SampleRate", "BitDepth", "Channels",
    ]  # fmt: skip
    flac = next(r for r in rows if r["Filename"] == "a.flac")
    assert flac["Description"] == 'rain, "heavy"\non a roof' and flac["SampleRate"] == "44100"
    assert library.export_metadata(tmp_path / "q.csv", query="rain roof") == 1
    assert library.export_metadata(tmp_path / "s.csv", files=[scanned / "b.aiff"]) == 1


def test_csv_import_previews_then_applies_as_one_undoable_batch(scanned, library, tmp_path):
    (scanned / "sub").mkdir()
    write(scanned / "sub" / "plain.wav", tone(0.2), 44100)  # a second plain.wav
    library.scan(workers=1)
    csv_file = tmp_path / "in.csv"
    lines = [
        "Filename;Path;Description;Rating;Colour;Keywords",
        f';{scanned / "a.flac"};"café; by the sea";3;blue;"sea, café"',
        'c.ogg;;"two\nlines";;;',
        "plain.wav;;ambiguous;;;",
        "ghost.wav;;nobody;;;",
        "e.mp3;;;9;;",
    ]
    csv_file.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    before = library.metadata(scanned / "a.flac")["fields"]
    plan = library.import_metadata(csv_file)
    assert library.metadata(scanned / "a.flac")["fields"] == before  # a preview only
    assert plan["rows"] == 5 and plan["matched"] == 3 and plan["files"] == 2
    assert plan["ignored"] == ["Colour"]
    assert {(c["field"], c["new"]) for c in plan["preview"]} == {
        ("description", "café; by the sea"), ("rating", "3"), ("keywords", "sea, café"),
        ("description", "two\nlines"),
    }  # fmt: skip
    reasons = {u["name"]: u["reason"] for u in plan["unmatched"]}
    assert "2 files of the library have this name" in reasons["plain.wav"]
    assert "no file" in reasons["ghost.wav"]
    assert "rating must be" in plan["invalid"][0]["reason"]

    done = library.import_metadata(csv_file, apply=True, write=True)
    assert done["batch"] == 1 and len(done["write"]["written"]) == 2
    assert mutagen.File(scanned / "a.flac")["DESCRIPTION"] == ["café; by the sea"]
    assert library.metadata(scanned / "c.ogg")["fields"]["description"] == "two\nlines"
    assert library.undo_edit()["changes"] == 4
    assert library.metadata(scanned / "a.flac")["fields"] == before


def test_csv_import_refuses_what_it_cannot_read(scanned, library, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Description,Rating\nx,1\n", encoding="utf-8")
    with pytest.raises(LibraryError, match="neither a Path nor a Filename"):
        library.import_metadata(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LibraryError, match="empty"):
        library.import_metadata(empty)
    with pytest.raises(LibraryError, match="cannot import"):
        library.import_metadata(tmp_path / "missing.csv")


def test_the_csv_commands(scanned, library_dir, tmp_path):
    out = tmp_path / "out.csv"
    done = cli(library_dir, "meta", "export", str(out))
    assert done.returncode == 0 and "7 files written" in done.stdout
    text = out.read_text(encoding="utf-8-sig").replace(",Old description,", ",New words,")
    out.write_text(text, encoding="utf-8-sig")
    preview = cli(library_dir, "meta", "import", str(out))
    assert "description: Old description -> New words" in preview.stdout
    assert "add --apply" in preview.stdout
    assert cli(library_dir, "meta", "import", str(out), "--write").returncode == 2
    applied = cli(library_dir, "meta", "import", str(out), "--apply", "--write")
    assert "applied as batch 1" in applied.stdout and "1 files written" in applied.stdout
    assert b"New words" in (scanned / "door.wav").read_bytes()


# -- UCS renaming --------------------------------------------------------------------------


def test_fifty_files_renamed_to_ucs_and_back_keep_everything(tmp_path, library):
    root = tmp_path / "untidy"
    for i in range(50):
        write(root / f"take {i:02d}.wav", noise(0.1, seed=i), 44100)
    taken = "DOORMetl_Slam_AD_LIB.wav"
    write(root / taken, tone(0.1), 44100)  # a name already taken
    library.add_folders([root])
    library.scan(workers=1)
    files = [root / f"take {i:02d}.wav" for i in range(50)]
    library.edit(files[:25], {"catid": "DOORMetl", "fx_name": "Slam", "creator_id": "AD"})
    library.edit(files[25:], {"catid": "DOORWood", "fx_name": "Creak_Open/Slow"})
    first = library.catalog.file_by_path(str(files[0]))
    library.catalog.add_tags(first["id"], ["keeper"])
    library.set_favorite(first["id"], True)

    preview = library.rename_ucs(files, source="LIB")
    assert all(e["action"] == "rename" for e in preview["plan"][:25])
    assert sorted(os.listdir(root)) == sorted(
        [p.name for p in files] + ["DOORMetl_Slam_AD_LIB.wav"]
    )
    skipped = [e for e in preview["plan"] if e["action"] == "skip"]
    assert len(skipped) == 25 and "no CreatorID" in skipped[0]["reason"]

    done = library.rename_ucs(files, source="LIB", creator="XY", apply=True)
    assert done["result"]["renamed"] == 50 and not done["result"]["failed"]
    names = sorted(os.listdir(root))
    assert "DOORMetl_Slam 02_AD_LIB.wav" in names and "DOORMetl_Slam 26_AD_LIB.wav" in names
    assert "DOORWood_Creak Open Slow_XY_LIB.wav" in names  # separators made spaces
    assert "DOORWood_Creak Open Slow 25_XY_LIB.wav" in names
    assert len(names) == 51
    row = library.catalog.file_by_id(first["id"])
    assert row["name"] == "DOORMetl_Slam 02_AD_LIB.wav"
    assert library.catalog.tags_of(first["id"]) == ["keeper"]
    assert library.catalog.is_favorite(first["id"])
    report = library.scan(workers=1)  # the renames are known: nothing to read again
    assert (report.added, report.updated, report.moved, report.unchanged) == (0, 0, 0, 51)
    assert library.catalog.file_by_id(first["id"])["path"] == row["path"]
    assert [r.name for r in library.search("keeper", mode="keyword")] == [row["name"]]

    back = library.undo_rename()
    assert back["renamed"] == 50 and not back["failed"]
    assert sorted(os.listdir(root)) == sorted(
        [p.name for p in files] + ["DOORMetl_Slam_AD_LIB.wav"]
    )
    assert library.catalog.file_by_id(first["id"])["path"] == str(files[0])
    assert library.undo_rename() is None


def test_a_rename_never_replaces_a_file(tmp_path, library):
    root = tmp_path / "r"
    write(root / "a.wav", tone(0.1), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    library.edit([root / "a.wav"], {"catid": "AIRBrst", "fx_name": "Puff", "creator_id": "A",
                                    "source_id": "B"})  # fmt: skip
    plan = library.rename_ucs([root / "a.wav"])["plan"]
    (root / "AIRBrst_Puff_A_B.wav").write_bytes(b"someone else's file")  # appears meanwhile
    from engine.curate.rename import apply_renames

    result = apply_renames(library.catalog, plan)
    assert result["renamed"] == 0 and "exists already" in result["failed"][0]["error"]
    assert (root / "AIRBrst_Puff_A_B.wav").read_bytes() == b"someone else's file"
    assert (root / "a.wav").exists()


def test_the_rename_command(scanned, library_dir):
    door = str(scanned / "door.wav")
    assert cli(library_dir, "meta", "set", door, "--field", "catid=DOORMetl", "--field",
               "fx_name=Slam").returncode == 0  # fmt: skip
    preview = cli(library_dir, "rename", "--ucs", door, "--creator", "AD", "--source", "SFX")
    assert "door.wav -> DOORMetl_Slam_AD_SFX.wav" in preview.stdout
    assert "add --apply" in preview.stdout and (scanned / "door.wav").exists()
    done = cli(library_dir, "rename", "--ucs", door, "--creator", "AD", "--source", "SFX",
               "--apply")  # fmt: skip
    assert "renamed 1 files" in done.stdout and (scanned / "DOORMetl_Slam_AD_SFX.wav").exists()
    assert "gave 1 files back" in cli(library_dir, "rename", "--undo").stdout
    assert (scanned / "door.wav").exists()
    assert cli(library_dir, "rename", door).returncode == 2  # --ucs is the only kind


# -- collections and categories ------------------------------------------------------------


def test_collections_are_made_renamed_and_copied_out_without_replacing(scanned, library, tmp_path):
    library.create_collection("Reel 1")
    library.add_to_collection("Reel 1", [scanned / "a.flac", scanned / "c.ogg"])
    library.create_collection("Other")
    with pytest.raises(LibraryError, match="already"):
        library.rename_collection("Reel 1", "other")
    library.rename_collection("Reel 1", "Client picks")
    assert [c["name"] for c in library.collections()] == ["Client picks", "Other"]
    out = tmp_path / "handover"
    out.mkdir()
    (out / "a.flac").write_bytes(b"keep me")
    result = library.export_collection("Client picks", out)
    assert sorted(Path(p).name for p in result["copied"]) == ["a 2.flac", "c.ogg"]
    assert (out / "a.flac").read_bytes() == b"keep me"
    assert (out / "a 2.flac").read_bytes() == (scanned / "a.flac").read_bytes()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_the_collection_and_categories_commands(scanned, library_dir, tmp_path):
    assert cli(library_dir, "collection", "create", "Picks").returncode == 0
    assert cli(library_dir, "collection", "add", "Picks", str(scanned / "a.flac")).returncode == 0
    assert cli(library_dir, "collection", "rename", "Picks", "Final").returncode == 0
    done = cli(library_dir, "collection", "export", "Final", str(tmp_path / "out"))
    assert "copied 1 files" in done.stdout and (tmp_path / "out" / "a.flac").exists()
    cli(library_dir, "meta", "set", str(scanned / "a.flac"), str(scanned / "c.ogg"),
        "--field", "catid=RAINGen", "--field", "category=RAIN")  # fmt: skip
    rows = json.loads(cli(library_dir, "meta", "categories", "--json").stdout)
    assert rows == [{"catid": "RAINGen", "category": "RAIN", "subcategory": "", "files": 2}]


def test_rows_scanned_before_the_field_columns_take_their_tags(tmp_path, library):
    from engine.catalog.migrations import _fields_from_tags

    root = tmp_path / "old"
    write(root / "a.flac", tone(0.1), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    c = library.catalog.conn
    tags = {"keywords": "rain, roof", "catid": "RAINGen", "rating": "9"}
    c.execute("UPDATE files SET keywords = NULL, embedded_tags = ?", (json.dumps(tags),))
    _fields_from_tags(c)
    row = library.catalog.file_by_path(str(root / "a.flac"))
    assert (row["keywords"], row["ucs_catid"], row["rating"]) == ("rain, roof", "RAINGen", None)


# -- hostile files -------------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(12, 2000)),
)
def test_a_damaged_wav_is_refused_untouched_or_written_whole(tmp_path_factory, edits, cut):
    """Random bytes of a BWF's header changed (and maybe its end cut): the write either
    refuses with a reason, leaving the file as it was, or gives a file whose audio is the
    damaged file's own."""
    path = tmp_path_factory.mktemp("hostile") / "x.wav"
    data = bytearray(rich_wav(path).read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[:cut]
    path.write_bytes(bytes(data))
    try:
        before = samples(path)
    except (sf.LibsndfileError, RuntimeError, ValueError):
        before = None
    try:
        write_fields(str(path), {"description": "x", "keywords": "k"})
    except FileNotWritable:
        assert path.read_bytes() == bytes(data)
        return
    assert before is not None and np.array_equal(samples(path), before)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ext=st.sampled_from(["flac", "aiff", "ogg", "mp3"]),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6),
    keep=st.floats(0.05, 1.0),
)
def test_damaged_tagged_formats_are_refused_untouched_or_written_whole(
    tmp_path_factory, ext, edits, keep
):
    folder = tmp_path_factory.mktemp("hostile")
    path = write(folder / f"x.{ext}", noise(0.5, 22050), 22050,
                 subtype="PCM_16" if ext == "aiff" else None)  # fmt: skip
    data = bytearray(path.read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    data = data[: max(12, int(len(data) * keep))]
    path.write_bytes(bytes(data))
    try:
        write_fields(str(path), {"description": "x", "catid": "DOORWood"})
    except FileNotWritable:
        assert path.read_bytes() == bytes(data)
        return
    info = sf.info(str(path))  # written: it decodes, as the check before the rename said
    assert info.frames > 0


def test_an_edit_made_while_its_file_is_written_stays_due(scanned, library, monkeypatch):
    """The app edits on one thread while another writes: the newer edit is not marked
    written with the older value in the file."""
    import engine.curate.batch as batch
    from engine.library import Library

    target = scanned / "a.flac"
    library.edit([target], {"description": "first"})
    real = batch.write_fields

    def write_then_edit_elsewhere(path, values, **kwargs):
        result = real(path, values, **kwargs)
        with Library(library.dir) as other:  # the app's other thread, its own connection
            other.edit([target], {"description": "second"})
        return result

    monkeypatch.setattr(batch, "write_fields", write_then_edit_elsewhere)
    assert library.write_metadata()["written"] == [str(target)]
    assert mutagen.File(target)["DESCRIPTION"] == ["first"]
    assert library.metadata(target)["pending_write"]  # "second" is still to be written
    monkeypatch.setattr(batch, "write_fields", real)
    library.write_metadata()
    assert mutagen.File(target)["DESCRIPTION"] == ["second"]


# -- found in review -----------------------------------------------------------------------


def test_undo_and_redo_after_writes_leave_the_file_due_to_follow(scanned, library):
    f = scanned / "a.flac"
    library.edit([f], {"description": "B"})
    library.write_metadata()
    library.edit([f], {"description": "C"})
    library.undo_edit()
    library.undo_edit()  # back to no description; the file holds B
    assert library.metadata(f)["pending_write"]
    library.write_metadata()
    assert "DESCRIPTION" not in (mutagen.File(f).tags or {})
    library.redo_edit()  # B again in the catalog; the file holds none
    assert library.metadata(f)["pending_write"]
    library.write_metadata()
    assert mutagen.File(f)["DESCRIPTION"] == ["B"]


def test_text_xml_cannot_hold_is_dropped_from_values(scanned, library):
    library.edit([scanned / "door.wav"], {"keywords": "door\uffff slam\ud800"})
    assert library.metadata(scanned / "door.wav")["fields"]["keywords"] == "door slam"


def test_aiff_text_chunks_after_the_audio_are_replaced_not_doubled(tmp_path):
    path = write(tmp_path / "late.aiff", tone(0.1), 44100, subtype="PCM_16")
    data = path.read_bytes() + b"ANNO" + struct.pack(">I", 4) + b"old!"
    path.write_bytes(data[:4] + struct.pack(">I", len(data) - 8) + data[8:])
    write_fields(str(path), {"description": "new"})
    body = path.read_bytes()
    assert body.count(b"ANNO") == 1 and b"old!" not in body and b"new" in body


def test_a_file_changed_since_its_scan_is_not_overwritten_with_old_values(scanned, library):
    f = scanned / "a.flac"
    library.edit([f], {"rating": "3"})
    audio = mutagen.File(f)
    audio["DESCRIPTION"] = ["set by another tool"]
    audio.save()
    report = library.write_metadata()
    assert "changed since it was scanned" in report["failed"][0]["error"]
    assert mutagen.File(f)["DESCRIPTION"] == ["set by another tool"]
    library.scan(workers=1)
    assert library.write_metadata()["written"] == [str(f)]
    assert mutagen.File(f)["DESCRIPTION"] == ["set by another tool"]
