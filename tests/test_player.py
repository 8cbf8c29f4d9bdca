"""Audition player: state machine, sample-exact output, fades, loops, devices, allocation.

The stream is a FakeStream whose callback the test calls itself, after `player.sync()`
(the feeder has handled every command and buffered what it wants), so every run renders
exactly the same samples.
"""

from __future__ import annotations

import inspect
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from engine.audio import player as player_mod
from engine.audio.player import DEVICE_GONE, NO_DEVICE, Player, StreamResampler, channel_matrix
from tests.audio_factory import noise, tone, write

RATE = 48000
BLOCK = 512


class FakeStream:
    """A stream-like object; `pull` runs the callback the way PortAudio would."""

    def __init__(self, samplerate, channels, callback, finished_callback):
        self.samplerate = samplerate
        self.channels = channels
        self.callback = callback
        self.finished_callback = finished_callback
        self.active = False
        self.closed = False

    def start(self):
        self.active = True

    def stop(self):
        if self.active:
            self.active = False
            self.finished_callback()

    def close(self):
        self.closed = True

    def pull(self, frames: int = BLOCK) -> np.ndarray:
        out = np.full((frames, self.channels), np.nan, dtype=np.float32)  # unwritten → NaN
        self.callback(out, frames, None, None)
        return out

    def vanish(self):
        """The device went away: PortAudio stops the stream on its own."""
        self.active = False
        self.finished_callback()


class FakeFactory:
    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.streams: list[FakeStream] = []

    def __call__(self, samplerate, channels, callback, finished_callback):
        if self.fail is not None:
            raise self.fail
        stream = FakeStream(samplerate, channels, callback, finished_callback)
        self.streams.append(stream)
        return stream

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]


@pytest.fixture
def factory():
    return FakeFactory()


@pytest.fixture
def player(factory):
    p = Player(stream_factory=factory, block_frames=BLOCK, samplerate=RATE)
    yield p
    p.close()


def drive(player: Player, stream: FakeStream, blocks: int, frames: int = BLOCK) -> np.ndarray:
    """Run the callback `blocks` times, letting the feeder catch up before each."""
    out = []
    for _ in range(blocks):
        assert player.sync()
        out.append(stream.pull(frames))
    return np.concatenate(out)


def stereo(data: np.ndarray) -> np.ndarray:
    return np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data


def start(player: Player, factory: FakeFactory, path: Path, at: float = 0.0) -> FakeStream:
    player.play(path, at)
    assert player.sync()
    assert player.state == "playing", player.error
    return factory.stream


# --- playback ---------------------------------------------------------------------------


def test_plays_the_file_samples_exactly(player, factory, tmp_path):
    data = noise(seconds=1.0, rate=RATE, channels=2, seed=1)
    path = write(tmp_path / "a.wav", data, rate=RATE, subtype="FLOAT")
    assert player.state == "stopped" and player.error is None
    stream = start(player, factory, path)
    assert (stream.samplerate, stream.channels) == (RATE, 2)
    assert player.duration == pytest.approx(1.0)
    out = drive(player, stream, 100)  # 1.07 s: the whole file, then silence
    np.testing.assert_array_equal(out[: len(data)], data)
    assert not np.any(out[len(data) :])
    assert player.sync()
    assert player.state == "stopped"
    assert player.error is None
    assert stream.active  # the stream keeps running between sounds


def test_position_follows_consumed_frames(player, factory, tmp_path):
    path = write(tmp_path / "a.wav", noise(seconds=1.0, rate=RATE), rate=RATE)
    stream = start(player, factory, path, at=0.25)
    assert player.position == pytest.approx(0.25)
    drive(player, stream, 10)
    assert player.position == pytest.approx(0.25 + 10 * BLOCK / RATE)


def test_state_is_loading_until_the_feeder_has_audio(player, tmp_path):
    path = write(tmp_path / "a.wav", noise(rate=RATE), rate=RATE)
    player.play(path)
    assert player.state in ("loading", "playing")
    assert player.path == str(path)
    assert player.wait_for_state("playing", 5)


def test_mono_is_duplicated_to_both_channels(player, factory, tmp_path):
    data = noise(seconds=0.3, rate=RATE, channels=1, seed=2)
    path = write(tmp_path / "m.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    out = drive(player, stream, 30)
    np.testing.assert_array_equal(out[: len(data)], stereo(data))


def test_six_channels_are_downmixed_without_lfe(player, factory, tmp_path):
    n = int(0.3 * RATE)
    data = np.zeros((n, 6), dtype=np.float32)
    for ch in range(6):  # a different tone on every channel
        data[:, ch] = tone(0.3, RATE, 1, freq=200.0 * (ch + 1), amp=0.4)[:, 0]
    path = write(tmp_path / "s.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    out = drive(player, stream, 30)[:n]
    g = np.sqrt(0.5)
    norm = 1 + 2 * g
    left = (data[:, 0] + g * data[:, 2] + g * data[:, 4]) / norm
    right = (data[:, 1] + g * data[:, 2] + g * data[:, 5]) / norm
    np.testing.assert_allclose(out[:, 0], left, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], right, atol=1e-6)
    m = channel_matrix(6, 2)
    assert not m[3].any()  # LFE is dropped
    assert m.sum(axis=0) == pytest.approx([1.0, 1.0])  # cannot clip


def test_other_rates_are_resampled(player, factory, tmp_path):
    src_rate = 44100
    data = tone(seconds=0.5, rate=src_rate, channels=2, freq=1000.0, amp=0.5)
    path = write(tmp_path / "r.wav", data, rate=src_rate, subtype="FLOAT")
    stream = start(player, factory, path)
    out = drive(player, stream, 60)
    expected_len = int(np.ceil(len(data) * RATE / src_rate))
    assert np.any(out[expected_len - 10 : expected_len])
    assert not np.any(out[expected_len:])
    rms = np.sqrt(np.mean(out[1000 : expected_len - 1000] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    # Same samples as resampling the whole file at once (torchaudio, the embedder's way).
    ref = torchaudio.functional.resample(torch.from_numpy(data.T.copy()), src_rate, RATE)
    np.testing.assert_allclose(out[:expected_len], ref.numpy().T, atol=1e-4)


def test_stream_resampler_matches_whole_file_resampling():
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((20011, 2))).astype(np.float32)
    for rin, rout in [(44100, 48000), (96000, 48000), (8000, 48000), (48000, 44100)]:
        rs = StreamResampler(rin, rout, 2)
        pos = np.arange(len(x)) / rin
        outs, i = [], 0
        for n in [1000, 37, 4096, 5, 3000] * 10:
            o, _ = rs.process(x[i : i + n], pos[i : i + n])
            outs.append(o)
            i += n
        outs.append(rs.flush()[0])
        y = np.concatenate(outs)
        ref = torchaudio.functional.resample(torch.from_numpy(x.T.copy()), rin, rout)
        np.testing.assert_allclose(y, ref.numpy().T, atol=5e-5)


# --- stop, seek, loop, volume -------------------------------------------------------------


def test_stop_fades_out_then_silence(player, factory, tmp_path):
    data = tone(seconds=2.0, rate=RATE, channels=2, freq=440.0, amp=1.0)  # full scale
    path = write(tmp_path / "t.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    before = drive(player, stream, 5)
    player.stop()
    assert player.state == "stopped"
    after = drive(player, stream, 3)
    fade = int(round(0.005 * RATE))
    joined = np.concatenate([before, after])[:, 0]
    assert np.max(np.abs(np.diff(joined))) < 0.07  # a sine step is 0.058; a click is ~1
    assert np.abs(after[fade // 2, 0]) < 0.8  # really fading
    assert not np.any(after[fade:])
    assert np.any(after[: fade // 2])


def test_seek_jumps_to_the_right_samples(player, factory, tmp_path):
    data = noise(seconds=2.0, rate=RATE, channels=2, seed=4)
    path = write(tmp_path / "n.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    drive(player, stream, 4)
    player.seek(1.5)
    out = drive(player, stream, 10)
    fade = int(round(0.003 * RATE))
    target = int(1.5 * RATE)
    # Fade-out of the old audio, then the new audio (fading in for `fade` frames).
    np.testing.assert_array_equal(
        out[2 * fade : 4 * BLOCK], data[target + fade : target + 4 * BLOCK - fade]
    )
    assert np.all(np.abs(out[fade : 2 * fade]) <= np.abs(data[target : target + fade]) + 1e-7)
    assert player.position == pytest.approx(1.5 + (10 * BLOCK - fade) / RATE)


def test_play_while_playing_fades_the_old_sound(player, factory, tmp_path):
    a = write(tmp_path / "a.wav", tone(2.0, RATE, 2, amp=1.0), rate=RATE, subtype="FLOAT")
    data_b = noise(seconds=1.0, rate=RATE, channels=2, seed=5)
    b = write(tmp_path / "b.wav", data_b, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, a)
    drive(player, stream, 3)
    player.play(b)
    out = drive(player, stream, 10)
    fade = int(round(0.005 * RATE))
    np.testing.assert_array_equal(out[fade : fade + len(data_b)], data_b[: len(out) - fade])
    assert stream is factory.stream and len(factory.streams) == 1  # no reopen


def _loop_expected(data: np.ndarray, ls: int, le: int, total: int) -> np.ndarray:
    parts = [data[:le]]
    while sum(len(p) for p in parts) < total:
        parts.append(data[ls:le])
    return np.concatenate(parts)[:total]


def test_loop_set_right_after_play_repeats_the_region_exactly(player, factory, tmp_path):
    data = noise(seconds=2.0, rate=RATE, channels=2, seed=6)
    path = write(tmp_path / "l.wav", data, rate=RATE, subtype="FLOAT")
    player.play(path)
    player.set_loop(0.1, 0.2)  # before the device has played anything of it
    assert player.sync()
    stream = factory.stream
    out = drive(player, stream, 60)
    ls, le = int(0.1 * RATE), int(0.2 * RATE)
    np.testing.assert_array_equal(out, _loop_expected(data, ls, le, len(out)))


def test_loop_set_while_playing_is_spliced_seamlessly(player, factory, tmp_path):
    data = noise(seconds=3.0, rate=RATE, channels=2, seed=7)
    path = write(tmp_path / "l.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    head = drive(player, stream, 4)  # the feeder is ~0.35 s ahead of this
    player.set_loop(0.2, 0.3)  # ends inside the buffered audio: a splice, no fade
    out = np.concatenate([head, drive(player, stream, 80)])
    ls, le = int(0.2 * RATE), int(0.3 * RATE)
    np.testing.assert_array_equal(out, _loop_expected(data, ls, le, len(out)))
    # A new region while the old one is playing, then clearing it: every output frame is
    # a file frame, each following the one before or wrapping at a loop end.
    player.set_loop(0.25, 0.5)
    more = drive(player, stream, 200)
    player.clear_loop()
    rest = drive(player, stream, 300)
    frames = frames_of(np.concatenate([out, more, rest]), data)
    jumps = [(int(a), int(b)) for a, b in zip(frames[:-1], frames[1:], strict=True) if b != a + 1]
    old_wraps = [(le - 1, ls)] * jumps.count((le - 1, ls))
    assert old_wraps and jumps[: len(old_wraps)] == old_wraps
    new = jumps[len(old_wraps) :]
    assert new and set(new) == {(int(0.5 * RATE) - 1, int(0.25 * RATE))}
    assert frames[-1] == len(data) - 1  # after clear_loop it ran on to the end
    assert not rest[-1].any()


def frames_of(out: np.ndarray, data: np.ndarray) -> np.ndarray:
    """For each output frame (up to the last sound), the index of the identical frame of
    `data` (noise: every frame is unique). Fails when a frame is not in the file."""
    audible = np.flatnonzero(np.any(out != 0, axis=1))
    out = out[: audible[-1] + 1]
    index = {row.tobytes(): i for i, row in enumerate(data)}
    found = [index.get(row.tobytes(), -1) for row in out]
    assert -1 not in found, "a frame that is not in the file (a fade or a glitch)"
    return np.array(found)


def test_loop_with_resampling_is_continuous(player, factory, tmp_path):
    src_rate = 44100
    data = tone(seconds=2.0, rate=src_rate, channels=1, freq=440.0, amp=0.8)
    path = write(tmp_path / "l.wav", data, rate=src_rate, subtype="FLOAT")
    stream = start(player, factory, path)
    drive(player, stream, 2)
    player.set_loop(0.5, 0.6)  # 44 whole periods: the looped signal is a clean sine
    out = drive(player, stream, 200)
    step = 2 * np.pi * 440.0 / RATE * 0.8
    assert np.max(np.abs(np.diff(out[:, 0]))) < step * 1.05
    assert player.state == "playing"
    assert 0.5 <= player.position <= 0.6


def test_set_loop_past_the_playhead_jumps_to_loop_start(player, factory, tmp_path):
    data = noise(seconds=2.0, rate=RATE, channels=2, seed=8)
    path = write(tmp_path / "l.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path, at=1.0)
    drive(player, stream, 4)
    player.set_loop(0.2, 0.4)
    drive(player, stream, 4)
    assert 0.2 <= player.position < 0.4


def test_volume_scales_and_is_smoothed(player, factory, tmp_path):
    data = noise(seconds=1.0, rate=RATE, channels=2, seed=9)
    path = write(tmp_path / "v.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    player.set_volume(0.5)
    first = drive(player, stream, 1)
    ramp = np.arange(1, BLOCK + 1) / BLOCK * -0.5 + 1.0
    np.testing.assert_allclose(first, data[:BLOCK] * ramp[:, None], rtol=1e-6, atol=1e-7)
    out = drive(player, stream, 10)
    np.testing.assert_allclose(out, 0.5 * data[BLOCK : 11 * BLOCK], rtol=1e-6)
    player.set_volume(7.0)
    assert player.volume == 1.0


def test_toggle_stops_and_replays_from_the_cue(player, factory, tmp_path):
    data = noise(seconds=1.0, rate=RATE, channels=2, seed=10)
    path = write(tmp_path / "t.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path, at=0.5)
    drive(player, stream, 3)
    player.toggle()
    assert player.state == "stopped"
    assert player.position == pytest.approx(0.5)
    drive(player, stream, 2)
    player.toggle()
    assert player.sync()
    assert player.state == "playing"
    assert player.position == pytest.approx(0.5)


# --- failures ---------------------------------------------------------------------------


def test_broken_file_sets_error_and_stops(player, factory, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    player.play(bad)
    assert player.sync()
    assert player.state == "stopped"
    assert "bad.wav" in player.error
    player.play(tmp_path / "missing.flac")
    assert player.sync()
    assert player.state == "stopped" and "missing.flac" in player.error
    good = write(tmp_path / "good.wav", noise(rate=RATE), rate=RATE)
    start(player, factory, good)
    assert player.error is None


def test_no_output_device_sets_error_without_raising(tmp_path):
    factory = FakeFactory(fail=OSError("PortAudio library not found"))
    p = Player(stream_factory=factory, samplerate=RATE)
    try:
        path = write(tmp_path / "a.wav", noise(rate=RATE), rate=RATE)
        p.play(path)
        assert p.sync()
        assert p.state == "stopped"
        assert p.error.startswith(NO_DEVICE)
        p.toggle()
        p.seek(0.1)
        p.set_loop(0.0, 0.2)
        assert p.sync()
        # The device came back: the next play opens a stream.
        factory.fail = None
        p.play(path)
        assert p.sync() and p.state == "playing" and p.error is None
    finally:
        p.close()


def test_device_vanishing_mid_play_sets_error(player, factory, tmp_path):
    path = write(tmp_path / "a.wav", noise(seconds=2.0, rate=RATE), rate=RATE)
    stream = start(player, factory, path)
    drive(player, stream, 3)
    stream.vanish()
    assert player.wait_for_state("stopped", 5)
    assert player.sync()
    assert player.error == DEVICE_GONE
    assert stream.closed
    start(player, factory, path)  # reopens
    assert len(factory.streams) == 2 and player.error is None


def test_superseded_plays_are_skipped(player, factory, tmp_path):
    paths = [write(tmp_path / f"{i}.wav", noise(rate=RATE, seed=i), rate=RATE) for i in range(5)]
    for p in paths:
        player.play(p)
    assert player.sync()
    assert player.state == "playing" and player.path == str(paths[-1])
    player.play(paths[0])
    player.stop()
    assert player.sync()
    assert player.state == "stopped"


# --- real-time safety -------------------------------------------------------------------


def _callback_lines() -> tuple[str, range]:
    lines = []
    for fn in (Player._callback, Player._render, Player._jump, Player._copy, Player._apply_gain):
        src, first = inspect.getsourcelines(fn)
        lines.append(range(first, first + len(src)))
    return player_mod.__file__, range(min(r.start for r in lines), max(r.stop for r in lines))


def test_callback_allocates_nothing(player, factory, tmp_path):
    data = noise(seconds=1.0, rate=RATE, channels=1, seed=11)
    path = write(tmp_path / "a.wav", data, rate=RATE)
    stream = start(player, factory, path)
    player.set_loop(0.1, 0.9)  # keeps the feeder busy forever: plenty of buffered audio
    assert player.sync()
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    filename, lines = _callback_lines()

    def owned(snapshot):
        return sum(
            s.size
            for s in snapshot.statistics("lineno")
            if s.traceback[0].filename == filename and s.traceback[0].lineno in lines
        )

    def run(n):
        for k in range(n):
            if k % 16 == 0:
                player.set_volume(0.5 + (k % 32) / 64)  # exercise the gain ramp
            if k % 20 == 0:
                assert player.sync()
            stream.callback(out, BLOCK, None, None)

    run(50)  # warm up caches
    tracemalloc.start(1)
    try:
        run(50)  # the scalars the callback keeps (gain, indices) are now traced ones
        before = owned(tracemalloc.take_snapshot())
        run(600)
        after = owned(tracemalloc.take_snapshot())
        # Peak while the feeder is parked (no other allocations can mix in).
        player.seek(0.1)
        assert player.sync()
        gate = _park_feeder(player)
        try:
            peaks = []
            for k in range(20):
                if k == 5:
                    player.set_volume(0.3)  # a gain ramp inside the measured calls
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                stream.callback(out, BLOCK, None, None)
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            gate.set()
    finally:
        tracemalloc.stop()
    assert after - before <= 0
    # One block of audio is 4096 bytes; a temporary array would show up as that much.
    assert max(peaks) < 1024, peaks
    assert np.any(out)


def _park_feeder(player: Player):
    import threading

    gate, parked = threading.Event(), threading.Event()

    class Park:
        def set(self):  # called by the feeder when idle, in place of a sync event
            parked.set()
            gate.wait(10)

    player._cmds.put(("sync", Park()))
    assert parked.wait(5)
    return gate


# --- a real PortAudio stream --------------------------------------------------------------


@pytest.mark.audio_device
def test_real_output_stream_plays_to_the_end(tmp_path):
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception as exc:  # PortAudio missing or broken
        pytest.skip(f"PortAudio unavailable: {exc}")
    if not any(d["max_output_channels"] > 0 for d in devices):
        pytest.skip("no audio output device")
    path = write(tmp_path / "short.wav", tone(seconds=0.3, rate=44100, amp=0.2), rate=44100)
    p = Player()
    try:
        p.play(path)
        assert p.state == "loading"
        # A null device (CI) consumes audio faster than real time: 'playing' may be brief.
        assert p.wait_for_state("stopped", 10), p.state
        assert p.error is None
        assert p.duration == pytest.approx(0.3)
        # Every frame went through the callback (at the device's rate, maybe resampled).
        assert p._r >= int(0.3 * p._rate) - 1
    finally:
        p.close()


# --- varispeed and loudness matching ---------------------------------------------------------


def _dominant(out: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(out[:, 0] * np.hanning(len(out))))
    return float(np.argmax(spectrum) * rate / len(out))


@pytest.mark.parametrize("semitones", [-12.0, 7.0, 0.5, 24.0])
def test_varispeed_changes_rate_and_pitch_together(player, factory, tmp_path, semitones):
    data = tone(seconds=1.0, rate=RATE, channels=1, freq=440.0, amp=0.5)
    path = write(tmp_path / "t.wav", data, rate=RATE, subtype="FLOAT")
    player.set_speed(semitones)
    stream = start(player, factory, path)
    speed = 2 ** (semitones / 12)
    played = int(len(data) / speed)  # output frames the whole file takes at this speed
    out = drive(player, stream, -(-(played + 4 * BLOCK) // BLOCK))
    body = out[256 : played - 256]
    assert _dominant(body, RATE) == pytest.approx(440.0 * speed, rel=0.004)  # within 7 cents
    assert not np.any(out[played + 64 :])  # it ends when the sped-up file ends
    assert np.any(out[played - 64 : played])
    assert player.semitones == semitones


def test_varispeed_while_playing_goes_on_from_the_same_place(player, factory, tmp_path):
    data = tone(seconds=2.0, rate=RATE, channels=1, freq=440.0, amp=0.5)
    path = write(tmp_path / "t.wav", data, rate=RATE, subtype="FLOAT")
    stream = start(player, factory, path)
    drive(player, stream, 40)
    before = player.position
    player.set_speed(-12.0)
    assert player.sync()
    assert player.position == pytest.approx(before, abs=0.02)
    out = drive(player, stream, 40)
    assert _dominant(out[2048:], RATE) == pytest.approx(220.0, rel=0.01)
    # Half speed: 40 blocks advance the file by half as many seconds.
    assert player.position - before == pytest.approx(40 * BLOCK / RATE / 2, rel=0.05)
    player.set_speed(99.0)
    assert player.semitones == 24.0  # clamped to the range


def test_loudness_gain_is_applied_as_the_sound_is_decoded(player, factory, tmp_path):
    data = noise(seconds=0.5, rate=RATE, channels=2, seed=3)
    path = write(tmp_path / "n.wav", data, rate=RATE, subtype="FLOAT")
    player.play(path, 0.0, gain_db=-6.0)
    assert player.sync() and player.state == "playing"
    out = drive(player, factory.stream, 60)
    np.testing.assert_allclose(out[: len(data)], data * 10 ** (-6 / 20), atol=1e-6)
    player.stop()
    assert player.sync()
    player.toggle()  # played again from the cue: the same gain
    assert player.sync()
    out = drive(player, factory.stream, 60)
    np.testing.assert_allclose(out[: len(data)], data * 10 ** (-6 / 20), atol=1e-6)


def test_a_selection_plays_alone_and_stops_at_its_end(player, factory, tmp_path):
    data = noise(seconds=1.0, rate=RATE, channels=2, seed=5)
    path = write(tmp_path / "n.wav", data, rate=RATE, subtype="FLOAT")
    player.play(path, 0.25, end=0.5)
    assert player.sync() and player.state == "playing"
    out = drive(player, factory.stream, 60)
    a, b = int(0.25 * RATE), int(0.5 * RATE)
    fade = int(0.003 * RATE)  # a 3 ms fade in (started inside the file) and out (ended)
    np.testing.assert_array_equal(out[fade : b - a - fade], data[a + fade : b - fade])
    assert abs(out[b - a - 1]).max() < 0.01 * abs(data[b - 1]).max() + 1e-6
    assert not np.any(out[b - a :])  # then silence: it stopped at the selection's end
    assert player.sync() and player.state == "stopped"
