"""Audition playback: one output stream kept open, a feeder thread that decodes ahead.

Three threads touch a Player:

- the GUI thread calls the public methods; they only set a flag or post a command to the
  feeder and return at once (never disk, decoding or device work);
- the feeder thread opens files with soundfile, reads them block by block, converts the
  channels and the sample rate, and writes a preallocated ring buffer; it also opens,
  reopens and closes the output stream;
- the audio thread (PortAudio's) runs `_callback`, which only copies from the ring into
  the device buffer and applies fades and gain from preallocated arrays.

Feeder → audio thread hand-over is lock-free single-producer/single-consumer: the feeder
owns the write index and the "segment request" (a tuple replaced atomically), the audio
thread owns the read index. A segment request says where newly written audio starts and
how to leave the audio being played (fade out, or a sample-exact splice for loops).
"""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from engine.audio.decode import count_frames, header_problem, length_known, open_sound
from engine.audio.rates import reduced_ratio
from engine.catalog.paths import shown


class OutputStream(Protocol):
    """What the Player needs from an output stream (sounddevice.OutputStream fits)."""

    active: bool

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


# stream_factory(samplerate, channels, callback, finished_callback) -> OutputStream
StreamFactory = Callable[[int, int, Callable[..., None], Callable[[], None]], OutputStream]

STOP_FADE_S = 0.005
SEEK_FADE_S = 0.003
# Audio decoded ahead of the playhead. Enough to ride out a busy GUI thread holding the GIL,
# small enough that a new sound never waits for the old one's buffer to drain.
AHEAD_S = 0.35
# Output frames produced per feeder step; small so the first one (start latency) is cheap.
CHUNK_FRAMES = 2048
# Frames the callback may still consume while the feeder computes a loop splice.
SPLICE_MARGIN_BLOCKS = 3
FALLBACK_RATE = 48000
_GAIN_FRAMES = 8192  # per-call gain ramp buffer; bigger callbacks get a flat gain
MAX_SEMITONES = 24.0  # varispeed range, either way (REAPER's and Soundly's)

NO_DEVICE = "no audio output device"
DEVICE_GONE = "output device disappeared"

_EMPTY_REQ = (0, 0, 0, None, None, None, 0.0)


# --- channel conversion -------------------------------------------------------------------

_M3 = math.sqrt(0.5)  # -3 dB


def channel_matrix(file_channels: int, out_channels: int) -> np.ndarray | None:
    """(file_channels, out_channels) float32 mixing matrix, or None to pass through.

    Mono is duplicated; 5.1 (L R C LFE Ls Rs) and 7.1 (L R C LFE Lb Rb Ls Rs, the WAV
    order) get an ITU-style downmix without LFE, scaled so it cannot clip; other layouts
    with more than two channels play their first two. Any thread.
    """
    if file_channels == out_channels:
        return None
    m = np.zeros((file_channels, out_channels), dtype=np.float64)
    if out_channels == 1:
        m[:, 0] = 1.0 / file_channels
    elif file_channels == 1:
        m[0, :] = 1.0
    elif file_channels == 6 and out_channels == 2:
        left = {0: 1.0, 2: _M3, 4: _M3}
        for ch, g in left.items():
            m[ch, 0] = g
            m[ch ^ 1 if ch != 2 else ch, 1] = g
        m /= 1.0 + 2 * _M3
    elif file_channels == 8 and out_channels == 2:
        for ch, g in {0: 1.0, 2: _M3, 4: _M3, 6: _M3}.items():
            m[ch, 0] = g
            m[ch ^ 1 if ch != 2 else ch, 1] = g
        m /= 1.0 + 3 * _M3
    else:
        for ch in range(min(file_channels, out_channels)):
            m[ch, ch] = 1.0
    return m.astype(np.float32)


# --- streaming resampler -------------------------------------------------------------------


def sinc_kernel(up: int, down: int, zeros: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Polyphase windowed-sinc kernel, (up, taps) float32, for rate ratio up/down (reduced).

    The same Hann-windowed sinc as torchaudio.functional.resample's default (so audition
    sounds like the embedder's resampling), built with numpy so playback never imports
    torch. Row p makes output phase p; taps run over `width` inputs either side. Any thread.
    """
    base = min(up, down) * rolloff
    width = math.ceil(zeros * down / base)
    idx = np.arange(-width, width + down, dtype=np.float64)[None, :] / down
    t = (np.arange(0, -up, -1, dtype=np.float64)[:, None] / up + idx) * base
    np.clip(t, -zeros, zeros, out=t)
    window = np.cos(t * math.pi / zeros / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel *= window * (base / down)
    return kernel.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _kernel_t(up: int, down: int) -> np.ndarray:
    """sinc_kernel transposed, kept for the next sound at the same ratio (a varispeed
    ratio's kernel takes milliseconds to build)."""
    kernel = sinc_kernel(up, down).T.copy()
    kernel.flags.writeable = False
    return kernel


class StreamResampler:
    """Band-limited rate conversion of one continuous stream that arrives chunk by chunk.

    Output equals resampling the whole stream at once (torchaudio's algorithm: zero
    padding at the start and end, output j at input time j*rate_in/rate_out): each chunk
    is filtered with `width` real neighbours on both sides, and chunk boundaries fall on
    whole kernel periods so every output keeps its phase. `prime` replaces the zero
    padding at the start with real audio (what precedes a seek point or a loop start).
    A parallel track of file positions (seconds) is mapped to each output frame.
    Feeder thread only.
    """

    def __init__(
        self, rate_in: int, rate_out: int, channels: int, pos_rate: int | None = None
    ) -> None:
        """`pos_rate`: the rate the input's positions advance at (the file's own, when
        varispeed plays it as if it had `rate_in`); default rate_in."""
        self.up, self.down = reduced_ratio(rate_in, rate_out)
        self.kernel_t = _kernel_t(self.up, self.down)  # (taps, up) for matmul
        self.taps = self.kernel_t.shape[0]
        self.width = (self.taps - self.down) // 2
        self.rate_in = pos_rate or rate_in
        # History kept before the next unfinished period: a whole number of periods.
        self.ctx = -(-self.width // self.down) * self.down
        self._buf = np.zeros((self.ctx, channels), dtype=np.float32)
        self._pos = np.zeros(self.ctx, dtype=np.float64)
        self._base = self.ctx  # index in _buf of the first input not yet turned into output
        self._fed = 0
        self._emitted = 0
        steps = np.arange(self.up) * self.down
        self._phase_int = steps // self.up
        self._phase_frac = (steps % self.up) / self.up / rate_in

    def prime(self, history: np.ndarray) -> None:
        """Use `history` (frames just before the stream) instead of zeros at the start.
        Only before the first process(); at most `ctx` frames are used."""
        h = history[-self.ctx :]
        if len(h):
            self._buf[self.ctx - len(h) :] = h

    def process(self, x: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed (n, channels) float32 and its positions; returns the outputs now complete."""
        self._buf = np.concatenate([self._buf, x])
        self._pos = np.concatenate([self._pos, pos])
        self._fed += len(x)
        return self._emit(None)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """End of stream: the remaining outputs (the tail sees zeros, like torchaudio)."""
        pad = self.width + self.down
        last = self._pos[-1] if len(self._pos) else 0.0
        self._buf = np.concatenate([self._buf, np.zeros((pad, self._buf.shape[1]), np.float32)])
        self._pos = np.concatenate([self._pos, last + np.arange(1, pad + 1) / self.rate_in])
        total = -(-self._fed * self.up // self.down)
        return self._emit(total)

    def _emit(self, total_limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        periods = (len(self._buf) - self._base - self.width) // self.down
        channels = self._buf.shape[1]
        if periods <= 0:
            return np.zeros((0, channels), np.float32), np.zeros(0)
        start = self._base - self.width  # first tap of the first period
        view = np.lib.stride_tricks.sliding_window_view(self._buf[start:], self.taps, axis=0)
        windows = view[: periods * self.down : self.down]  # (periods, channels, taps)
        out = np.matmul(windows, self.kernel_t)  # (periods, channels, up)
        out = out.transpose(0, 2, 1).reshape(periods * self.up, channels)
        inputs = self._base + (np.arange(periods) * self.down)[:, None] + self._phase_int
        pos = (self._pos[inputs] + self._phase_frac).reshape(-1)
        keep = len(out)
        if total_limit is not None:
            keep = max(0, min(keep, total_limit - self._emitted))
        self._emitted += keep
        self._base += periods * self.down
        drop = self._base - self.ctx
        self._buf = self._buf[drop:]
        self._pos = self._pos[drop:]
        self._base = self.ctx
        return np.ascontiguousarray(out[:keep], dtype=np.float32), pos[:keep]


# --- the player -----------------------------------------------------------------------------


def query_output(device: int | str | None) -> tuple[int, int]:
    """(default sample rate, channels to use ≤ 2) of an output device. Raises when there is
    no output device or PortAudio cannot be loaded. Feeder thread (it may be slow)."""
    import sounddevice as sd  # raises OSError when the PortAudio library is missing

    info = sd.query_devices(device, kind="output")
    channels = int(info["max_output_channels"])
    if channels < 1:
        raise RuntimeError(f"{info['name']} has no outputs")
    return int(info["default_samplerate"]), min(2, channels)


def sounddevice_factory(device: int | str | None, block_frames: int) -> StreamFactory:
    """A stream_factory making low-latency float32 sounddevice.OutputStreams. Any thread."""

    def make(samplerate: int, channels: int, callback: Callable[..., None],
             finished_callback: Callable[[], None]) -> OutputStream:  # fmt: skip
        import sounddevice as sd

        return sd.OutputStream(
            samplerate=samplerate, channels=channels, dtype="float32", callback=callback,
            finished_callback=finished_callback, blocksize=block_frames, latency="low",
            device=device,
        )  # fmt: skip

    return make


# Fade and gain arrays have one column per channel: multiplying equal shapes lets numpy
# skip the broadcasting iterator, which allocates buffers.


def _fade_out_curve(frames: int, channels: int) -> np.ndarray:
    k = np.arange(1, frames + 1) / frames
    curve = (np.cos(k * math.pi / 2) ** 2).astype(np.float32)
    return np.ascontiguousarray(np.repeat(curve[:, None], channels, axis=1))


def _fade_in_curve(frames: int, channels: int) -> np.ndarray:
    k = np.arange(frames) / frames
    curve = (np.sin(k * math.pi / 2) ** 2).astype(np.float32)
    return np.ascontiguousarray(np.repeat(curve[:, None], channels, axis=1))


class Player:
    """Sound-designer audition: instant start, stop/seek without clicks, seamless loops.

    Public methods and properties are for the GUI thread (any one thread) and never block
    on disk, decoding or the audio device, except `close`, `sync` and `wait_for_state`.
    Failures (no device, a vanished device, undecodable files) never raise: they set
    `error` and leave the player 'stopped'.
    """

    def __init__(
        self,
        stream_factory: StreamFactory | None = None,
        device: int | str | None = None,
        block_frames: int = 512,
        *,
        samplerate: int | None = None,
    ) -> None:
        """`samplerate`: the output rate; None asks the device for its default rate (with
        a custom stream_factory, which cannot be asked, 48000)."""
        self._custom_factory = stream_factory is not None
        self._factory: StreamFactory = stream_factory or sounddevice_factory(device, block_frames)
        self._device = device
        self._block_frames = block_frames
        self._want_rate = samplerate
        self._cmds: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._cond = threading.Condition()
        # GUI-visible state, written under _cond (GUI thread and feeder).
        self._gen = 0  # bumped by play/stop so the feeder can skip superseded plays
        self._mode = "stopped"
        self._error: str | None = None
        self._path: str | None = None
        self._gain_db = 0.0
        self._cue = 0.0  # where play/toggle starts; the position shown while not playing
        self._duration = 0.0
        self._volume = 1.0  # target gain, read by the callback
        self._semitones = 0.0  # varispeed: rate and pitch together, set by set_speed
        # Stream and ring (replaced by the feeder only while no stream runs).
        self._stream: OutputStream | None = None
        self._stream_token: object | None = None
        self._rate = 0
        self._channels = 0
        self._alloc_ring(FALLBACK_RATE, 2)
        # Feeder-only source state.
        self._src: sf.SoundFile | None = None
        self._src_rate = 0
        self._src_frames = 0
        self._matrix: np.ndarray | None = None
        self._rs: StreamResampler | None = None
        self._read_pos = 0
        self._src_done = False
        self._loop: tuple[int, int] | None = None
        self._chunk_in = CHUNK_FRAMES
        self._speed = 1.0  # feeder's copy of 2 ** (semitones / 12)
        self._level = 1.0  # the playing sound's gain (loudness matching), applied on decode
        self._cut_end = False  # the sound stops before the file's end (a selection)
        self._waiters: list[threading.Event] = []
        self._feeder = threading.Thread(target=self._run, name="sonarium-audition", daemon=True)
        self._feeder.start()

    # --- GUI-thread API ------------------------------------------------------------------

    def play(
        self, path: str | Path, start: float = 0.0, gain_db: float = 0.0,
        end: float | None = None,
    ) -> None:  # fmt: skip
        """Start `path` (a catalog path) at `start` seconds (a playing sound fades out
        first), `gain_db` louder (loudness-matched audition; applied as it is decoded,
        never in the audio callback), and stop at `end` seconds (None: the end of the
        file; playing a selection). Returns at once; state is 'loading' until the first
        audio is buffered. GUI thread."""
        with self._cond:
            self._gen += 1
            gen = self._gen
            self._path = str(path)
            self._cue = max(0.0, float(start))
            self._error = None
            self._mode = "loading"
            self._cond.notify_all()
        self._gain_db = float(gain_db) if math.isfinite(gain_db) else 0.0
        stop = None if end is None or not math.isfinite(end) else max(self._cue, float(end))
        self._cmds.put(("play", gen, str(path), self._cue, self._gain_db, stop))

    def stop(self) -> None:
        """Stop with a ~5 ms fade-out. GUI thread."""
        with self._cond:
            self._gen += 1
            gen = self._gen
            self._mode = "stopped"
            self._cond.notify_all()
        self._cmds.put(("stop", gen))

    def toggle(self) -> None:
        """Stop when playing or loading; otherwise play the current file from the cue (the
        start of the last play or seek). GUI thread."""
        if self.state != "stopped":
            self.stop()
        elif self._path is not None:
            self.play(self._path, self._cue, self._gain_db)

    def set_speed(self, semitones: float) -> None:
        """Varispeed: play `semitones` (within ±MAX_SEMITONES, cents as fractions) higher
        or lower, rate and pitch together, like tape. A playing sound goes on from where
        it is (3 ms fades around the change). The resampling happens on the feeder
        thread. GUI thread."""
        st = min(MAX_SEMITONES, max(-MAX_SEMITONES, float(semitones)))
        self._semitones = 0.0 if not math.isfinite(st) else st
        self._cmds.put(("speed", self._semitones))

    @property
    def semitones(self) -> float:
        return self._semitones

    def seek(self, seconds: float) -> None:
        """Jump to `seconds` (3 ms fade out/in around the jump) when playing; when stopped,
        only moves the cue. GUI thread."""
        self._cue = max(0.0, float(seconds))
        self._cmds.put(("seek", self._cue))  # the feeder clamps it to the file's length

    def set_loop(self, start: float, end: float) -> None:
        """Loop [start, end) seconds of the current file while it plays, seamlessly: the
        wrap is sample-exact (continuous through the resampler at other rates), and audio
        already buffered past `end` is spliced out, not faded. A playhead already past
        `end` jumps to `start`; one before `start` plays into the loop; a later seek past
        `end` plays on to the end of the file. play() and stop() clear the loop. GUI
        thread."""
        self._cmds.put(("loop", float(start), float(end)))

    def clear_loop(self) -> None:
        """Stop looping: playback continues past the loop end. GUI thread."""
        self._cmds.put(("loop", None, None))

    def set_volume(self, volume: float) -> None:
        """Gain 0..1, ramped over one audio block so it never clicks. Any thread."""
        self._volume = min(1.0, max(0.0, float(volume)))

    @property
    def state(self) -> str:
        """'stopped', 'loading' or 'playing'. Any thread."""
        mode = self._mode
        if mode == "playing":
            eof = self._eof_at
            if eof is not None and self._r >= eof and self._seen == self._req[0]:
                return "stopped"  # played to the end; the feeder will catch up
        return mode

    @property
    def position(self) -> float:
        """Seconds into the file of the next frame the device will play; the cue when not
        playing. Follows the audio callback's consumption. Any thread."""
        if self.state != "playing":
            return self._cue
        req = self._req
        if req[0] != self._seen and req[3] is None:
            return float(req[6])  # a start or seek the device has not reached yet
        cur = self._cur
        r = self._r
        if r <= cur[1]:
            return float(cur[6])
        return float(self._pos_ring[(r - 1) & self._mask]) + 1.0 / self._rate

    @property
    def duration(self) -> float:
        """Length of the current file in seconds (0 until the feeder has opened it)."""
        return self._duration

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def error(self) -> str | None:
        """Why the last play failed or stopped, or None."""
        return self._error

    @property
    def volume(self) -> float:
        return self._volume

    def sync(self, timeout: float = 5.0) -> bool:
        """Block until the feeder has handled every command posted so far and buffered all
        it wants to. For tests and tools, not the GUI thread."""
        done = threading.Event()
        self._cmds.put(("sync", done))
        return done.wait(timeout)

    def wait_for_state(self, state: str, timeout: float) -> bool:
        """Block until `state` (True) or timeout (False). For tests and tools."""
        with self._cond:
            return self._cond.wait_for(lambda: self.state == state, timeout)

    def close(self) -> None:
        """Stop playback, close the stream and end the feeder (blocks ≤ ~2 s). GUI thread."""
        if self._feeder.is_alive():
            self._cmds.put(("close",))
            self._feeder.join(timeout=2.0)

    # --- ring buffer and audio callback --------------------------------------------------

    def _alloc_ring(self, rate: int, channels: int) -> None:
        """(Re)allocate everything the callback touches. Feeder/constructor, no stream."""
        self._rate = rate
        self._channels = channels
        ahead = int(AHEAD_S * rate)
        self._ahead = ahead
        # Room for the old sound's buffered audio, a new sound's and a few spare chunks.
        size = 1 << (2 * (ahead + 4 * CHUNK_FRAMES)).bit_length()
        self._mask = size - 1
        self._ring = np.zeros((size, channels), dtype=np.float32)
        self._pos_ring = np.zeros(size, dtype=np.float64)
        self._stop_curve = _fade_out_curve(max(1, round(STOP_FADE_S * rate)), channels)
        self._seek_out = _fade_out_curve(max(1, round(SEEK_FADE_S * rate)), channels)
        self._seek_in = _fade_in_curve(max(1, round(SEEK_FADE_S * rate)), channels)
        ramp = np.arange(1, _GAIN_FRAMES + 1, dtype=np.float32)[:, None]
        self._ramp = np.ascontiguousarray(np.repeat(ramp, channels, axis=1))
        self._gbuf = np.zeros((_GAIN_FRAMES, channels), dtype=np.float32)
        # Indices only grow; slots are index & mask.
        self._w = 0  # feeder-owned
        self._r = 0  # callback-owned
        self._eof_at: int | None = None  # feeder: ring index where the current sound ends
        # Segment request (feeder-owned, replaced whole): (seq, start, old_end, cut,
        # fade_out, fade_in, start_seconds). The callback acknowledges it via _seen.
        self._req: tuple[Any, ...] = _EMPTY_REQ
        self._seen = 0
        self._cur: tuple[Any, ...] = _EMPTY_REQ  # request of the audio being played
        self._fout: np.ndarray | None = None
        self._fout_pos = 0
        self._fout_end = 0
        self._fin: np.ndarray | None = None
        self._fin_pos = 0
        self._gain = self._volume

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Audio thread only. Copies the ring into outdata: no allocation of arrays, no
        locks, no I/O, no logging."""
        try:
            self._render(outdata, frames)
        except Exception:  # an exception would make PortAudio stop the stream: play silence
            outdata.fill(0.0)

    def _render(self, out: np.ndarray, frames: int) -> None:
        r = self._r
        i = 0
        while i < frames:
            req = self._req
            if self._fout is not None:  # fading out the old sound before a jump
                n = min(frames - i, self._fout_end - r)
                if n > 0:
                    self._copy(out, i, r, n)
                    p = self._fout_pos
                    np.multiply(out[i : i + n], self._fout[p : p + n], out=out[i : i + n])
                    self._fout_pos = p + n
                    r += n
                    i += n
                if r >= self._fout_end:
                    self._fout = None
                    r = self._jump(self._req, False)
                continue
            if req[0] != self._seen:
                cut = req[3]
                if cut is not None and r <= cut:
                    limit = cut  # loop splice ahead: play the old audio up to it, then jump
                    if r == cut:
                        r = self._jump(req, True)
                        continue
                elif req[4] is not None and r < req[2]:
                    self._fout = req[4]
                    self._fout_pos = 0
                    self._fout_end = min(r + req[4].shape[0], req[2])
                    continue
                else:
                    r = self._jump(req, False)
                    continue
            else:
                limit = self._w
            n = min(frames - i, limit - r)
            if n <= 0:
                out[i:frames] = 0.0  # nothing buffered (stopped, ended or an underrun)
                break
            self._copy(out, i, r, n)
            fin = self._fin
            if fin is not None:
                p = self._fin_pos
                k = min(n, fin.shape[0] - p)
                np.multiply(out[i : i + k], fin[p : p + k], out=out[i : i + k])
                self._fin_pos = p + k
                if p + k >= fin.shape[0]:
                    self._fin = None
            r += n
            i += n
        self._r = r
        self._apply_gain(out, frames)

    def _jump(self, req: tuple[Any, ...], spliced: bool) -> int:
        """Audio thread: start playing the audio of `req`; returns the new read index."""
        self._seen = req[0]
        self._cur = req
        self._fin = None if spliced else req[5]
        self._fin_pos = 0
        return req[1]

    def _copy(self, out: np.ndarray, i: int, r: int, n: int) -> None:
        """Audio thread: out[i:i+n] = ring[r:r+n] (wrapping), by slice assignment."""
        ring = self._ring
        s = r & self._mask
        first = min(n, ring.shape[0] - s)
        out[i : i + first] = ring[s : s + first]
        if first < n:
            out[i + first : i + n] = ring[: n - first]

    def _apply_gain(self, out: np.ndarray, frames: int) -> None:
        target = self._volume
        cur = self._gain
        if cur == target:
            if cur != 1.0:
                np.multiply(out, cur, out=out)
            return
        if frames <= _GAIN_FRAMES:
            g = self._gbuf[:frames]
            np.multiply(self._ramp[:frames], (target - cur) / frames, out=g)
            np.add(g, cur, out=g)
            np.multiply(out, g, out=out)
        else:
            np.multiply(out, target, out=out)
        self._gain = target

    # --- feeder thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._needs_fill():
                try:
                    cmd = self._cmds.get_nowait()
                except queue.Empty:
                    self._fill()
                    continue
            else:
                self._idle()
                # While a sound plays, wake up to refill and to notice its end.
                timeout = 0.02 if self._mode == "playing" else None
                try:
                    cmd = self._cmds.get(timeout=timeout)
                except queue.Empty:
                    continue
            if cmd[0] == "close":
                break
            try:
                self._handle(cmd)
            except Exception as exc:  # a bug must not kill the feeder: report and stop
                self._drop_source()
                self._req = self._request(None, self._stop_curve, None)
                self._fail(f"playback failed: {exc}")
        self._drop_source()
        self._close_stream()
        with self._cond:
            self._mode = "stopped"
            self._cond.notify_all()
        for ev in self._waiters:
            ev.set()

    def _handle(self, cmd: tuple[Any, ...]) -> None:
        kind = cmd[0]
        if kind == "play":
            self._do_play(cmd[1], cmd[2], cmd[3], cmd[4], cmd[5])
        elif kind == "speed":
            self._do_speed(cmd[1])
        elif kind == "stop":
            self._drop_source()
            self._req = self._request(None, self._stop_curve, None)
        elif kind == "seek":
            if self._src is not None:
                frame = min(round(cmd[1] * self._src_rate), self._src_frames)
                self._restart_at(frame, self._seek_out, self._seek_in)
        elif kind == "loop":
            self._do_loop(cmd[1], cmd[2])
        elif kind == "sync":
            self._waiters.append(cmd[1])
        elif kind == "finished" and cmd[1] is self._stream_token:
            self._stream_died()

    def _idle(self) -> None:
        """Nothing to decode: notice a dead stream or an ended sound, release waiters."""
        s = self._stream
        if s is not None and self._stream_token is not None and not s.active:
            self._stream_died()
        with self._cond:
            if self._mode == "playing" and self.state == "stopped":
                self._mode = "stopped"
                self._cond.notify_all()
                ended = True
            else:
                ended = False
        if ended:
            self._drop_source()
        for ev in self._waiters:
            ev.set()
        self._waiters.clear()

    def _fail(self, message: str, gen: int | None = None) -> None:
        """Set `error` and stop, unless a later play/stop (gen) made this one moot."""
        with self._cond:
            if gen is None or gen == self._gen:
                self._error = message
                self._mode = "stopped"
            self._cond.notify_all()

    def _do_speed(self, semitones: float) -> None:
        speed = 2.0 ** (semitones / 12.0)
        if speed == self._speed:
            return
        self._speed = speed
        if self._src is None or self._mode != "playing":
            return
        # Go on from the frame the device plays now, through a resampler for the new rate.
        self._chunk_in = self._input_chunk()
        frame = min(round(self.position * self._src_rate), self._src_frames)
        self._restart_at(frame, self._seek_out, self._seek_in)

    def _play_rate(self) -> int:
        """The rate the source is played as: its own, times the varispeed."""
        return max(1, round(self._src_rate * self._speed))

    def _input_chunk(self) -> int:
        return max(64, round(CHUNK_FRAMES * self._play_rate() / self._rate))

    def _do_play(
        self, gen: int, path: str, start: float, gain_db: float = 0.0, end: float | None = None
    ) -> None:
        if gen != self._gen:
            return  # a later play or stop is queued: skip opening this file at all
        self._drop_source()
        self._loop = None
        self._level = 10.0 ** (gain_db / 20.0)
        name = shown(Path(path).name)
        try:
            src = open_sound(path)
            problem = header_problem(src)
            if problem:
                src.close()  # the header would size the resampler and the buffers
                raise ValueError(problem)
            # A header that does not say how long the file is: count once.
            frames = src.frames if length_known(src) else count_frames(src)
        except Exception as exc:
            self._req = self._request(None, self._stop_curve, None)
            self._fail(f"cannot play {name}: {exc}", gen)
            return
        if not self._ensure_stream():
            src.close()
            return
        self._src = src
        self._src_rate = src.samplerate
        self._src_frames = max(0, frames)
        self._duration = self._src_frames / self._src_rate
        # Playing a selection: the sound ends there (a loop set later still wraps).
        self._cut_end = False
        if end is not None and round(end * self._src_rate) < self._src_frames:
            self._src_frames = max(0, round(end * self._src_rate))
            self._cut_end = True
        self._matrix = channel_matrix(src.channels, self._channels)
        self._chunk_in = self._input_chunk()
        frame = min(round(start * self._src_rate), self._src_frames)
        try:
            self._restart_at(frame, self._stop_curve, self._seek_in if frame > 0 else None)
        except Exception as exc:
            self._drop_source()
            self._req = self._request(None, self._stop_curve, None)
            self._fail(f"cannot play {name}: {exc}", gen)
            return
        with self._cond:
            if gen == self._gen:
                self._mode = "playing"
            self._cond.notify_all()

    def _output_format(self) -> tuple[int, int]:
        if self._custom_factory:
            return self._want_rate or FALLBACK_RATE, 2
        rate, channels = query_output(self._device)
        return self._want_rate or rate, channels

    def _ensure_stream(self) -> bool:
        """Open (or reopen, when the device format changed or the stream died) and start the
        output stream. False, with `error` set, when there is no usable device."""
        try:
            rate, channels = self._output_format()
        except Exception as exc:
            self._close_stream()
            self._fail(f"{NO_DEVICE} ({exc})")
            return False
        s = self._stream
        if s is not None and s.active and (rate, channels) == (self._rate, self._channels):
            return True
        self._close_stream()
        self._alloc_ring(rate, channels)  # safe: no stream is running
        token = object()
        cmds = self._cmds

        def finished() -> None:  # PortAudio's thread, whenever the stream stops
            cmds.put(("finished", token))

        stream = None
        try:
            stream = self._factory(rate, channels, self._callback, finished)
            self._stream_token = token
            stream.start()
        except Exception as exc:
            self._stream_token = None
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            self._fail(f"{NO_DEVICE} ({exc})")
            return False
        self._stream = stream
        return True

    def _close_stream(self) -> None:
        s, self._stream = self._stream, None
        self._stream_token = None  # its finished_callback is now expected, not an error
        if s is None:
            return
        for op in (s.stop, s.close):
            with contextlib.suppress(Exception):
                op()

    def _stream_died(self) -> None:
        self._drop_source()
        self._close_stream()
        self._fail(DEVICE_GONE)

    def _drop_source(self) -> None:
        if self._src is not None:
            with contextlib.suppress(Exception):
                self._src.close()
        self._src = None
        self._rs = None
        self._src_done = True
        self._eof_at = None

    def _request(
        self, start_s: float | None, fade_out: np.ndarray | None, fade_in: np.ndarray | None,
        cut: int | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """A segment request for the audio written from now on (start_s None: silence)."""
        prev = self._req
        # While the callback has not reached `prev`, it still plays what came before it.
        old_end = prev[2] if self._seen != prev[0] else self._w
        if self._ring.shape[0] - 1 - (self._w - self._r) < 4 * CHUNK_FRAMES:
            fade_out = None  # the stalled old audio may be overwritten: do not fade over it
        return (prev[0] + 1, self._w, old_end, cut, fade_out, fade_in,
                self._cue if start_s is None else start_s)  # fmt: skip

    def _restart_at(
        self, frame: int, fade_out: np.ndarray | None, fade_in: np.ndarray | None,
        cut: int | None = None, history_end: int | None = None,
    ) -> None:  # fmt: skip
        """Restart decoding at `frame` and write its first chunk with a new request.
        `history_end`: the resampler's preceding context ends there (default: `frame`)."""
        src = self._src
        assert src is not None
        self._eof_at = None
        self._src_done = False
        self._rs = None
        if self._play_rate() != self._rate:
            rs = StreamResampler(self._play_rate(), self._rate, self._channels, self._src_rate)
            hist_end = frame if history_end is None else history_end
            if hist_end > 0:
                src.seek(max(0, hist_end - rs.ctx))
                rs.prime(self._convert(src.read(hist_end - src.tell(), dtype="float32",
                                                always_2d=True)))  # fmt: skip
            self._rs = rs
        src.seek(frame)
        self._read_pos = frame
        req = self._request(frame / self._src_rate, fade_out, fade_in, cut)
        data, pos = self._produce()
        self._push(data, pos, req)
        if self._src_done:
            self._eof_at = self._w

    def _convert(self, block: np.ndarray) -> np.ndarray:
        """Source block → output channels, float32, without NaN/inf."""
        np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        if self._matrix is not None:
            block = block @ self._matrix
        if self._level != 1.0:
            block = block * np.float32(self._level)
        return np.ascontiguousarray(block, dtype=np.float32)

    def _read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to n source frames (output channels) and their positions (seconds), wrapping
        at the loop end. Sets _src_done at the end of the file."""
        src = self._src
        assert src is not None
        parts, poss = [], []
        while n > 0:
            loop = self._loop
            if loop is not None and self._read_pos == loop[1]:
                src.seek(loop[0])
                self._read_pos = loop[0]
            stop_at = self._src_frames
            if loop is not None and self._read_pos < loop[1]:
                stop_at = loop[1]
            want = min(n, stop_at - self._read_pos)
            block = src.read(want, dtype="float32", always_2d=True) if want > 0 else None
            if block is None or not len(block):
                self._src_done = True
                break
            block = self._convert(block)
            if self._cut_end and loop is None and self._read_pos + len(block) >= stop_at:
                # A selection ends inside the file: fade its last milliseconds out, as a
                # stop does, so it does not end on a click.
                n = min(len(block), max(1, round(SEEK_FADE_S * self._src_rate)))
                block[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
            parts.append(block)
            poss.append((self._read_pos + np.arange(len(block))) / self._src_rate)
            self._read_pos += len(block)
            n -= len(block)
        if not parts:
            return np.zeros((0, self._channels), np.float32), np.zeros(0)
        if len(parts) == 1:
            return parts[0], poss[0]
        return np.concatenate(parts), np.concatenate(poss)

    def _produce(self) -> tuple[np.ndarray, np.ndarray]:
        """The next chunk at the device rate, with positions."""
        data, pos = self._read(self._chunk_in)
        if self._rs is None:
            return data, pos
        out, opos = self._rs.process(data, pos)
        if self._src_done:
            tail, tpos = self._rs.flush()
            out, opos = np.concatenate([out, tail]), np.concatenate([opos, tpos])
        return out, opos

    def _push(self, data: np.ndarray, pos: np.ndarray, req: tuple[Any, ...] | None) -> None:
        """Write at the write index; post `req` (if any) before publishing the data, so the
        callback never plays it as a continuation of the old sound."""
        n = len(data)
        w = self._w
        s = w & self._mask
        first = min(n, self._ring.shape[0] - s)
        self._ring[s : s + first] = data[:first]
        self._pos_ring[s : s + first] = pos[:first]
        if first < n:
            self._ring[: n - first] = data[first:]
            self._pos_ring[: n - first] = pos[first:]
        if req is not None:
            self._req = req
        self._w = w + n

    def _needs_fill(self) -> bool:
        if self._src is None or self._src_done or self._stream is None:
            return False
        w = self._w
        ahead = w - max(self._r, self._req[1])
        free = self._ring.shape[0] - 1 - (w - self._r)
        return ahead < self._ahead and free >= 4 * CHUNK_FRAMES

    def _fill(self) -> None:
        try:
            data, pos = self._produce()
        except Exception as exc:  # a file broken half-way: play what we have, then stop
            self._src_done = True
            self._eof_at = self._w
            with self._cond:
                self._error = f"cannot decode {Path(self._path or '').name}: {exc}"
            return
        self._push(data, pos, None)
        if self._src_done:
            self._eof_at = self._w

    def _do_loop(self, start: float | None, end: float | None) -> None:
        """Apply a new loop region to the audio already buffered: find the first buffered
        frame that the new region makes wrong and splice the restarted decode in there."""
        if self._src is None:
            return
        rate = self._src_rate
        region = None
        if start is not None and end is not None:
            ls = min(max(0, round(start * rate)), self._src_frames)
            le = min(max(0, round(end * rate)), self._src_frames)
            region = (ls, le) if le > ls else None
        if region == self._loop:
            return
        self._loop = region
        req = self._req
        if self._seen != req[0] and req[3] is None:
            # The callback has not reached the latest start yet: redo that start instead.
            self._restart_at(round(req[6] * rate), req[4], req[5])
            return
        if self._seen != req[0]:
            seg, valid_end = self._cur, req[3]  # an earlier splice not reached yet: redo it
        else:
            seg, valid_end = req, self._w
        seg_start = seg[1]
        r = max(self._r, seg_start)
        pos_ring, mask = self._pos_ring, self._mask
        playhead = float(pos_ring[(r - 1) & mask]) if r > seg_start else float(seg[6])
        if region is not None and playhead * rate >= region[1] - 0.5:
            self._restart_at(region[0], self._seek_out, self._seek_in)  # past the loop
            return
        margin = SPLICE_MARGIN_BLOCKS * max(self._block_frames, 512)
        a = min(max(r + margin, seg_start), valid_end)
        a0 = a - 1 if a > seg_start else a  # include the frame before `a` to see a wrap at a
        frames = pos_ring[np.arange(a0, valid_end) & mask] * rate
        cut = valid_end
        bad = np.flatnonzero(np.diff(frames) < 0) + 1  # a wrap of the old loop
        if region is not None:
            bad = np.concatenate([bad, np.flatnonzero(frames >= region[1] - 0.5)])
        bad = bad[bad >= a - a0]
        if len(bad):
            cut = a0 + int(bad.min())
        history_end = None
        if cut > seg_start:
            last = float(pos_ring[(cut - 1) & mask]) * rate
            frame = round(last + self._play_rate() / self._rate)  # the next output's
            if region is not None and frame >= region[1] > last:
                frame, history_end = region[0], region[1]
        else:
            frame = round(seg[6] * rate)
        frame = min(frame, self._src_frames)
        self._restart_at(frame, self._seek_out, self._seek_in, cut=cut, history_end=history_end)
