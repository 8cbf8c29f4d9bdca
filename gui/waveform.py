"""Waveform drawing: the detail pane's large view and the mini waveform of a result row.

Both draw precomputed min/max peaks (engine.scan.peaks), one vertical line per pixel column, so
drawing never touches audio or the database. GUI thread only.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLine, QPoint, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.audio.views import frequency_span

BACKGROUND = QColor("#1b1d21")
CENTER_LINE = QColor("#3a3e46")
WAVE = QColor("#4fb3e8")
MOMENT = QColor(255, 190, 60, 70)
SELECTION = QColor(120, 170, 255, 80)
SELECTION_EDGE = QColor(150, 190, 255, 200)
PLAYHEAD = QColor("#ff5a5a")

# A press that moves less than this is still a click: hands shake.
DRAG_THRESHOLD_PX = 3


def pool_to_columns(
    mins: np.ndarray, maxs: np.ndarray, columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks resampled to `columns` pairs: min/max pooling when shrinking, repeats when
    growing, so a transient never disappears at any width. Any thread."""
    n = min(len(mins), len(maxs))
    if n == 0 or columns <= 0:
        empty = np.zeros(0, dtype=np.float32)
        return empty, empty
    starts = (np.arange(columns, dtype=np.int64) * n) // columns
    # reduceat over a non-increasing pair of indices yields the single element at the
    # first one, which is exactly the repeat wanted when there are fewer peaks than columns.
    lo = np.minimum.reduceat(np.asarray(mins[:n], dtype=np.float32), starts)
    hi = np.maximum.reduceat(np.asarray(maxs[:n], dtype=np.float32), starts)
    return lo, hi


def column_lines(rect: QRect, mins: np.ndarray, maxs: np.ndarray) -> list[QLine]:
    """One vertical QLine per pixel column of `rect` for peaks already pooled to
    rect.width() columns (values in [-1, 1], +1 at the top). Any thread."""
    if len(mins) == 0:
        return []
    half = (rect.height() - 1) / 2.0
    mid = rect.top() + half
    top = np.rint(mid - np.clip(maxs, -1.0, 1.0) * half).astype(np.int64)
    bottom = np.rint(mid - np.clip(mins, -1.0, 1.0) * half).astype(np.int64)
    # Quantised peaks can have min > max for near-silent buckets; draw them the right way up.
    top, bottom = np.minimum(top, bottom), np.maximum(top, bottom)
    xs = np.arange(rect.left(), rect.left() + len(mins))
    return [
        QLine(x, y0, x, y1)
        for x, y0, y1 in zip(xs.tolist(), top.tolist(), bottom.tolist(), strict=True)
    ]


def paint_mini_waveform(
    painter: QPainter,
    rect: QRect | QRectF,
    mins: np.ndarray | None,
    maxs: np.ndarray | None,
    color: QColor,
) -> None:
    """Draw peaks into `rect` with `painter`; a flat center line when there are none.

    Leaves the painter's state as it found it. GUI thread only (or any thread painting
    on a QImage).
    """
    rect = rect.toRect() if isinstance(rect, QRectF) else QRect(rect)
    if rect.width() <= 0 or rect.height() <= 0:
        return
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    painter.setPen(QPen(color, 1))
    lines: list[QLine] = []
    if mins is not None and maxs is not None:
        lines = column_lines(rect, *pool_to_columns(mins, maxs, rect.width()))
    if lines:
        painter.drawLines(lines)
    else:
        mid = rect.top() + (rect.height() - 1) // 2
        painter.drawLine(rect.left(), mid, rect.right(), mid)
    painter.restore()


LABEL_PLATE = QColor(0, 0, 0, 150)  # behind the spectrogram's frequency labels
# Below the waveform: the time ruler.
RULER_PX = 18
RULER_BG = QColor("#24272d")
RULER_TEXT = QColor("#9aa3ad")
LANE_LINE = QColor("#2c3036")
TIME_FORMATS = ("seconds", "milliseconds", "samples", "timecode")
MIN_VIEW_SECONDS = 0.002  # the closest zoom: a couple of milliseconds across
ZOOM_STEP = 1.5


def format_time(seconds: float, fmt: str, rate: int = 48000, fps: float = 25.0) -> str:
    """A ruler label: seconds (1.250), milliseconds (1250 ms), samples (60000) or
    timecode (00:00:01:06 at `fps`). Any thread."""
    seconds = max(0.0, seconds)
    if fmt == "milliseconds":
        return f"{seconds * 1000:.0f} ms"
    if fmt == "samples":
        return str(int(round(seconds * rate)))
    if fmt == "timecode":
        frames = int(seconds * fps + 1e-9)
        f = frames % int(round(fps))
        s = int(seconds)
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{seconds % 60:06.3f}"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") if seconds % 1 else f"{seconds:.0f}"


def tick_step(span: float, width: int, min_px: int = 80) -> float:
    """Seconds between labelled ticks: a 1-2-5 step leaving at least `min_px` between."""
    if span <= 0 or width <= 0:
        return 1.0
    raw = span * min_px / width
    power = 10.0 ** np.floor(np.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw:
            return float(m * power)
    return float(10 * power)


def spectrogram_colours() -> np.ndarray:
    """(256, 3) uint8: a perceptually ordered dark-to-bright map (black, violet, red,
    orange, pale yellow), readable on the dark theme and in print."""
    anchors = np.array([[0, 0, 4], [60, 15, 110], [185, 55, 85], [250, 140, 40], [252, 250, 190]],
                       dtype=np.float64)  # fmt: skip
    x = np.linspace(0, len(anchors) - 1, 256)
    i = np.minimum(np.floor(x).astype(int), len(anchors) - 2)
    f = (x - i)[:, None]
    return np.rint(anchors[i] * (1 - f) + anchors[i + 1] * f).astype(np.uint8)


_COLOURS = spectrogram_colours()


def spectrogram_image(levels: np.ndarray) -> QImage:
    """A QImage of (rows, columns) uint8 levels (engine.audio.views.spectrogram)."""
    rgb = _COLOURS[levels]
    argb = np.empty(levels.shape + (4,), dtype=np.uint8)
    argb[..., 0], argb[..., 1], argb[..., 2], argb[..., 3] = (
        rgb[..., 2],
        rgb[..., 1],
        rgb[..., 0],
        255,
    )
    h, w = levels.shape
    image = QImage(argb.tobytes(), w, h, 4 * w, QImage.Format.Format_ARGB32)
    return image.copy()  # owns its pixels


class WaveformView(QWidget):
    """The large view of the selected sound: waveform (one lane, or one per channel),
    spectrogram or both stacked, with a time ruler, playhead, moment and selection.

    Zoom with the wheel (around the pointer) or +/-, scroll with Shift+wheel or the
    pane's scroll bar, double-click to fit. A click emits seek_requested(seconds); a
    press-drag-release selects a region and emits region_selected(start, end);
    view_changed(start, end) follows every zoom and scroll. When what is shown needs more
    than the stored peaks (zoomed in, lanes) or a spectrogram, detail_wanted(start, end,
    columns, rows) asks for it (debounced); set_detail / set_spectrogram deliver it.
    GUI thread only.
    """

    seek_requested = Signal(float)
    region_selected = Signal(float, float)
    view_changed = Signal(float, float)
    detail_wanted = Signal(float, float, int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.IBeamCursor)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._mins = np.zeros(0, dtype=np.float32)
        self._maxs = np.zeros(0, dtype=np.float32)
        self._duration = 0.0
        self._view = (0.0, 0.0)
        self._playhead: float | None = None
        self._moment: tuple[float, float] | None = None
        self._selection: tuple[float, float] | None = None
        self._press_x: float | None = None
        self._drag_x: float | None = None
        self._mode = "waveform"  # waveform | spectrogram | both
        self._lanes = False
        self._channels = 1
        self._rate = 48000
        self._time_format = "seconds"
        # Fetched detail for a view: (start, end, mins, maxs), per channel when lanes.
        self._detail: tuple[float, float, np.ndarray, np.ndarray, bool] | None = None
        self._spectrum: tuple[float, float, QImage] | None = None
        self._lines_key: tuple | None = None
        self._lines: list[QLine] = []
        self._wanted = QTimer(self)
        self._wanted.setSingleShot(True)
        self._wanted.setInterval(60)
        self._wanted.timeout.connect(self._ask_detail)
        self._asked: tuple | None = None

    # -- content ---------------------------------------------------------------------

    def set_peaks(
        self, mins: np.ndarray, maxs: np.ndarray, duration: float, channels: int = 1,
        rate: int = 48000,
    ) -> None:  # fmt: skip
        """Show a new file's stored peaks, the whole file in view. Clears the playhead,
        moment, selection and fetched detail."""
        self._mins = np.asarray(mins, dtype=np.float32)
        self._maxs = np.asarray(maxs, dtype=np.float32)
        self._duration = max(0.0, float(duration))
        self._channels = max(1, int(channels))
        self._rate = max(1, int(rate))
        self._view = (0.0, self._duration)
        self._playhead = None
        self._moment = None
        self._selection = None
        self._press_x = self._drag_x = None
        self._detail = None
        self._spectrum = None
        self._asked = None
        self._lines_key = None
        self._changed_view()

    def clear(self) -> None:
        """Show nothing (no file selected)."""
        self.set_peaks(np.zeros(0), np.zeros(0), 0.0)

    def duration(self) -> float:
        """The sound's length in seconds (0 when empty)."""
        return self._duration

    def set_playhead(self, seconds: float | None) -> None:
        """Move the playhead line; None hides it. While playing, a playhead that leaves
        a zoomed view turns the page."""
        self._playhead = None if seconds is None else float(seconds)
        v0, v1 = self._view
        if self._playhead is not None and self._zoomed() and not v0 <= self._playhead <= v1:
            span = v1 - v0
            self.set_view(self._playhead, self._playhead + span)
        self.update()

    def set_moment(self, start: float | None, end: float | None) -> None:
        """Tint the best-matching moment of a search result; None for either hides it."""
        if start is None or end is None:
            self._moment = None
        else:
            self._moment = (min(start, end), max(start, end))
        self.update()

    def selection(self) -> tuple[float, float] | None:
        """The selected region in seconds (start < end), or None."""
        return self._selection

    def set_selection(self, start: float, end: float) -> None:
        """Select [start, end) seconds (clamped to the file), as a drag would."""
        a, b = sorted((max(0.0, start), min(self._duration, end)))
        self._selection = (a, b) if b > a else None
        self.update()

    def clear_selection(self) -> None:
        """Remove the selected region."""
        self._selection = None
        self.update()

    # -- view: zoom, scroll, lanes, spectrogram ------------------------------------------

    def view(self) -> tuple[float, float]:
        """The seconds shown, (start, end)."""
        return self._view

    def _zoomed(self) -> bool:
        return self._view[1] - self._view[0] < self._duration - 1e-9

    def set_view(self, start: float, end: float) -> None:
        """Show [start, end) seconds (kept inside the sound, at least MIN_VIEW_SECONDS)."""
        if self._duration <= 0:
            return
        span = min(self._duration, max(MIN_VIEW_SECONDS, end - start))
        start = min(max(0.0, start), self._duration - span)
        view = (start, start + span)
        if view != self._view:
            self._view = view
            self._changed_view()

    def zoom(self, factor: float, anchor: float | None = None) -> None:
        """Zoom in (factor > 1) or out around `anchor` seconds (default: the middle)."""
        v0, v1 = self._view
        if anchor is None:
            anchor = (v0 + v1) / 2
        span = (v1 - v0) / factor
        ratio = (anchor - v0) / (v1 - v0) if v1 > v0 else 0.5
        self.set_view(anchor - ratio * span, anchor - ratio * span + span)

    def fit(self) -> None:
        """Show the whole sound."""
        self.set_view(0.0, self._duration)

    def scroll_to(self, start: float) -> None:
        v0, v1 = self._view
        self.set_view(start, start + (v1 - v0))

    def set_mode(self, mode: str) -> None:
        """ "waveform", "spectrogram" or "both" (stacked)."""
        if mode not in ("waveform", "spectrogram", "both"):
            raise ValueError(mode)
        self._mode = mode
        self._changed_view()

    def mode(self) -> str:
        return self._mode

    def set_lanes(self, on: bool) -> None:
        """One waveform lane per channel (True) or all channels in one (False)."""
        self._lanes = bool(on)
        self._changed_view()

    def lanes(self) -> bool:
        return self._lanes and self._channels > 1

    def set_time_format(self, fmt: str) -> None:
        self._time_format = fmt if fmt in TIME_FORMATS else "seconds"
        self.update()

    def set_detail(
        self, start: float, end: float, mins: np.ndarray, maxs: np.ndarray, per_channel: bool
    ) -> None:
        """Peaks fetched for [start, end) (engine.audio.views.range_peaks)."""
        self._detail = (start, end, np.asarray(mins), np.asarray(maxs), per_channel)
        self._lines_key = None
        self.update()

    def set_spectrogram(self, start: float, end: float, image: QImage) -> None:
        """A spectrogram image fetched for [start, end)."""
        self._spectrum = (start, end, image)
        self.update()

    def _changed_view(self) -> None:
        self._lines_key = None
        self.update()
        self.view_changed.emit(*self._view)
        if self._duration > 0 and (self._needs_detail() or self._mode != "waveform"):
            self._wanted.start()

    def _needs_detail(self) -> bool:
        v0, v1 = self._view
        buckets = len(self._mins) * (v1 - v0) / self._duration if self._duration else 0
        return self.lanes() or buckets < self.width()

    def _ask_detail(self) -> None:
        key = (*self._view, self.width(), self._areas()[1].height(), self._mode, self.lanes())
        if key != self._asked:
            self._asked = key
            self.detail_wanted.emit(*self._view, self.width(), max(1, self._areas()[1].height()))

    def wanted(self) -> tuple[bool, bool]:
        """(peaks wanted, spectrogram wanted) for the view now: what the owner fetches."""
        return self._needs_detail(), self._mode != "waveform"

    # -- geometry --------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(600, 160)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 40)

    def _areas(self) -> tuple[QRect, QRect]:
        """(waveform area, spectrogram area) above the ruler; an unused one is empty."""
        h = max(1, self.height() - RULER_PX)
        w = self.width()
        if self._mode == "waveform":
            return QRect(0, 0, w, h), QRect(0, h, w, 0)
        if self._mode == "spectrogram":
            return QRect(0, 0, w, 0), QRect(0, 0, w, h)
        top = h // 2
        return QRect(0, 0, w, top), QRect(0, top, w, h - top)

    def _seconds_at(self, x: float) -> float:
        v0, v1 = self._view
        width = max(1, self.width())
        return min(self._duration, max(0.0, v0 + x / width * (v1 - v0)))

    def _x_of(self, seconds: float) -> int:
        v0, v1 = self._view
        if v1 <= v0:
            return 0
        return int(round((seconds - v0) / (v1 - v0) * self.width()))

    # -- mouse and keys --------------------------------------------------------------

    def wheelEvent(self, event) -> None:
        if self._duration <= 0:
            return
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier or abs(delta.x()) > abs(delta.y()):
            steps = (delta.x() or delta.y()) / 120.0
            v0, v1 = self._view
            self.scroll_to(v0 - steps * (v1 - v0) * 0.2)
        else:
            steps = delta.y() / 120.0
            self.zoom(ZOOM_STEP**steps, self._seconds_at(event.position().x()))
        event.accept()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(ZOOM_STEP, self._playhead if self._playhead is not None else None)
        elif key == Qt.Key.Key_Minus:
            self.zoom(1 / ZOOM_STEP)
        else:
            super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.fit()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._duration <= 0:
            super().mousePressEvent(event)
            return
        self._press_x = event.position().x()
        self._drag_x = None
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press_x is None:
            super().mouseMoveEvent(event)
            return
        x = event.position().x()
        if self._drag_x is not None or abs(x - self._press_x) >= DRAG_THRESHOLD_PX:
            self._drag_x = x
            self.update()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press_x is None:
            super().mouseReleaseEvent(event)
            return
        press_x, x = self._press_x, event.position().x()
        self._press_x = self._drag_x = None
        event.accept()
        if abs(x - press_x) < DRAG_THRESHOLD_PX:
            # A click (or a drag too small to mean a region): seek, like a transport.
            self.update()
            self.seek_requested.emit(self._seconds_at(press_x))
            return
        start, end = sorted((self._seconds_at(press_x), self._seconds_at(x)))
        self._selection = (start, end)
        self.update()
        self.region_selected.emit(start, end)

    # -- painting --------------------------------------------------------------------

    def _view_peaks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Peaks for the view, pooled to the width: one pair per lane."""
        width = self.width()
        v0, v1 = self._view
        d = self._detail
        if d is not None and abs(d[0] - v0) < 1e-9 and abs(d[1] - v1) < 1e-9:
            mins, maxs, per_channel = d[2], d[3], d[4]
            if per_channel and self.lanes():
                return [pool_to_columns(mins[c], maxs[c], width) for c in range(len(mins))]
            if per_channel:
                return [pool_to_columns(mins.min(axis=0), maxs.max(axis=0), width)]
            return [pool_to_columns(mins, maxs, width)]
        n = len(self._mins)
        if n == 0 or self._duration <= 0:
            return []
        a = int(np.floor(v0 / self._duration * n))
        b = max(a + 1, int(np.ceil(v1 / self._duration * n)))
        return [pool_to_columns(self._mins[a:b], self._maxs[a:b], width)]

    def _wave_lines(self, area: QRect) -> list[QLine]:
        key = (self.width(), self.height(), self._view, self._mode, self.lanes(),
               id(self._detail))  # fmt: skip
        if key != self._lines_key:
            lanes = self._view_peaks()
            lines: list[QLine] = []
            for i, (lo, hi) in enumerate(lanes):
                h = area.height() // max(1, len(lanes))
                lines += column_lines(
                    QRect(area.left(), area.top() + i * h, area.width(), h), lo, hi
                )
            self._lines = lines
            self._lines_key = key
        return self._lines

    def _band(self, painter: QPainter, start: float, end: float, color: QColor, h: int) -> None:
        start, end = max(0.0, start), min(self._duration, end)
        if end < start:  # entirely outside the file (stale moment)
            return
        x0, x1 = self._x_of(start), self._x_of(end)
        painter.fillRect(QRect(x0, 0, max(1, x1 - x0), h), color)

    def _paint_ruler(self, painter: QPainter, top: int) -> None:
        painter.fillRect(QRect(0, top, self.width(), RULER_PX), RULER_BG)
        v0, v1 = self._view
        if v1 <= v0:
            return
        step = tick_step(v1 - v0, self.width())
        painter.setPen(QPen(RULER_TEXT, 1))
        t = np.ceil(v0 / step) * step
        while t <= v1 + 1e-9:
            x = self._x_of(t)
            painter.drawLine(x, top, x, top + 4)
            painter.drawText(
                x + 3, top + RULER_PX - 4, format_time(t, self._time_format, self._rate)
            )
            t += step

    def frequency_marks(self, area: QRect) -> list[tuple[int, str]]:
        """(y, label) of the frequency scale drawn over a spectrogram in `area`: 100 Hz,
        1k, 10k... (and 50, 200, 500... when there is room), the log scale of
        engine.audio.views.spectrogram."""
        low, high = frequency_span(self._rate)
        span = np.log(high / low)
        if area.height() <= 0 or span <= 0:
            return []
        steps = (1, 2, 5) if area.height() >= 160 else (1,)
        marks = []
        for decade in (10.0, 100.0, 1000.0, 10000.0, 100000.0):
            for m in steps:
                f = decade * m
                if low * 1.05 < f < high * 0.95:
                    y = area.bottom() - int(np.log(f / low) / span * area.height())
                    label = f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"
                    marks.append((y, label))
        return marks

    def _paint_frequencies(self, painter: QPainter, area: QRect) -> None:
        metrics = painter.fontMetrics()
        painter.setPen(QPen(RULER_TEXT, 1))
        for y, label in self.frequency_marks(area):
            # On a dark plate: the spectrogram under a label may be bright.
            box = QRect(0, y - metrics.ascent() // 2 - 2, metrics.horizontalAdvance(label) + 10,
                        metrics.ascent() + 4)  # fmt: skip
            painter.fillRect(box, LABEL_PLATE)
            painter.drawLine(0, y, 4, y)
            painter.drawText(6, y + metrics.ascent() // 2 - 1, label)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        wave_area, spec_area = self._areas()
        content_h = self.height() - RULER_PX
        if spec_area.height() > 0 and self._spectrum is not None:
            s0, s1, image = self._spectrum
            x0, x1 = self._x_of(s0), self._x_of(s1)
            painter.drawImage(
                QRect(x0, spec_area.top(), max(1, x1 - x0), spec_area.height()), image
            )
            self._paint_frequencies(painter, spec_area)
        if self._duration > 0 and self._moment is not None:
            self._band(painter, *self._moment, MOMENT, content_h)
        if wave_area.height() > 0:
            lanes = len(self._view_peaks()) if self._duration > 0 else 1
            painter.setPen(QPen(CENTER_LINE, 1))
            for i in range(max(1, lanes)):
                h = wave_area.height() // max(1, lanes)
                mid = wave_area.top() + i * h + (h - 1) // 2
                painter.drawLine(QPoint(0, mid), QPoint(self.width() - 1, mid))
                if i:
                    painter.setPen(QPen(LANE_LINE, 1))
                    painter.drawLine(
                        0, wave_area.top() + i * h, self.width() - 1, wave_area.top() + i * h
                    )
                    painter.setPen(QPen(CENTER_LINE, 1))
            lines = self._wave_lines(wave_area)
            if lines:
                painter.setPen(QPen(WAVE, 1))
                painter.drawLines(lines)
        if self._duration > 0:
            region = self._selection
            if self._press_x is not None and self._drag_x is not None:
                region = tuple(
                    sorted((self._seconds_at(self._press_x), self._seconds_at(self._drag_x)))
                )
            if region is not None:
                self._band(painter, region[0], region[1], SELECTION, content_h)
                painter.setPen(QPen(SELECTION_EDGE, 1))
                for edge in region:
                    x = min(self._x_of(edge), self.width() - 1)
                    painter.drawLine(x, 0, x, content_h - 1)
            self._paint_ruler(painter, content_h)
            v0, v1 = self._view
            if self._playhead is not None and v0 <= self._playhead <= v1:
                x = min(self._x_of(self._playhead), self.width() - 1)
                painter.setPen(QPen(PLAYHEAD, 1))
                painter.drawLine(x, 0, x, self.height() - 1)
        painter.end()
