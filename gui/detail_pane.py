"""Detail pane: large waveform with playhead/region/moment, transport and metadata."""

from __future__ import annotations

import html

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.waveform = WaveformView()
        self.waveform.setMinimumHeight(120)
        self.title = QLabel("")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.play_button = QPushButton("▶ Play")
        self.stop_button = QPushButton("■ Stop")
        self.loop = QCheckBox("Loop (L)")
        self.autoplay = QCheckBox("Autoplay")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(80)
        self.volume.setMaximumWidth(120)
        self.position = QLabel("0:00.000")
        self.drag_clip = ClipDragButton()
        self.metadata = QTextBrowser()
        self.metadata.setMaximumHeight(140)

        transport = QHBoxLayout()
        for w in (self.play_button, self.stop_button, self.loop, self.autoplay,
                  QLabel("Vol"), self.volume, self.position):  # fmt: skip
            transport.addWidget(w)
        transport.addStretch(1)
        transport.addWidget(self.drag_clip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.waveform, 1)
        layout.addLayout(transport)
        layout.addWidget(self.metadata)

        self.play_button.clicked.connect(self.play_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.volume.valueChanged.connect(lambda v: self.volume_changed.emit(v / 100.0))
        self.loop.toggled.connect(self.loop_toggled)

    def show_file(self, row: dict, moment: tuple[float | None, float | None]) -> None:
        name, folder = printable(row["name"]), printable(row["folder"])
        self.title.setText(f"<b>{html.escape(name)}</b> — {html.escape(folder)}")
        if row.get("peaks") is not None:
            mins, maxs = row["peaks"]
            self.waveform.set_peaks(mins, maxs, row["duration"] or 0.0)
        else:
            self.waveform.clear()
        self.waveform.set_moment(*moment)
        self.drag_clip.set_clip(None)
        self.metadata.setHtml(metadata_html(row))

    def show_position(self, seconds: float | None) -> None:
        self.waveform.set_playhead(seconds)
        self.position.setText(format_duration(seconds or 0.0))


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
