"""The detail view: fetched peaks and spectrograms (engine/audio/views.py), and the
WaveformView's zoom, scroll, ruler, lanes and spectrogram (offscreen)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pytestqt")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402

import engine.audio.views as views  # noqa: E402
from gui.waveform import (  # noqa: E402
    BACKGROUND,
    RULER_PX,
    WaveformView,
    format_time,
    spectrogram_image,
    tick_step,
)
from tests.audio_factory import noise, tone, write  # noqa: E402


def _brute(data: np.ndarray, first: int, last: int, columns: int):
    edges = first + (np.arange(columns + 1) * (last - first)) // columns
    # A column narrower than a frame shows the frame it falls on.
    lo = np.array(
        [data[a : max(b, a + 1)].min() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    hi = np.array(
        [data[a : max(b, a + 1)].max() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    return lo, hi


@pytest.mark.parametrize(("start", "end", "columns"), [(0, 3, 300), (0.5, 0.52, 700), (1, 2.9, 1)])
def test_range_peaks_are_the_stretchs_min_and_max(tmp_path, monkeypatch, start, end, columns):
    monkeypatch.setattr(views, "_BLOCK", 1000)  # many blocks, columns across their edges
    rate = 8000
    data = noise(3.0, rate, channels=2, seed=4)
    path = write(tmp_path / "n.wav", data, rate, "FLOAT")
    first, last = int(np.floor(start * rate)), int(np.ceil(end * rate))
    mins, maxs = views.range_peaks(path, start, end, columns, per_channel=True)
    assert mins.shape == (2, columns)
    for c in range(2):
        lo, hi = _brute(data[:, c], first, last, columns)
        np.testing.assert_allclose(mins[c], lo, atol=1e-7)
        np.testing.assert_allclose(maxs[c], hi, atol=1e-7)
    both = views.range_peaks(path, start, end, columns)
    np.testing.assert_allclose(both[0], mins.min(axis=0), atol=1e-7)
    np.testing.assert_allclose(both[1], maxs.max(axis=0), atol=1e-7)


def test_range_peaks_past_the_end_hold_zero(tmp_path):
    path = write(tmp_path / "t.wav", tone(1.0, 8000), 8000)
    mins, maxs = views.range_peaks(path, 0.5, 2.0, 30)
    assert maxs[:9].max() > 0.4 and not maxs[12:].any() and not mins[12:].any()


@pytest.mark.parametrize("whole", [True, False])
def test_spectrogram_puts_a_tone_in_its_row(tmp_path, monkeypatch, whole):
    if not whole:
        monkeypatch.setattr(views, "_READ_WHOLE_FRAMES", 1000)  # one window read per column
    rate = 48000
    path = write(tmp_path / "t.wav", tone(2.0, rate, freq=1000.0, amp=0.5), rate, "FLOAT")
    levels = views.spectrogram(path, 0.0, 2.0, 120, 200)
    assert levels.shape == (200, 120) and levels.dtype == np.uint8
    brightest = int(np.argmax(levels[:, 10:-10].mean(axis=1)))
    edges = views._frequencies(200, rate)[::-1]  # row 0 is the top: the highest
    # Within a row of it (rows near 1 kHz are about one FFT bin, 23 Hz, apart).
    assert edges[brightest + 2] <= 1000.0 <= edges[brightest - 1]
    assert levels[:, 10:-10].max() > 200 and levels[-5:, 10:-10].mean() < 80


@pytest.fixture
def view(qtbot):
    w = WaveformView()
    qtbot.addWidget(w)
    w.resize(400, 160)
    w.show()
    qtbot.waitExposed(w)
    wave = np.sin(np.linspace(0, 40, 2048)).astype(np.float32) * 0.5
    w.set_peaks(-np.abs(wave), np.abs(wave), 10.0, channels=2, rate=48000)
    return w


def _wheel(view, dy: int, x: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    event = QWheelEvent(
        QPointF(x, 50), QPointF(view.mapToGlobal(QPoint(x, 50))), QPoint(0, 0), QPoint(0, dy),
        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    view.wheelEvent(event)


def test_zoom_scroll_and_fit(qtbot, view):
    assert view.view() == (0.0, 10.0)
    with qtbot.waitSignal(view.view_changed, timeout=1000):
        _wheel(view, 120, 100)  # in, around the pointer at a quarter of the width
    v0, v1 = view.view()
    assert v1 - v0 == pytest.approx(10.0 / 1.5) and (100 / 400) * (v1 - v0) + v0 == pytest.approx(
        2.5
    )
    _wheel(view, -120, 100)
    assert view.view() == pytest.approx((0.0, 10.0))
    view.set_view(2.0, 3.0)
    _wheel(view, -120, 200, Qt.KeyboardModifier.ShiftModifier)  # scrolls, same span
    assert view.view()[1] - view.view()[0] == pytest.approx(1.0) and view.view()[0] > 2.0
    # Clicks map through the zoomed view.
    view.set_view(2.0, 3.0)
    with qtbot.waitSignal(view.seek_requested, timeout=1000) as seek:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(200, 50))
    assert seek.args[0] == pytest.approx(2.5, abs=0.01)
    view.set_view(-5.0, 1e-6)  # clamped: inside the sound, not narrower than the minimum
    assert view.view()[0] == 0.0 and view.view()[1] > 0.0
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=QPoint(50, 50))
    assert view.view() == (0.0, 10.0)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.view()[1] - view.view()[0] == pytest.approx(10.0 / 1.5)


def test_zooming_past_the_stored_peaks_asks_for_detail(qtbot, view):
    with qtbot.assertNotEmitted(view.detail_wanted, wait=150):
        view.set_view(0.0, 8.0)  # 1,600 stored buckets still cover 400 pixels
    with qtbot.waitSignal(view.detail_wanted, timeout=1000) as wanted:
        view.set_view(1.0, 2.0)  # 205 buckets for 400 pixels: fetch finer peaks
    start, end, columns, rows = wanted.args
    assert (start, end, columns) == (1.0, 2.0, 400) and rows > 0
    before = view.grab().toImage()
    finer = np.full(400, 0.9, dtype=np.float32)
    view.set_detail(1.0, 2.0, -finer, finer, False)
    after = view.grab().toImage()
    assert after.pixelColor(200, 8).rgb() != before.pixelColor(200, 8).rgb()


def test_lanes_and_spectrogram_are_drawn(qtbot, view):
    with qtbot.waitSignal(view.detail_wanted, timeout=1000):
        view.set_lanes(True)  # per-channel peaks come from the file
    assert view.lanes()
    lanes = np.stack([np.full(400, 0.2, np.float32), np.full(400, 0.9, np.float32)])
    view.set_detail(0.0, 10.0, -lanes, lanes, True)
    image = view.grab().toImage()
    h = (160 - RULER_PX) // 2
    assert image.pixelColor(200, 2).rgb() == BACKGROUND.rgb()  # lane 1 is quiet
    assert image.pixelColor(200, h + 5).rgb() != BACKGROUND.rgb()  # lane 2 is loud
    with qtbot.waitSignal(view.detail_wanted, timeout=1000):
        view.set_mode("spectrogram")
    levels = np.full((64, 400), 255, dtype=np.uint8)
    view.set_spectrogram(0.0, 10.0, spectrogram_image(levels))
    image = view.grab().toImage()
    colour = image.pixelColor(200, 20)
    assert colour.red() > 240 and colour.green() > 240  # the map's brightest
    with pytest.raises(ValueError):
        view.set_mode("sonogram")


def test_ruler_labels_and_steps():
    assert format_time(1.25, "seconds") == "1.25"
    assert format_time(75.5, "seconds") == "1:15.500"
    assert format_time(1.25, "milliseconds") == "1250 ms"
    assert format_time(1.25, "samples", rate=48000) == "60000"
    assert format_time(3661.5, "timecode") == "01:01:01:12"
    assert tick_step(10.0, 800) == 1.0 and tick_step(0.01, 800) == 0.001
    assert tick_step(3600.0, 1000) == 500.0


def test_a_playing_playhead_turns_the_page_of_a_zoomed_view(view):
    view.set_view(0.0, 2.0)
    view.set_playhead(2.5)
    assert view.view() == pytest.approx((2.5, 4.5))
    view.fit()
    view.set_playhead(9.0)
    assert view.view() == (0.0, 10.0)
