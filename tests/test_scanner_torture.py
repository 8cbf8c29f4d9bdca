"""The scanner against a torture set of odd, broken and hostile files, plus incremental scans.

Every file must end as a correct row (status 'ok', right stream info, peaks stored) or as an
error row with a clear message, and no scan may raise. Races (files deleted or rewritten
while a scan runs) are made deterministic by wrapping the functions the scanner calls, with
one worker thread, instead of sleeping.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import engine.catalog.paths as paths_mod
import engine.scan.analyze as analyze_mod
import engine.scan.scanner as scanner_mod
from engine.errors import LibraryError
from engine.library import Library
from engine.scan.peaks import DETAIL_BUCKETS, OVERVIEW_BUCKETS, decode_peaks
from tests.audio_factory import (
    chunk_size,
    riff_chunk_offset,
    tone,
    wav_bytes,
    with_chunk_size,
    write,
)

HAS_MP3 = "MP3" in sf.available_formats()
SINE_PEAK_DB = 20 * math.log10(0.5)  # -6.02 dBFS for a 0.5-amplitude sine
SINE_RMS_DB = 20 * math.log10(0.5 / math.sqrt(2))  # -9.03 dBFS


# -- the torture set ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """A file that must end as a correct row."""

    sample_rate: int
    channels: int
    frames: int
    bit_depth: int | None
    format: str
    subtype: str
    peak_db: float | None = SINE_PEAK_DB
    rms_db: float | None = SINE_RMS_DB
    db_tol: float = 0.1
    frames_tol: int = 0  # decoders of lossy formats may pad or trim a little
    amp: float | None = 0.5  # expected largest peak value in the stored waveform
    amp_tol: float = 1e-6  # how far below `amp` sample quantisation may leave the peak


@dataclass(frozen=True)
class Err:
    """A file that must end as an error row whose message contains one of `any_of`."""

    any_of: tuple[str, ...]


@dataclass(frozen=True)
class OkOrErr:
    """Either outcome is acceptable, but an 'ok' row must match `ok` exactly."""

    ok: Ok


def _raw(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return make


def _audio(data: np.ndarray, rate: int = 44100, **kw) -> Callable[[Path], None]:
    return lambda path: write(path, data, rate, **kw)


def _nan_inf_float() -> np.ndarray:
    data = tone(0.5)
    data[100] = np.nan
    data[200] = np.inf
    data[300] = -np.inf
    data[400:500] = np.nan
    return data


_WAV = wav_bytes(tone(0.5))  # 22050 frames, mono, PCM_16
_DATA_BYTES = chunk_size(_WAV, b"data")

CASES: dict[str, tuple[Callable[[Path], None], Ok | Err | OkOrErr]] = {
    # broken or hostile files
    "broken/zero_bytes.wav": (_raw(b""), Err(("empty file",))),
    "broken/truncated_header.wav": (_raw(_WAV[:20]), Err(("corrupt or truncated",))),
    "broken/fmt_size_huge.wav": (
        _raw(with_chunk_size(_WAV, b"fmt ", 0x7FFF_FF00)), Err(("corrupt or truncated",))
    ),
    "broken/fmt_size_short.wav": (
        _raw(with_chunk_size(_WAV, b"fmt ", 3)), Err(("corrupt or truncated",))
    ),
    "broken/random_bytes.wav": (
        _raw(np.random.default_rng(7).bytes(8192)), Err(("unsupported format", "corrupt"))
    ),
    # These bytes pass libsndfile's MPEG probe, which then fails differently.
    "broken/random_bytes_mpeg_like.wav": (
        _raw(np.random.default_rng(1).bytes(4096)), Err(("unsupported format", "corrupt"))
    ),
    "broken/text.mp3": (
        _raw(b"this is not an mp3, just text\n" * 40), Err(("unsupported format",))
    ),
    "broken/data_size_10x.wav": (
        _raw(with_chunk_size(_WAV, b"data", _DATA_BYTES * 10)),
        OkOrErr(Ok(44100, 1, 22050, 16, "WAV", "PCM_16")),
    ),
    "broken/unreadable.wav": (_audio(tone(0.2)), Err(("cannot open",))),
    # lengths and rates
    "rates/one_sample.wav": (
        _audio(np.array([[0.5]], dtype=np.float32)),
        Ok(44100, 1, 1, 16, "WAV", "PCM_16", rms_db=SINE_PEAK_DB),
    ),
    "rates/8k.wav": (_audio(tone(0.5, 8000), 8000), Ok(8000, 1, 4000, 16, "WAV", "PCM_16")),
    "rates/384k.wav": (
        _audio(tone(0.1, 384000), 384000), Ok(384000, 1, 38400, 16, "WAV", "PCM_16")
    ),
    # channel counts
    **{
        f"channels/{n}ch.wav": (
            _audio(tone(0.1, channels=n)), Ok(44100, n, 4410, 16, "WAV", "PCM_16")
        )
        for n in (1, 2, 6, 8, 32)
    },
    # sample formats
    **{
        f"subtypes/{sub}.wav": (
            _audio(tone(0.25), subtype=sub),
            Ok(44100, 1, 11025, bits, "WAV", sub, amp_tol=2.0 ** (1 - bits)),
        )
        for sub, bits in (
            ("PCM_U8", 8), ("PCM_16", 16), ("PCM_24", 24), ("FLOAT", 32), ("DOUBLE", 64)
        )
    },
    "subtypes/nan_inf.wav": (
        _audio(_nan_inf_float(), subtype="FLOAT"),
        # NaN is read as silence and ±inf as full scale, so the peak is 0 dBFS.
        Ok(44100, 1, 22050, 32, "WAV", "FLOAT", peak_db=0.0, rms_db=SINE_RMS_DB, amp=1.0),
    ),
    # containers
    "formats/tone.flac": (
        _audio(tone(0.5, channels=2), subtype="PCM_24"), Ok(44100, 2, 22050, 24, "FLAC", "PCM_24")
    ),
    "formats/tone.ogg": (
        _audio(tone(0.5, channels=2), format="OGG", subtype="VORBIS"),
        Ok(44100, 2, 22050, None, "OGG", "VORBIS", db_tol=0.5, amp=None),
    ),
    "formats/tone.aiff": (
        _audio(tone(0.5, channels=2)), Ok(44100, 2, 22050, 16, "AIFF", "PCM_16")
    ),
    # names
    "names/ü tone 🔊.wav": (_audio(tone(0.2)), Ok(44100, 1, 8820, 16, "WAV", "PCM_16")),
    "names/名前.flac": (_audio(tone(0.2)), Ok(44100, 1, 8820, 16, "FLAC", "PCM_16")),
    # reached through a folder that also holds symlinks back to itself and to its parent
    "loop/inside.wav": (_audio(tone(0.2)), Ok(44100, 1, 8820, 16, "WAV", "PCM_16")),
}  # fmt: skip
if HAS_MP3:
    CASES["formats/tone.mp3"] = (
        _audio(tone(0.5, channels=2), format="MP3", subtype="MPEG_LAYER_III"),
        Ok(44100, 2, 22050, None, "MP3", "MPEG_LAYER_III", db_tol=0.5, frames_tol=1152, amp=None),
    )

# Present on disk, never cataloged.
IGNORED = ["names/notes.txt", "names/.hidden.wav", "names/._resource_fork.wav"]


def _block_reads_of(path: Path, mp: pytest.MonkeyPatch) -> bool:
    """Make `path` unreadable; returns True when a real chmod did it (False: simulated).

    As root (or with CAP_DAC_OVERRIDE) mode 000 does not stop reads, so the analyzer's
    own opens of this one path are made to fail the way a real EACCES does.
    """
    os.chmod(path, 0)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return True
    target = str(path)

    def denied() -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)

    real_open = os.open
    encoded = os.fsencode(target)

    def guarded_open(file, *args, **kwargs):
        if os.fsencode(file) == encoded:
            raise denied()
        return real_open(file, *args, **kwargs)

    # Every read of a library file opens it through engine.catalog.paths.open_fd.
    mp.setattr(paths_mod.os, "open", guarded_open)
    return False


@dataclass
class Torture:
    lib: Library
    root: Path
    report: scanner_mod.ScanReport
    real_chmod: bool

    def row(self, rel: str) -> dict | None:
        return self.lib.catalog.file_by_path(str(self.root / rel))


@pytest.fixture(scope="module")
def torture(tmp_path_factory):
    base = tmp_path_factory.mktemp("torture")
    root = (base / "sounds").resolve()
    for rel, (make, _) in CASES.items():
        make(root / rel)
    for rel in IGNORED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(wav_bytes(tone(0.1)))
    # A symlink loop: folders pointing to themselves and to their parent (the root).
    (root / "loop" / "parent").symlink_to("..", target_is_directory=True)
    (root / "loop" / "self").symlink_to(".", target_is_directory=True)
    (root / "names" / "to_loop").symlink_to("../loop", target_is_directory=True)
    unreadable = root / "broken/unreadable.wav"

    lib = Library(base / "library")
    try:
        with pytest.MonkeyPatch.context() as mp:
            real_chmod = _block_reads_of(unreadable, mp)
            assert lib.add_folders([root]) == [str(root)]
            report = lib.scan(workers=2)
        yield Torture(lib, root, report, real_chmod)
    finally:
        os.chmod(unreadable, 0o644)
        lib.close()


@pytest.mark.parametrize("rel", list(CASES))
def test_torture_case(torture, rel):
    _, expected = CASES[rel]
    row = torture.row(rel)
    assert row is not None, f"{rel} has no row"
    path = torture.root / rel
    assert row["name"] == path.name
    assert row["folder"] == str(path.parent)
    assert row["size"] == path.stat().st_size
    assert row["mtime_ns"] == path.stat().st_mtime_ns
    if isinstance(expected, Err) or (isinstance(expected, OkOrErr) and row["status"] == "error"):
        assert row["status"] == "error", row
        message = row["error"] or ""
        assert message.strip(), f"{rel}: empty error text"
        if isinstance(expected, Err):
            assert any(s in message.lower() for s in expected.any_of), message
        assert row["frames"] is None and row["duration"] is None
        assert row["peak_db"] is None and row["rms_db"] is None
        assert torture.lib.catalog.peaks(row["id"]) is None
        return
    ok = expected.ok if isinstance(expected, OkOrErr) else expected
    assert row["status"] == "ok", row["error"]
    assert row["error"] is None
    assert row["format"] == ok.format
    assert row["subtype"] == ok.subtype
    assert row["sample_rate"] == ok.sample_rate
    assert row["channels"] == ok.channels
    assert abs(row["frames"] - ok.frames) <= ok.frames_tol, row["frames"]
    assert row["bit_depth"] == ok.bit_depth
    assert row["duration"] == pytest.approx(row["frames"] / ok.sample_rate)
    assert row["fingerprint"]
    for key, want in (("peak_db", ok.peak_db), ("rms_db", ok.rms_db)):
        got = row[key]
        assert got is not None and math.isfinite(got), f"{key}={got!r}"
        assert got == pytest.approx(want, abs=ok.db_tol), key

    blobs = torture.lib.catalog.peaks(row["id"])
    assert blobs is not None, "ok row without peaks"
    for blob, limit in zip(blobs, (OVERVIEW_BUCKETS, DETAIL_BUCKETS), strict=True):
        mins, maxs = decode_peaks(blob)
        assert 1 <= len(mins) <= limit
        assert len(mins) <= ok.frames + ok.frames_tol
        assert np.all(np.isfinite(mins)) and np.all(np.isfinite(maxs))
        assert np.all(mins <= maxs)
        assert mins.min() >= -1.0 and maxs.max() <= 1.0
        if ok.amp is not None:
            # int8 quantisation rounds outwards: at most one step (1/127) above.
            assert ok.amp - ok.amp_tol <= maxs.max() <= ok.amp + 1 / 127 + 1e-6


def test_torture_unreadable_says_permission_denied(torture):
    row = torture.row("broken/unreadable.wav")
    assert row["error"].lower().startswith("cannot open")
    assert "permission denied" in row["error"].lower()


# libsndfile 1.2.2 reports some unrecognised files as "File does not exist or is not a
# regular file"; the row must not repeat that about a file that exists.
@pytest.mark.parametrize("rel", ["broken/random_bytes_mpeg_like.wav", "broken/text.mp3"])
def test_torture_not_audio_error_does_not_claim_file_is_missing(torture, rel):
    assert "does not exist" not in torture.row(rel)["error"]


def test_torture_scan_report(torture):
    report = torture.report
    n_err = sum(isinstance(spec, Err) for _, spec in CASES.values())
    maybe = sum(isinstance(spec, OkOrErr) for _, spec in CASES.values())
    assert not report.cancelled
    assert report.files_seen == len(CASES)
    assert report.added == len(CASES)
    assert report.updated == report.moved == report.removed == report.unchanged == 0
    assert report.vanished == 0
    assert n_err <= report.errors <= n_err + maybe
    counts = torture.lib.catalog.counts()
    assert counts["files"] == len(CASES)
    assert counts["errors"] == report.errors


def test_torture_rows_are_exactly_the_audio_files(torture):
    paths = [r["path"] for r in torture.lib.catalog.query("SELECT path FROM files")]
    assert len(paths) == len(set(paths))
    assert sorted(paths) == sorted(str(torture.root / rel) for rel in CASES)
    # The symlink loop neither hung the walk nor listed the file again through a link.
    names = [Path(p).name for p in paths]
    assert names.count("inside.wav") == 1


def test_torture_catalog_is_consistent(torture):
    cat = torture.lib.catalog
    assert cat.integrity_ok()
    ok_ids = {r["id"] for r in cat.query("SELECT id FROM files WHERE status = 'ok'")}
    peak_ids = {r["file_id"] for r in cat.query("SELECT file_id FROM peaks")}
    fts_ids = {r["rowid"] for r in cat.query("SELECT rowid FROM files_fts")}
    assert peak_ids == ok_ids
    assert fts_ids == ok_ids
    assert cat.query("PRAGMA foreign_key_check") == []


def test_torture_unicode_names_are_searchable(torture):
    hits = {r.name for r in torture.lib.search("名前")}
    assert "名前.flac" in hits


def test_torture_rescan_is_a_no_op(torture):
    # Runs without the permission patch: the unreadable file is unchanged on disk, so it
    # is not read again, and neither is anything else.
    before = torture.lib.catalog.query("SELECT * FROM files ORDER BY id")
    report = torture.lib.scan(workers=2)
    assert report.touched == 0
    assert report.unchanged == len(CASES)
    assert report.errors == 0
    assert torture.lib.catalog.query("SELECT * FROM files ORDER BY id") == before


# -- signal-level checks -----------------------------------------------------------------


def _scan_one(library: Library, folder: Path) -> dict:
    library.add_folders([folder])
    report = library.scan(workers=1)
    assert report.errors == 0
    rows = library.catalog.query("SELECT * FROM files")
    assert len(rows) == 1
    return rows[0]


def test_long_file_peaks_stay_bounded(tmp_path, library):
    write(tmp_path / "s" / "long.wav", tone(60.0, 8000, freq=50.0), 8000)
    row = _scan_one(library, tmp_path / "s")
    assert row["frames"] == 480_000
    overview, detail = library.catalog.peaks(row["id"])
    o_min, o_max = decode_peaks(overview)
    d_min, d_max = decode_peaks(detail)
    assert 64 <= len(o_min) <= OVERVIEW_BUCKETS
    assert 1024 <= len(d_min) <= DETAIL_BUCKETS
    # Each bucket of a 50 Hz sine spans many periods: every bucket reaches ±0.5.
    assert np.all(d_max >= 0.49) and np.all(d_min <= -0.49)
    assert np.all(o_max <= 0.5 + 1 / 127 + 1e-6)


def test_loud_sine_levels(tmp_path, library):
    write(tmp_path / "s" / "sine.wav", tone(1.0, 48000, freq=1000.0, amp=0.5), 48000, "PCM_24")
    row = _scan_one(library, tmp_path / "s")
    assert row["peak_db"] == pytest.approx(-6.02, abs=0.1)
    assert row["rms_db"] == pytest.approx(-9.03, abs=0.1)


def test_nan_and_inf_give_finite_levels(tmp_path, library):
    data = tone(0.5, amp=0.25)
    data[::97] = np.nan
    data[5] = np.inf
    data[6] = -np.inf
    write(tmp_path / "s" / "bad_floats.wav", data, subtype="FLOAT")
    row = _scan_one(library, tmp_path / "s")
    assert row["status"] == "ok"
    assert math.isfinite(row["peak_db"]) and math.isfinite(row["rms_db"])
    assert row["peak_db"] <= 0.0
    for blob in library.catalog.peaks(row["id"]):
        mins, maxs = decode_peaks(blob)
        assert np.all(np.isfinite(mins)) and np.all(np.isfinite(maxs))


# -- files that change while a scan runs -------------------------------------------------


def _set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _rewrite(path: Path, data: np.ndarray, mtime_ns: int) -> None:
    write(path, data)
    _set_mtime(path, mtime_ns)


def _files(library: Library) -> dict[str, dict]:
    return {r["name"]: r for r in library.catalog.query("SELECT * FROM files")}


def _make_abcd(folder: Path) -> dict[str, Path]:
    return {
        c: write(folder / f"{c}.wav", tone(0.1, freq=300.0 + 50 * i)) for i, c in enumerate("abcd")
    }


def test_file_deleted_during_scan_leaves_no_row(tmp_path, library, monkeypatch):
    files = _make_abcd(tmp_path / "s")
    real = scanner_mod.analyze
    order = []

    def analyze_then_delete(path, *args, **kwargs):
        order.append(Path(path).name)
        if Path(path).name == "b.wav":
            files["d"].unlink()  # d is listed already, and read after b
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scanner_mod, "analyze", analyze_then_delete)
    library.add_folders([tmp_path / "s"])
    report = library.scan(workers=1)
    assert order == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert report.vanished == 1
    assert report.added == 3 and report.errors == 0
    assert sorted(_files(library)) == ["a.wav", "b.wav", "c.wav"]
    assert library.catalog.integrity_ok()


def test_known_file_deleted_during_rescan_loses_its_row(tmp_path, library, monkeypatch):
    files = _make_abcd(tmp_path / "s")
    library.add_folders([tmp_path / "s"])
    assert library.scan(workers=1).added == 4
    for c in "bd":  # both changed, so both are read again
        _rewrite(files[c], tone(0.2), files[c].stat().st_mtime_ns + 5_000_000_000)
    real = scanner_mod.analyze

    def analyze_then_delete(path, *args, **kwargs):
        if Path(path).name == "b.wav":
            files["d"].unlink()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scanner_mod, "analyze", analyze_then_delete)
    report = library.scan(workers=1)
    assert report.vanished == 1 and report.updated == 1
    assert sorted(_files(library)) == ["a.wav", "b.wav", "c.wav"]
    fts = library.catalog.query("SELECT COUNT(*) AS n FROM files_fts")[0]["n"]
    assert fts == 3


def test_file_deleted_between_fingerprint_and_decode_leaves_no_row(tmp_path, library, monkeypatch):
    files = _make_abcd(tmp_path / "s")
    real = analyze_mod.fingerprint

    def fingerprint_then_delete(path, size):
        result = real(path, size)
        if Path(path).name == "c.wav":
            files["c"].unlink()
        return result

    monkeypatch.setattr(analyze_mod, "fingerprint", fingerprint_then_delete)
    library.add_folders([tmp_path / "s"])
    report = library.scan(workers=1)
    assert sorted(_files(library)) == ["a.wav", "b.wav", "d.wav"], _files(library).get("c.wav")
    assert report.vanished == 1 and report.errors == 0


def test_file_rewritten_while_read_gets_a_row_of_the_new_content(tmp_path, library, monkeypatch):
    files = _make_abcd(tmp_path / "s")
    target = files["b"]
    new_mtime = target.stat().st_mtime_ns + 7_000_000_000
    real = analyze_mod.fingerprint
    calls = []

    def fingerprint_then_rewrite(path, size):
        result = real(path, size)
        if Path(path) == target:
            calls.append(size)
            if len(calls) == 1:  # the analyzer has stat'ed the old file; now it changes
                _rewrite(target, tone(0.3, channels=2, freq=880.0), new_mtime)
        return result

    monkeypatch.setattr(analyze_mod, "fingerprint", fingerprint_then_rewrite)
    library.add_folders([tmp_path / "s"])
    report = library.scan(workers=1)
    assert len(calls) == 2, "the change was not noticed and the file not read again"
    assert report.added == 4 and report.errors == 0
    row = _files(library)["b.wav"]
    assert row["status"] == "ok"
    assert (row["channels"], row["frames"]) == (2, 13230)
    assert (row["size"], row["mtime_ns"]) == (target.stat().st_size, new_mtime)

    monkeypatch.setattr(analyze_mod, "fingerprint", real)
    again = library.scan(workers=1)
    assert again.touched == 0 and again.unchanged == 4
    assert _files(library)["b.wav"] == row


def test_file_that_keeps_changing_gets_an_error_then_a_correct_row(tmp_path, library, monkeypatch):
    files = _make_abcd(tmp_path / "s")
    target = files["c"]
    mtime = target.stat().st_mtime_ns
    real = analyze_mod.fingerprint
    rewrites = []

    def fingerprint_then_rewrite(path, size):
        result = real(path, size)
        if Path(path) == target and len(rewrites) < 2:
            rewrites.append(size)
            seconds = 0.3 + 0.1 * len(rewrites)
            _rewrite(target, tone(seconds, freq=600.0), mtime + len(rewrites) * 1_000_000_000)
        return result

    monkeypatch.setattr(analyze_mod, "fingerprint", fingerprint_then_rewrite)
    library.add_folders([tmp_path / "s"])
    library.scan(workers=1)
    row = _files(library)["c.wav"]
    assert len(rewrites) == 2
    assert row["status"] == "error"
    assert "chang" in row["error"].lower(), row["error"]
    assert library.catalog.peaks(row["id"]) is None

    monkeypatch.setattr(analyze_mod, "fingerprint", real)
    report = library.scan(workers=1)
    assert report.updated == 1 and report.unchanged == 3 and report.errors == 0
    fixed = _files(library)["c.wav"]
    assert fixed["id"] == row["id"]
    assert fixed["status"] == "ok"
    assert fixed["frames"] == round(0.5 * 44100)
    assert (fixed["size"], fixed["mtime_ns"]) == (target.stat().st_size, target.stat().st_mtime_ns)
    assert library.catalog.peaks(fixed["id"]) is not None


def test_file_truncated_by_a_writer_mid_scan_is_not_called_corrupt(tmp_path, library, monkeypatch):
    # A program re-renders c.wav during the scan: it truncates the file just after the
    # analyzer stat'ed it, and has written the new content when the scan reads d.wav.
    files = _make_abcd(tmp_path / "s")
    target = files["c"]
    new_mtime = target.stat().st_mtime_ns + 3_000_000_000
    real_fp = analyze_mod.fingerprint
    real_analyze = scanner_mod.analyze
    state = {"truncated": False}

    def fingerprint_then_truncate(path, size):
        result = real_fp(path, size)
        if Path(path) == target and not state["truncated"]:
            state["truncated"] = True
            target.write_bytes(b"")
        return result

    def analyze_after_writer(path, *args, **kwargs):
        if Path(path).name == "d.wav" and target.stat().st_size == 0:
            _rewrite(target, tone(0.4, freq=700.0), new_mtime)
        return real_analyze(path, *args, **kwargs)

    monkeypatch.setattr(analyze_mod, "fingerprint", fingerprint_then_truncate)
    monkeypatch.setattr(scanner_mod, "analyze", analyze_after_writer)
    library.add_folders([tmp_path / "s"])
    library.scan(workers=1)
    assert state["truncated"]
    row = _files(library)["c.wav"]
    if row["status"] == "ok":
        assert row["frames"] == round(0.4 * 44100)
    else:
        # Acceptable: "it changed", or a true account of a state the file really had
        # (empty, with that state's size). Not: "not an audio file" with the old size.
        message = row["error"].lower()
        assert "chang" in message or ("empty" in message and row["size"] == 0), row

    monkeypatch.undo()
    library.scan(workers=1)
    fixed = _files(library)["c.wav"]
    assert fixed["status"] == "ok" and fixed["frames"] == round(0.4 * 44100)


# -- incremental scans -------------------------------------------------------------------


@pytest.fixture
def scanned(tmp_path, library):
    """A library with 6 files in two subfolders (one unreadable), scanned once."""
    root = tmp_path / "sounds"
    for i, name in enumerate(["one.wav", "two.flac", "three.wav"]):
        write(root / "drums" / name, tone(0.1 + 0.05 * i, freq=200.0 + 100 * i))
    for i, name in enumerate(["wind.wav", "rain.aiff"]):
        write(root / "ambience" / name, tone(0.2, channels=2, freq=500.0 + 100 * i))
    (root / "ambience" / "broken.wav").write_bytes(wav_bytes()[:30])
    (root_path,) = library.add_folders([root])
    report = library.scan(workers=1)
    assert report.added == 6 and report.errors == 1
    return Path(root_path)


def _by_path(library: Library) -> dict[str, dict]:
    return {r["path"]: r for r in library.catalog.query("SELECT * FROM files")}


def test_rescan_touches_nothing(scanned, library):
    before = _by_path(library)
    report = library.scan(workers=1)
    assert report.touched == 0
    assert report.unchanged == 6
    assert report.errors == 0 and report.vanished == 0
    assert _by_path(library) == before
    assert library.catalog.integrity_ok()


def test_modified_file_is_updated_in_place(scanned, library):
    path = scanned / "drums" / "one.wav"
    old = library.catalog.file_by_path(str(path))
    old_peaks = library.catalog.peaks(old["id"])
    _rewrite(path, tone(0.7, channels=2, freq=1000.0, amp=0.25), old["mtime_ns"] + 2_000_000_000)
    report = library.scan(workers=1)
    assert report.updated == 1
    assert report.added == report.moved == report.removed == 0
    assert report.unchanged == 5
    new = library.catalog.file_by_path(str(path))
    assert new["id"] == old["id"]
    assert (new["channels"], new["frames"]) == (2, round(0.7 * 44100))
    assert new["peak_db"] == pytest.approx(-12.04, abs=0.1)
    assert new["fingerprint"] != old["fingerprint"]
    assert library.catalog.peaks(new["id"]) != old_peaks
    assert library.catalog.integrity_ok()


def test_deleted_file_is_removed(scanned, library):
    path = scanned / "ambience" / "wind.wav"
    file_id = library.catalog.file_by_path(str(path))["id"]
    library.catalog.add_tags(file_id, ["breeze"])
    path.unlink()
    report = library.scan(workers=1)
    assert report.removed == 1
    assert report.touched == 1 and report.unchanged == 5
    assert library.catalog.file_by_path(str(path)) is None
    assert library.catalog.peaks(file_id) is None
    assert library.catalog.tags_of(file_id) == []
    assert library.search("breeze") == []
    assert library.catalog.integrity_ok()


def test_moved_and_renamed_files_keep_their_rows_and_tags(scanned, library):
    src = scanned / "drums" / "two.flac"
    dst = scanned / "ambience" / "deeper" / "two.flac"
    ren_src = scanned / "drums" / "three.wav"
    ren_dst = scanned / "drums" / "three_renamed.wav"
    moved = library.catalog.file_by_path(str(src))
    renamed = library.catalog.file_by_path(str(ren_src))
    library.catalog.add_tags(moved["id"], ["snare", "Vintage Kit"])
    library.catalog.set_favorite(moved["id"], True)
    dst.parent.mkdir()
    shutil.move(src, dst)
    ren_src.rename(ren_dst)

    report = library.scan(workers=1)
    assert report.moved == 2
    assert report.added == report.removed == report.updated == 0
    assert report.unchanged == 4
    row = library.catalog.file_by_path(str(dst))
    assert row["id"] == moved["id"]
    assert (row["folder"], row["name"]) == (str(dst.parent), "two.flac")
    assert row["frames"] == moved["frames"] and row["status"] == "ok"
    assert library.catalog.tags_of(row["id"]) == ["Vintage Kit", "snare"]
    assert library.catalog.is_favorite(row["id"])
    assert library.catalog.peaks(row["id"]) is not None
    assert library.catalog.file_by_path(str(src)) is None
    assert library.catalog.file_by_path(str(ren_dst))["id"] == renamed["id"]
    # The search text follows the move: new folder words and the user's tags.
    assert [r.path for r in library.search("snare")] == [str(dst)]
    assert str(dst) in [r.path for r in library.search("deeper")]
    assert [r.path for r in library.search("renamed")] == [str(ren_dst)]
    # And nothing is left to do.
    assert library.scan(workers=1).touched == 0
    assert library.catalog.integrity_ok()


def _without_offline(rows: dict[str, dict]) -> dict[str, dict]:
    return {p: {k: v for k, v in r.items() if k != "offline"} for p, r in rows.items()}


def test_missing_root_keeps_its_rows(scanned, tmp_path, library):
    other = tmp_path / "other"
    write(other / "solo.wav", tone(0.1))
    library.add_folders([other])
    assert library.scan(workers=1).added == 1
    before = _by_path(library)
    unplugged = tmp_path / "unplugged"
    scanned.rename(unplugged)

    report = library.scan(workers=1)
    assert report.removed == 0 and report.touched == 0
    assert any("missing" in w and str(scanned) in w for w in report.warnings), report.warnings
    # Kept whole and marked offline: left out of results unless the query asks.
    assert _without_offline(_by_path(library)) == _without_offline(before)
    offline = {p for p, r in _by_path(library).items() if r["offline"]}
    assert offline == {p for p in before if p.startswith(str(scanned) + os.sep)}
    assert [r.name for r in library.search("format:wav", mode="keyword", limit=50)] == ["solo.wav"]
    shown = library.search("offline:any", mode="keyword", limit=50)
    readable = {p for p, r in before.items() if r["status"] == "ok"}
    assert {r.path for r in shown} == readable
    assert {r.path for r in shown if r.offline} == offline & readable
    assert {r.path for r in library.search("is:offline", mode="keyword", limit=50)} == (
        offline & readable
    )
    assert library.catalog.counts()["offline"] == len(offline)

    unplugged.rename(scanned)
    report = library.scan(workers=1)
    assert report.touched == 0 and report.unchanged == 7
    assert report.warnings == []
    assert _by_path(library) == before  # back, untouched


@pytest.mark.parametrize("how", ["listing", "entry"])
def test_a_folder_unreadable_for_one_scan_keeps_its_rows_tags_and_favorites(
    scanned, library, monkeypatch, how
):
    """A network share that hiccups: its files are not known to be gone, so their rows,
    tags and favorites stay; the next scan with the folder back changes nothing."""
    drums = scanned / "drums"
    one = library.catalog.file_by_path(str(drums / "one.wav"))
    library.catalog.add_tags(one["id"], ["kick"])
    library.catalog.set_favorite(one["id"], True)
    before = _by_path(library)
    real_scandir = os.scandir

    def flaky_scandir(path):
        if how == "listing" and str(path) == str(drums):
            raise PermissionError(13, "Permission denied", str(path))
        entries = list(real_scandir(path))
        if how == "entry" and str(path) == str(scanned):
            return [_Unstattable(e) if e.name == "drums" else e for e in entries]
        return entries

    monkeypatch.setattr(scanner_mod.os, "scandir", flaky_scandir)
    report = library.scan(workers=1)
    assert report.removed == 0 and report.touched == 0, report
    assert any(str(drums) in w and "kept" in w for w in report.warnings), report.warnings
    assert _without_offline(_by_path(library)) == _without_offline(before)
    offline = {p for p, r in _by_path(library).items() if r["offline"]}
    assert offline and offline == {p for p in before if p.startswith(str(drums) + os.sep)}
    assert library.catalog.tags_of(one["id"]) == ["kick"] and library.catalog.is_favorite(one["id"])
    assert library.search("kick", mode="keyword") == []  # offline: left out
    assert [r.id for r in library.search("kick offline:any", mode="keyword")] == [one["id"]]

    monkeypatch.setattr(scanner_mod.os, "scandir", real_scandir)
    report = library.scan(workers=1)
    assert report.touched == 0 and report.unchanged == 6 and report.warnings == []
    assert _by_path(library) == before  # back online, untouched
    assert [r.id for r in library.search("kick", mode="keyword")] == [one["id"]]


class _Unstattable:
    """A directory entry whose stat fails with EIO, as on a share that dropped out."""

    def __init__(self, entry):
        self.name, self.path = entry.name, entry.path

    def stat(self, follow_symlinks=True):
        raise OSError(5, "Input/output error", self.path)


def test_a_sibling_with_a_longer_name_is_not_kept_by_an_unreadable_folder(
    tmp_path, library, monkeypatch
):
    root = tmp_path / "lib"
    write(root / "Rain" / "a.wav", tone(0.1))
    write(root / "Rainforest" / "b.wav", tone(0.1))
    library.add_folders([root])
    library.scan(workers=1)
    (root / "Rainforest" / "b.wav").unlink()
    real_scandir = os.scandir

    def flaky(path):
        if str(path) == str(root / "Rain"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scanner_mod.os, "scandir", flaky)
    report = library.scan(workers=1)
    assert report.removed == 1  # Rainforest/b.wav is really gone; Rain/ is only unreadable
    assert library.catalog.file_by_path(str(root / "Rain" / "a.wav")) is not None


@pytest.mark.parametrize(
    ("rate", "status"),
    [(67_108_864, "error"), (999, "error"), (1_000, "ok"), (44_056, "ok"), (44_099, "ok"),
     (47_952, "ok"), (768_000, "ok"), (768_001, "error")],
)  # fmt: skip
def test_the_declared_sample_rate_is_checked_before_it_sizes_anything(
    tmp_path, library, rate, status
):
    """A header's rate is validated: real rates (film pull-downs included) are read, an
    implausible one is an error row that says why; the other files are indexed."""
    root = tmp_path / "rates"
    data = bytearray(wav_bytes())
    fmt = riff_chunk_offset(bytes(data), b"fmt ")
    data[fmt + 12 : fmt + 16] = rate.to_bytes(4, "little")
    root.mkdir()
    (root / "odd_rate.wav").write_bytes(bytes(data))
    write(root / "plain.wav", tone(0.2))
    library.add_folders([root])
    report = library.scan(workers=1)
    rows = {r["name"]: r for r in library.catalog.query("SELECT * FROM files")}
    assert rows["plain.wav"]["status"] == "ok" and report.added == 2
    odd = rows["odd_rate.wav"]
    assert odd["status"] == status, odd["error"]
    if status == "error":
        assert "implausible header" in odd["error"] and str(rate) in odd["error"]
    else:
        assert odd["sample_rate"] == rate


def test_a_link_to_a_folder_outside_the_library_is_not_walked(tmp_path, library):
    """A link to "/" once walked the whole filesystem into the library: links to folders
    outside the library folder are skipped with a warning; links inside still work."""
    outside = tmp_path / "elsewhere"
    write(outside / "stranger.wav", tone(0.1))
    root = tmp_path / "lib"
    write(root / "kit" / "kick.wav", tone(0.1))
    (root / "to_elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "to_root").symlink_to("/", target_is_directory=True)
    (root / "also_kit").symlink_to("kit", target_is_directory=True)
    library.add_folders([root])
    report = library.scan(workers=1)
    names = sorted(r["name"] for r in library.catalog.query("SELECT name FROM files"))
    assert names == ["kick.wav"] and report.files_seen == 1
    skipped = [w for w in report.warnings if "outside the library folder" in w]
    assert len(skipped) == 2 and any("to_root" in w for w in skipped)


def test_a_ucs_table_of_the_wrong_shape_never_stops_a_scan(tmp_path, library):
    table = tmp_path / "ucs.json"
    table.write_text("[1, 2, 3]")
    with pytest.raises(LibraryError, match="not a UCS table|no UCS rows"):
        library.set_ucs_table(str(table))
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"CatID": "DOORWood", "Category": "DOORS", "SubCategory": "WOOD"}]))
    library.set_ucs_table(str(good))
    good.write_text(json.dumps({"CatID": "DOORWood"}))  # replaced by something else since
    write(tmp_path / "s" / "DOORWood_Creak_JD_Lib.wav", tone(0.1))
    library.add_folders([tmp_path / "s"])
    report = library.scan(workers=1)
    assert report.added == 1 and report.errors == 0
    row = library.catalog.query("SELECT * FROM files")[0]
    assert row["status"] == "ok" and row["ucs_catid"] == "DOORWood"


def test_cancelled_scan_resumes_without_duplicates(tmp_path, library):
    root = tmp_path / "many"
    for i in range(12):
        write(root / f"sub{i % 3}" / f"f{i:02d}.wav", tone(0.05, freq=100.0 + 30 * i))
    cancel = threading.Event()

    def progress(p):
        if p.files_done >= 3:
            cancel.set()

    (root_path,) = library.add_folders([root])
    report = library.scan(progress=progress, cancel=cancel, workers=1)
    assert report.cancelled
    stored = library.catalog.counts()["files"]
    # At most the files already handed to the single worker finish after the cancel.
    assert 3 <= stored <= 3 + 2, stored
    assert report.added == stored
    assert library.folders()[0]["last_scan_at"] is None

    report = library.scan(workers=1)
    assert not report.cancelled
    assert report.added == 12 - stored and report.unchanged == stored
    paths = [r["path"] for r in library.catalog.query("SELECT path FROM files")]
    assert len(paths) == len(set(paths)) == 12
    assert library.catalog.counts() == {"files": 12, "indexed": 12, "errors": 0, "offline": 0}
    assert library.folders()[0]["last_scan_at"] is not None
    assert library.catalog.integrity_ok()


def test_peaks_read_back_are_bounded_whatever_the_blob():
    for blob in (b"", b"\x01", bytes(range(7)), bytes(10 * DETAIL_BUCKETS + 1)):
        mins, maxs = decode_peaks(blob)
        assert len(mins) == len(maxs) <= DETAIL_BUCKETS


def test_a_vanished_subfolder_is_kept_offline_a_renamed_one_moves(scanned, tmp_path, library):
    """A subfolder that disappears (an unmounted share inside the library, a drive's
    folder) keeps its rows offline; renamed, its rows follow as moves; back, they are
    online and untouched; only a rescan that forgets missing files removes them."""
    drums = scanned / "drums"
    one = library.catalog.file_by_path(str(drums / "one.wav"))
    library.catalog.add_tags(one["id"], ["kick"])
    library.add_to_collection("set", [one["id"]])
    before = _by_path(library)
    drums.rename(tmp_path / "unplugged")
    report = library.scan(workers=1)
    assert report.removed == 0 and report.offline_kept == 3
    assert any("kept 3 files whose folders are gone" in w for w in report.warnings)
    rows = _by_path(library)
    assert {p for p, r in rows.items() if r["offline"]} == {
        p for p in before if p.startswith(str(drums) + os.sep)
    }
    assert library.search("kick", mode="keyword") == []
    assert [r.id for r in library.collection("set")] == [one["id"]]  # still listed, offline
    (tmp_path / "unplugged").rename(drums)
    report = library.scan(workers=1)
    assert report.touched == 0 and _by_path(library) == before
    # Renamed: the rows move with their tags (no offline copies, no duplicates).
    drums.rename(scanned / "Drums (2019)")
    report = library.scan(workers=1)
    assert report.moved == 3 and report.offline_kept == 0 and report.removed == 0
    moved = library.catalog.file_by_id(one["id"])
    assert moved["path"] == str(scanned / "Drums (2019)" / "one.wav") and not moved["offline"]
    assert library.catalog.tags_of(one["id"]) == ["kick"]
    # Gone for good: kept offline until the user asks to forget them.
    import shutil

    shutil.rmtree(scanned / "Drums (2019)")
    assert library.scan(workers=1).offline_kept == 3
    report = library.scan(workers=1, forget_missing=True)
    assert report.removed == 3 and library.catalog.file_by_id(one["id"]) is None
    assert library.catalog.counts()["offline"] == 0
