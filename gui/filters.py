"""Filter bar: duration, sample rate, channels, format, folder, favorites, tag.

It only builds query-language filters (`dur:1..5 sr:48000 ...`), so the GUI and the
CLI share one query syntax and one code path in the engine.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

RATES = ["any", "8000", "11025", "22050", "32000", "44100", "48000", "88200", "96000", "192000"]
CHANNELS = [("any", ""), ("mono", "ch:1"), ("stereo", "ch:2"), ("multichannel", "ch:>2")]
FORMATS = ["any", "wav", "aiff", "flac", "ogg", "mp3"]


def _quote(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


class FilterBar(QWidget):
    """GUI thread only. `changed` fires whenever a filter changes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.min_dur = QDoubleSpinBox(minimum=0, maximum=36000, decimals=1, suffix=" s")
        self.max_dur = QDoubleSpinBox(minimum=0, maximum=36000, decimals=1, suffix=" s")
        self.min_dur.setSpecialValueText("min")
        self.max_dur.setSpecialValueText("max")
        self.rate = QComboBox()
        self.rate.addItems(RATES)
        self.channels = QComboBox()
        self.channels.addItems([c[0] for c in CHANNELS])
        self.format = QComboBox()
        self.format.addItems(FORMATS)
        self.folder = QLineEdit(placeholderText="folder")
        self.tag = QLineEdit(placeholderText="tag")
        self.favorites = QCheckBox("★ only")
        # Files whose folder was unreachable at the last scan (greyed when shown).
        self.offline = QCheckBox("offline too")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label, widget in (
            ("Length", self.min_dur), ("–", self.max_dur), ("Rate", self.rate),
            ("Ch", self.channels), ("Format", self.format), ("", self.folder), ("", self.tag),
            ("", self.favorites), ("", self.offline),
        ):  # fmt: skip
            if label:
                layout.addWidget(QLabel(label))
            layout.addWidget(widget)
        for spin in (self.min_dur, self.max_dur):
            spin.valueChanged.connect(self.changed)
        for combo in (self.rate, self.channels, self.format):
            combo.currentIndexChanged.connect(self.changed)
        for edit in (self.folder, self.tag):
            edit.textChanged.connect(self.changed)
        self.favorites.toggled.connect(self.changed)
        self.offline.toggled.connect(self.changed)

    def query_suffix(self) -> str:
        """The filters as query-language tokens ('' when none is set)."""
        parts = []
        lo, hi = self.min_dur.value(), self.max_dur.value()
        if lo or hi:
            parts.append(f"dur:{lo:g}..{hi:g}" if hi else f"dur:>={lo:g}")
        if self.rate.currentIndex() > 0:
            parts.append(f"sr:{self.rate.currentText()}")
        if self.channels.currentIndex() > 0:
            parts.append(CHANNELS[self.channels.currentIndex()][1])
        if self.format.currentIndex() > 0:
            parts.append(f"format:{self.format.currentText()}")
        if self.folder.text().strip():
            parts.append(f"folder:{_quote(self.folder.text().strip())}")
        if self.tag.text().strip():
            parts.append(f"tag:{_quote(self.tag.text().strip())}")
        if self.favorites.isChecked():
            parts.append("fav")
        if self.offline.isChecked():
            parts.append("offline:any")
        return " ".join(parts)
