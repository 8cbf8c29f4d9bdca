"""Waveform drawing: the detail pane's large view and the mini waveform of a result row.

Both draw precomputed min/max peaks (engine.scan.peaks), one vertical line per pixel column, so
drawing never touches audio or the database. GUI thread only.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLine, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

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


class WaveformView(QWidget):
    """The large waveform of the selected sound, with playhead, moment and selection.

    A click emits seek_requested(seconds); a press-drag-release selects a region and emits
    region_selected(start, end). GUI thread only.
    """

    seek_requested = Signal(float)
    region_selected = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.IBeamCursor)
        self._mins = np.zeros(0, dtype=np.float32)
        self._maxs = np.zeros(0, dtype=np.float32)
        self._duration = 0.0
        self._playhead: float | None = None
        self._moment: tuple[float, float] | None = None
        self._selection: tuple[float, float] | None = None
        self._press_x: float | None = None
        self._drag_x: float | None = None
        # Pixel-column lines for the last widget size; peaks are fixed per file, so
        # repaints for the playhead only redraw, they do not resample.
        self._lines_key: tuple[int, int] | None = None
        self._lines: list[QLine] = []

    # -- content ---------------------------------------------------------------------

    def set_peaks(self, mins: np.ndarray, maxs: np.ndarray, duration: float) -> None:
        """Show a new file's detail peaks. Clears the playhead, moment and selection."""
        self._mins = np.asarray(mins, dtype=np.float32)
        self._maxs = np.asarray(maxs, dtype=np.float32)
        self._duration = max(0.0, float(duration))
        self._playhead = None
        self._moment = None
        self._selection = None
        self._press_x = self._drag_x = None
        self._lines_key = None
        self.update()

    def clear(self) -> None:
        """Show nothing (no file selected)."""
        self.set_peaks(np.zeros(0), np.zeros(0), 0.0)

    def duration(self) -> float:
        """Seconds spanned by the widget's width (0 when empty)."""
        return self._duration

    def set_playhead(self, seconds: float | None) -> None:
        """Move the playhead line; None hides it."""
        self._playhead = None if seconds is None else float(seconds)
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

    # -- geometry --------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(600, 140)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 40)

    def _seconds_at(self, x: float) -> float:
        width = max(1, self.width())
        return min(self._duration, max(0.0, x / width * self._duration))

    def _x_of(self, seconds: float) -> int:
        if self._duration <= 0:
            return 0
        return int(round(seconds / self._duration * self.width()))

    # -- mouse -----------------------------------------------------------------------

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

    def _wave_lines(self) -> list[QLine]:
        key = (self.width(), self.height())
        if key != self._lines_key:
            rect = QRect(0, 0, self.width(), self.height())
            self._lines = column_lines(rect, *pool_to_columns(self._mins, self._maxs, key[0]))
            self._lines_key = key
        return self._lines

    def _band(self, painter: QPainter, start: float, end: float, color: QColor) -> None:
        start, end = max(0.0, start), min(self._duration, end)
        if end < start:  # entirely outside the file (stale moment)
            return
        x0, x1 = self._x_of(start), self._x_of(end)
        painter.fillRect(QRect(x0, 0, max(1, x1 - x0), self.height()), color)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        mid = (self.height() - 1) // 2
        if self._duration > 0 and self._moment is not None:
            self._band(painter, *self._moment, MOMENT)
        painter.setPen(QPen(CENTER_LINE, 1))
        painter.drawLine(QPoint(0, mid), QPoint(self.width() - 1, mid))
        lines = self._wave_lines()
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
                self._band(painter, region[0], region[1], SELECTION)
                painter.setPen(QPen(SELECTION_EDGE, 1))
                for edge in region:
                    x = min(self._x_of(edge), self.width() - 1)
                    painter.drawLine(x, 0, x, self.height() - 1)
            if self._playhead is not None and 0 <= self._playhead <= self._duration:
                x = min(self._x_of(self._playhead), self.width() - 1)
                painter.setPen(QPen(PLAYHEAD, 1))
                painter.drawLine(x, 0, x, self.height() - 1)
        painter.end()
