"""Paints the results table's Waveform column from the model's overview peaks.

Install it for that column only: view.setItemDelegateForColumn(COL_WAVEFORM, delegate).
GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from gui.results_model import PEAKS_ROLE
from gui.waveform import WAVE, paint_mini_waveform

# Room above and below so neighbouring rows' waveforms do not touch.
_MARGIN_X = 3
_MARGIN_Y = 2


class MiniWaveformDelegate(QStyledItemDelegate):
    """Draws PEAKS_ROLE (mins, maxs) as a mini waveform; a flat line while it is missing."""

    def __init__(self, parent=None, color: QColor | None = None) -> None:
        super().__init__(parent)
        self._color = QColor(color) if color is not None else QColor(WAVE)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        # The style draws the row background, selection and focus; the text is ours to skip.
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        color = opt.palette.color(QPalette.ColorRole.HighlightedText) if selected else self._color
        peaks = index.data(PEAKS_ROLE)
        mins, maxs = peaks if peaks is not None else (None, None)
        rect = opt.rect.adjusted(_MARGIN_X, _MARGIN_Y, -_MARGIN_X, -_MARGIN_Y)
        paint_mini_waveform(painter, rect, mins, maxs, color)

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 120), hint.height())
