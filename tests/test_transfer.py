"""Transfer (engine/audio/transfer.py) and loudness (engine/audio/loudness.py): sounds
rendered as a session wants them, checked by independent readers (soundfile, mediainfo,
pyloudnorm), and the CLI's export and loudness commands."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.audio.loudness import LoudnessMeter, measure
from engine.audio.transfer import Transfer, render
from engine.errors import TransferError
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT

MEDIAINFO = shutil.which("mediainfo")
needs_mediainfo = pytest.mark.skipif(
    MEDIAINFO is None and not os.environ.get("CI"), reason="mediainfo is not installed"
)


def _signal(rate: int, channels: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = np.stack(
        [0.3 * np.sin(2 * np.pi * (200 + 300 * c) * t) * (1 + 0.5 * np.sin(3 * t))
         + 0.05 * rng.standard_normal(n) for c in range(channels)], axis=1,
    )  # fmt: skip
    x[: n // 3] *= 0.01  # a quiet stretch that the gates leave out
    return x


@pytest.mark.parametrize(
    ("rate", "channels", "seconds", "block"),
    [(48000, 2, 3.33, 7777), (44100, 1, 1.07, 4410), (96000, 5, 2.0, 100_000),
     (22050, 2, 0.9, 1), (48000, 1, 12.0, 65536)],
)  # fmt: skip
def test_the_meter_reads_what_pyloudnorm_reads_fed_in_any_blocks(rate, channels, seconds, block):
    x = _signal(rate, channels, seconds)
    reference = pyloudnorm.Meter(rate).integrated_loudness(x)
    meter = LoudnessMeter(rate, channels)
    for i in range(0, len(x), block if block > 1 else 997):
        meter.feed(x[i : i + (block if block > 1 else 997)])
    got = meter.result()
    assert abs(got.integrated_lufs - reference) < 0.005  # float32 filtering, float64 sums
    assert abs(got.sample_peak_dbfs - 20 * math.log10(np.abs(x).max())) < 1e-5
    assert got.true_peak_dbtp >= got.sample_peak_dbfs - 1e-9


def test_the_scanners_quick_true_peak_finds_what_the_full_one_finds():
    rate = 48000
    n = np.arange(rate * 3)
    quiet = 0.05 * np.sin(2 * np.pi * n / 4 + np.pi / 4)
    burst = quiet.copy()
    burst[rate : rate + 2000] *= 10  # a transient between quiet stretches
    for x in (quiet, burst, _signal(rate, 1, 3.0)[:, 0]):
        full, quick = LoudnessMeter(rate, 1), LoudnessMeter(rate, 1, quick=True)
        for i in range(0, len(x), 30000):
            full.feed(x[i : i + 30000, None])
            quick.feed(x[i : i + 30000, None])
        a, b = full.result(), quick.result()
        assert a.integrated_lufs == b.integrated_lufs
        assert abs(a.true_peak_dbtp - b.true_peak_dbtp) < 0.05


def test_true_peak_sees_the_peak_between_samples():
    # A sine at a quarter of the rate sampled at +-45 degrees: samples reach 0.707 of
    # the wave's real peak (-3 dB), which 4x oversampling finds.
    rate = 48000
    n = np.arange(rate)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)[:, None] * 0.5
    got = LoudnessMeter(rate, 1)
    got.feed(x)
    result = got.result()
    assert abs(result.sample_peak_dbfs - 20 * math.log10(0.5 * math.sqrt(0.5))) < 1e-6
    assert abs(result.true_peak_dbtp - 20 * math.log10(0.5)) < 0.2


def test_silence_and_short_sounds_read_as_silent(tmp_path):
    silent = write(tmp_path / "silence.wav", np.zeros((48000, 2), dtype=np.float32), 48000)
    got = measure(silent)
    assert got.integrated_lufs == -math.inf and got.true_peak_dbtp == -math.inf
    assert got.to_json()["integrated_lufs"] is None
    # Under one 400 ms block: the loudness of its whole length (a steady tone: the same
    # as a longer stretch of it).
    short = write(tmp_path / "short.wav", tone(0.2), 44100)
    longer = write(tmp_path / "longer.wav", tone(2.0), 44100)
    assert abs(measure(short).integrated_lufs - measure(longer).integrated_lufs) < 0.3
    assert measure(short).sample_peak_dbfs > -7


def test_a_region_is_measured_alone(tmp_path):
    rate = 48000
    x = np.concatenate([tone(2.0, rate, amp=0.05), tone(2.0, rate, amp=0.5)])
    path = write(tmp_path / "steps.wav", x, rate, "PCM_24")
    quiet, loud = measure(path, 0.0, 2.0), measure(path, 2.0, 4.0)
    assert abs((loud.integrated_lufs - quiet.integrated_lufs) - 20.0) < 0.2
    assert abs(loud.seconds - 2.0) < 1e-9


def test_as_source_keeps_every_sample_even_into_flac(tmp_path):
    rate = 44100
    src = write(tmp_path / "door.wav", noise(1.0, rate, channels=2), rate, "PCM_16")
    out = render(src, tmp_path / "out", Transfer(format="flac"), 0.25, 0.75)
    (path,) = out.paths
    assert path.name == "door_0.250-0.750s.flac"
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "FLAC",
        "PCM_16",
        rate,
        2,
    )
    original, _ = sf.read(str(src), dtype="int16")
    got, _ = sf.read(str(path), dtype="int16")
    assert np.array_equal(got, original[11025:33075])


@needs_mediainfo
def test_a_region_converted_to_48k_24_bit_wav_holds_the_same_sound(tmp_path):
    rate = 44100
    src = write(tmp_path / "tone.wav", tone(2.0, rate, channels=2, freq=1000.0), rate, "PCM_16")
    t = Transfer(rate=48000, bits="24", handles=0.1)
    out = render(src, tmp_path / "out", t, 0.5, 1.5)
    (path,) = out.paths
    info = sf.info(str(path))
    assert (info.samplerate, info.subtype, info.channels) == (48000, "PCM_24", 2)
    assert abs(info.frames - 1.2 * 48000) <= 2  # the region plus 0.1 s handles each side
    got, _ = sf.read(str(path))
    spectrum = np.abs(np.fft.rfft(got[:, 0] * np.hanning(len(got))))
    assert abs(np.argmax(spectrum) * 48000 / len(got) - 1000.0) < 2.0
    assert abs(np.abs(got[1000:-1000]).max() - 0.5) < 0.01
    report = subprocess.run(
        [MEDIAINFO or "mediainfo", "--Output=JSON", str(path)], capture_output=True, text=True
    )
    audio = next(t for t in json.loads(report.stdout)["media"]["track"] if t["@type"] == "Audio")
    assert (audio["SamplingRate"], audio["BitDepth"], audio["Channels"]) == ("48000", "24", "2")


def test_mono_is_the_channels_average_and_split_gives_a_file_per_channel(tmp_path):
    rate = 48000
    left, right = tone(1.0, rate, freq=300.0)[:, 0], tone(1.0, rate, freq=500.0, amp=0.25)[:, 0]
    src = write(tmp_path / "st.wav", np.stack([left, right], 1), rate, "FLOAT")
    (mono,) = render(src, tmp_path / "m", Transfer(layout="mono")).paths
    got, _ = sf.read(str(mono), dtype="float32")
    assert got.ndim == 1 and np.allclose(got, (left + right) / 2, atol=1e-7)
    split = render(src, tmp_path / "s", Transfer(layout="split")).paths
    assert [p.name for p in split] == ["st.L.wav", "st.R.wav"]
    for path, channel in zip(split, (left, right), strict=True):
        data, _ = sf.read(str(path), dtype="float32")
        assert data.ndim == 1 and np.array_equal(data, channel)


def test_fades_start_and_end_at_silence_and_leave_the_middle(tmp_path):
    rate = 48000
    src = write(tmp_path / "dc.wav", np.full((rate, 1), 0.5, dtype=np.float32), rate, "FLOAT")
    (path,) = render(src, tmp_path / "o", Transfer(fade_in=0.1, fade_out=0.25)).paths
    got, _ = sf.read(str(path))
    assert len(got) == rate and got[0] == 0.0 and got[-1] == 0.0
    assert np.all(np.diff(got[:4800]) >= 0) and np.all(np.diff(got[-12000:]) <= 0)
    assert np.allclose(got[4800:-12000], 0.5)


@pytest.mark.parametrize("target", ["-1dBTP", "-6dBFS", "-23LUFS"])
def test_normalising_reaches_its_target(tmp_path, target):
    rate = 48000
    src = write(tmp_path / "n.wav", _signal(rate, 2, 3.0).astype(np.float32), rate, "FLOAT")
    out = render(src, tmp_path / "o", Transfer(normalize=target, bits="24"))
    got = measure(out.paths[0])
    value = {"dBTP": got.true_peak_dbtp, "dBFS": got.sample_peak_dbfs,
             "LUFS": got.integrated_lufs}[target[-4:]]  # fmt: skip
    assert abs(value - float(target[:-4])) < 0.05 and not out.limited


def test_a_loudness_target_never_pushes_the_true_peak_over_minus_one(tmp_path):
    rate = 48000
    clicks = np.zeros((rate * 2, 1), dtype=np.float32)
    clicks[::4800] = 0.5  # quiet on average, with peaks: -23 LUFS would clip them
    src = write(tmp_path / "clicks.wav", clicks, rate, "FLOAT")
    out = render(src, tmp_path / "o", Transfer(normalize="-10LUFS"))
    got = measure(out.paths[0])
    assert out.limited and got.true_peak_dbtp <= -1.0 + 0.05
    assert got.integrated_lufs < -10.5


def test_sixteen_bit_output_is_dithered_and_never_wraps(tmp_path):
    rate = 44100
    src = write(tmp_path / "hot.wav", tone(1.0, rate, amp=0.999), rate, "FLOAT")
    (path,) = render(src, tmp_path / "o", Transfer(bits="16", normalize="-0.0dBFS")).paths
    got, _ = sf.read(str(path), dtype="int16")
    assert got.max() >= 32000 and got.min() <= -32000  # full scale, not wrapped round
    quiet = write(tmp_path / "quiet.wav", np.zeros((rate, 1), dtype=np.float32), rate, "FLOAT")
    (path,) = render(quiet, tmp_path / "o", Transfer(bits="16", fade_in=0.01)).paths
    got, _ = sf.read(str(path), dtype="int16")
    assert 0 < np.abs(got).max() <= 2  # dither: a least significant bit or two of noise


def test_exporting_twice_never_replaces_and_temporaries_are_gone(tmp_path):
    src = write(tmp_path / "a.wav", tone(0.5), 44100)
    first = render(src, tmp_path / "o", Transfer(rate=48000)).paths[0]
    second = render(src, tmp_path / "o", Transfer(rate=48000)).paths[0]
    assert (first.name, second.name) == ("a.wav", "a 2.wav")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a 2.wav", "a.wav"]


@pytest.mark.parametrize(
    "settings",
    [{"format": "flac", "bits": "float"}, {"normalize": "loud"}, {"normalize": "+3dBTP"},
     {"fade_in": -1.0}, {"fade_out": math.nan}, {"rate": 10}, {"layout": "surround"}],
)  # fmt: skip
def test_settings_that_cannot_be_rendered_are_refused(settings):
    with pytest.raises(TransferError):
        Transfer(**settings)


def test_the_transfer_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SONARIUM_TRANSFER_RATE", "48000")
    monkeypatch.setenv("SONARIUM_TRANSFER_BITS", "24")
    monkeypatch.setenv("SONARIUM_TRANSFER_NORMALIZE", "-23LUFS")
    monkeypatch.setenv("SONARIUM_TRANSFER_FADE_OUT", "0.5")
    t = Transfer.from_settings()
    assert (t.rate, t.bits, t.normalize, t.fade_out, t.as_source) == (
        48000,
        "24",
        "-23LUFS",
        0.5,
        False,
    )
    monkeypatch.setenv("SONARIUM_TRANSFER_FADE_OUT", "long")
    with pytest.raises(TransferError):
        Transfer.from_settings()


def test_unreadable_files_and_empty_regions_are_refused(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises((RuntimeError, ValueError, OSError)):
        render(junk, tmp_path / "o", Transfer(rate=48000))
    src = write(tmp_path / "a.wav", tone(0.5), 44100)
    with pytest.raises(ValueError):
        render(src, tmp_path / "o", Transfer(rate=48000), 0.8, 0.9)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "main.py"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_exports_converted_files_and_reports_the_ones_it_cannot(tmp_path):
    src = write(tmp_path / "in" / "ambience.wav", _signal(44100, 2, 2.0).astype(np.float32),
                44100, "FLOAT")  # fmt: skip
    junk = tmp_path / "in" / "junk.wav"
    junk.write_bytes(b"not audio")
    out = tmp_path / "out"
    done = _cli("export", str(src), str(junk), "--out", str(out), "--rate", "48000",
                "--bits", "24", "--mono", "--normalize", "-23LUFS", "--json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (exported,) = report["exported"]
    assert exported["rate"] == 48000 and exported["channels"] == 1
    assert [f["file"] for f in report["failed"]] == [str(junk)]
    info = sf.info(exported["written"][0])
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_24")
    levels = _cli("loudness", exported["written"][0], "--json")
    assert levels.returncode == 0, levels.stderr
    assert abs(json.loads(levels.stdout)[0]["integrated_lufs"] + 23.0) < 0.05
    region = _cli("export", str(src), "--out", str(out), "--start", "0.5", "--end", "1.0")
    assert region.returncode == 0, region.stderr
    assert (out / "ambience_0.500-1.000s.wav").exists()
    wrong = _cli("export", str(src), "--out", str(out), "--start", "1", "--end", "0.5")
    assert wrong.returncode != 0 and "--end" in wrong.stderr


def test_metadata_is_carried_into_the_rendered_files(tmp_path):
    from engine.curate.write import write_fields
    from engine.scan.metadata import read_metadata

    src = write(tmp_path / "slam.wav", tone(1.0), 44100, "PCM_16")
    write_fields(str(src), {"description": "Metal door slam, long tail", "keywords": "door"})
    (wav,) = render(src, tmp_path / "o", Transfer(rate=48000, bits="24")).paths
    meta = read_metadata(wav)
    assert meta["description"] == "Metal door slam, long tail" and meta["keywords"] == "door"
    (flac,) = render(src, tmp_path / "o", Transfer(format="flac"), 0.1, 0.6,
                     fields={"description": "edited in the catalog"}).paths  # fmt: skip
    assert read_metadata(flac)["embedded_tags"]["description"] == "edited in the catalog"
    (bare,) = render(src, tmp_path / "o", Transfer(format="aiff"), fields={}).paths
    assert bare.suffix == ".aif" and not read_metadata(bare).get("description")


def test_the_scan_stores_loudness_and_measures_rows_scanned_before_it(tmp_path, library):
    root = tmp_path / "sfx"
    write(root / "loud.wav", tone(1.0, amp=0.5), 44100, "PCM_24")
    write(root / "quiet.flac", tone(1.0, amp=0.05), 44100, "PCM_16")
    write(root / "click.wav", tone(0.05, amp=0.5), 44100)
    write(root / "silence.wav", np.zeros((44100, 1), dtype=np.float32), 44100)
    library.add_folders([root])
    library.scan(workers=1)

    def levels() -> dict[str, tuple[float | None, float | None]]:
        rows = library.catalog.conn.execute(
            "SELECT name, loudness_lufs, true_peak_db, scanned_at FROM files"
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    first = levels()
    assert abs(first["loud.wav"][0] - measure(root / "loud.wav").integrated_lufs) < 0.01
    assert abs((first["loud.wav"][0] - first["quiet.flac"][0]) - 20.0) < 0.1
    assert first["click.wav"][0] is not None  # shorter than a gating block, still measured
    assert first["silence.wav"] == (None, None)
    assert abs(first["loud.wav"][1] - 20 * math.log10(0.5)) < 0.1
    # Rows scanned before loudness was measured: the next scan measures just those,
    # without reading them again otherwise (their scan time stays).
    library.catalog.conn.execute("UPDATE files SET loudness_lufs = NULL, true_peak_db = NULL")
    scanned = dict(library.catalog.conn.execute("SELECT name, scanned_at FROM files").fetchall())
    report = library.scan(workers=1)
    assert (report.measured, report.updated, report.unchanged) == (3, 0, 4)
    assert levels() == first
    assert dict(library.catalog.conn.execute("SELECT name, scanned_at FROM files")) == scanned
    assert library.scan(workers=1).measured == 0


def test_export_names_follow_a_pattern(tmp_path):
    from engine.audio.transfer import pattern_name

    t = Transfer(rate=48000, bits="24")
    src = tmp_path / "Door Slam.wav"
    assert pattern_name("{name}_{rate}_{bits}", src, None, None, t, 48000, 3) == (
        "Door Slam_48000_24.wav"
    )
    assert pattern_name("SFX_{n}", src, 1.0, 2.5, Transfer(format="flac"), 44100, 7) == (
        "SFX_7.flac"
    )
    assert pattern_name("{name} {start}-{end}", src, 1.0, 2.5, t, 48000, 1) == (
        "Door Slam 1.000-2.500.wav"
    )
    for bad in ("{nope}", "{name}/{n}", "   ", "{"):
        with pytest.raises(TransferError):
            pattern_name(bad, src, None, None, t, 48000, 1)
    out = tmp_path / "named"
    made = _cli("export", str(write(src, tone(0.5), 44100)), "--out", str(out),
                "--rate", "48000", "--name", "SFX_{n}_{rate}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (out / "SFX_1_48000.wav").exists()
    refused = _cli("export", str(src), "--out", str(out), "--name", "{bad}")
    assert refused.returncode == 1 and "name pattern" in refused.stderr
