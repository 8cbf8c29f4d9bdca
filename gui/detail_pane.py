"""Detail pane: large waveform with playhead/region/moment, transport and metadata."""

from __future__ import annotations

import html

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollBar,
    QSizePolicy,
    QSlider,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.audio.player import MAX_SEMITONES
from engine.catalog.text import printable
from gui.file_urls import file_url
from gui.results_model import format_duration
from gui.waveform import WaveformView


class ClipDragButton(QPushButton):
    """Drag source for the rendered region clip (in the cache folder, rendered with the
    transfer settings: engine/audio/transfer.py)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("⇲ Drag region", parent)
        self.clip_path: str | None = None
        self.clip_paths: list[str] = []
        self.setEnabled(False)
        self.setToolTip("Select a region on the waveform, then drag from here into a DAW")

    def set_clip(self, path: str | list[str] | None) -> None:
        """The rendered clip (a list: one file per channel, when the transfer splits)."""
        self.clip_paths = [] if path is None else [path] if isinstance(path, str) else list(path)
        self.clip_path = self.clip_paths[0] if self.clip_paths else None
        self.setEnabled(self.clip_path is not None)

    def mime_data(self) -> QMimeData | None:
        if not self.clip_path:
            return None
        mime = QMimeData()
        mime.setUrls([file_url(p) for p in self.clip_paths])
        mime.setText("\n".join(self.clip_paths))
        return mime

    def mouseMoveEvent(self, event) -> None:
        mime = self.mime_data()
        if mime is None or not event.buttons() & Qt.MouseButton.LeftButton:
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)


class DetailPane(QWidget):
    """GUI thread only."""

    play_clicked = Signal()
    stop_clicked = Signal()
    volume_changed = Signal(float)
    loop_toggled = Signal(bool)
    pitch_changed = Signal(float)  # semitones (varispeed)
    match_loudness_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.waveform = WaveformView()
        self.waveform.setMinimumHeight(120)
        # View controls: waveform / spectrogram / both, a lane per channel, zoom, scroll.
        self.view_mode = QComboBox()
        self.view_mode.addItems(["waveform", "spectrogram", "both"])
        self.view_mode.setToolTip("What the large view shows")
        self.lanes = QCheckBox("Channels")
        self.lanes.setToolTip("A waveform lane per channel")
        self.zoom_in = QPushButton("+")
        self.zoom_out = QPushButton("−")
        self.zoom_fit = QPushButton("Fit")
        for button, tip in ((self.zoom_in, "Zoom in (wheel, +)"), (self.zoom_out, "Zoom out (-)"),
                            (self.zoom_fit, "Show the whole sound (double-click)")):  # fmt: skip
            button.setToolTip(tip)
            button.setMaximumWidth(48)
        self.scroll = QScrollBar(Qt.Orientation.Horizontal)
        self.scroll.setRange(0, 0)
        self.title = QLabel("")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long name or folder is cut at the pane's edge instead of widening the window.
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(40)
        self.play_button = QPushButton("▶ Play")
        self.stop_button = QPushButton("■ Stop")
        self.loop = QCheckBox("Loop (L)")
        self.autoplay = QCheckBox("Autoplay")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(80)
        self.volume.setMaximumWidth(120)
        self.position = QLabel("0:00.000")
        # Varispeed in semitones, cents as hundredths (Alt+Up/Down: a semitone,
        # Alt+Shift+Up/Down: a cent, Alt+0: back to the file's own speed).
        self.pitch = QDoubleSpinBox()
        self.pitch.setRange(-MAX_SEMITONES, MAX_SEMITONES)
        self.pitch.setDecimals(2)
        self.pitch.setSingleStep(1.0)
        self.pitch.setSuffix(" st")
        self.pitch.setToolTip(
            "Varispeed: rate and pitch together, in semitones (Alt+Up/Down a semitone, "
            "Alt+Shift+Up/Down a cent, Alt+0 resets)"
        )
        self.match_loudness = QCheckBox("Match loudness")
        self.match_loudness.setToolTip(
            "Play every file at the same loudness (Settings: audition loudness), never "
            "above -1 dBTP"
        )
        # Integrated loudness and true peak of the file (from the scan) and of the
        # selected region (measured when it is selected).
        self.levels = QLabel("")
        self.levels.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.drag_clip = ClipDragButton()
        self.metadata = QTextBrowser()
        self.metadata.setMaximumHeight(140)

        transport = QHBoxLayout()
        for w in (self.play_button, self.stop_button, self.loop, self.autoplay,
                  QLabel("Vol"), self.volume, self.position):  # fmt: skip
            transport.addWidget(w)
        transport.addStretch(1)
        transport.addWidget(self.drag_clip)
        audition = QHBoxLayout()
        for w in (QLabel("Pitch"), self.pitch, self.match_loudness, self.levels):
            audition.addWidget(w)
        audition.addStretch(1)
        view_bar = QHBoxLayout()
        view_bar.addWidget(self.title, 1)
        for w in (self.view_mode, self.lanes, self.zoom_out, self.zoom_in, self.zoom_fit):
            view_bar.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(view_bar)
        layout.addWidget(self.waveform, 1)
        layout.addWidget(self.scroll)
        layout.addLayout(transport)
        layout.addLayout(audition)
        layout.addWidget(self.metadata)
        self._file_levels = ""

        self.play_button.clicked.connect(self.play_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.volume.valueChanged.connect(lambda v: self.volume_changed.emit(v / 100.0))
        self.loop.toggled.connect(self.loop_toggled)
        self.pitch.valueChanged.connect(self.pitch_changed)
        self.view_mode.currentTextChanged.connect(self.waveform.set_mode)
        self.lanes.toggled.connect(self.waveform.set_lanes)
        self.zoom_in.clicked.connect(lambda: self.waveform.zoom(1.5))
        self.zoom_out.clicked.connect(lambda: self.waveform.zoom(1 / 1.5))
        self.zoom_fit.clicked.connect(self.waveform.fit)
        self.waveform.view_changed.connect(self._follow_view)
        self.scroll.valueChanged.connect(self._scrolled)
        self.match_loudness.toggled.connect(self.match_loudness_toggled)

    # The scroll bar counts milliseconds of the sound.
    def _follow_view(self, start: float, end: float) -> None:
        duration = self.waveform.duration()
        span_ms = int(round((end - start) * 1000))
        self.scroll.blockSignals(True)
        self.scroll.setRange(0, max(0, int(round(duration * 1000)) - span_ms))
        self.scroll.setPageStep(max(1, span_ms))
        self.scroll.setSingleStep(max(1, span_ms // 10))
        self.scroll.setValue(int(round(start * 1000)))
        self.scroll.blockSignals(False)

    def _scrolled(self, value: int) -> None:
        self.waveform.scroll_to(value / 1000.0)

    def nudge_pitch(self, semitones: float) -> None:
        """Shortcut steps: a semitone or a cent up or down (0: back to the file's speed)."""
        if semitones == 0:
            self.pitch.setValue(0.0)
        else:
            self.pitch.setValue(round(self.pitch.value() + semitones, 2))

    def show_selection_levels(self, levels: dict | None) -> None:
        """The selected region's levels (engine.audio.loudness.Loudness.to_json), or None
        to show the file's alone."""
        text = self._file_levels
        if levels is not None:
            text += ("  ·  " if text else "") + "Selection " + levels_text(levels)
        self.levels.setText(text)

    def show_file(self, row: dict, moment: tuple[float | None, float | None]) -> None:
        name, folder = printable(row["name"]), printable(row["folder"])
        self.title.setText(f"<b>{html.escape(name)}</b> — {html.escape(folder)}")
        if row.get("peaks") is not None:
            mins, maxs = row["peaks"]
            self.waveform.set_peaks(
                mins, maxs, row["duration"] or 0.0, row.get("channels") or 1,
                row.get("sample_rate") or 48000,
            )  # fmt: skip
        else:
            self.waveform.clear()
        self.waveform.set_moment(*moment)
        self.drag_clip.set_clip(None)
        self.metadata.setHtml(metadata_html(row))
        measured = row.get("true_peak_db") is not None or row.get("loudness_lufs") is not None
        self._file_levels = (
            "File " + levels_text({"integrated_lufs": row.get("loudness_lufs"),
                                   "true_peak_dbtp": row.get("true_peak_db")})
            if measured else ""
        )  # fmt: skip
        self.show_selection_levels(None)

    def show_position(self, seconds: float | None) -> None:
        self.waveform.set_playhead(seconds)
        self.position.setText(format_duration(seconds or 0.0))


def levels_text(levels: dict) -> str:
    """ "-18.3 LUFS, -1.2 dBTP" ("silent" for a level that is None)."""

    def show(value: float | None, unit: str) -> str:
        return "silent" if value is None else f"{value:.1f} {unit}"

    return (
        f"{show(levels.get('integrated_lufs'), 'LUFS')}, "
        f"{show(levels.get('true_peak_dbtp'), 'dBTP')}"
    )


def _joined(row: dict, keys: tuple[str, ...]) -> str:
    return " · ".join(str(row[k]) for k in keys if row.get(k))


def metadata_html(row: dict) -> str:
    """Technical data, BWF/iXML, embedded tags, UCS and user tags as a small table."""
    fields = [
        ("Path", row.get("path")),
        ("Format", f"{row.get('format')} {row.get('subtype') or ''}"),
        ("Sample rate", f"{row.get('sample_rate')} Hz"),
        ("Channels", row.get("channels")),
        ("Bit depth", row.get("bit_depth")),
        ("Length", format_duration(row.get("duration"))),
        ("Peak / RMS", f"{row.get('peak_db')} / {row.get('rms_db')} dBFS"),
        ("Description", row.get("description")),
        ("Keywords", row.get("keywords")),
        ("Designer", row.get("designer")),
        ("Library", row.get("library")),
        ("Rating", "★" * int(row["rating"]) if row.get("rating") else None),
        ("Originator", row.get("originator")),
        ("Date", row.get("origination_date")),
        ("iXML", _joined(row, ("ixml_project", "ixml_scene", "ixml_take", "ixml_note"))),
        ("UCS", _joined(row, ("ucs_catid", "ucs_category", "ucs_subcategory", "ucs_fx_name"))),
        ("Tags", ", ".join(row.get("tags") or [])),
        ("Favorite", "★" if row.get("favorite") else ""),
    ]
    fields += [(k.title(), v) for k, v in (row.get("embedded_tags") or {}).items()]
    fields.append(("Edited", edits_text(row.get("edits") or {})))
    rows = "".join(
        f"<tr><td><b>{html.escape(printable(k))}</b></td><td>{html.escape(printable(v))}</td></tr>"
        for k, v in fields
        if v not in (None, "", "None")
    )
    return f"<table cellspacing='2'>{rows}</table>"


def edits_text(edits: dict) -> str:
    """Who edited which field when, and whether it is in the file yet."""
    import time

    from engine.catalog.fields import FIELDS

    parts = []
    for name, e in sorted(edits.items(), key=lambda kv: -kv[1]["edited_at"]):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["edited_at"]))
        written = e["written_at"] is not None and e["written_at"] >= e["edited_at"]
        label = FIELDS[name].label if name in FIELDS else name
        parts.append(f"{label} by {e['editor']} {when}" + ("" if written else " (not written)"))
    return "; ".join(parts)
