"""Header values that would size memory: odd and film pull-down rates, many channels,
lengths the header gets wrong or does not give. Every plausible file works within a fixed
budget per file (measured under an address-space limit in a subprocess); FLACs of unknown
length are read, played and embedded whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from engine.audio.decode import decode_mono, length_known, open_sound
from engine.audio.rates import MAX_KERNEL_ELEMENTS, kernel_elements, reduced_ratio, working_rate
from engine.config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from engine.scan.peaks import _UNITS, DETAIL_BUCKETS, PeakAccumulator, decode_peaks
from tests.audio_factory import tone, write
from tests.conftest import ROOT
from tests.test_player import FakeFactory, drive

# The most one file may add to a process's address space while it is decoded, downmixed
# and resampled for the models (docs/architecture.md, memory per file).
BUDGET_MB = 768


def test_every_readable_rate_gets_a_bounded_kernel_within_one_percent():
    worst = 0.0
    for target in (44_100, 48_000, 22_050, 32_000, 96_000):
        for rate in [*range(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE + 1, 997), 44_056, 44_099, 47_952]:
            up, down = reduced_ratio(rate, target)
            assert kernel_elements(up, down) <= MAX_KERNEL_ELEMENTS, (rate, target)
            worst = max(worst, abs(working_rate(rate, target) - rate) / rate)
    assert worst < 0.01
    # Ordinary rates are exact; pull-down rates move by a few hertz.
    for rate in (8_000, 11_025, 22_050, 44_100, 48_000, 88_200, 96_000, 192_000, 768_000):
        assert working_rate(rate, 48_000) == rate and working_rate(rate, 44_100) == rate
    assert abs(working_rate(44_056, 48_000) - 44_056) <= 10
    assert abs(working_rate(47_952, 44_100) - 47_952) <= 10


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from engine.audio.decode import decode_mono
    from engine.audio.resample import resample

    decode_mono(sys.argv[1])  # warm up: libraries loaded, thread pools started
    resample(np.zeros(4800, np.float32), 48000, 44100)

    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    limit = vm_bytes() + int(sys.argv[2]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    for path in sys.argv[3:]:
        audio, rate = decode_mono(path)
        lengths = [len(resample(audio, rate, t)) for t in (44100, 48000, 22050)]
        out[path] = {"rate": rate, "frames": len(audio), "resampled": lengths}
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_odd_rates_and_many_channels_stay_within_the_budget(tmp_path):
    """Before the bounded kernels, 44,099 Hz -> 48 kHz asked for an 8 GB kernel and 256
    channels were read 262,144 frames at a time (268 MB per block)."""
    files = {
        "pulldown_44056.wav": (44_056, 1, 20.0),
        "pulldown_47952.wav": (47_952, 2, 20.0),
        "odd_44099.wav": (44_099, 1, 20.0),
        "odd_1001.wav": (1_001, 1, 5.0),
        "many_256ch.wav": (48_000, 256, 4.0),
        "high_768k.wav": (768_000, 1, 50.0),  # more than MAX_SAMPLES: decoded in part
    }
    paths = []
    for name, (rate, channels, seconds) in files.items():
        paths.append(str(write(tmp_path / name, tone(seconds, rate, channels), rate)))
    warm = str(write(tmp_path / "warm.wav", tone(0.5, 48_000), 48_000))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, warm, str(BUDGET_MB), *paths],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for path, (rate, _, seconds) in zip(paths, files.values(), strict=True):
        got = result[path]
        expected = min(round(seconds * rate), int(600 * 48_000))
        assert got["rate"] == rate and got["frames"] == expected
        decoded = got["frames"] / rate
        for target, n in zip((44_100, 48_000, 22_050), got["resampled"], strict=True):
            assert n == pytest.approx(decoded * target, rel=0.01), (path, target)


def test_peaks_stay_bounded_when_the_header_understates_the_length():
    """A header that says one frame (or nothing) for a long file: the waveform still
    covers the whole file, in at most 2 x _UNITS units, and matches a correct header's."""
    rng = np.random.default_rng(0)
    blocks = [rng.uniform(-1, 1, (50_000, 2)).astype(np.float32) * (i % 7) / 7 for i in range(60)]
    frames = sum(len(b) for b in blocks)
    wrong, right = PeakAccumulator(1), PeakAccumulator(frames)
    for block in blocks:
        wrong.add(block)
        right.add(block)
        assert wrong._units < 2 * _UNITS
    w_min, w_max = decode_peaks(wrong.finish()[1])
    r_min, r_max = decode_peaks(right.finish()[1])
    assert len(w_min) == len(r_min) == DETAIL_BUCKETS
    # The same shape (bucket edges differ a little): the loudness steps line up.
    assert np.corrcoef(w_max, r_max)[0, 1] > 0.98 and np.corrcoef(w_min, r_min)[0, 1] > 0.98


def _unknown_length_flac(path, seconds=2.0, rate=44_100):
    """A valid FLAC whose STREAMINFO total-samples field is 0 ("unknown"), as encoders
    writing to a pipe leave it."""
    data = tone(seconds, rate, 2)
    sf.write(str(path), data, rate, subtype="PCM_16", format="FLAC")
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO comes first
    fields = int.from_bytes(raw[18:26], "big")
    raw[18:26] = (fields & ~((1 << 36) - 1)).to_bytes(8, "big")
    path.write_bytes(bytes(raw))
    return data


def test_a_flac_of_unknown_length_is_read_played_and_decoded_whole(tmp_path, library):
    path = tmp_path / "lib" / "streamed.flac"
    path.parent.mkdir()
    data = _unknown_length_flac(path)
    with open_sound(str(path)) as snd:
        assert not length_known(snd)
    library.add_folders([path.parent])
    library.scan(workers=1)
    row = library.catalog.file_by_path(str(path))
    assert row["status"] == "ok", row["error"]
    assert row["frames"] == len(data) and row["duration"] == pytest.approx(2.0)
    audio, rate = decode_mono(str(path))
    assert rate == 44_100 and len(audio) == len(data)
    region, _ = decode_mono(str(path), 0.5, 1.0)
    assert len(region) == 22_050
    np.testing.assert_allclose(region, audio[22_050:44_100], atol=1e-6)

    from engine.audio.player import Player

    factory = FakeFactory()
    player = Player(stream_factory=factory, block_frames=512, samplerate=44_100)
    try:
        player.play(str(path))
        assert player.sync() and player.state == "playing", player.error
        assert player.duration == pytest.approx(2.0)
        out = drive(player, factory.stream, 10)
        np.testing.assert_allclose(out, data[: len(out)], atol=1e-4)
    finally:
        player.close()


def test_the_player_refuses_an_implausible_header(tmp_path):
    from engine.audio.player import Player

    path = tmp_path / "bad_rate.wav"
    write(path, tone(0.1, 8_000), 8_000)
    raw = bytearray(path.read_bytes())
    raw[24:28] = (67_108_864).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(raw))
    player = Player(stream_factory=FakeFactory(), block_frames=512, samplerate=48_000)
    try:
        player.play(str(path))
        assert player.sync()
        assert player.state == "stopped" and "implausible header" in (player.error or "")
    finally:
        player.close()
