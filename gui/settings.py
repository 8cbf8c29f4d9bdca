"""Persistent app settings (QSettings) and the settings dialog. GUI thread only."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

DEFAULTS = {
    "model": "laion/clap-htsat-unfused",
    "device": "auto",
    "audio_device": "",
    "library": "",
    "similar_space": "aisfx",
    "autoplay": "true",
    "history": "",
}


def open_settings(path: str | None = None) -> QSettings:
    """The app's settings; a file path (tests) gives an INI file there instead."""
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("Sonarium", "Sonarium")


def get(settings: QSettings, key: str) -> str:
    value = settings.value(key, DEFAULTS.get(key, ""))
    return "" if value is None else str(value)


def output_devices() -> list[str]:
    """Names of audio output devices ('' = system default); empty when PortAudio is absent."""
    try:
        import sounddevice

        return [d["name"] for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    except Exception:
        return []


class SettingsDialog(QDialog):
    """Model, compute device, audio output device, library location, find-similar space."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.model = QLineEdit(get(settings, "model"))
        self.model.setPlaceholderText("hub id (laion/clap-htsat-unfused) or a local folder")
        self.device = QComboBox()
        self.device.addItems(["auto", "cuda", "cpu"])
        self.device.setCurrentText(get(settings, "device"))
        self.audio_device = QComboBox()
        self.audio_device.addItems(["", *output_devices()])
        self.audio_device.setItemText(0, "system default")
        current = get(settings, "audio_device")
        if current:
            self.audio_device.setCurrentText(current)
        self.library = QLineEdit(get(settings, "library"))
        self.library.setPlaceholderText("default user data folder")
        self.space = QComboBox()
        self.space.addItems(["aisfx", "mfcc"])
        self.space.setCurrentText(get(settings, "similar_space"))
        form = QFormLayout(self)
        form.addRow("Text-search model", self.model)
        form.addRow("Compute device", self.device)
        form.addRow("Audio output", self.audio_device)
        form.addRow("Library folder", self.library)
        form.addRow("Find-similar model", self.space)
        form.addRow(QLabel("Library folder and model changes apply after a restart."))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        self.settings.setValue("model", self.model.text().strip())
        self.settings.setValue("device", self.device.currentText())
        audio = "" if self.audio_device.currentIndex() == 0 else self.audio_device.currentText()
        self.settings.setValue("audio_device", audio)
        self.settings.setValue("library", self.library.text().strip())
        self.settings.setValue("similar_space", self.space.currentText())
        self.settings.sync()
        super().accept()
